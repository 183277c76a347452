"""Tests for the feature cache's model fingerprint, on local disk and on `ram://`."""

import hashlib
import os
import types
import uuid

from absl.testing import absltest

from official.core import io
from official.evaluation import features

_TRAINING_FILES = {"config.json": "{}", "checkpoints/ckpt-1.index": "index",
                   "checkpoints/ckpt-1.data-00000-of-00001": "weights",
                   "export/saved_model/saved_model.pb": "graph",
                   "export/saved_model/variables/variables.index": "vars"}


def _write(root, files):
  for name, text in files.items():
    io.atomic_write_text(io.join(root, *name.split("/")), text)


def _reference(source, roots):
  """The fingerprint computed directly from os.walk and os.stat (local folders)."""
  parts = [source]
  for root in roots:
    files = [root] if os.path.isfile(root) else [
        os.path.join(directory, name) for directory, _, names in os.walk(root)
        for name in names]
    for path in files:
      stat = os.stat(path)
      parts.append(f"{os.path.relpath(path, source)}:{stat.st_size}:{stat.st_mtime_ns}")
  return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def _model(path):
  return types.SimpleNamespace(path=path)


class ModelFingerprintTest(absltest.TestCase):

  def test_local_training_folder_matches_os_walk_and_os_stat(self):
    source = self.create_tempdir().full_path
    _write(source, {**_TRAINING_FILES, "transfer/knn/x.json": "{}", "metrics.json": "{}"})
    roots = [os.path.join(source, name) for name in ("config.json", "checkpoints", "export")]
    self.assertEqual(features.model_fingerprint(_model(source)), _reference(source, roots))

  def test_local_saved_model_matches_os_walk_and_os_stat(self):
    source = self.create_tempdir().full_path
    _write(source, {"saved_model.pb": "graph", "variables/variables.index": "vars",
                    "assets/endpoints.json": "{}"})
    self.assertEqual(features.model_fingerprint(_model(source)), _reference(source, [source]))

  def test_remote_folder_follows_the_weights_not_the_results(self):
    source = f"ram://features_test/{uuid.uuid4().hex}"
    _write(source, _TRAINING_FILES)
    first = features.model_fingerprint(_model(source))
    _write(source, {"transfer/knn/x.json": "{}", "metrics.json": "{}"})
    self.assertEqual(features.model_fingerprint(_model(source)), first)
    _write(source, {"checkpoints/ckpt-1.data-00000-of-00001": "other weights"})
    self.assertNotEqual(features.model_fingerprint(_model(source)), first)
    other = f"ram://features_test/{uuid.uuid4().hex}"
    _write(other, _TRAINING_FILES)
    self.assertNotEqual(features.model_fingerprint(_model(other)), first)  # another path


if __name__ == "__main__":
  absltest.main()
