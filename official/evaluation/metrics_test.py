"""Tests for the transfer metrics against hand computations."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from official.evaluation import metrics


class MetricsTest(parameterized.TestCase):

  def test_top1_by_hand(self):
    # 4 of 6 predictions are right.
    self.assertAlmostEqual(metrics.top1([0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 0, 2]), 4 / 6)

  def test_mean_per_class_by_hand(self):
    # Class 0: 2/3 right, class 1: 1/1, class 2: 1/2.
    labels = [0, 0, 0, 1, 2, 2]
    predictions = [0, 1, 0, 1, 0, 2]
    self.assertAlmostEqual(metrics.mean_per_class(labels, predictions), (2 / 3 + 1 + 1 / 2) / 3)

  def test_mean_per_class_ignores_predicted_classes_absent_from_labels(self):
    # Class 7 is only predicted: it counts as a wrong answer, not as a class.
    self.assertAlmostEqual(metrics.mean_per_class([1, 1, 3], [1, 7, 7]), (1 / 2 + 0) / 2)

  def test_balanced_classes_make_both_metrics_equal(self):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 8)
    predictions = rng.integers(0, 5, labels.size)
    self.assertAlmostEqual(metrics.top1(labels, predictions),
                           metrics.mean_per_class(labels, predictions))

  def test_string_labels(self):
    self.assertAlmostEqual(metrics.compute("mean_per_class", ["cat", "cat", "dog"],
                                           ["cat", "dog", "dog"]), (1 / 2 + 1) / 2)

  @parameterized.named_parameters(
      ("length", "top1", [0, 1], [0], "same length"),
      ("empty", "top1", [], [], "empty"),
      ("rank", "mean_per_class", [[0, 1]], [[0, 1]], "1-D"),
      ("name", "top5", [0], [0], "metric must be one of"),
  )
  def test_bad_input(self, name, labels, predictions, message):
    with self.assertRaisesRegex(ValueError, message) as context:
      metrics.compute(name, labels, predictions)
    self.assertNotIn("\n", str(context.exception))


if __name__ == "__main__":
  absltest.main()
