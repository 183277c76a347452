"""Tests of the transfer binaries' library: result names, output dirs, the feature cache."""

import json
import os

import numpy as np
import tensorflow as tf

from official.core import config
from official.data import datasets
from official.evaluation import features
from official.evaluation import transfer
from official.modeling import pretrained


class TransferTest(tf.test.TestCase):

  def test_result_names(self):
    self.assertEqual(datasets.result_name("folder:/d/x@5-9"), "folder__d_x_5-9")
    self.assertEqual(datasets.result_name("demo_size/small"), "demo_size_small")
    self.assertEqual(datasets.result_name("cifar10"), "cifar10")
    with self.assertRaisesRegex(ValueError, "'cifar10' and 'cifar10' both write cifar10.json"):
      transfer.resolve_datasets(["cifar10", " cifar10"], None, None)
    with self.assertRaisesRegex(ValueError, "--datasets is empty"):
      transfer.resolve_datasets([" "], None, None)

  def test_class_name_difference(self):
    self.assertIsNone(datasets.class_name_difference(["a", "b"], ("a", "b")))
    self.assertEqual(
        datasets.class_name_difference(["blue", "cyan", "magenta"], ["blue", "cyan", "blue"]),
        "3 classes [..., 1: 'cyan', 2: 'magenta'] vs 3 recorded [..., 1: 'cyan', 2: 'blue'] "
        "(label 2: 'magenta' vs 'blue')")
    self.assertEqual(datasets.class_name_difference(["a"], ["a", "b"]),
                     "1 classes [0: 'a'] vs 2 recorded [0: 'a', 1: 'b'] (label 1: None vs 'b')")

  def test_model_dir_of_a_path_and_default_output_dirs(self):
    root = self.create_tempdir().full_path
    model_dir = os.path.join(root, "run")
    export = os.path.join(model_dir, "export", "saved_model")
    tf.io.gfile.makedirs(export)
    with tf.io.gfile.GFile(os.path.join(model_dir, "config.json"), "w") as f:
      f.write(json.dumps(config.to_dict(config.override(config.get_experiment("demo"),
                                                        {"data.classes": "0-4"}))))
    for path in (model_dir, export, model_dir + "/"):
      self.assertEqual(pretrained.training_model_dir(path), model_dir)
      data = pretrained.training_config(path)["data"]
      self.assertEqual((data["dataset"], data["classes"]), ("demo_pretrain", "0-4"))
      self.assertEqual(transfer.default_output_dir(path), os.path.join(model_dir, "transfer"))
    released = os.path.join(root, "released", "softmax_seed0")
    tf.io.gfile.makedirs(released)
    self.assertIsNone(pretrained.training_model_dir(released))
    self.assertEqual(pretrained.training_config(released), {})
    self.assertEqual(transfer.default_output_dir(released + "/"),
                     os.path.join("transfer", "softmax_seed0"))
    self.assertEqual(transfer.output_dirs(released, "out", None), ("out", "out/features"))
    self.assertEqual(transfer.output_dirs(released, "out", ""), ("out", None))
    with tf.io.gfile.GFile(os.path.join(model_dir, "config.json"), "w") as f:
      f.write("{")
    with self.assertRaisesRegex(ValueError, "config.json is not valid JSON"):
      pretrained.training_config(export)

  def test_cache_files_round_trip(self):
    cache_dir = os.path.join(self.create_tempdir().full_path, "features")
    path = os.path.join(cache_dir, "x-train-0123.npz")
    self.assertIsNone(features.read_cached(path, ("final_avg_pool",)))
    arrays = {"final_avg_pool": np.arange(6, dtype=np.float32).reshape(3, 2)}
    features.write_cached(path, arrays, np.array([2, 0, 1]))
    read, labels = features.read_cached(path, ("final_avg_pool",))
    self.assertAllEqual(read["final_avg_pool"], arrays["final_avg_pool"])
    self.assertAllEqual(labels, [2, 0, 1])
    # Written atomically: no temporary file is left beside it.
    self.assertEqual(tf.io.gfile.listdir(cache_dir), ["x-train-0123.npz"])

if __name__ == "__main__":
  tf.test.main()
