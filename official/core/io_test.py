"""Tests for file helpers and atomic result files, on local disk and on TensorFlow's `ram://`."""

import os
import uuid
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.core import io


class IOTest(parameterized.TestCase):

  def _root(self, filesystem):
    if filesystem == "local":
      return self.create_tempdir().full_path
    return f"ram://io_test/{uuid.uuid4().hex}"

  @parameterized.parameters("local", "ram")
  def test_round_trip_with_numpy_values(self, filesystem):
    path = io.join(self._root(filesystem), "sub", "result.json")
    io.atomic_write_json(path, {"acc": np.float32(0.5), "k": np.int64(3), "v": np.arange(3)})
    self.assertEqual(io.read_json(path), {"acc": 0.5, "k": 3, "v": [0, 1, 2]})
    self.assertEqual(io.read_text(path).splitlines()[0], "{")

  @parameterized.parameters("local", "ram")
  def test_failed_write_leaves_previous_file_and_no_temporary(self, filesystem):
    directory = self._root(filesystem)
    path = io.join(directory, "result.json")
    io.atomic_write_json(path, {"a": 1})
    with mock.patch.object(tf.io.gfile, "rename", side_effect=OSError("disk full")):
      with self.assertRaisesRegex(OSError, "disk full"):
        io.atomic_write_json(path, {"a": 2})
    self.assertEqual(io.read_json(path), {"a": 1})
    self.assertEqual(io.listdir(directory), ["result.json"])

  @parameterized.parameters("local", "ram")
  def test_overwrite_replaces_content(self, filesystem):
    path = io.join(self._root(filesystem), "x.txt")
    io.atomic_write_text(path, "a long first version")
    io.atomic_write_text(path, "short")
    self.assertEqual(io.read_text(path), "short")

  @parameterized.parameters("local", "ram")
  def test_listing_walking_and_removal(self, filesystem):
    root = self._root(filesystem)
    for name in ("b/y.json", "a/x.json", "a/deeper/z.json", "top.json"):
      io.atomic_write_text(io.join(root, name), name)
    self.assertEqual(io.listdir(root), ["a", "b", "top.json"])
    self.assertEqual(list(io.walk_files(root)),
                     ["a/deeper/z.json", "a/x.json", "b/y.json", "top.json"])
    self.assertTrue(io.isdir(io.join(root, "a")))
    io.rmtree(io.join(root, "a"))
    self.assertFalse(io.exists(io.join(root, "a", "x.json")))
    self.assertEqual(io.listdir(root), ["b", "top.json"])
    io.rmtree(io.join(root, "never-made"))  # missing: fine
    io.remove(io.join(root, "never-made.json"))
    self.assertEqual(io.listdir(io.join(root, "never-made")), [])
    self.assertEqual(list(io.walk_files(io.join(root, "never-made"))), [])

  @parameterized.parameters("local", "ram")
  def test_leftover_temporaries_are_removed(self, filesystem):
    root = self._root(filesystem)
    io.atomic_write_text(io.join(root, "kept.json"), "{}")
    leftover = io.join(root, ".kept.json.0123456789ab.tmp")
    with tf.io.gfile.GFile(leftover, "w") as f:
      f.write("partial")
    self.assertTrue(io.is_temporary(leftover))
    self.assertFalse(io.is_temporary(io.join(root, "kept.json")))
    for name in io.listdir(root):
      if io.is_temporary(name):
        io.remove(io.join(root, name))
    self.assertEqual(io.listdir(root), ["kept.json"])

  @parameterized.parameters("local", "ram")
  def test_missing_file_is_a_file_not_found_error(self, filesystem):
    path = io.join(self._root(filesystem), "missing.json")
    with self.assertRaises(FileNotFoundError) as raised:
      io.read_json(path)
    self.assertEqual(raised.exception.filename, path)

  @parameterized.parameters("local", "ram")
  def test_a_name_prefix_is_not_a_folder(self, filesystem):
    root = self._root(filesystem)
    io.atomic_write_text(io.join(root, "model.tmp-1", "saved_model.pb"), "x")
    io.makedirs(io.join(root, "empty"))
    self.assertFalse(io.exists(io.join(root, "model")))
    self.assertFalse(io.isdir(io.join(root, "model")))
    self.assertTrue(io.isdir(io.join(root, "empty")))
    self.assertFalse(io.isdir(io.join(root, "model.tmp-1", "saved_model.pb")))
    self.assertEqual(io.listdir(io.join(root, "model")), [])
    self.assertEqual(io.listdir(root), ["empty", "model.tmp-1"])

  @parameterized.parameters("local", "ram")
  def test_folder_rename_moves_every_file(self, filesystem):
    root = self._root(filesystem)
    files = {"saved_model.pb": "graph", "variables/variables.index": "index",
             "assets/deeper/endpoints.json": "{}"}
    for name, text in files.items():
      io.atomic_write_text(io.join(root, "export.tmp", *name.split("/")), text)
    io.rename(io.join(root, "export.tmp"), io.join(root, "export"))
    self.assertFalse(io.exists(io.join(root, "export.tmp")))
    self.assertEqual(io.walk_files(root), sorted(f"export/{name}" for name in files))
    for name, text in files.items():
      self.assertEqual(io.read_text(io.join(root, "export", *name.split("/"))), text)
    io.rmtree(io.join(root, "export"))
    self.assertFalse(io.exists(io.join(root, "export")))
    self.assertEqual(io.listdir(root), [])

  @parameterized.parameters("local", "ram")
  def test_stat_gives_the_size(self, filesystem):
    path = io.join(self._root(filesystem), "x.bin")
    io.atomic_write_bytes(path, b"12345")
    self.assertEqual(io.stat(path).size, 5)

  def test_local_stat_has_os_stat_resolution(self):
    path = io.join(self.create_tempdir().full_path, "x.bin")
    io.atomic_write_bytes(path, b"1")
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    self.assertEqual(io.stat(path).mtime_ns, 1_700_000_000_123_456_789)
    self.assertAlmostEqual(io.mtime(path), 1_700_000_000.123456789, places=5)

  def test_absolute_leaves_urls_alone(self):
    self.assertEqual(io.absolute("gs://bucket/runs/x"), "gs://bucket/runs/x")
    self.assertEqual(io.absolute("ram://runs/x"), "ram://runs/x")
    self.assertEqual(io.absolute("runs/x"), os.path.join(os.getcwd(), "runs", "x"))
    self.assertTrue(io.is_remote("gs://b/x"))
    self.assertFalse(io.is_remote("/tmp/x"))
    self.assertEqual(io.join("gs://b", "runs", "x"), "gs://b/runs/x")
    self.assertEqual(io.dirname("gs://b/runs/x.json"), "gs://b/runs")


if __name__ == "__main__":
  absltest.main()
