"""The objectives' released hyperparameters (one table) and their range checks.

`RELEASED_DEFAULTS` is the only place where a default is written (docs/protocol.md §1). Every
check raises a one-line `ValueError` naming the parameter, its value and the valid range, and
returns the value as a Python `float` (or `bool`/`int`), so resolved hyperparameters are JSON.
"""

import math
import numbers

import numpy as np

# objective -> keyword -> released default (google-research `loss_functions_transfer`), plus the
# switches each objective accepts (False/True: off/on by default). The default's type fixes the
# keyword's type (float or bool). Sources: docs/protocol.md §1.
RELEASED_DEFAULTS = {
    "softmax": {},
    "label_smoothing": {"alpha": 0.1},                          # paper eq. 2
    "sigmoid": {},
    "extra_final_layer_l2": {"lambda_": 8e-4},                  # eq. 4, with the released 0.5
    "dropout": {"keep_prob": 0.7},                              # eq. 3
    "logit_penalty": {"beta": 6e-4},                            # eq. 5, with the released 0.5
    "logit_normalization": {"tau": 0.04, "scale_loss_by_tau": False},        # eq. 6
    "cosine_softmax": {"tau": 0.05, "normalize_features": True,              # eq. 7
                       "scale_loss_by_tau": False},
    "squared_error": {"kappa": 9.0, "m": 60.0, "loss_scale": 10.0},          # eq. 9, released
}

# The study's tuning grids, objective -> keyword -> values, every combination tried on the
# holdout (docs/protocol.md §3); assumed, around the released values (docs/protocol.md §7.1,
# item 3).
TUNING_GRIDS = {
    "softmax": {},
    "label_smoothing": {"alpha": (0.05, 0.1, 0.2)},
    "sigmoid": {},
    "extra_final_layer_l2": {"lambda_": (4e-4, 8e-4, 1.6e-3)},
    "dropout": {"keep_prob": (0.5, 0.7, 0.9)},
    "logit_penalty": {"beta": (3e-4, 6e-4, 1.2e-3)},
    "logit_normalization": {"tau": (0.02, 0.04, 0.08)},
    "cosine_softmax": {"tau": (0.03, 0.05, 0.08)},
    "squared_error": {"kappa": (1.0, 9.0, 15.0), "m": (30.0, 60.0)},
}


def released_default(objective: str, keyword: str):
  """The released default of `keyword` of `objective` (a key of RELEASED_DEFAULTS)."""
  return RELEASED_DEFAULTS[objective][keyword]


# Paper §3.4, footnote 1: "Training at tau < 0.05 was unstable; we scale the loss by tau".
TAU_LOSS_SCALING_BELOW = 0.05


def _real(name: str, value) -> float:
  if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
    raise ValueError(f"{name}={value!r} is not a real number; expected a finite float")
  value = float(value)
  if not math.isfinite(value):
    raise ValueError(f"{name}={value!r} is not finite; expected a finite float")
  return value


def check_interval(name: str, value, low: float, high: float, *, low_closed: bool,
                   high_closed: bool, meaning: str) -> float:
  """Returns `float(value)` if it lies in the interval, else raises a one-line ValueError."""
  value = _real(name, value)
  above_low = value >= low if low_closed else value > low
  below_high = value <= high if high_closed else value < high
  if not (above_low and below_high):
    interval = (("[" if low_closed else "(") + f"{low:g}, {high:g}" +
                ("]" if high_closed else ")"))
    raise ValueError(f"{name}={value!r} is outside {interval}; {meaning}")
  return value


def check_alpha(alpha) -> float:
  """Label-smoothing weight alpha of paper eq. 2: 0 <= alpha < 1."""
  return check_interval("alpha", alpha, 0.0, 1.0, low_closed=True, high_closed=False,
                        meaning="the label-smoothing weight must satisfy 0 <= alpha < 1")


def check_tau(tau) -> float:
  """Temperature tau of paper eqs. 6 and 7: tau > 0."""
  return check_interval("tau", tau, 0.0, math.inf, low_closed=False, high_closed=False,
                        meaning="the temperature must be positive")


def check_keep_prob(keep_prob) -> float:
  """Dropout keep probability rho of paper eq. 3: 0 < rho <= 1."""
  return check_interval("keep_prob", keep_prob, 0.0, 1.0, low_closed=False, high_closed=True,
                        meaning="the dropout keep probability must satisfy 0 < keep_prob <= 1")


def check_non_negative(name: str, value, meaning: str) -> float:
  """A penalty weight (beta of eq. 5, lambda of eq. 4): value >= 0."""
  return check_interval(name, value, 0.0, math.inf, low_closed=True, high_closed=False,
                        meaning=meaning)


def check_positive(name: str, value, meaning: str) -> float:
  """A strictly positive weight (kappa of eq. 9, loss_scale): value > 0."""
  return check_interval(name, value, 0.0, math.inf, low_closed=False, high_closed=False,
                        meaning=meaning)


def check_finite(name: str, value) -> float:
  """Any finite real number (M of eq. 9)."""
  return _real(name, value)


def check_bool(name: str, value) -> bool:
  """A switch such as `normalize_features` or `scale_loss_by_tau`."""
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name}={value!r} is not a bool; expected True or False")
  return bool(value)


def check_num_classes(num_classes) -> int:
  """Number of classes K of a head: a positive integer."""
  if (isinstance(num_classes, (bool, np.bool_)) or
      not isinstance(num_classes, numbers.Integral) or num_classes < 1):
    raise ValueError(f"num_classes={num_classes!r} is not a positive integer; "
                     "expected the number of classes K >= 1")
  return int(num_classes)


def tau_loss_factor(tau: float, scale_loss_by_tau: bool) -> float:
  """Factor of the tau-objectives' loss: tau if `scale_loss_by_tau` and tau < 0.05, else 1.

  Paper §3.4, footnote 1; it keeps the correct-class logit's gradient comparable across
  temperatures.
  """
  if scale_loss_by_tau and tau < TAU_LOSS_SCALING_BELOW:
    return tau
  return 1.0
