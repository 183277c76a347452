"""Class separation R^2 (paper eq. 11) in linear time (docs/protocol.md §6).

Cosine distance (the paper's): the formulas of docs/protocol.md §6, u = 0 for x = 0. Squared
Euclidean distance, with mu_k the mean and s_k the mean squared norm of x over class k:

  d_within = 2 ((1/K) sum_k s_k - (1/K) sum_k ||mu_k||^2),
  d_total  = 2 ((1/K) sum_k s_k - ||(1/K) sum_k mu_k||^2).

Both need only per-class sums (O(n p) time, O(K p) memory). Collapsed features make R^2 a
ratio of two tiny numbers (docs/protocol.md §7 item 28b): cosine R^2 is NaN when d_total <
MIN_TOTAL_DISPERSION (unit embeddings within about 8 degrees; trained penultimate layers sit
at 0.1-0.5); squared Euclidean R^2, invariant to shifts and scales, only when d_total = 0.
"""

from typing import Any

import numpy as np

from official.analysis import activations as activations_lib

DISTANCES = ("cosine", "squared_euclidean")
MIN_TOTAL_DISPERSION = 0.01


def _check_distance(distance: str) -> None:
  if distance not in DISTANCES:
    raise ValueError(f"distance: unknown value {distance!r}; expected one of "
                     f"{', '.join(DISTANCES)}")


def _check_labels(labels: Any, num_examples: int) -> np.ndarray:
  labels = activations_lib.as_array(labels, "labels")
  if labels.ndim != 1 or labels.shape[0] != num_examples:
    raise ValueError(f"labels: has shape {labels.shape}; expected integer class indices of "
                     f"shape [{num_examples}] (one per example of features)")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels: has dtype {labels.dtype}; expected integer class indices")
  return labels


def _embed(features: np.ndarray, distance: str) -> tuple[np.ndarray, np.ndarray]:
  """Rows to average ([n, p]: u for cosine, x for squared Euclidean) and their squared norms."""
  squared_norms = np.einsum("ij,ij->i", features, features)
  if distance == "squared_euclidean":
    return features, squared_norms
  norms = np.sqrt(squared_norms)
  nonzero = norms > 0.0
  units = features / np.where(nonzero, norms, 1.0)[:, None]
  return units, nonzero.astype(np.float64)


def _class_sums(rows: np.ndarray, squared_norms: np.ndarray, classes: np.ndarray,
                num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-class sums of rows [K, p], counts [K] and sums of squared norms [K]."""
  order = np.argsort(classes, kind="stable")
  sorted_classes = classes[order]
  present, starts = np.unique(sorted_classes, return_index=True)
  sums = np.zeros((num_classes, rows.shape[1]), np.float64)
  sums[present] = np.add.reduceat(rows[order], starts, axis=0)
  counts = np.bincount(classes, minlength=num_classes).astype(np.int64)
  squared_norm_sums = np.bincount(classes, weights=squared_norms, minlength=num_classes)
  return sums, counts, squared_norm_sums


def _r2_from_class_sums(sums: np.ndarray, counts: np.ndarray, squared_norm_sums: np.ndarray,
                        distance: str) -> float:
  """Eq. 11 from per-class statistics; classes with no examples are left out."""
  seen = counts > 0
  if np.count_nonzero(seen) < 2:
    raise ValueError(f"labels: {np.count_nonzero(seen)} class(es) present; class separation "
                     "R^2 needs examples of at least 2 classes")
  means = sums[seen] / counts[seen, None]
  scale = (1.0 if distance == "cosine"
           else float(np.mean(squared_norm_sums[seen] / counts[seen])))
  mean_squared_norm = float(np.mean(np.einsum("ij,ij->i", means, means)))
  grand_mean = means.mean(axis=0)
  d_within = scale - mean_squared_norm
  d_total = scale - float(grand_mean @ grand_mean)
  if not d_total >= (MIN_TOTAL_DISPERSION if distance == "cosine" else 0.0) or d_total <= 0.0:
    return float("nan")  # Collapsed (or identical) features: R^2 is undefined.
  return 1.0 - d_within / d_total


def r2(features: Any, labels: Any, *, distance: str = "cosine") -> float:
  """Class separation R^2 = 1 - d_within / d_total (paper eq. 11) of features [n, ...].

  `labels` [n]: any integer values; the classes present count, each weighted equally. Returns
  a Python float, NaN when the features collapse (module docstring).
  """
  _check_distance(distance)
  features = activations_lib.as_matrix(features, "features")
  labels = _check_labels(labels, features.shape[0])
  classes, inverse = np.unique(labels, return_inverse=True)
  if classes.size < 2:
    raise ValueError(f"labels: only class {classes[0]} is present; class separation R^2 needs "
                     "examples of at least 2 classes")
  rows, squared_norms = _embed(features, distance)
  sums = _class_sums(rows, squared_norms, inverse.reshape(-1), classes.size)
  return _r2_from_class_sums(*sums, distance)


class ClassSeparation:
  """Streaming class separation R^2 (eq. 11) for activations too large to hold at once.

  State per class: the sum of u (cosine) or x (squared Euclidean), the count and the sum of
  squared norms. `result()` equals `r2` on all examples seen; accumulators filled separately
  (replicas, hosts, shards) combine with `merge`.
  """

  def __init__(self, num_classes: int, *, distance: str = "cosine"):
    """Creates empty accumulators for labels in [0, num_classes)."""
    _check_distance(distance)
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
      raise ValueError(f"num_classes: got {num_classes!r}; expected an integer >= 2")
    self.num_classes = int(num_classes)
    self.distance = distance
    self.reset_state()

  def reset_state(self) -> None:
    """Forgets every example."""
    self.sums = None
    self.counts = np.zeros([self.num_classes], np.int64)
    self.squared_norm_sums = np.zeros([self.num_classes], np.float64)

  def update_state(self, features: Any, labels: Any) -> None:
    """Adds a batch: features [b, ...] (flattened per example) and integer labels [b]."""
    features = activations_lib.as_matrix(features, "features")
    labels = _check_labels(labels, features.shape[0])
    if labels.min() < 0 or labels.max() >= self.num_classes:
      raise ValueError(f"labels: values span [{labels.min()}, {labels.max()}]; expected class "
                       f"indices in [0, {self.num_classes})")
    if self.sums is not None and self.sums.shape[1] != features.shape[1]:
      raise ValueError(f"features: has {features.shape[1]} features per example; earlier "
                       f"batches had {self.sums.shape[1]}")
    rows, squared_norms = _embed(features, self.distance)
    sums, counts, squared_norm_sums = _class_sums(rows, squared_norms, labels.astype(np.int64),
                                                  self.num_classes)
    self.sums = sums if self.sums is None else self.sums + sums
    self.counts += counts
    self.squared_norm_sums += squared_norm_sums

  def merge(self, other: "ClassSeparation") -> None:
    """Adds the accumulators of `other` (same classes, distance and feature size)."""
    if not isinstance(other, ClassSeparation) or (
        (other.num_classes, other.distance) != (self.num_classes, self.distance)):
      raise ValueError(f"other: expected a ClassSeparation with num_classes={self.num_classes} "
                       f"and distance={self.distance!r}")
    if other.sums is None:
      return
    if self.sums is not None and self.sums.shape != other.sums.shape:
      raise ValueError(f"other: has {other.sums.shape[1]} features per example; this one has "
                       f"{self.sums.shape[1]}")
    self.sums = other.sums.copy() if self.sums is None else self.sums + other.sums
    self.counts += other.counts
    self.squared_norm_sums += other.squared_norm_sums

  def result(self) -> float:
    """R^2 (eq. 11) over all examples seen; classes never seen are left out."""
    if self.sums is None:
      raise ValueError("ClassSeparation: no examples accumulated; call update_state first")
    return _r2_from_class_sums(self.sums, self.counts, self.squared_norm_sums, self.distance)
