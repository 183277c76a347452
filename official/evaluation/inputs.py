"""Checks shared by the transfer evaluators: feature matrices, label vectors, class encoding.

Every problem raises a one-line ValueError naming the argument, the problem and what is valid.
"""

from typing import Optional

import numpy as np


def check_features(x, name: str, num_features: Optional[int] = None) -> np.ndarray:
  """`x` as a finite real [n, D] array (D = num_features when given)."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be a 2-D array [examples, features], got shape {x.shape}")
  if x.dtype == np.bool_ or not np.issubdtype(x.dtype, np.number) or np.issubdtype(
      x.dtype, np.complexfloating):
    raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
  if num_features is not None and x.shape[1] != num_features:
    raise ValueError(f"{name} has {x.shape[1]} features per example; expected {num_features} "
                     f"like the training features")
  if x.shape[0] == 0:
    raise ValueError(f"{name} has no examples; need at least one row")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name} contains NaN or infinite values; features must be finite")
  return x


def check_labels(y, name: str, num_examples: int, features_name: str) -> np.ndarray:
  """`y` as a 1-D array of class labels (integers or strings) of length num_examples."""
  y = np.asarray(y)
  if y.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array of class ids, got shape {y.shape}")
  if y.shape[0] != num_examples:
    raise ValueError(f"{name} has {y.shape[0]} labels but {features_name} has {num_examples} "
                     f"examples; they must have the same length")
  if np.issubdtype(y.dtype, np.floating):
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
      raise ValueError(f"{name} must hold integer class ids, got non-integer values")
    y = y.astype(np.int64)
  elif not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.str_)):
    raise ValueError(f"{name} must hold integer (or string) class ids, got dtype {y.dtype}")
  return y


def encode_labels(classes: np.ndarray, y: np.ndarray, name: str) -> np.ndarray:
  """int64 indices of the labels `y` in the sorted array `classes` (ValueError for others)."""
  index = np.minimum(np.searchsorted(classes, y), classes.size - 1)
  unknown = classes[index] != y
  if np.any(unknown):
    label = y[np.argmax(unknown)].item()
    raise ValueError(f"{name} contains class {label!r} that does not occur in the training "
                     f"labels; every evaluated class must be trained on")
  return index.astype(np.int64)


def training_classes(y: np.ndarray, name: str, method: str) -> np.ndarray:
  """Sorted distinct labels of `y`; ValueError when fewer than two."""
  classes = np.unique(y)
  if classes.size < 2:
    raise ValueError(f"{name} has {classes.size} class(es); {method} needs at least 2")
  return classes
