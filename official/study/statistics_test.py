"""Tests for the report's statistics against independent computations."""

import itertools
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


class TwoWayAnovaTest(absltest.TestCase):
  """Table 2's average column: the objective factor of a two-way ANOVA (objective x dataset)."""

  # Two objectives x three datasets x two seeds (a balanced design).
  A = {"cars": [0.80, 0.82], "food": [0.60, 0.61], "pets": [0.90, 0.88]}
  B = {"cars": [0.78, 0.79], "food": [0.59, 0.57], "pets": [0.89, 0.86]}

  def test_matches_hand_computed_f_test(self):
    # In a balanced design the sums of squares of the additive model are orthogonal:
    # SS_obj = D n sum_o (m_o - m)^2, SS_data = O n sum_d (m_d - m)^2, the rest is residual
    # with O D n - 1 - (O - 1) - (D - 1) degrees of freedom.
    values = np.array([[self.A[d], self.B[d]] for d in sorted(self.A)])  # [D, O, n]
    num_d, num_o, n = values.shape
    grand = values.mean()
    ss_obj = num_d * n * ((values.mean(axis=(0, 2)) - grand) ** 2).sum()
    ss_data = num_o * n * ((values.mean(axis=(1, 2)) - grand) ** 2).sum()
    ss_res = ((values - grand) ** 2).sum() - ss_obj - ss_data
    dof = num_o * num_d * n - 1 - (num_o - 1) - (num_d - 1)
    expected = scipy_stats.f.sf(ss_obj / (num_o - 1) / (ss_res / dof), num_o - 1, dof)
    self.assertAlmostEqual(statistics.anova_p_value(self.A, self.B), expected, places=10)
    # By hand: the differences A - B are 0.025, 0.025, 0.015 on average per dataset.
    self.assertLess(expected, 0.05)

  def test_dataset_levels_do_not_count_as_objective_differences(self):
    # B is A minus a constant 0.001 on every dataset and seed, with seed noise: datasets
    # differ by 30 points, which a one-way test would mistake for noise.
    rng = np.random.default_rng(0)
    a = {f"d{k}": list(0.3 * k + 0.01 * rng.standard_normal(3)) for k in range(4)}
    b = {d: [v - 0.001 + 0.01 * rng.standard_normal() for v in vs] for d, vs in a.items()}
    self.assertGreater(statistics.anova_p_value(a, b), 0.05)
    far = {d: [v - 0.05 for v in vs] for d, vs in a.items()}
    self.assertLess(statistics.anova_p_value(a, far), 1e-6)

  def test_no_residual_degrees_of_freedom(self):
    self.assertTrue(math.isnan(statistics.anova_p_value({"x": [0.5]}, {"x": [0.4]})))
    self.assertTrue(math.isnan(statistics.anova_p_value({"x": [0.5]}, {"y": [0.4]})))

  def test_marks_best_average_and_ties(self):
    scores = {"softmax": self.A, "tied": {d: list(v) for d, v in self.A.items()},
              "worse": self.B}
    scores["tied"]["cars"] = [0.81, 0.80]
    marked = statistics.not_worse_than_best_on_average(scores)
    self.assertIn("worse", set(scores) - marked)
    self.assertEqual(marked, {"softmax", "tied"})


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
    self.assertAlmostEqual(p, 2 / 120)  # the two orderings with |rho| = 1 of the 5! equally likely

  def test_exact_p_against_enumeration(self):
    # Brute force: the fraction of all orderings of y whose |rho| reaches the observed one,
    # ties included (average ranks).
    x = [0.3, 1.2, 0.7, 2.2, 1.9, 3.1, 0.1]
    y = [1.0, 2.0, 2.0, 3.5, 2.5, 4.0, 0.5]
    rho, p = statistics.spearman(x, y)
    observed = scipy_stats.spearmanr(x, y).statistic
    self.assertAlmostEqual(rho, observed, places=12)
    values = [abs(scipy_stats.spearmanr(x, list(order)).statistic)
              for order in itertools.permutations(y)]
    expected = np.mean(np.asarray(values) >= abs(observed) - 1e-12)
    self.assertAlmostEqual(p, expected, places=10)
    # Above SPEARMAN_EXACT_MAX points: scipy's t approximation.
    rng = np.random.default_rng(3)
    big_x, big_y = rng.normal(size=12), rng.normal(size=12)
    self.assertAlmostEqual(statistics.spearman(big_x, big_y)[1],
                           scipy_stats.spearmanr(big_x, big_y).pvalue, places=12)

  def test_length_mismatch(self):
    with self.assertRaisesRegex(ValueError, "differ in length"):
      statistics.spearman([1, 2, 3], [1, 2])


class SeedSetTest(absltest.TestCase):

  def test_disjoint_halves(self):
    self.assertEqual(statistics.seed_sets([1, 0]), [(0,), (1,)])
    self.assertEqual(statistics.seed_sets([3, 0, 2, 1]), [(0, 1), (2, 3)])
    self.assertEqual(statistics.seed_sets([4, 0, 2]), [(0,), (2,)])
    self.assertEqual(statistics.seed_sets([5]), [(5,)])

  def test_spearman_over_seeds_is_spearman_of_seed_means(self):
    rng = np.random.default_rng(2)
    variants = [f"o{i}" for i in range(7)]
    x = {v: {s: float(rng.normal()) for s in range(4)} for v in variants}
    y = {v: {s: float(rng.normal()) for s in range(4)} for v in variants}
    del y["o3"][2]  # o3 lacks seed 2: left out of the {2, 3} set only.
    for seeds, expected_n in (((0, 1), 7), ((2, 3), 6)):
      kept = [v for v in variants if not (v == "o3" and 2 in seeds)]
      expected = scipy_stats.spearmanr([np.mean([x[v][s] for s in seeds]) for v in kept],
                                       [np.mean([y[v][s] for s in seeds]) for v in kept])
      rho, p, n = statistics.spearman_over_seeds(x, y, seeds)
      self.assertEqual(n, expected_n)
      self.assertAlmostEqual(rho, expected.statistic, places=12)
      # At 7 points the p-value is the exact permutation test's (see SpearmanTest).
      self.assertEqual(p, statistics.spearman(
          [np.mean([x[v][s] for s in seeds]) for v in kept],
          [np.mean([y[v][s] for s in seeds]) for v in kept])[1])


class PlateauGainTest(absltest.TestCase):

  def test_saturating_curve(self):
    # top-1 = 0.9 (1 - exp(-epoch / 2)) evaluated every epoch for 12 epochs: the last quarter
    # starts after epoch 9.
    curve = [[e, 0.9 * (1 - math.exp(-e / 2))] for e in range(1, 13)]
    expected = 0.9 * (math.exp(-9 / 2) - math.exp(-12 / 2))
    self.assertAlmostEqual(statistics.plateau_gain(curve), expected, places=12)
    self.assertAlmostEqual(statistics.plateau_gain(curve, 0.5),
                           0.9 * (math.exp(-3) - math.exp(-6)), places=12)

  def test_sparse_and_bad_curves(self):
    # Evaluations at epochs 2, 4, 6, 8: the last at or before epoch 6 is epoch 6.
    self.assertAlmostEqual(statistics.plateau_gain([[2, .1], [4, .3], [6, .5], [8, .6]]), 0.1)
    self.assertTrue(math.isnan(statistics.plateau_gain([[8, 0.6]])))
    self.assertTrue(math.isnan(statistics.plateau_gain([])))
    with self.assertRaisesRegex(ValueError, "last_fraction"):
      statistics.plateau_gain([[1, 0.5]], 1.0)



class AboveChanceTest(absltest.TestCase):

  def test_binomial_tail_against_the_sum_of_its_terms(self):
    # P(X >= c) for X ~ Binomial(n, 1/k), summed term by term in exact integer arithmetic.
    for accuracy, n, k in ((0.3, 200, 4), (0.25, 1000, 4), (0.12, 50, 10), (0.05, 40, 24)):
      correct = round(accuracy * n)
      tail = sum(math.comb(n, j) * (k - 1) ** (n - j) for j in range(correct, n + 1))
      self.assertAlmostEqual(statistics.above_chance_p_value(accuracy, n, k),
                             tail / k**n, places=12)

  def test_clearly_above_and_at_chance(self):
    self.assertLess(statistics.above_chance_p_value(0.41, 1000, 4), 1e-20)
    self.assertGreater(statistics.above_chance_p_value(0.25, 1000, 4), 0.4)
    self.assertAlmostEqual(statistics.above_chance_p_value(0.0, 10, 2), 1.0)

  def test_bad_input(self):
    for args in ((1.2, 10, 4), (0.5, 0, 4), (0.5, 10, 1)):
      with self.assertRaisesRegex(ValueError, "valid is an accuracy in"):
        statistics.above_chance_p_value(*args)


if __name__ == "__main__":
  absltest.main()
