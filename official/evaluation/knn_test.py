"""Tests for kNN transfer: leave-one-out and prediction against O(n^2) brute force."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.evaluation import knn


def _similarities(queries, reference, distance):
  """Float64 cosine similarity or minus the squared distance, [q, n]."""
  queries = queries.astype(np.float64)
  reference = reference.astype(np.float64)
  if distance == "cosine":
    def unit(x):
      norm = np.linalg.norm(x, axis=1, keepdims=True)
      return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return unit(queries) @ unit(reference).T
  return -((queries[:, None, :] - reference[None, :, :])**2).sum(-1)


def _brute_force_vote(neighbour_labels, tie_break):
  """Majority class of a neighbour list, ties broken as the module documents."""
  counts = np.bincount(neighbour_labels)
  winners = np.flatnonzero(counts == counts.max())
  if tie_break == "lowest_class":
    return winners.min()
  return next(label for label in neighbour_labels if label in winners)


def _brute_force_predictions(queries, reference, labels, k_values, distance, tie_break,
                             exclude_self):
  """[q, len(k_values)] kNN predictions by sorting every similarity row."""
  sims = _similarities(queries, reference, distance)
  out = np.zeros((queries.shape[0], len(k_values)), np.int64)
  for i in range(queries.shape[0]):
    candidates = np.array([j for j in range(reference.shape[0]) if not (exclude_self and j == i)])
    # Most similar first; equal similarities in index order.
    order = candidates[np.lexsort((candidates, -sims[i, candidates]))]
    for column, k in enumerate(k_values):
      out[i, column] = _brute_force_vote(labels[order[:k]], tie_break)
  return out


def _data_with_duplicates(distance, seed=0):
  rng = np.random.default_rng(seed)
  if distance == "euclidean":
    # Small integers: every distance is exact in float32 and many of them tie.
    x = rng.integers(0, 3, size=(48, 4)).astype(np.float32)
  else:
    x = rng.standard_normal((48, 6)).astype(np.float32)
  x[10] = x[3]
  x[11] = x[3]
  x[40] = x[25]
  y = rng.integers(0, 4, size=48)
  y[10] = (y[3] + 1) % 4  # a duplicate with another label
  return x, y


class KnnTest(parameterized.TestCase, tf.test.TestCase):

  def test_top_k_puts_equal_values_in_index_order(self):
    values = tf.constant([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0, 2.0]])
    _, index = tf.math.top_k(values, k=7)
    self.assertAllEqual(index[0], [1, 2, 4, 3, 6, 0, 5])

  @parameterized.product(distance=knn.DISTANCES, tie_break=knn.TIE_BREAKS)
  def test_leave_one_out_matches_brute_force_for_every_k(self, distance, tie_break):
    x, y = _data_with_duplicates(distance)
    k_max = 15
    model = knn.fit(x, y, k_max=k_max, distance=distance, tie_break=tie_break, chunk_size=13)
    expected = _brute_force_predictions(x, x, y, range(1, k_max + 1), distance, tie_break,
                                        exclude_self=True)
    index, _ = knn.neighbours(x, x, k_max, distance=distance, exclude_self=True, chunk_size=13)
    self.assertAllEqual(knn.vote(y[index], 4, tie_break), expected)
    expected_accuracy = (expected == y[:, None]).mean(axis=0)
    self.assertAllClose([model.loo_accuracy[k] for k in range(1, k_max + 1)], expected_accuracy)
    self.assertEqual(model.k, int(np.argmax(expected_accuracy)) + 1)

  @parameterized.product(k_max=(1, 12, 183), tie_break=knn.TIE_BREAKS)
  def test_vote_matches_brute_force_for_every_k(self, k_max, tie_break):
    # Few classes, so that ties are frequent; one row of a single class, one alternating.
    rng = np.random.default_rng(k_max)
    labels = rng.integers(0, 3, size=(40, k_max))
    labels[0] = 1
    labels[1] = np.arange(k_max) % 3
    expected = [[_brute_force_vote(row[:k], tie_break) for k in range(1, k_max + 1)]
                for row in labels]
    self.assertAllEqual(knn.vote(labels, 3, tie_break), expected)

  def test_duplicate_is_a_neighbour_and_self_is_not(self):
    x, y = _data_with_duplicates("cosine")
    index, sims = knn.neighbours(x, x, 3, exclude_self=True)
    self.assertFalse(np.any(index == np.arange(48)[:, None]))
    # Row 3 has two exact copies (10 and 11): they come first, in index order, at similarity 1.
    self.assertAllEqual(index[3, :2], [10, 11])
    self.assertAllEqual(index[10, :2], [3, 11])
    self.assertAllClose(sims[3, :2], [1.0, 1.0])

  def test_mean_per_class_leave_one_out_matches_brute_force(self):
    x, y = _data_with_duplicates("cosine", seed=3)
    y[y == 3] = 2  # unbalanced classes
    model = knn.fit(x, y, k_max=9, metric="mean_per_class")
    expected = _brute_force_predictions(x, x, y, range(1, 10), "cosine", "nearest",
                                        exclude_self=True)
    classes = np.unique(y)
    per_class = [[np.mean(expected[y == c, j] == c) for c in classes] for j in range(9)]
    self.assertAllClose([model.loo_accuracy[k] for k in range(1, 10)], np.mean(per_class, 1))

  @parameterized.parameters(*[(d,) for d in knn.DISTANCES])
  def test_predict_matches_brute_force(self, distance):
    x, y = _data_with_duplicates(distance)
    rng = np.random.default_rng(7)
    queries = np.concatenate([x[:5], rng.standard_normal((20, x.shape[1]))]).astype(np.float32)
    if distance == "euclidean":
      queries = np.round(queries)
    model = knn.fit(x, y, k_max=12, distance=distance)
    expected = _brute_force_predictions(queries, x, y, [model.k], distance, "nearest",
                                        exclude_self=False)[:, 0]
    self.assertAllEqual(model.predict(queries), expected)

  def test_chunked_equals_unchunked(self):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((101, 8)).astype(np.float32)
    x[50] = x[7]
    whole = knn.neighbours(x, x, 20, exclude_self=True, chunk_size=1000)
    for chunk_size in (1, 7, 64):
      chunked = knn.neighbours(x, x, 20, exclude_self=True, chunk_size=chunk_size)
      self.assertAllEqual(chunked[0], whole[0])
      # Matrix products of different shapes may round the last bit differently.
      self.assertAllClose(chunked[1], whole[1], rtol=1e-6, atol=1e-6)

  def test_string_labels_and_chosen_k(self):
    rng = np.random.default_rng(2)
    centres = 4.0 * rng.standard_normal((3, 5))
    y = np.repeat(np.array(["ant", "bee", "cat"]), 20)
    x = (centres[np.repeat(np.arange(3), 20)] + rng.standard_normal((60, 5))).astype(np.float32)
    model = knn.fit(x, y, k_max=10, distance="euclidean")
    scores = [model.loo_accuracy[k] for k in range(1, 11)]
    self.assertEqual(model.k, int(np.argmax(scores)) + 1)
    self.assertGreater(model.loo_score, 0.9)
    self.assertEqual(set(model.predict(x[:6])), {"ant"})

  def test_zero_vector_has_cosine_similarity_zero(self):
    x = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    index, sims = knn.neighbours(x, x, 3, exclude_self=True)
    self.assertAllClose(sims[0], [0.0, 0.0, 0.0])
    self.assertAllEqual(index[0], [1, 2, 3])

  def test_k_max_is_capped_by_training_size(self):
    x = np.eye(4, dtype=np.float32)
    model = knn.fit(x, [0, 0, 1, 1], k_max=50)
    self.assertEqual(sorted(model.loo_accuracy), [1, 2, 3])

  def test_score_is_the_accuracy_of_predict(self):
    x, y = _data_with_duplicates("cosine")
    model = knn.fit(x[:40], y[:40], k_max=10)
    self.assertAlmostEqual(model.score(x[40:], y[40:], "top1"),
                           np.mean(model.predict(x[40:]) == y[40:]))

  @parameterized.named_parameters(
      ("length", dict(train_y=np.zeros(5)), "train_y has 5 labels"),
      ("nan", dict(train_x=np.full((6, 2), np.nan)), "NaN"),
      ("one_class", dict(train_y=np.zeros(6, int)), "at least 2"),
      ("distance", dict(distance="manhattan"), "distance must be one of"),
      ("k_max", dict(k_max=0), "k_max must be >= 1"),
      ("tie_break", dict(tie_break="random"), "tie_break must be one of"),
  )
  def test_bad_input(self, overrides, message):
    args = dict(train_x=np.eye(6, 3), train_y=[0, 1, 0, 1, 0, 1])
    args.update(overrides)
    with self.assertRaisesRegex(ValueError, message) as context:
      knn.fit(args.pop("train_x"), args.pop("train_y"), **args)
    self.assertNotIn("\n", str(context.exception))


if __name__ == "__main__":
  tf.test.main()
