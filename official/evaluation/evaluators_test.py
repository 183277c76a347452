"""Tests of the evaluator interface: each record against a direct computation."""

import math
import types

import numpy as np
import tensorflow as tf

from official.evaluation import evaluators


def _info(name="blobs", metric="top1", class_names=None):
  return types.SimpleNamespace(name=name, metric=metric, class_names=class_names)


def _blobs(n, num_classes, seed, dim=6):
  """Well separated Gaussian classes: every 1-NN and linear classifier is right."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % num_classes
  centres = 10.0 * np.eye(num_classes, dim)
  return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def _data(num_classes=3):
  return {split: _blobs(n, num_classes, seed)
          for split, n, seed in (("train", 60, 0), ("validation", 15, 1), ("test", 30, 2))}


class EvaluatorsTest(tf.test.TestCase):

  def test_linear_probe_record_is_the_probe_on_the_splits(self):
    data = _data()
    record = evaluators.LinearProbe(l2_grid=(1e-2, 1.0), max_iterations=50).evaluate(
        _info(), data)
    self.assertEqual((record.evaluator, record.dataset, record.metric),
                     ("linear_probe", "blobs", "top1"))
    # Separable classes: the refitted probe labels all 30 test examples right.
    self.assertEqual(record.scores["test_score"], 1.0)
    self.assertEqual(record.scores["log10_l2"], math.log10(record.scores["l2"]))
    self.assertEqual((record.scores["num_train"], record.scores["num_validation"],
                      record.scores["num_test"], record.scores["feature_dim"]),
                     (60, 15, 30, 6))
    self.assertEqual(record.settings["l2_grid"], [1e-2, 1.0])
    self.assertIn(record.scores["l2"], [p["l2"] for p in record.scores["validation_scores"]])
    flat = record.to_json()
    self.assertEqual((flat["method"], flat["test_score"], flat["max_iterations"]),
                     ("linear_probe", 1.0, 50))
    self.assertGreaterEqual(flat["timings"]["total_seconds"], flat["timings"]["search_seconds"])

  def test_knn_votes_among_train_and_validation(self):
    data = _data()
    # Replace one test example by a copy of a validation example of another class: with
    # k = 1 (chosen on separable data) it takes that example's label, so exactly one of the
    # 30 is wrong, and only if validation examples are among the neighbours.
    x, y = data["test"]
    x, y = x.copy(), y.copy()
    val_x, val_y = data["validation"]
    x[0], y[0] = val_x[0], (val_y[0] + 1) % 3
    data["test"] = (x, y)
    record = evaluators.KNN(k_max=1, distance="euclidean").evaluate(_info(), data)
    self.assertEqual(record.scores["k"], 1)
    self.assertEqual(record.scores["test_score"], 29 / 30)
    self.assertEqual(record.scores["num_train"], 75)
    self.assertEqual(record.settings, {"k_max": 1, "distance": "euclidean"})

  def test_an_evaluated_class_absent_from_training_is_refused(self):
    data = _data()
    x, y = data["test"]
    data["test"] = (x, np.where(y == 2, 3, y))
    info = _info(class_names=["a", "b", "c", "d"])
    with self.assertRaisesRegex(ValueError, r"blobs: class 3 \('d'\) occurs in test \(10 of "
                                r"its 30 examples\) but not in train\+validation"):
      evaluators.KNN().evaluate(info, data)
    with self.assertRaisesRegex(ValueError, "occurs in test .* but not in train;"):
      evaluators.LinearProbe().check(info, data)
    one_class = {s: (x, np.zeros_like(y)) for s, (x, y) in _data().items()}
    with self.assertRaisesRegex(ValueError, "blobs:train has 1 class"):
      evaluators.LinearProbe().check(info, one_class)

  def test_is_timing(self):
    self.assertEqual([k for k in ("test", "grid_seconds", "timings", "l2", "wall_time")
                      if evaluators.is_timing(k)], ["grid_seconds", "wall_time"])


if __name__ == "__main__":
  tf.test.main()
