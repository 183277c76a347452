"""Transfer accuracy metrics of Table 1 (docs/protocol.md §4): top-1 accuracy, and mean
per-class accuracy (per-class recall averaged over classes) for Oxford-IIIT Pets and Flowers.
"""

from typing import Callable

import numpy as np

NAMES = ("top1", "mean_per_class")


def _check(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels)
  predictions = np.asarray(predictions)
  if labels.ndim != 1 or predictions.ndim != 1:
    raise ValueError(
        f"labels and predictions must be 1-D arrays of class ids, got shapes {labels.shape} "
        f"and {predictions.shape}")
  if labels.shape[0] != predictions.shape[0]:
    raise ValueError(
        f"labels and predictions must have the same length, got {labels.shape[0]} and "
        f"{predictions.shape[0]}")
  if labels.shape[0] == 0:
    raise ValueError("labels is empty; need at least one example to compute an accuracy")
  return labels, predictions


def top1(labels, predictions) -> float:
  """Fraction of examples whose predicted class id [n] equals the label [n]."""
  labels, predictions = _check(labels, predictions)
  return float(np.mean(labels == predictions))


def mean_per_class(labels, predictions) -> float:
  """(1/K) sum_k #{i: y_i = k, prediction_i = k} / #{i: y_i = k} over the K classes in `labels`."""
  labels, predictions = _check(labels, predictions)
  classes, class_index, counts = np.unique(labels, return_inverse=True, return_counts=True)
  correct = np.bincount(class_index, weights=(labels == predictions), minlength=classes.size)
  return float(np.mean(correct / counts))


_METRICS = {"top1": top1, "mean_per_class": mean_per_class}


def get(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
  """The metric function called `name` (one of NAMES)."""
  if name not in _METRICS:
    raise ValueError(f"metric must be one of {', '.join(NAMES)}, got {name!r}")
  return _METRICS[name]


def compute(name: str, labels, predictions) -> float:
  """Metric `name` (one of NAMES) of `predictions` against `labels`."""
  return get(name)(labels, predictions)
