"""Tests for class separation R^2 (eq. 11): linear-time form against brute force."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from official.analysis import class_separation


def _brute_force_terms(features: np.ndarray, labels: np.ndarray,
                       distance: str) -> tuple[float, float]:
  """d_within and d_total of eq. 11 literally: every pair (m, n), self-pairs included,
  classes weighted 1/K."""
  x = features.reshape(features.shape[0], -1).astype(np.float64)
  if distance == "cosine":
    norms = np.linalg.norm(x, axis=1)
    nonzero = norms > 0
    similarity = np.zeros((len(x), len(x)))
    similarity[np.ix_(nonzero, nonzero)] = (x[nonzero] @ x[nonzero].T) / np.outer(
        norms[nonzero], norms[nonzero])
    pairwise = 1.0 - similarity
  else:
    pairwise = np.array([[np.sum((a - b) ** 2) for b in x] for a in x])
  classes = np.unique(labels)
  k = len(classes)
  members = [np.flatnonzero(labels == c) for c in classes]
  d_within = sum(pairwise[np.ix_(m, m)].sum() / (k * len(m) ** 2) for m in members)
  d_total = sum(pairwise[np.ix_(mj, mk)].sum() / (k ** 2 * len(mj) * len(mk))
                for mj in members for mk in members)
  return d_within, d_total


def _brute_force_r2(features: np.ndarray, labels: np.ndarray, distance: str) -> float:
  d_within, d_total = _brute_force_terms(features, labels, distance)
  return 1.0 - d_within / d_total


def _clustered(rng: np.random.Generator, sizes, dim: int, spread: float):
  """Unequal classes around random centres; labels are arbitrary integers."""
  centres = 2.0 * rng.standard_normal((len(sizes), dim)) + 1.0
  label_values = np.array([7, 2, 40, 5, 11])[:len(sizes)]
  features = np.concatenate(
      [c + spread * rng.standard_normal((s, dim)) for c, s in zip(centres, sizes)])
  labels = np.repeat(label_values, sizes)
  order = rng.permutation(len(labels))
  return features[order], labels[order]


class R2Test(parameterized.TestCase):

  @parameterized.parameters("cosine", "squared_euclidean")
  def test_collapsed_classes_give_one(self, distance):
    rng = np.random.default_rng(0)
    points = rng.standard_normal((4, 6))
    labels = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3])
    features = points[labels] * (rng.uniform(0.5, 2.0, (10, 1)) if distance == "cosine" else 1)
    self.assertAlmostEqual(class_separation.r2(features, labels, distance=distance), 1.0,
                           places=12)

  def test_collapsed_features_are_undefined(self):
    # One shared direction plus class structure of size `spread`: below the cosine threshold
    # the classes still separate (brute-force R^2 near 1) but R^2 must read undefined.
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 6)
    offsets = rng.standard_normal((4, 8))[labels] + 0.3 * rng.standard_normal((24, 8))
    for spread in (0.1, 0.5, 2.0, 5.0, 20.0):
      features = 10.0 + spread * offsets
      _, d_total = _brute_force_terms(features, labels, "cosine")
      value = class_separation.r2(features, labels)
      if d_total < class_separation.MIN_TOTAL_DISPERSION:
        self.assertTrue(np.isnan(value), (spread, d_total))
        self.assertGreater(_brute_force_r2(features, labels, "cosine"), 0.8)
      else:
        self.assertAlmostEqual(value, _brute_force_r2(features, labels, "cosine"), places=9)
      # Squared Euclidean R^2 is shift and scale invariant: defined at every spread.
      self.assertAlmostEqual(class_separation.r2(features, labels, distance="squared_euclidean"),
                             _brute_force_r2(features, labels, "squared_euclidean"), places=6)
    # Both branches ran: the smallest spread is collapsed, the largest is not.
    for spread, collapsed in ((0.1, True), (2.0, False)):
      self.assertEqual(np.isnan(class_separation.r2(10.0 + spread * offsets, labels)), collapsed)

  @parameterized.parameters("cosine", "squared_euclidean")
  def test_labels_independent_of_features_give_near_zero(self, distance):
    rng = np.random.default_rng(1)
    features = rng.standard_normal((6000, 16)) + 0.5
    labels = rng.integers(0, 5, 6000)
    value = class_separation.r2(features, labels, distance=distance)
    self.assertLess(abs(value), 0.005)
    features_sep, labels_sep = _clustered(rng, [300, 200, 100], 16, 1.0)
    self.assertGreater(class_separation.r2(features_sep, labels_sep, distance=distance), 0.3)

  @parameterized.product(distance=["cosine", "squared_euclidean"], spread=[0.3, 2.0])
  def test_linear_time_matches_pairwise_eq11(self, distance, spread):
    rng = np.random.default_rng(2)
    features, labels = _clustered(rng, [3, 11, 6, 20, 1], 5, spread)
    if distance == "cosine":
      features[4] = 0.0  # no direction: similarity 0 with everything
    expected = _brute_force_r2(features, labels, distance)
    self.assertBetween(expected, 0.01, 0.99)
    self.assertAlmostEqual(class_separation.r2(features, labels, distance=distance), expected,
                           places=12)

  def test_convolutional_features_are_flattened(self):
    rng = np.random.default_rng(3)
    features = rng.standard_normal((30, 2, 2, 3)) + rng.integers(0, 3, (30, 1, 1, 1))
    labels = rng.integers(0, 3, 30)
    for distance in class_separation.DISTANCES:
      self.assertAlmostEqual(class_separation.r2(features, labels, distance=distance),
                             _brute_force_r2(features, labels, distance), places=12)

  def test_invariances(self):
    rng = np.random.default_rng(4)
    features, labels = _clustered(rng, [10, 30, 20], 8, 1.0)
    cosine = class_separation.r2(features, labels)
    scaled = features * rng.uniform(0.1, 10.0, (len(features), 1))
    self.assertAlmostEqual(class_separation.r2(scaled, labels), cosine, places=12)
    squared = class_separation.r2(features, labels, distance="squared_euclidean")
    shifted = features + 100.0 * rng.standard_normal(8)
    self.assertAlmostEqual(class_separation.r2(shifted, labels, distance="squared_euclidean"),
                           squared, places=8)
    self.assertNotAlmostEqual(cosine, squared, places=3)

  @parameterized.named_parameters(
      ("single_class", lambda: class_separation.r2(np.eye(4), [3, 3, 3, 3]), "at least 2"),
      ("labels_length", lambda: class_separation.r2(np.eye(4), [0, 1, 1]), "shape \\[4\\]"),
      ("labels_rank", lambda: class_separation.r2(np.eye(4), np.eye(4, dtype=int)),
       "shape \\[4\\]"),
      ("float_labels", lambda: class_separation.r2(np.eye(4), [0.0, 1.0, 0.0, 1.0]),
       "integer"),
      ("distance", lambda: class_separation.r2(np.eye(4), [0, 1, 0, 1], distance="l1"),
       "cosine, squared_euclidean"),
      ("nan", lambda: class_separation.r2(np.full((4, 2), np.nan), [0, 1, 0, 1]), "NaN"),
  )
  def test_bad_input(self, call, message):
    with self.assertRaisesRegex(ValueError, message) as raised:
      call()
    self.assertNotIn("\n", str(raised.exception))


class ClassSeparationTest(parameterized.TestCase):

  @parameterized.parameters("cosine", "squared_euclidean")
  def test_streaming_equals_in_memory(self, distance):
    rng = np.random.default_rng(5)
    features = rng.standard_normal((90, 3, 4)) + rng.integers(0, 2, (90, 1, 1))
    labels = rng.choice(6, 90, p=[0.4, 0.3, 0.1, 0.1, 0.1, 0.0])
    features[7] = 0.0
    streaming = class_separation.ClassSeparation(6, distance=distance)
    for start in range(0, 90, 16):
      streaming.update_state(features[start:start + 16], labels[start:start + 16])
    self.assertEqual(int(streaming.counts.sum()), 90)
    self.assertEqual(int(streaming.counts[5]), 0)
    expected = _brute_force_r2(features, labels, distance)
    self.assertAlmostEqual(streaming.result(), expected, places=12)
    self.assertAlmostEqual(class_separation.r2(features, labels, distance=distance), expected,
                           places=12)

  def test_merging_halves_equals_one_accumulator(self):
    rng = np.random.default_rng(6)
    features, labels = _clustered(rng, [12, 25, 9], 7, 1.5)
    labels = np.searchsorted(np.unique(labels), labels)
    whole = class_separation.ClassSeparation(3, distance="squared_euclidean")
    first = class_separation.ClassSeparation(3, distance="squared_euclidean")
    second = class_separation.ClassSeparation(3, distance="squared_euclidean")
    whole.update_state(features, labels)
    first.update_state(features[:20], labels[:20])
    second.update_state(features[20:], labels[20:])
    first.merge(second)
    np.testing.assert_allclose(first.sums, whole.sums, atol=1e-12)
    np.testing.assert_array_equal(first.counts, whole.counts)
    self.assertAlmostEqual(first.result(), whole.result(), places=12)
    empty = class_separation.ClassSeparation(3, distance="squared_euclidean")
    empty.merge(whole)
    self.assertAlmostEqual(empty.result(), whole.result(), places=12)

  @parameterized.named_parameters(
      ("label_range", lambda s: s.update_state(np.eye(3), [0, 1, 4]), "\\[0, 4\\)"),
      ("feature_size", lambda s: (s.update_state(np.eye(3), [0, 1, 2]),
                                  s.update_state(np.eye(4), [0, 1, 2, 3])), "earlier"),
      ("one_class_seen", lambda s: (s.update_state(np.eye(3), [2, 2, 2]), s.result()),
       "at least 2"),
      ("empty", lambda s: s.result(), "no examples"),
      ("merge_mismatch", lambda s: s.merge(class_separation.ClassSeparation(5)),
       "num_classes=4"),
      ("num_classes", lambda s: class_separation.ClassSeparation(1), "num_classes"),
      ("distance", lambda s: class_separation.ClassSeparation(3, distance="cos"),
       "cosine, squared_euclidean"),
  )
  def test_bad_input(self, call, message):
    with self.assertRaisesRegex(ValueError, message) as raised:
      call(class_separation.ClassSeparation(4))
    self.assertNotIn("\n", str(raised.exception))


if __name__ == "__main__":
  absltest.main()
