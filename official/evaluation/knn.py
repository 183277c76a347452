"""k-nearest-neighbour transfer on frozen features (docs/protocol.md §4, §7 item 8).

k in 1..k_max is chosen by leave-one-out on the training set, the example itself excluded by
index (a duplicate of it is a legitimate neighbour). One search of the training set against
itself, in panels of `chunk_size` rows that compute each pair once, serves every k; points
within a rounding error of each other may swap with the chunk size.

Ties: equal similarities rank the lower training index first; classes tied in votes go to the
nearest tied neighbour's class (`tie_break="nearest"`) or the lowest class id
("lowest_class", scikit-learn's rule); among k the smallest wins.
"""

import dataclasses
import functools
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from official.evaluation import inputs
from official.evaluation import metrics

DISTANCES = ("cosine", "euclidean")
TIE_BREAKS = ("nearest", "lowest_class")
K_MAX = 100
CHUNK_SIZE = 1024


def _prepare(x: np.ndarray, distance: str) -> tuple[tf.Tensor, tf.Tensor]:
  """Features as searched, and each row's additive similarity term (-||r||^2 or 0)."""
  x = np.asarray(x, dtype=np.float32)
  if distance == "cosine":
    # A zero vector stays zero: similarity 0 to everything.
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    term = np.zeros(x.shape[0], np.float32)
  else:
    term = -np.einsum("ij,ij->i", x, x)
  return tf.constant(x), tf.constant(term)


_MATRIX = tf.TensorSpec([None, None], tf.float32)
_VECTOR = tf.TensorSpec([None], tf.float32)
_BEST = (_MATRIX, tf.TensorSpec([None, None], tf.int32))
_INT = tf.TensorSpec([], tf.int32)


def _similarities(queries, query_term, reference, reference_term, euclidean: bool):
  """[q, n] cosine similarities q.r of unit vectors or, with `euclidean`, minus the squared
  Euclidean distances 2 q.r + term(q) + term(r) (terms -||.||^2)."""
  sims = tf.matmul(queries, reference, transpose_b=True)
  if euclidean:
    sims = 2.0 * sims + reference_term[None, :] + query_term[:, None]
  return sims


def _top_k_chunk(queries, query_term, reference, reference_term, k, *, euclidean: bool):
  """Top-k reference rows of each query row by similarity (ties: lower index first)."""
  # tf.math.top_k returns equal values in index order (knn_test checks it).
  return tf.math.top_k(_similarities(queries, query_term, reference, reference_term, euclidean),
                       k=k, sorted=True)


def _self_top_k(x, term, k, *, euclidean: bool):
  """Top-k of every row of x among the other rows, in one block (n <= chunk_size)."""
  sims = _similarities(x, term, x, term, euclidean)
  sims = tf.linalg.set_diag(sims, tf.fill([tf.shape(x)[0]], tf.constant(-np.inf)))
  return tf.math.top_k(sims, k=k, sorted=True)


def _merge(best, sims, first_column):
  """Running top-k (values, indices) of each row merged with its similarities `sims` to the
  columns first_column, first_column + 1, ..., all of higher index than those held."""
  values, indices = best
  k = tf.shape(values)[1]
  values, position = tf.math.top_k(tf.concat([values, sims], axis=1), k=k, sorted=True)
  held = tf.gather(indices, tf.minimum(position, k - 1), batch_dims=1)
  return values, tf.where(position < k, held, position - k + first_column)


def _self_panel(x, term, best, start, stop, *, euclidean: bool):
  """Rows start:stop of the search of the training set x against itself, merged into `best`.

  The similarities of those rows to the examples from `start` on update the running top-k of
  the rows (themselves excluded: -inf on the panel's diagonal) and, transposed, those of the
  later examples, so each pair of examples is computed once. Row r has then met exactly the
  columns before min(r, stop) and the merges append columns in increasing order.
  """
  sims = _similarities(x[start:stop], term[start:stop], x[start:], term[start:], euclidean)
  sims = tf.linalg.set_diag(sims, tf.fill([stop - start], tf.constant(-np.inf)))
  values, indices = best
  rows = _merge((values[start:stop], indices[start:stop]), sims, start)
  later = _merge((values[stop:], indices[stop:]), tf.transpose(sims[:, stop - start:]), start)
  return tuple(tf.concat([held[:start], a, b], 0)
               for held, a, b in zip(best, rows, later))


def _graphs(function, *signature) -> dict:
  """One graph per distance (euclidean False/True), traced once for every problem size."""
  return {euclidean: tf.function(functools.partial(function, euclidean=euclidean),
                                 input_signature=list(signature)) for euclidean in (False, True)}


_TOP_K_CHUNK = _graphs(_top_k_chunk, _MATRIX, _VECTOR, _MATRIX, _VECTOR, _INT)
_SELF_TOP_K = _graphs(_self_top_k, _MATRIX, _VECTOR, _INT)
_SELF_PANEL = _graphs(_self_panel, _MATRIX, _VECTOR, _BEST, _INT, _INT)


def neighbours(queries, reference, k: int, *, distance: str = "cosine",
               chunk_size: int = CHUNK_SIZE,
               exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Indices int64 [q, k] and similarities float32 [q, k] of the k most similar reference rows.

  Most similar first. `chunk_size` query rows make one [chunk_size, n] similarity block.
  `exclude_self`: queries are the reference set and row i never has itself as a neighbour.
  """
  _check("distance", distance, DISTANCES)
  euclidean = distance == "euclidean"
  reference_t, reference_term = _prepare(reference, distance)
  num_reference = int(reference_t.shape[0])
  if exclude_self and np.shape(queries) != np.shape(reference):
    raise ValueError(f"exclude_self needs queries to be the reference set, got shapes "
                     f"{np.shape(queries)} and {np.shape(reference)}")
  if not 1 <= k <= num_reference - int(exclude_self):
    raise ValueError(f"k must be in 1..{num_reference - int(exclude_self)} for {num_reference} "
                     f"reference examples, got {k}")
  if exclude_self and num_reference <= chunk_size:  # one panel: no running top-k to merge
    values, index = _SELF_TOP_K[euclidean](reference_t, reference_term, tf.constant(k))
    return index.numpy().astype(np.int64), values.numpy()
  if exclude_self:
    best = (tf.fill([num_reference, k], tf.constant(-np.inf)), tf.fill([num_reference, k], -1))
    for start in range(0, num_reference, chunk_size):
      best = _SELF_PANEL[euclidean](reference_t, reference_term, best, tf.constant(start),
                                    tf.constant(min(start + chunk_size, num_reference)))
    return best[1].numpy().astype(np.int64), best[0].numpy()
  queries_t, query_term = _prepare(queries, distance)
  num_queries = int(queries_t.shape[0])
  indices = np.empty((num_queries, k), np.int64)
  sims = np.empty((num_queries, k), np.float32)
  for start in range(0, num_queries, chunk_size):
    stop = min(start + chunk_size, num_queries)
    if start == 0 and stop == num_queries:  # one chunk: no slices to cut
      chunk, chunk_term = queries_t, query_term
    else:
      chunk, chunk_term = queries_t[start:stop], query_term[start:stop]
    values, index = _TOP_K_CHUNK[euclidean](chunk, chunk_term, reference_t, reference_term,
                                            tf.constant(k))
    indices[start:stop] = index.numpy()
    sims[start:stop] = values.numpy()
  return indices, sims


def vote(neighbour_ids: np.ndarray, num_classes: int, tie_break: str = "nearest") -> np.ndarray:
  """int64 [q, k_max] majority votes: column k - 1 the prediction of the k nearest.

  `neighbour_ids` [q, k_max]: class ids of each query's neighbours, most similar first.
  One pass over k, vectorised over the queries: adding the k-th neighbour raises only its
  class's count, so the winner at k is the winner at k - 1 or that class (classes tied with
  the old winner had lost to it, and the tie rule is a total order).
  """
  _check("tie_break", tie_break, TIE_BREAKS)
  neighbour_ids = np.asarray(neighbour_ids, np.int64)
  rows, k_max = neighbour_ids.shape
  # [q, K] tables indexed flat: query * K + class.
  offset = np.arange(rows) * int(num_classes)
  counts = np.zeros(rows * int(num_classes), np.int64)
  first_rank = np.full(rows * int(num_classes), k_max, np.int64)  # nearest neighbour's rank
  winner = np.zeros(rows, np.int64)
  winner_count = np.zeros(rows, np.int64)
  out = np.empty((rows, k_max), np.int64)
  for rank in range(k_max):
    cls = neighbour_ids[:, rank]
    slot = offset + cls
    count = counts[slot] + 1
    counts[slot] = count
    if tie_break == "nearest":
      nearest = np.minimum(first_rank[slot], rank)
      first_rank[slot] = nearest
      wins_tie = nearest < first_rank[offset + winner]
    else:
      wins_tie = cls < winner
    wins = (count > winner_count) | ((count == winner_count) & wins_tie)
    winner = np.where(wins, cls, winner)
    winner_count = np.where(wins, count, winner_count)
    out[:, rank] = winner
  return out


def _check(name: str, value: str, valid: tuple) -> None:
  if value not in valid:
    raise ValueError(f"{name} must be one of {', '.join(valid)}, got {value!r}")


@dataclasses.dataclass
class KNNClassifier:
  """k-nearest-neighbour classifier with k chosen by leave-one-out on its training set.

  `loo_accuracy`: k -> leave-one-out score (the `metric`); `classes`: [K] sorted labels.
  """
  k: int
  loo_accuracy: dict
  metric: str
  distance: str
  tie_break: str
  classes: np.ndarray
  chunk_size: int
  seconds_search: float
  seconds_vote: float
  train_x: np.ndarray = dataclasses.field(repr=False)
  train_ids: np.ndarray = dataclasses.field(repr=False)

  @property
  def loo_score(self) -> float:
    """Leave-one-out score of the chosen k."""
    return self.loo_accuracy[self.k]

  def kneighbors(self, x, k: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices [q, k] into the training set and similarities of the k nearest neighbours."""
    x = inputs.check_features(x, "x", self.train_x.shape[1])
    return neighbours(x, self.train_x, self.k if k is None else int(k), distance=self.distance,
                      chunk_size=self.chunk_size)

  def predict(self, x) -> np.ndarray:
    """[q] predicted class labels of features x [q, D] by a vote of the k nearest."""
    index, _ = self.kneighbors(x)
    predictions = vote(self.train_ids[index], self.classes.size, self.tie_break)[:, -1]
    return self.classes[predictions]

  def score(self, x, y, metric: Optional[str] = None) -> float:
    """Metric (default: the selection metric) of the predictions on (x, y)."""
    return metrics.compute(metric or self.metric, np.asarray(y), self.predict(x))


def leave_one_out_scores(neighbour_ids: np.ndarray, ids: np.ndarray, num_classes: int,
                         metric: str = "top1", tie_break: str = "nearest") -> np.ndarray:
  """float64 [k_max] leave-one-out score of every k (entry k - 1).

  `neighbour_ids` [n, k_max]: class ids of each training example's neighbours (itself
  excluded); `ids` [n]: the examples' class ids.
  """
  metrics.get(metric)
  correct = vote(neighbour_ids, num_classes, tie_break) == ids[:, None]  # [n, k_max]
  if metric == "top1":
    return correct.mean(axis=0)
  per_class = np.zeros((num_classes, correct.shape[1]))
  np.add.at(per_class, ids, correct)
  counts = np.bincount(ids, minlength=num_classes)
  present = counts > 0
  return (per_class[present] / counts[present, None]).mean(axis=0)


def fit(train_x, train_y, *, k_max: int = K_MAX, distance: str = "cosine",
        chunk_size: int = CHUNK_SIZE, metric: str = "top1",
        tie_break: str = "nearest") -> KNNClassifier:
  """Fits kNN to features [n, D] and labels [n], choosing k in 1..min(k_max, n - 1) by the
  leave-one-out `metric`."""
  _check("distance", distance, DISTANCES)
  metrics.get(metric)
  _check("tie_break", tie_break, TIE_BREAKS)
  if int(k_max) < 1:
    raise ValueError(f"k_max must be >= 1, got {k_max}")
  if int(chunk_size) < 1:
    raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
  train_x = inputs.check_features(train_x, "train_x")
  train_y = inputs.check_labels(train_y, "train_y", train_x.shape[0], "train_x")
  classes = inputs.training_classes(train_y, "train_y", "kNN classification")
  ids = inputs.encode_labels(classes, train_y, "train_y")
  k_max = min(int(k_max), train_x.shape[0] - 1)
  start = time.perf_counter()
  index, _ = neighbours(train_x, train_x, k_max, distance=distance, chunk_size=int(chunk_size),
                        exclude_self=True)
  seconds_search = time.perf_counter() - start
  start = time.perf_counter()
  scores = leave_one_out_scores(ids[index], ids, classes.size, metric, tie_break)
  seconds_vote = time.perf_counter() - start
  k = int(np.argmax(scores)) + 1  # ties: the smallest k
  return KNNClassifier(
      k=k, loo_accuracy={i + 1: float(s) for i, s in enumerate(scores)}, metric=metric,
      distance=distance, tie_break=tie_break, classes=classes, chunk_size=int(chunk_size),
      seconds_search=seconds_search, seconds_vote=seconds_vote,
      train_x=train_x, train_ids=ids)
