"""Activations [n, ...] (NumPy arrays or eager tensors) as checked arrays and [n, features]
matrices, convolutional ones flattened as in paper Figures 2 and 4: the common input of CKA,
class separation and sparsity."""

from typing import Any

import numpy as np


def as_array(activations: Any, name: str) -> np.ndarray:
  """Returns `activations` as a NumPy array, raising ValueError on NaN/Inf or no entries."""
  try:
    array = np.asarray(activations)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{name}: cannot be read as an array ({e}); pass a NumPy array or an "
                     "eager tensor") from None
  if array.dtype.name in ("bfloat16", "float16"):
    array = array.astype(np.float32)
  if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or
                                   array.dtype == np.bool_):
    raise ValueError(f"{name}: has dtype {array.dtype}; expected a numeric array")
  if array.size == 0:
    raise ValueError(f"{name}: has shape {array.shape} with no entries; expected at least one "
                     "example")
  if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
    raise ValueError(f"{name}: contains NaN or Inf; expected finite activations")
  return array


def as_matrix(activations: Any, name: str) -> np.ndarray:
  """Returns float64 [n, features]: [n, d] as is, [n, h, w, c] flattened to [n, h*w*c]."""
  array = as_array(activations, name)
  if array.ndim < 2:
    raise ValueError(f"{name}: has shape {array.shape}; expected [n, features] or "
                     "[n, height, width, channels]")
  return array.reshape(array.shape[0], -1).astype(np.float64, copy=False)
