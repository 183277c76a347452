"""Tests for the study's result files: skip when done, move aside when stale; on local disk and
on TensorFlow's in-memory filesystem `ram://` (the offline stand-in for Cloud Storage)."""

import uuid

from absl.testing import absltest
from absl.testing import parameterized
import tensorflow as tf

from official.core import io
from official.study import store as store_lib


class ResultStoreTest(parameterized.TestCase):

  def _store(self, filesystem):
    if filesystem == "local":
      return store_lib.ResultStore(self.create_tempdir().full_path)
    return store_lib.ResultStore(f"ram://store_test/{uuid.uuid4().hex}")

  def test_fingerprint_is_order_independent_and_sensitive(self):
    self.assertEqual(store_lib.fingerprint({"a": 1, "b": [1, 2]}),
                     store_lib.fingerprint({"b": [1, 2], "a": 1}))
    self.assertNotEqual(store_lib.fingerprint({"a": 1}), store_lib.fingerprint({"a": 2}))

  @parameterized.parameters("local", "ram")
  def test_status_cycle(self, filesystem):
    store = self._store(filesystem)
    key = "transfer/softmax/seed0/demo_size"
    self.assertEqual(store.status(key, "fp1"), "missing")
    store.put(key, "fp1", {"linear": {"test": 0.5}})
    self.assertEqual(store.status(key, "fp1"), "done")
    self.assertEqual(store.get(key, "fp1"), {"linear": {"test": 0.5}})
    self.assertEqual(store.status(key, "fp2"), "stale")
    self.assertIsNone(store.get(key, "fp2"))
    moved = store.mark_stale(key)
    self.assertTrue(moved.startswith(store.stale_root))
    self.assertEqual(io.read_json(moved)["result"], {"linear": {"test": 0.5}})
    self.assertEqual(store.status(key, "fp2"), "missing")
    self.assertEqual(list(store.keys()), [])
    self.assertIsNone(store.mark_stale(key))

  @parameterized.parameters("local", "ram")
  def test_damaged_file_counts_as_missing(self, filesystem):
    store = self._store(filesystem)
    path = store.path("pretrain/softmax/seed0")
    io.makedirs(io.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
      f.write('{"fingerprint": "fp", "res')
    self.assertEqual(store.status("pretrain/softmax/seed0", "fp"), "missing")
    self.assertFalse(io.exists(path))

  @parameterized.parameters("local", "ram")
  def test_keys_are_sorted_paths(self, filesystem):
    store = self._store(filesystem)
    for key in ("pretrain/b/seed0", "pretrain/a/seed1", "cka"):
      store.put(key, "fp", {})
    self.assertEqual(list(store.keys()), ["cka", "pretrain/a/seed1", "pretrain/b/seed0"])
    self.assertEqual(list(store.keys("pretrain")), ["pretrain/a/seed1", "pretrain/b/seed0"])
    self.assertEqual(list(store.keys("transfer/")), [])


if __name__ == "__main__":
  absltest.main()
