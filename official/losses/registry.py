"""One table `objective name -> hyperparameters and parts`; `get` and `get_objective`.

The released code keeps the same kind of table (`LOSS_HYPERPARAMETERS`); here each entry also
says which loss, head, penultimate transform and output transform the objective uses, so a
model builder asks for an objective by name and gets all of them. Adding an objective is one
`ObjectiveDefinition` entry in `_DEFINITIONS`.
"""

import dataclasses
from typing import Any, Callable, Mapping

import keras

from official.losses import heads
from official.losses import hyperparameters
from official.losses import objectives

HParams = Mapping[str, Any]


def _identity(name, dtype):
  return keras.layers.Identity(name=name, dtype=dtype)


def _identity_layer(hparams, name, dtype):
  del hparams
  return _identity(name, dtype)


def _linear_head(hparams, num_classes, name, dtype):
  del hparams
  return heads.dense_head(num_classes, name=name, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class ObjectiveDefinition:
  """Registry entry. The layer factories receive the resolved hyperparameters.

  Attributes:
    defaults: Every keyword the objective accepts with its released default. The default's type
      fixes the keyword's type (float or bool).
    loss: `objectives.ObjectiveLoss` subclass applied to the head output z, constructed as
      `loss(**hparams)`: it takes every keyword of `defaults` (model-side ones included, so its
      config names the whole objective) and its constructor checks their ranges.
    head: (hparams, num_classes, name, dtype) -> layer mapping features [B, D] to z [B, K].
    penultimate: (hparams, name, dtype) -> layer applied to the penultimate features.
    outputs: (hparams, name, dtype) -> layer mapping z to the logits used for prediction.
  """
  defaults: HParams
  loss: type
  head: Callable[[HParams, int, str, Any], keras.layers.Layer] = _linear_head
  penultimate: Callable[[HParams, str, Any], keras.layers.Layer] = _identity_layer
  outputs: Callable[[HParams, str, Any], keras.layers.Layer] = _identity_layer


_DEFINITIONS = {
    "softmax": ObjectiveDefinition(
        defaults={},
        loss=objectives.SoftmaxCrossEntropy),
    "label_smoothing": ObjectiveDefinition(
        defaults={"alpha": 0.1},
        loss=objectives.LabelSmoothingCrossEntropy),
    "sigmoid": ObjectiveDefinition(
        defaults={},
        loss=objectives.SigmoidCrossEntropy,
        head=lambda hp, k, name, dtype: heads.sigmoid_head(k, name=name, dtype=dtype)),
    "extra_final_layer_l2": ObjectiveDefinition(
        defaults={"lambda_": 8e-4},
        loss=objectives.ExtraFinalLayerL2CrossEntropy,
        head=lambda hp, k, name, dtype: heads.dense_head(
            k, name=name, lambda_=hp["lambda_"], dtype=dtype)),
    "dropout": ObjectiveDefinition(
        defaults={"keep_prob": 0.7},
        loss=objectives.PenultimateDropoutCrossEntropy,
        penultimate=lambda hp, name, dtype: heads.penultimate_dropout(
            hp["keep_prob"], name=name, dtype=dtype)),
    "logit_penalty": ObjectiveDefinition(
        defaults={"beta": 6e-4},
        loss=objectives.LogitPenaltyCrossEntropy),
    "logit_normalization": ObjectiveDefinition(
        defaults={"tau": 0.04, "scale_loss_by_tau": False},
        loss=objectives.LogitNormalizationCrossEntropy,
        outputs=lambda hp, name, dtype: heads.LogitNormalization(
            tau=hp["tau"], name=name, dtype=dtype)),
    "cosine_softmax": ObjectiveDefinition(
        defaults={"tau": 0.05, "normalize_features": True, "scale_loss_by_tau": False},
        loss=objectives.CosineSoftmaxCrossEntropy,
        head=lambda hp, k, name, dtype: heads.CosineSoftmaxHead(
            k, normalize_features=hp["normalize_features"], name=name, dtype=dtype),
        outputs=lambda hp, name, dtype: heads.TemperatureScaling(
            tau=hp["tau"], name=name, dtype=dtype)),
    "squared_error": ObjectiveDefinition(
        defaults={"kappa": 9.0, "m": 60.0, "loss_scale": 10.0},
        loss=objectives.SquaredError),
}

NAMES = tuple(_DEFINITIONS)
ALIASES = {"mse": "squared_error"}
# Released defaults (SPEC.md §1) plus the switches each objective accepts; a copy, so editing it
# changes nothing.
DEFAULT_HPARAMS = {name: dict(d.defaults) for name, d in _DEFINITIONS.items()}


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
  defaults = _DEFINITIONS[name].defaults
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
  """One training objective: its loss, head, penultimate transform and output transform.

  Attributes:
    name: Canonical registry name.
    hparams: Resolved hyperparameters (released defaults unless overridden); JSON values.
    loss: The `keras.losses.Loss`, applied to the head output z ("final_layer").
  """

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
    """Layer mapping z to the logits used for prediction (argmax).

    The loss takes z itself and applies the same transform inside (eqs. 6 and 7).
    """
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


def get(name: str, **hparams) -> keras.losses.Loss:
  """The loss of objective `name` (or alias), ready to call as `loss(labels, z)`."""
  return get_objective(name, **hparams).loss
