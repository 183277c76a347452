"""End-to-end tests of experiments/knn.py: demo data, mocked CIFAR-10 and Pets, bad input."""

import os
from unittest import mock

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from experiments import knn as knn_main
from experiments.linear_probe_test import absent_class_dataset
from experiments.linear_probe_test import cache_state
from experiments.linear_probe_test import error_lines
from experiments.linear_probe_test import read_scalars
from experiments.linear_probe_test import run_binary
from experiments.linear_probe_test import run_main
from experiments.linear_probe_test import split_features
from official.core import io
from official.data import datasets
from official.evaluation import features
from official.evaluation import knn
from official.evaluation import relearn_head_test
from official.modeling import pretrained

DATASET = relearn_head_test.DATASET  # demo_size/small: 4 classes, 360 / 40 / 200 examples
K_MAX = 15
SPLITS = ("train", "validation", "test")


def expected_scores(data, metric, **kwargs) -> dict:
  """knn.fit on features extracted here (split_features), neighbours from train +
  validation, and its test score."""
  train_x = np.concatenate([data["train"][0], data["validation"][0]])
  train_y = np.concatenate([data["train"][1], data["validation"][1]])
  model = knn.fit(train_x, train_y, metric=metric, **kwargs)
  return {"k": model.k, "loo_scores": dict(model.loo_accuracy),
          "test_score": model.score(*data["test"], metric)}


class KNNBinaryTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.get_temp_dir(cls())
    cls.data_dir = os.path.join(root, "tfds")
    cls.info = datasets.get(DATASET, data_dir=cls.data_dir)
    datasets.num_examples(cls.info, "train", data_dir=cls.data_dir)  # generates the data
    cls.model_dir = relearn_head_test.make_model_dir(os.path.join(root, "model"))
    cls.model = pretrained.load(cls.model_dir)

  def test_demo_end_to_end_then_cached(self):
    output_dir = os.path.join(self.create_tempdir().full_path, "knn_out")
    process = run_binary("knn", f"--model={self.model_dir}", f"--datasets={DATASET}",
                         f"--data_dir={self.data_dir}", f"--output_dir={output_dir}",
                         f"--k_max={K_MAX}")
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])
    path = os.path.join(output_dir, "knn", "demo_size_small.json")
    result = io.read_json(path)
    lines = [l for l in process.stdout.splitlines() if l.startswith(DATASET)]
    self.assertEqual(lines, [f"{DATASET}: test top1 {result['test_score']:.4f} (k "
                             f"{result['k']}, leave-one-out {result['loo_score']:.4f}; 400 "
                             "train+validation, 200 test)"])
    self.assertEqual((result["dataset"], result["metric"], result["num_classes"],
                      result["distance"], result["k_max"], result["num_train"],
                      result["num_test"]), (DATASET, "top1", 4, "cosine", K_MAX, 400, 200))
    self.assertEqual(result["class_names"], list(self.info.class_names))
    self.assertEqual(result["model"], self.model_dir)

    data = split_features(self.model, self.info, SPLITS, self.data_dir)
    expected = expected_scores(data, "top1", k_max=K_MAX)
    self.assertEqual(result["test_score"], expected["test_score"])
    self.assertEqual(result["k"], expected["k"])
    self.assertEqual([p["k"] for p in result["loo_scores"]], list(range(1, K_MAX + 1)))
    self.assertEqual({p["k"]: p["score"] for p in result["loo_scores"]},
                     expected["loo_scores"])
    # k is the smallest best leave-one-out k.
    scores = [p["score"] for p in result["loo_scores"]]
    self.assertEqual(result["k"], int(np.argmax(scores)) + 1)
    self.assertAllClose(result["test_score"] * 200, round(result["test_score"] * 200),
                        atol=1e-9)

    scalars = read_scalars(os.path.join(output_dir, "tensorboard", "knn"))
    self.assertEqual(scalars["demo_size_small/test_top1"], {0: result["test_score"]})
    self.assertEqual(scalars["demo_size_small/k"], {0: result["k"]})
    self.assertEqual(scalars["demo_size_small/loo_top1"],
                     {p["k"]: p["score"] for p in result["loo_scores"]})

    # Second run, Euclidean distance, plus a class subset: the cached features of the first
    # run are read, the network only runs on the subset.
    cache_dir = os.path.join(output_dir, "features")
    before = cache_state(cache_dir)
    self.assertLen(before, 3)
    subset = datasets.get(DATASET, data_dir=self.data_dir, classes="2-3,0")
    with mock.patch.object(features, "iterate", wraps=features.iterate) as iterate:
      status, _, stderr = run_main(knn_main.main, model=self.model_dir,
                                   datasets=[DATASET, f"{DATASET}@2-3,0"],
                                   data_dir=self.data_dir, output_dir=output_dir,
                                   k_max=K_MAX, distance="euclidean")
    self.assertEqual(status, 0, stderr)
    self.assertEqual({c.args[1].name for c in iterate.call_args_list}, {subset.name})
    after = cache_state(cache_dir)
    self.assertLen(after, 6)
    self.assertEqual({k: after[k] for k in before}, before)
    again = io.read_json(path)
    expected = expected_scores(data, "top1", k_max=K_MAX, distance="euclidean")
    self.assertEqual((again["distance"], again["test_score"], again["k"]),
                     ("euclidean", expected["test_score"], expected["k"]))

    result = io.read_json(os.path.join(output_dir, "knn", "demo_size_small_2-3_0.json"))
    self.assertEqual((result["dataset"], result["num_classes"], result["classes"]),
                     (f"{DATASET}@2-3,0", 3, [2, 3, 0]))
    names = self.info.class_names
    self.assertEqual(result["class_names"], [names[2], names[3], names[0]])
    expected = expected_scores(split_features(self.model, subset, SPLITS, self.data_dir),
                               "top1", k_max=K_MAX, distance="euclidean")
    self.assertEqual((result["test_score"], result["k"]),
                     (expected["test_score"], expected["k"]))
    # 50 of the 200 test images per class (balanced demo data).
    self.assertEqual(result["num_test"], 150)

  def test_mock_cifar10_and_pets(self):
    output_dir = self.create_tempdir().full_path
    with tfds.testing.mock_data(num_examples=30):
      status, stdout, stderr = run_main(knn_main.main, model=self.model_dir,
                                        datasets=["cifar10", "pets"], output_dir=output_dir,
                                        k_max=K_MAX)
      self.assertEqual(status, 0, stderr)
      infos = {name: datasets.get(name) for name in ("cifar10", "pets")}
      expected = {name: expected_scores(split_features(self.model, info, SPLITS), info.metric,
                                        k_max=K_MAX)
                  for name, info in infos.items()}
    self.assertLen([l for l in stdout.splitlines() if ": test " in l], 2)
    for name, metric, num_classes in (("cifar10", "top1", 10), ("pets", "mean_per_class", 37)):
      result = io.read_json(os.path.join(output_dir, "knn", f"{name}.json"))
      self.assertEqual((result["metric"], result["num_classes"]), (metric, num_classes))
      self.assertEqual(result["class_names"], list(infos[name].class_names))
      # mock_data yields the same 30 examples for every split.
      self.assertEqual((result["num_train"], result["num_test"]), (60, 30))
      self.assertEqual((result["test_score"], result["k"]),
                       (expected[name]["test_score"], expected[name]["k"]))

  def test_bad_inputs_exit_2_with_one_line_and_write_nothing(self):
    root = self.create_tempdir().full_path
    output_dir = os.path.join(root, "out")

    def assert_fails(expected_error, **flag_values):
      status, _, stderr = run_main(knn_main.main, output_dir=output_dir, **flag_values)
      self.assertEqual(status, 2, stderr)
      self.assertLen(error_lines(stderr), 1, stderr)
      self.assertStartsWith(error_lines(stderr)[0], expected_error)
      self.assertFalse(os.path.exists(output_dir), expected_error)

    missing = os.path.join(root, "missing")
    assert_fails(f"error: --model: {missing} does not exist", model=missing)
    assert_fails("error: dataset: unknown 'nope'", model=self.model_dir, datasets=["nope"])
    assert_fails("error: --distance: 'manhattan'", model=self.model_dir, distance="manhattan")
    assert_fails("error: --k_max: 0", model=self.model_dir, k_max=0)
    no_pool = relearn_head_test.export_without(os.path.join(root, "sm"), ("final_avg_pool",))
    assert_fails(f"error: model {no_pool} has no 'final_avg_pool' endpoint", model=no_pool,
                 datasets=[DATASET], data_dir=self.data_dir)
    with tfds.testing.mock_data(as_dataset_fn=absent_class_dataset):
      name = datasets.get("cifar10").class_names[3]
      assert_fails(f"error: cifar10: class 3 ({name!r}) occurs in test (1 of its 6 examples) "
                   "but not in train+validation", model=self.model_dir, datasets=["cifar10"])


if __name__ == "__main__":
  tf.test.main()
