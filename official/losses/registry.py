"""One table `objective name -> loss and model-side parts`; `get` and `get_objective`.

Adding an objective is one entry in `hyperparameters.RELEASED_DEFAULTS` (its defaults) and one
`ObjectiveDefinition` in `_DEFINITIONS`.
"""

import dataclasses
import warnings
from typing import Any, Callable, Mapping

import keras

from official.losses import heads
from official.losses import hyperparameters
from official.losses import objectives

HParams = Mapping[str, Any]


def _identity_layer(hparams, name, dtype):
  del hparams
  return keras.layers.Identity(name=name, dtype=dtype)


def _linear_head(hparams, num_classes, name, dtype):
  del hparams
  return heads.dense_head(num_classes, name=name, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class ObjectiveDefinition:
  """Registry entry; the objective's keywords and their defaults are its RELEASED_DEFAULTS.

  Attributes:
    loss: `objectives.ObjectiveLoss` subclass, `loss(**hparams)` with every keyword (so its
      config names the whole objective); its constructor checks their ranges.
    head: (hparams, num_classes, name, dtype) -> layer mapping features [B, D] to z [B, K].
    penultimate: (hparams, name, dtype) -> layer applied to the penultimate features.
    outputs: (hparams, name, dtype) -> layer mapping z to the logits used for prediction.
  """
  loss: type
  head: Callable[[HParams, int, str, Any], keras.layers.Layer] = _linear_head
  penultimate: Callable[[HParams, str, Any], keras.layers.Layer] = _identity_layer
  outputs: Callable[[HParams, str, Any], keras.layers.Layer] = _identity_layer


_DEFINITIONS = {
    "softmax": ObjectiveDefinition(loss=objectives.SoftmaxCrossEntropy),
    "label_smoothing": ObjectiveDefinition(loss=objectives.LabelSmoothingCrossEntropy),
    "sigmoid": ObjectiveDefinition(
        loss=objectives.SigmoidCrossEntropy,
        head=lambda hp, k, name, dtype: heads.sigmoid_head(k, name=name, dtype=dtype)),
    "extra_final_layer_l2": ObjectiveDefinition(
        loss=objectives.ExtraFinalLayerL2CrossEntropy,
        head=lambda hp, k, name, dtype: heads.dense_head(
            k, name=name, lambda_=hp["lambda_"], dtype=dtype)),
    "dropout": ObjectiveDefinition(
        loss=objectives.PenultimateDropoutCrossEntropy,
        penultimate=lambda hp, name, dtype: heads.penultimate_dropout(
            hp["keep_prob"], name=name, dtype=dtype)),
    "logit_penalty": ObjectiveDefinition(loss=objectives.LogitPenaltyCrossEntropy),
    "logit_normalization": ObjectiveDefinition(
        loss=objectives.LogitNormalizationCrossEntropy,
        outputs=lambda hp, name, dtype: heads.LogitNormalization(
            tau=hp["tau"], name=name, dtype=dtype)),
    "cosine_softmax": ObjectiveDefinition(
        loss=objectives.CosineSoftmaxCrossEntropy,
        head=lambda hp, k, name, dtype: heads.CosineSoftmaxHead(
            k, normalize_features=hp["normalize_features"], name=name, dtype=dtype),
        outputs=lambda hp, name, dtype: heads.TemperatureScaling(
            tau=hp["tau"], name=name, dtype=dtype)),
    "squared_error": ObjectiveDefinition(loss=objectives.SquaredError),
}

NAMES = tuple(_DEFINITIONS)
ALIASES = {"mse": "squared_error"}
# A copy of hyperparameters.RELEASED_DEFAULTS (editing it changes nothing).
DEFAULT_HPARAMS = {name: dict(hyperparameters.RELEASED_DEFAULTS[name]) for name in NAMES}


def canonical_name(name: str) -> str:
  """Resolves aliases ("mse" -> "squared_error"); raises ValueError listing valid names."""
  if isinstance(name, str):
    name = ALIASES.get(name, name)
  if name not in _DEFINITIONS:
    valid = ", ".join(NAMES + tuple(ALIASES))
    raise ValueError(f"objective={name!r} is unknown; valid names: {valid}")
  return name


def _typed_hparams(name: str, hparams: HParams) -> dict:
  """Released defaults of objective `name` overridden by `hparams`, type-checked."""
  defaults = hyperparameters.RELEASED_DEFAULTS[name]
  resolved = dict(defaults)
  for key, value in hparams.items():
    if key not in defaults:
      valid = ", ".join(defaults) or "none"
      raise ValueError(f"{key}: not a hyperparameter of objective {name!r}; valid: {valid}")
    if isinstance(defaults[key], bool):
      resolved[key] = hyperparameters.check_bool(key, value)
    else:
      resolved[key] = hyperparameters.check_finite(key, value)
  return resolved


class Objective:
  """One training objective: its loss (applied to the head output z), head, penultimate
  transform and output transform; `hparams` are the resolved hyperparameters (JSON values)."""

  def __init__(self, name: str, **hparams):
    self.name = canonical_name(name)
    self.hparams = _typed_hparams(self.name, hparams)
    self._definition = _DEFINITIONS[self.name]
    # The loss constructor runs each hyperparameter's range check.
    self.loss = self._definition.loss(**self.hparams)

  def penultimate(self, name="penultimate_dropout", dtype=None) -> keras.layers.Layer:
    """Layer on the penultimate features: `Dropout(1 - keep_prob)` for "dropout", else identity."""
    return self._definition.penultimate(self.hparams, name, dtype)

  def head(self, num_classes: int, name="final_layer", dtype=None) -> keras.layers.Layer:
    """Layer mapping features [B, D] to the raw head output z [B, K]."""
    num_classes = hyperparameters.check_num_classes(num_classes)
    return self._definition.head(self.hparams, num_classes, name, dtype)

  def outputs(self, name="outputs", dtype=None) -> keras.layers.Layer:
    """Layer mapping z to the logits used for prediction; the loss applies it inside (eq. 6, 7)."""
    return self._definition.outputs(self.hparams, name, dtype)

  def get_config(self) -> dict:
    """{"name", "hparams"}: the "objective" section of a run's config.json."""
    return {"name": self.name, "hparams": dict(self.hparams)}

  @classmethod
  def from_config(cls, config: Mapping[str, Any]) -> "Objective":
    return cls(config["name"], **config.get("hparams", {}))

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
    return f"Objective({self.name!r}{', ' if args else ''}{args})"


def get_objective(name: str, **hparams) -> Objective:
  """The objective `name` (or alias) with released defaults overridden by `hparams`."""
  return Objective(name, **hparams)


# Objectives whose effect lives in the model, not in the loss value: alone, their loss is
# softmax cross-entropy (docs/protocol.md §1).
MODEL_SIDE = {
    "extra_final_layer_l2": "its final-layer L2 penalty is the kernel regularizer of "
                            "get_objective('extra_final_layer_l2').head(num_classes)",
    "dropout": "its dropout is the layer get_objective('dropout').penultimate() on the "
               "penultimate features",
}


def get(name: str, **hparams) -> keras.losses.Loss:
  """The loss of objective `name` (or alias), called as `loss(labels, z)` on the head output z:

  >>> import keras
  >>> from official import losses
  >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
  >>> model.compile(optimizer="sgd", loss=losses.get("label_smoothing", alpha=0.2))

  For the objectives of MODEL_SIDE it warns that a model without their layers trains as softmax;
  `get_objective` builds the whole objective.
  """
  objective = get_objective(name, **hparams)
  if objective.name in MODEL_SIDE:
    warnings.warn(
        f"losses.get({name!r}) is softmax cross-entropy alone: {MODEL_SIDE[objective.name]}; "
        f"a model without it trains exactly as softmax", UserWarning, stacklevel=2)
  return objective.loss
