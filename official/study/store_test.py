"""Tests for the study's result files: skip when done, move aside when stale."""

import os

from absl.testing import absltest

from official.study import store as store_lib


class ResultStoreTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.workdir = self.create_tempdir().full_path
    self.store = store_lib.ResultStore(self.workdir)

  def test_fingerprint_is_order_independent_and_sensitive(self):
    self.assertEqual(store_lib.fingerprint({"a": 1, "b": [1, 2]}),
                     store_lib.fingerprint({"b": [1, 2], "a": 1}))
    self.assertNotEqual(store_lib.fingerprint({"a": 1}), store_lib.fingerprint({"a": 2}))

  def test_status_cycle(self):
    key = "transfer/softmax/seed0/demo_texture"
    self.assertEqual(self.store.status(key, "fp1"), "missing")
    self.store.put(key, "fp1", {"linear": {"test": 0.5}})
    self.assertEqual(self.store.status(key, "fp1"), "done")
    self.assertEqual(self.store.get(key, "fp1"), {"linear": {"test": 0.5}})
    self.assertEqual(self.store.status(key, "fp2"), "stale")
    self.assertIsNone(self.store.get(key, "fp2"))
    moved = self.store.mark_stale(key)
    self.assertTrue(os.path.exists(moved))
    self.assertEqual(self.store.status(key, "fp2"), "missing")
    self.assertEqual(list(self.store.keys()), [])

  def test_damaged_file_counts_as_missing(self):
    path = self.store.path("pretrain/softmax/seed0")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
      f.write('{"fingerprint": "fp", "res')
    self.assertEqual(self.store.status("pretrain/softmax/seed0", "fp"), "missing")
    self.assertFalse(os.path.exists(path))

  def test_keys_are_sorted_paths(self):
    for key in ("pretrain/b/seed0", "pretrain/a/seed1", "cka"):
      self.store.put(key, "fp", {})
    self.assertEqual(list(self.store.keys()), ["cka", "pretrain/a/seed1", "pretrain/b/seed0"])


if __name__ == "__main__":
  absltest.main()
