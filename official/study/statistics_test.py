"""Tests for the report's statistics against independent computations."""

import math

from absl.testing import absltest
import numpy as np
from scipy import stats as scipy_stats

from official.study import statistics


class SummaryTest(absltest.TestCase):

  def test_mean_and_standard_error(self):
    summary = statistics.summarize([1.0, 2.0, 4.0])
    self.assertAlmostEqual(summary.mean, 7 / 3)
    sd = math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    self.assertAlmostEqual(summary.stderr, sd / math.sqrt(3))
    self.assertEqual(statistics.summarize([0.5, 0.7]).format(1, 100), "60.0 ± 10.0")

  def test_single_and_no_value(self):
    self.assertEqual(statistics.summarize([0.25]).format(2, 100), "25.00")
    self.assertEqual(statistics.summarize([]).format(), "–")


class WelchTest(absltest.TestCase):

  def test_matches_welch_formula(self):
    a = np.array([1.0, 1.2, 0.9, 1.1])
    b = np.array([1.5, 1.9, 1.4])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    expected = 2 * scipy_stats.t.sf(abs(t), dof)
    self.assertAlmostEqual(statistics.welch_p_value(a, b), expected, places=10)

  def test_marks_best_and_ties_only(self):
    columns = {"best": [0.90, 0.91, 0.92], "tied": [0.89, 0.92, 0.905],
               "worse": [0.50, 0.51, 0.49]}
    self.assertEqual(statistics.not_worse_than_best(columns), {"best", "tied"})
    self.assertEqual(statistics.not_worse_than_best(columns, higher_is_better=False),
                     {"worse"})

  def test_zero_variance_groups(self):
    self.assertEqual(statistics.welch_p_value([1.0, 1.0], [1.0, 1.0]), 1.0)
    self.assertEqual(statistics.welch_p_value([1.0, 1.0], [2.0, 2.0]), 0.0)


class SpearmanTest(absltest.TestCase):

  def test_equals_pearson_of_ranks(self):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=9), rng.normal(size=9)
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    expected = np.corrcoef(rx, ry)[0, 1]
    rho, p = statistics.spearman(x, y)
    self.assertAlmostEqual(rho, expected, places=10)
    self.assertBetween(p, 0.0, 1.0)

  def test_perfect_negative(self):
    rho, p = statistics.spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    self.assertAlmostEqual(rho, -1.0)
    self.assertLess(p, 0.05)

  def test_length_mismatch(self):
    with self.assertRaisesRegex(ValueError, "differ in length"):
      statistics.spearman([1, 2, 3], [1, 2])


if __name__ == "__main__":
  absltest.main()
