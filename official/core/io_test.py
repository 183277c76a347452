"""Tests for atomic result files."""

import os
from unittest import mock

from absl.testing import absltest
import numpy as np

from official.core import io


class AtomicWriteTest(absltest.TestCase):

  def test_round_trip_with_numpy_values(self):
    path = os.path.join(self.create_tempdir().full_path, "sub", "result.json")
    io.atomic_write_json(path, {"acc": np.float32(0.5), "k": np.int64(3), "v": np.arange(3)})
    self.assertEqual(io.read_json(path), {"acc": 0.5, "k": 3, "v": [0, 1, 2]})

  def test_failed_write_leaves_previous_file_and_no_temporary(self):
    directory = self.create_tempdir().full_path
    path = os.path.join(directory, "result.json")
    io.atomic_write_json(path, {"a": 1})
    with mock.patch.object(os, "replace", side_effect=OSError("disk full")):
      with self.assertRaisesRegex(OSError, "disk full"):
        io.atomic_write_json(path, {"a": 2})
    self.assertEqual(io.read_json(path), {"a": 1})
    self.assertEqual(os.listdir(directory), ["result.json"])


if __name__ == "__main__":
  absltest.main()
