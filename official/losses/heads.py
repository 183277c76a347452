"""Model-side parts of the objectives: heads, penultimate dropout, output transforms.

A network for objective `o` is `features -> o.penultimate() -> o.head(K) -> z ("final_layer")`
and `z -> o.outputs() -> "outputs"`, the logits used for prediction; the loss always sees `z`.
All layers are registered Keras serializables, so models using them round-trip `.keras` files.
"""

import math

import keras
from keras import ops

from official.losses import hyperparameters
from official.losses import normalization
from official.losses import objectives

_register = keras.saving.register_keras_serializable(
    package=objectives.SERIALIZATION_PACKAGE)
_default = hyperparameters.released_default

# Released final-layer initialisation (docs/protocol.md §2): kernel N(0, 0.01), bias 0.
HEAD_KERNEL_STDDEV = 0.01


def head_kernel_initializer() -> keras.initializers.Initializer:
  return keras.initializers.RandomNormal(mean=0.0, stddev=HEAD_KERNEL_STDDEV)


@_register
class FinalLayerL2(keras.regularizers.Regularizer):
  """Extra final-layer L2 penalty of paper eq. 4: `lambda_ * 0.5 * ||W||_F^2` (released 0.5).

  The head's `kernel_regularizer`, so it reaches `model.losses`, on top of the weight decay.
  """

  def __init__(self, lambda_=_default("extra_final_layer_l2", "lambda_")):
    self.lambda_ = hyperparameters.check_non_negative(
        "lambda_", lambda_, "the extra final-layer L2 weight must be >= 0")

  def __call__(self, x):
    return self.lambda_ * 0.5 * ops.sum(ops.square(x))

  def get_config(self):
    return {"lambda_": self.lambda_}


@_register
class CosineSoftmaxHead(keras.layers.Layer):
  """Cosine-similarity head of paper eq. 7: `z_k = cos(W_k, x) + b_k`, shape [batch, K].

  `normalize_features=True` (eq. 7) L2-normalises both the kernel columns `W_k` and `x`; False is
  the released head, `z_k = <W_k / ||W_k||, x> + b_k`. The temperature divides the whole `z`
  after the head. L2 norms are floored at 1e-6, so an all-zero `x` gives `z = b`.
  """

  def __init__(self, units, normalize_features=_default("cosine_softmax", "normalize_features"),
               kernel_initializer=None,
               bias_initializer="zeros", kernel_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    self.units = hyperparameters.check_num_classes(units)
    self.normalize_features = hyperparameters.check_bool("normalize_features",
                                                         normalize_features)
    self.kernel_initializer = keras.initializers.get(
        kernel_initializer or head_kernel_initializer())
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

  def build(self, input_shape):
    input_dim = input_shape[-1]
    if input_dim is None:
      raise ValueError(f"{self.name}: the feature dimension must be known, got input shape "
                       f"{tuple(input_shape)}")
    self.kernel = self.add_weight(name="kernel", shape=(input_dim, self.units),
                                  initializer=self.kernel_initializer,
                                  regularizer=self.kernel_regularizer)
    self.bias = self.add_weight(name="bias", shape=(self.units,),
                                initializer=self.bias_initializer)

  def call(self, inputs):
    kernel = normalization.l2_normalize(ops.cast(self.kernel, inputs.dtype), axis=0)
    if self.normalize_features:
      inputs = normalization.l2_normalize(inputs, axis=-1)
    return ops.matmul(inputs, kernel) + ops.cast(self.bias, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.units,)

  def get_config(self):
    return {**super().get_config(), "units": self.units,
            "normalize_features": self.normalize_features,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


@_register
class TemperatureScaling(keras.layers.Layer):
  """`outputs` of `cosine_softmax`: `z / tau`, the logits the loss and predictions use (eq. 7)."""

  def __init__(self, tau=_default("cosine_softmax", "tau"), **kwargs):
    super().__init__(**kwargs)
    self.tau = hyperparameters.check_tau(tau)

  def call(self, inputs):
    return inputs / ops.cast(self.tau, inputs.dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "tau": self.tau}


@_register
class LogitNormalization(TemperatureScaling):
  """`outputs` of `logit_normalization`: `z / (tau * ||z||)` (paper eq. 6), safe at `z = 0`."""

  def __init__(self, tau=_default("logit_normalization", "tau"), **kwargs):
    super().__init__(tau, **kwargs)

  def call(self, inputs):
    return super().call(normalization.l2_normalize(inputs, axis=-1))


def dense_head(num_classes, *, name="final_layer", bias_value=0.0, lambda_=None, dtype=None):
  """Linear head `z = x W + b` (paper §2), kernel N(0, 0.01) and bias `bias_value`.

  With `lambda_` the head's kernel carries the `FinalLayerL2(lambda_)` penalty (eq. 4).
  """
  num_classes = hyperparameters.check_num_classes(num_classes)
  regularizer = None if lambda_ is None else FinalLayerL2(lambda_)
  return keras.layers.Dense(
      num_classes, kernel_initializer=head_kernel_initializer(),
      bias_initializer=keras.initializers.Constant(bias_value),
      kernel_regularizer=regularizer, name=name, dtype=dtype)


def sigmoid_head(num_classes, *, name="final_layer", dtype=None):
  """Linear head whose bias starts at `-log K` (paper §2, eq. 8): initial sigmoids are ~1/K."""
  num_classes = hyperparameters.check_num_classes(num_classes)
  return dense_head(num_classes, name=name, bias_value=-math.log(num_classes), dtype=dtype)


def penultimate_dropout(keep_prob, *, name="penultimate_dropout", dtype=None):
  """Penultimate dropout of paper eq. 3: `Dropout(1 - rho)`, `x -> x * xi / rho` in training."""
  keep_prob = hyperparameters.check_keep_prob(keep_prob)
  return keras.layers.Dropout(rate=1.0 - keep_prob, name=name, dtype=dtype)
