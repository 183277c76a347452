"""Activation sparsity (paper Figure 3, docs/protocol.md §6): the share of non-zero entries
of each endpoint, over all examples, positions and channels."""

from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from official.analysis import activations as activations_lib


def _counts(activations: Any, name: str) -> tuple[int, int]:
  """(non-zero entries, entries) of one array; eager tensors are counted on their device."""
  if isinstance(activations, tf.Tensor) and tf.executing_eagerly():
    if activations.shape.num_elements() == 0:
      raise ValueError(f"{name}: has shape {activations.shape} with no entries; expected at "
                       "least one example")
    if activations.dtype.is_floating and not bool(
        tf.reduce_all(tf.math.is_finite(activations))):
      raise ValueError(f"{name}: contains NaN or Inf; expected finite activations")
    nonzero = tf.math.count_nonzero(activations, dtype=tf.int64)
    return int(nonzero), int(activations.shape.num_elements())
  array = activations_lib.as_array(activations, name)
  return int(np.count_nonzero(array)), int(array.size)


class Sparsity:
  """Streaming share of non-zero activations for each endpoint of a network: per endpoint the
  counts of non-zero entries and of all entries; separately filled objects combine with `merge`."""

  def __init__(self):
    self.reset_state()

  def reset_state(self) -> None:
    """Forgets every endpoint and count."""
    self.nonzero: dict[str, int] = {}
    self.total: dict[str, int] = {}

  def _add(self, counts: Mapping[str, tuple[int, int]]) -> None:
    for name, (nonzero, total) in counts.items():
      self.nonzero[name] = self.nonzero.get(name, 0) + nonzero
      self.total[name] = self.total.get(name, 0) + total

  def update_state(self, activations: Mapping[str, Any]) -> None:
    """Adds a batch: endpoint name -> activations [b, ...] (NumPy or eager tensor)."""
    if not isinstance(activations, Mapping) or not activations:
      raise ValueError(f"activations: got {type(activations).__name__}; expected a non-empty "
                       "mapping endpoint name -> activations")
    # Every endpoint is checked before any count changes.
    self._add({name: _counts(value, f"activations[{name!r}]")
               for name, value in activations.items()})

  def merge(self, other: "Sparsity") -> None:
    """Adds the counts of `other`, endpoint by endpoint."""
    if not isinstance(other, Sparsity):
      raise ValueError(f"other: got {type(other).__name__}; expected a Sparsity")
    self._add({name: (other.nonzero[name], other.total[name]) for name in other.total})

  def result(self) -> dict[str, float]:
    """Endpoint name -> share of non-zero entries, in the order endpoints were first seen."""
    if not self.total:
      raise ValueError("Sparsity: no activations accumulated; call update_state first")
    return {name: self.nonzero[name] / self.total[name] for name in self.total}
