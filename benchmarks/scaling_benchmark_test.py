"""Tests of the scaling sweep's pure parts: exponent fit, extrapolation, bars."""

from absl.testing import absltest
import numpy as np

from benchmarks import scaling_benchmark as sb


def _row(task="kNN selection", n=1000, d=64, k=10, ours=1.0, baseline=30.0, bar=20.0,
         agrees=True, extrapolated=False):
  return sb.Row(task, n, d, k, f"{n} x {d}", ours, baseline, bar, agrees, "detail",
                extrapolated=extrapolated)


class ExponentTest(absltest.TestCase):

  def test_recovers_a_power_law(self):
    sizes = [1000, 2500, 5000, 10000]
    self.assertAlmostEqual(sb.fit_exponent(sizes, [3e-7 * n**1.7 for n in sizes]), 1.7,
                           places=12)

  def test_least_squares_slope_of_noisy_points(self):
    sizes, seconds = [1.0, 2.0, 4.0], [1.0, 4.0, 8.0]
    # In log2: the slope through (0, 0), (1, 2), (2, 3) is covariance 3 / variance 2.
    x, y = np.log([1, 2, 4]), np.log(seconds)
    expected = np.polyfit(x, y, 1)[0]
    self.assertAlmostEqual(sb.fit_exponent(sizes, seconds), expected, places=12)
    self.assertAlmostEqual(expected, 1.5, places=12)

  def test_extrapolate(self):
    self.assertAlmostEqual(sb.extrapolate(10000, 2.0, 1.5, 40000), 16.0)
    self.assertAlmostEqual(sb.extrapolate(100, 3.0, 0.0, 1e6), 3.0)

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "two or more distinct sizes"):
      sb.fit_exponent([1000, 1000], [1.0, 2.0])
    with self.assertRaisesRegex(ValueError, "positive"):
      sb.fit_exponent([1000, 2000], [1.0, 0.0])


class BarTest(absltest.TestCase):

  def test_knn_bar_switches_at_the_large_size(self):
    self.assertEqual(sb.knn_bar(9999, 20.0, 50.0, 10000), 20.0)
    self.assertEqual(sb.knn_bar(10000, 20.0, 50.0, 10000), 50.0)

  def test_failures_name_slow_and_disagreeing_rows(self):
    rows = [_row(ours=1.0, baseline=25.0),                       # 25x >= 20x: passes
            _row(n=2000, ours=1.0, baseline=19.0),               # 19x < 20x
            _row(n=3000, agrees=False),                          # 30x but disagrees
            _row(n=75750, ours=1.0, baseline=2.0, extrapolated=True)]  # not held to a bar
    lines = sb.failures(rows)
    self.assertLen(lines, 2)
    self.assertIn("2000 x 64: speed-up 19.0x < 20x", lines[0])
    self.assertIn("3000 x 64: disagrees", lines[1])
    self.assertNotIn("speed-up", lines[1])

  def test_extrapolated_row_uses_growth_at_the_largest_dimension(self):
    # Times at D = 2048 grow as n^1 (ours) and n^2 (baseline); the D = 64 point must not count.
    rows = [_row(n=1000, d=64, ours=0.5, baseline=1.0),
            _row(n=5000, d=2048, ours=1.0, baseline=10.0),
            _row(n=10000, d=2048, ours=2.0, baseline=40.0)]
    extra = sb.extrapolated_row(rows, "kNN selection")
    n = sb.LARGEST[0]
    self.assertTrue(extra.extrapolated)
    self.assertAlmostEqual(extra.ours_seconds, 2.0 * n / 10000)
    self.assertAlmostEqual(extra.baseline_seconds, 40.0 * (n / 10000)**2)

  def test_no_extrapolation_without_two_sizes_at_the_paper_dimension(self):
    rows = [_row(n=1000, d=64), _row(n=2000, d=64), _row(n=10000, d=2048)]
    self.assertIsNone(sb.extrapolated_row(rows, "kNN selection"))

  def test_extrapolated_linear_probe_scales_with_classes(self):
    rows = [_row("linear probe", n=5000, d=2048, k=10, ours=1.0, baseline=10.0),
            _row("linear probe", n=10000, d=2048, k=10, ours=2.0, baseline=20.0)]
    extra = sb.extrapolated_row(rows, "linear probe")
    n, _, k = sb.LARGEST
    self.assertAlmostEqual(extra.ours_seconds, 2.0 * n / 10000 * k / 10)
    self.assertAlmostEqual(extra.ratio, 10.0)


if __name__ == "__main__":
  absltest.main()
