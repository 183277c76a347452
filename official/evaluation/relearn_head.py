"""Relearning the head on the pretraining task (paper Figure 6, docs/protocol.md §6).

Does a better pretraining objective owe its higher accuracy to its features, or to its final
layer? The paper fits L2-regularised multinomial logistic regression on the penultimate
features (`final_avg_pool`) of 40,000 ImageNet validation images and scores it on the other
10,000, next to the network's own head on the same 10,000 images.

Here the evaluation split (n examples, in stored order, optionally only its first
`max_examples`) is cut once: the first floor(train_fraction * n) examples train the new head,
the rest score both heads. The new head is `official.evaluation.linear_probe.fit` on those
features (its penalty chosen on a stratified holdout of them, then refitted on all of them);
the network's own prediction is the argmax of its `outputs` endpoint (the logits used for
prediction; `final_layer` where a SavedModel lacks `outputs`: every objective's `outputs` is
a per-example positive rescaling of `final_layer`, so both have the same argmax). Both are
scored by top-1 accuracy over the K pretraining classes; a class absent from the training
part can only be predicted by the original head. official.evaluation.evaluators.RelearnHead
runs it; this module holds its cut and its checks.
"""

import math

from official.evaluation import features

TRAIN_FRACTION = 0.8
# Endpoints whose argmax is the network's own prediction, in order of preference.
HEAD_ENDPOINTS = ("outputs", "final_layer")


def split_point(num_examples: int, train_fraction: float) -> int:
  """Examples of the training part: floor(train_fraction * num_examples).

  Raises:
    ValueError: train_fraction outside (0, 1), or a part would be empty.
  """
  check_fraction(train_fraction)
  # The tolerance keeps e.g. 0.8 * 50000 at 40000 whatever the rounding of 0.8.
  num_train = int(math.floor(train_fraction * num_examples + 1e-9))
  if not 1 <= num_train <= num_examples - 1:
    raise ValueError(f"train_fraction={train_fraction} of {num_examples} examples leaves "
                     f"{num_train} for training and {num_examples - num_train} for testing; "
                     "both parts need at least one example")
  return num_train


def check_fraction(train_fraction: float) -> None:
  if not (isinstance(train_fraction, (int, float)) and 0.0 < train_fraction < 1.0):
    raise ValueError(f"train_fraction: {train_fraction!r}; valid is a fraction strictly "
                     "between 0 and 1, e.g. 0.8")


def head_endpoint(model) -> str:
  """The endpoint whose argmax is `model`'s own prediction ("outputs" or "final_layer")."""
  for name in HEAD_ENDPOINTS:
    if name in model.endpoint_names:
      return name
  raise ValueError(f"model {model.path} has no {' or '.join(HEAD_ENDPOINTS)} endpoint to "
                   f"compare with; it has: {', '.join(model.endpoint_names)}")


def check_model(model, info) -> str:
  """Checks that `model` can be compared on `info`; returns its head endpoint."""
  if features.PENULTIMATE not in model.endpoint_names:
    raise ValueError(f"model {model.path} has no {features.PENULTIMATE!r} endpoint to relearn "
                     f"the head on; it has: {', '.join(model.endpoint_names)}")
  head = head_endpoint(model)
  if model.num_classes != info.num_classes:
    raise ValueError(f"model {model.path} has {model.num_classes} outputs but dataset "
                     f"{info.name} has {info.num_classes} classes; pass the dataset (and "
                     "class subset) the network was pretrained on")
  return head
