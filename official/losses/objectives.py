"""The nine training objectives of Kornblith et al. (2021) as Keras 3 losses (docs/protocol.md §1).

Each loss is a `keras.losses.Loss` in `keras.ops` (any backend), called as `loss(labels, z)`
with z the head output [batch, K] and labels class ids [batch] / [batch, 1] or one-hot targets
[batch, K]; it returns the batch mean (per example with `reduction=None`), computed in float32
(float64 under that floatx) through `log_softmax` / `softplus`, so logits of magnitude 1e4 stay
finite. Labels are checked: static shapes always, values when concrete (eager).

Under a distribution strategy the default reduction already divides by the number of replicas
(`scale_loss_for_distribution`): a custom loop must not divide these losses again, but must
divide the penalties in `model.losses` (e.g. `heads.FinalLayerL2`), as Keras' trainer does.
The model-side parts of three objectives come from `losses.get_objective(name)`.
"""
import keras
from keras import ops
import numpy as np

from official.losses import hyperparameters
from official.losses import normalization

SERIALIZATION_PACKAGE = "loss_transfer"

_register = keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
_default = hyperparameters.released_default


def _static_shape(x) -> tuple:
  if not hasattr(x, "shape"):
    x = np.asarray(x)
  return tuple(None if d is None else int(d) for d in x.shape)


def _concrete_value(x):
  """Returns `x` as a NumPy array when its value is known now, else None (symbolic tensors)."""
  if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
    return np.asarray(x)
  if keras.backend.is_keras_tensor(x):
    return None
  try:
    return np.asarray(ops.convert_to_numpy(x))
  except (RuntimeError, TypeError):
    # Graph tensors (tf.function) and traced arrays (jax.jit) have no value yet.
    return None


def check_labels_and_logits(labels, logits) -> None:
  """Raises a one-line ValueError when `labels` cannot be targets for `logits` [batch, K].

  Shapes are checked from static shapes; values (class ids in [0, K), one-hot rows that are
  non-negative and sum to 1) are checked when they are concrete.
  """
  logits_shape = _static_shape(logits)
  if len(logits_shape) != 2:
    raise ValueError(f"logits: expected shape [batch, num_classes], got shape {logits_shape}")
  batch, num_classes = logits_shape
  if num_classes is None:
    raise ValueError(f"logits: the number of classes (last dimension) must be known "
                     f"statically, got shape {logits_shape}")
  labels_shape = _static_shape(labels)
  if len(labels_shape) == 2 and labels_shape[1] == num_classes:
    one_hot = True
  elif len(labels_shape) == 1 or (len(labels_shape) == 2 and labels_shape[1] == 1):
    one_hot = False
  else:
    raise ValueError(f"labels: shape {labels_shape} does not match logits shape {logits_shape}; "
                     f"expected class ids [batch] or one-hot targets [batch, {num_classes}]")
  if batch is not None and labels_shape[0] is not None and labels_shape[0] != batch:
    raise ValueError(f"labels: batch size {labels_shape[0]} differs from the logits' batch size "
                     f"{batch}; expected one label per row of logits {logits_shape}")
  values = _concrete_value(labels)
  if values is None or values.size == 0:
    return
  values = values.astype(np.float64)
  if one_hot:
    if (not np.all(np.isfinite(values)) or np.any(values < 0) or
        not np.allclose(values.sum(axis=-1), 1.0, atol=1e-3)):
      raise ValueError(f"labels: one-hot targets of shape {labels_shape} must be non-negative "
                       "with rows summing to 1")
  elif (not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or
        values.min() < 0 or values.max() >= num_classes):
    raise ValueError(f"labels: class ids must be integers in [0, {num_classes}), got values in "
                     f"[{values.min():g}, {values.max():g}]")


def targets_from_labels(labels, logits):
  """Float targets t [batch, K] from class ids [batch] / [batch, 1] or one-hot [batch, K]."""
  num_classes = logits.shape[-1]
  if len(labels.shape) == 2 and labels.shape[-1] == num_classes:
    return ops.cast(labels, logits.dtype)
  if len(labels.shape) == 2:
    labels = ops.squeeze(labels, axis=-1)
  return ops.one_hot(ops.cast(labels, "int32"), num_classes, dtype=logits.dtype)


def softmax_cross_entropy(targets, logits):
  """Per-example `-sum_k t_k log softmax(z)_k` = `logsumexp(z) - z_y` for one-hot t (eq. 1)."""
  return -ops.sum(targets * ops.log_softmax(logits, axis=-1), axis=-1)


class ObjectiveLoss(keras.losses.Loss):
  """Base class: label checks, targets, float32 math; subclasses define `per_example_loss`."""

  # The constructor's keywords that the config records besides name and reduction.
  HPARAMS = ()

  def __init__(self, name: str, reduction="sum_over_batch_size"):
    dtype = "float64" if keras.backend.floatx() == "float64" else "float32"
    super().__init__(name=name, reduction=reduction, dtype=dtype)

  def get_config(self):
    return {**super().get_config(), **{key: getattr(self, key) for key in self.HPARAMS}}

  def __call__(self, y_true, y_pred, sample_weight=None):
    # Keras maps conversion over nested lists element by element; make them arrays first.
    if isinstance(y_true, (list, tuple)):
      y_true = np.asarray(y_true)
    if isinstance(y_pred, (list, tuple)):
      y_pred = np.asarray(y_pred)
    check_labels_and_logits(y_true, y_pred)
    return super().__call__(y_true, y_pred, sample_weight=sample_weight)

  def call(self, y_true, y_pred):
    return self.per_example_loss(targets_from_labels(y_true, y_pred), y_pred)

  def per_example_loss(self, targets, logits):
    """Loss of each example, shape [batch], from targets t and logits z, both [batch, K]."""
    raise NotImplementedError(f"{type(self).__name__} must define per_example_loss")


@_register
class SoftmaxCrossEntropy(ObjectiveLoss):
  """`softmax`: softmax cross-entropy, paper eq. 1: `logsumexp(z) - z_y`.

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> loss = losses.SoftmaxCrossEntropy()
  >>> round(float(loss([0, 1], z)), 4)                 # mean over the batch
  0.3171
  >>> round(float(loss(np.eye(3)[[0, 1]], z)), 4)      # one-hot targets: the same
  0.3171
  """

  def __init__(self, name="softmax", reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)

  def per_example_loss(self, targets, logits):
    return softmax_cross_entropy(targets, logits)


@_register
class ExtraFinalLayerL2CrossEntropy(SoftmaxCrossEntropy):
  """`extra_final_layer_l2`, paper eq. 4: the loss value is plain softmax cross-entropy.

  The penalty `lambda_ * 0.5 * ||W||_F^2` is the head's kernel regularizer (`heads.FinalLayerL2`);
  `lambda_` is recorded so that the loss's config names the whole objective.

  Example:

  >>> from official import losses
  >>> head = losses.get_objective("extra_final_layer_l2").head(3)  # the penalty lives here
  >>> head.kernel_regularizer.lambda_
  0.0008
  """

  HPARAMS = ("lambda_",)

  def __init__(self, lambda_=_default("extra_final_layer_l2", "lambda_"),
               name="extra_final_layer_l2", reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.lambda_ = hyperparameters.check_non_negative(
        "lambda_", lambda_, "the extra final-layer L2 weight must be >= 0")


@_register
class PenultimateDropoutCrossEntropy(SoftmaxCrossEntropy):
  """`dropout`, paper eq. 3: the loss value is softmax cross-entropy of the dropped-out logits.

  The dropout acts on the penultimate features inside the model (`Objective.penultimate()`), so
  the loss sees `z~ = W x~ + b`; `keep_prob` is recorded so that the loss's config names it.

  Example:

  >>> from official import losses
  >>> dropout = losses.get_objective("dropout").penultimate()   # the objective's effect
  >>> type(dropout).__name__, round(dropout.rate, 2)   # drops 1 - keep_prob
  ('Dropout', 0.3)
  """

  HPARAMS = ("keep_prob",)

  def __init__(self, keep_prob=_default("dropout", "keep_prob"), name="dropout",
               reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.keep_prob = hyperparameters.check_keep_prob(keep_prob)


@_register
class LabelSmoothingCrossEntropy(ObjectiveLoss):
  """`label_smoothing`, paper eq. 2.

  Cross-entropy with targets `t' = (1 - alpha) t + alpha / K`, times `1 / (1 - alpha)`.

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> loss = losses.LabelSmoothingCrossEntropy()      # alpha = 0.1
  >>> round(float(loss([0, 1], z)), 4)
  0.4912
  >>> round(float(losses.LabelSmoothingCrossEntropy(alpha=0.0)([0, 1], z)), 4)  # = softmax
  0.3171
  """

  HPARAMS = ("alpha",)

  def __init__(self, alpha=_default("label_smoothing", "alpha"), name="label_smoothing",
               reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.alpha = hyperparameters.check_alpha(alpha)

  def per_example_loss(self, targets, logits):
    num_classes = logits.shape[-1]
    smoothed = targets * (1.0 - self.alpha) + self.alpha / num_classes
    return softmax_cross_entropy(smoothed, logits) / (1.0 - self.alpha)


@_register
class SigmoidCrossEntropy(ObjectiveLoss):
  """`sigmoid`, paper eq. 8: one-vs-rest binary cross-entropy summed over the K classes.

  Per example `sum_k t_k softplus(-z_k) + (1 - t_k) softplus(z_k)`, so that no large terms
  cancel. The paper's `-log K` prior lives in the head's bias initialisation (`Objective.head`).

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> loss = losses.SigmoidCrossEntropy()
  >>> round(float(loss([0, 1], z)), 4)                 # sum_k softplus(z_k) - z_y
  1.501
  """

  def __init__(self, name="sigmoid", reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)

  def per_example_loss(self, targets, logits):
    return ops.sum(targets * ops.softplus(-logits) + (1.0 - targets) * ops.softplus(logits),
                   axis=-1)


@_register
class LogitPenaltyCrossEntropy(ObjectiveLoss):
  """`logit_penalty`, paper eq. 5: softmax cross-entropy + `beta * 0.5 * ||z||^2` (released 0.5).

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> loss = losses.LogitPenaltyCrossEntropy()         # beta = 6e-4
  >>> round(float(loss([0, 1], z)), 4)                 # 0.3171 + 6e-4 * 0.5 * mean ||z||^2
  0.3182
  """

  HPARAMS = ("beta",)

  def __init__(self, beta=_default("logit_penalty", "beta"), name="logit_penalty",
               reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.beta = hyperparameters.check_non_negative(
        "beta", beta, "the logit penalty weight must be >= 0")

  def per_example_loss(self, targets, logits):
    penalty = self.beta * 0.5 * ops.sum(ops.square(logits), axis=-1)
    return softmax_cross_entropy(targets, logits) + penalty


@_register
class LogitNormalizationCrossEntropy(ObjectiveLoss):
  """`logit_normalization`, paper eq. 6: softmax cross-entropy of `z / (tau * ||z||)`.

  `||z||` is floored at 1e-6 (`tf.math.l2_normalize`, as released), so `z = 0` gives `log K`;
  `scale_loss_by_tau` as for cosine softmax.

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> loss = losses.LogitNormalizationCrossEntropy(tau=0.5)   # released: tau = 0.04
  >>> round(float(loss([0, 1], z)), 4)                 # softmax of z / (0.5 ||z||)
  0.2853
  >>> round(float(loss([0, 1], 10 * z)), 4)            # invariant to the scale of z
  0.2853
  """

  HPARAMS = ("tau", "scale_loss_by_tau")

  def __init__(self, tau=_default("logit_normalization", "tau"),
               scale_loss_by_tau=_default("logit_normalization", "scale_loss_by_tau"),
               name="logit_normalization", reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.tau = hyperparameters.check_tau(tau)
    self.scale_loss_by_tau = hyperparameters.check_bool("scale_loss_by_tau", scale_loss_by_tau)

  def per_example_loss(self, targets, logits):
    scaled = normalization.l2_normalize(logits, axis=-1) / self.tau
    factor = hyperparameters.tau_loss_factor(self.tau, self.scale_loss_by_tau)
    return factor * softmax_cross_entropy(targets, scaled)


@_register
class CosineSoftmaxCrossEntropy(ObjectiveLoss):
  """`cosine_softmax`, paper eq. 7: softmax cross-entropy of `z / tau`.

  `z` is the output of `heads.CosineSoftmaxHead`, `z_k = cos(W_k, x) + b_k`; dividing the bias
  by tau too is the released form. With `scale_loss_by_tau` the loss is multiplied by tau when
  tau < 0.05 (paper §3.4, footnote 1). `normalize_features` (the head's) is only recorded.

  Example (the cosine head's output z lies in [-1, 1] plus the bias):

  >>> from official import losses
  >>> objective = losses.get_objective("cosine_softmax")      # tau = 0.05
  >>> head = objective.head(3)                                 # z_k = cos(W_k, x) + b_k
  >>> tuple(head(np.ones((2, 5), "float32")).shape)
  (2, 3)
  >>> z = np.array([[0.3, 0.2, 0.1], [0.1, 0.2, 0.15]])
  >>> round(float(objective.loss([0, 1], z)), 4)      # softmax cross-entropy of z / tau
  0.2753
  """

  HPARAMS = ("tau", "normalize_features", "scale_loss_by_tau")

  def __init__(self, tau=_default("cosine_softmax", "tau"),
               normalize_features=_default("cosine_softmax", "normalize_features"),
               scale_loss_by_tau=_default("cosine_softmax", "scale_loss_by_tau"),
               name="cosine_softmax", reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.tau = hyperparameters.check_tau(tau)
    self.normalize_features = hyperparameters.check_bool("normalize_features",
                                                         normalize_features)
    self.scale_loss_by_tau = hyperparameters.check_bool("scale_loss_by_tau", scale_loss_by_tau)

  def per_example_loss(self, targets, logits):
    factor = hyperparameters.tau_loss_factor(self.tau, self.scale_loss_by_tau)
    return factor * softmax_cross_entropy(targets, logits / self.tau)


@_register
class SquaredError(ObjectiveLoss):
  """`squared_error` (Hui & Belkin), paper eq. 9, released form.

  Per example `loss_scale * (kappa * (z_y - M)^2 + sum_{k != y} z_k^2)`; eq. 9 has loss_scale
  = 1/K. The released loss_scale = 10 and M = 60 go with the ImageNet recipe and diverge or stall
  at small models' learning rates (docs/protocol.md §7.3, item 23).

  Example:

  >>> from official import losses
  >>> z = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])  # head output: 2 examples, K = 3
  >>> round(float(losses.SquaredError()([0, 1], z)), 1)      # released: huge at z ~ 0
  305387.5
  >>> loss = losses.SquaredError(loss_scale=1 / 3)             # paper eq. 9: 1/K
  >>> round(float(loss([0, 1], z)), 2)
  10179.58
  >>> mse = losses.SquaredError(kappa=1.0, m=1.0, loss_scale=1 / 3)   # plain squared error,
  >>> round(float(mse([0, 1], z)), 4)                     # keras.losses.MeanSquaredError's
  0.4167
  """

  HPARAMS = ("kappa", "m", "loss_scale")

  def __init__(self, kappa=_default("squared_error", "kappa"),
               m=_default("squared_error", "m"),
               loss_scale=_default("squared_error", "loss_scale"), name="squared_error",
               reduction="sum_over_batch_size"):
    super().__init__(name=name, reduction=reduction)
    self.kappa = hyperparameters.check_positive(
        "kappa", kappa, "the correct-class weight must be > 0")
    self.m = hyperparameters.check_finite("m", m)
    self.loss_scale = hyperparameters.check_positive(
        "loss_scale", loss_scale, "the loss scale must be > 0")

  def per_example_loss(self, targets, logits):
    correct = self.kappa * ops.square(logits - self.m)
    other = ops.square(logits)
    return self.loss_scale * ops.sum(targets * correct + (1.0 - targets) * other, axis=-1)
