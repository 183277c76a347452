"""Optimiser, learning-rate schedule, weight decay and weight averaging (docs/protocol.md §1, §3).

Weight decay is a loss term c * 0.5 * sum_v ||v||^2 over the kernels of every convolution and
dense layer, so momentum sees its gradient c * v; the exponential moving average (EMA) of every
weight, batch-norm statistics included, is what is evaluated and exported.
"""

from typing import Sequence

import keras
import tensorflow as tf

# Layers whose `kernel` is not decayed.
_NORMALIZATION_LAYERS = (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                         keras.layers.GroupNormalization)


def learning_rate_schedule(peak_learning_rate: float, total_steps: int,
                           warmup_steps: int) -> keras.optimizers.schedules.LearningRateSchedule:
  """Linear warm-up 0 -> peak over `warmup_steps`, then cosine decay to 0 at `total_steps`.

  lr(t) = peak * t / warmup                                    for t < warmup
  lr(t) = peak * 0.5 * (1 + cos(pi * (t - warmup) / (total - warmup)))  afterwards.
  """
  if not total_steps > warmup_steps >= 0:
    raise ValueError(f"learning-rate schedule: need total_steps > warmup_steps >= 0, got "
                     f"total_steps={total_steps}, warmup_steps={warmup_steps}")
  return keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=0.0, decay_steps=total_steps - warmup_steps, alpha=0.0,
      warmup_target=float(peak_learning_rate), warmup_steps=warmup_steps)


def build_optimizer(schedule, momentum: float = 0.9,
                    nesterov: bool = True) -> keras.optimizers.Optimizer:
  """SGD with (Nesterov) momentum; weight decay is a loss term, not an optimiser option."""
  return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=nesterov)


def decayed_variables(model: keras.Model) -> list:
  """The weights the global weight decay applies to: every non-normalisation layer's `kernel`
  (the objective's head layers included), selected by layer type, never by variable name."""
  selected, seen = [], set()
  for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
    if isinstance(layer, _NORMALIZATION_LAYERS):
      continue
    kernel = getattr(layer, "kernel", None)
    if isinstance(kernel, keras.Variable) and kernel.trainable and id(kernel) not in seen:
      seen.add(id(kernel))
      selected.append(kernel)
  return selected


def weight_decay_penalty(variables: Sequence, weight_decay: float) -> tf.Tensor:
  """weight_decay * 0.5 * sum_v ||v||^2 in float32 (a scalar)."""
  if not variables or weight_decay == 0:
    return tf.constant(0.0, tf.float32)
  total = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in variables])
  return weight_decay * 0.5 * total


def ema_decay_at(step: tf.Tensor, decay: float, warmup: bool) -> tf.Tensor:
  """The EMA decay used after optimiser step `step` (1-based).

  min(decay, (1 + step) / (10 + step)) with `warmup` (as tf.train.ExponentialMovingAverage
  with num_updates), so early averages do not remember the initialisation; else `decay`.
  """
  decay = tf.constant(decay, tf.float32)
  if not warmup:
    return decay
  step = tf.cast(step, tf.float32)
  return tf.minimum(decay, (1.0 + step) / (10.0 + step))


def update_ema(strategy: tf.distribute.Strategy, averages: Sequence, weights: Sequence,
               decay: tf.Tensor) -> None:
  """average <- decay * average + (1 - decay) * weight, for every pair, in cross-replica
  context: each device updates its own copy from its own copy of the weight."""

  def _update(average, weight):
    return average.assign_sub((1.0 - decay) * (average - tf.cast(weight, average.dtype)))

  for average, weight in zip(averages, weights):
    strategy.extended.update(_variable(average), _update, args=(_variable(weight),))


def copy_weights(strategy: tf.distribute.Strategy, targets: Sequence,
                 sources: Sequence) -> None:
  """target <- source for every pair (the EMA starts at the initial weights)."""
  for target, source in zip(targets, sources):
    strategy.extended.update(_variable(target), lambda t, s: t.assign(s),
                             args=(_variable(source),))


def _variable(variable):
  """The tf.Variable (or distributed variable) behind a keras.Variable."""
  return variable.value if isinstance(variable, keras.Variable) else variable
