"""Relearning the head on the pretraining task (paper Figure 6, docs/protocol.md §6).

This module holds the per-class cut of the split (docs/protocol.md §7 item 10) and the checks;
evaluators.RelearnHead runs it. The network's own prediction is the argmax of its `outputs`
endpoint, or of `final_layer` where a SavedModel lacks `outputs` (every objective's `outputs` is
a per-example positive rescaling of `final_layer`: the same argmax).
"""

import numpy as np

from official.evaluation import features

# Held-out examples per class (paper: 10 of each ImageNet class's 50 validation images).
TEST_PER_CLASS = 10
# Endpoints whose argmax is the network's own prediction, in order of preference.
HEAD_ENDPOINTS = ("outputs", "final_layer")


def check_test_per_class(test_per_class: int) -> None:
  if isinstance(test_per_class, bool) or not isinstance(test_per_class, int) or (
      test_per_class < 1):
    raise ValueError(f"test_per_class: {test_per_class!r}; valid is a positive integer (the "
                     f"paper: {TEST_PER_CLASS} held-out examples per class)")


def per_class_split(labels: np.ndarray, test_per_class: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices (train, test), each increasing: test holds the last min(test_per_class, n_c // 2)
  examples of each class c of n_c examples, train all others (ValueError if either is empty)."""
  check_test_per_class(test_per_class)
  labels = np.asarray(labels)
  is_test = np.zeros(labels.shape[0], dtype=bool)
  for c in np.unique(labels):
    where = np.flatnonzero(labels == c)
    held_out = min(test_per_class, where.size // 2)
    if held_out > 0:
      is_test[where[where.size - held_out:]] = True
  train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
  if not train.size or not test.size:
    raise ValueError(f"test_per_class={test_per_class} of {labels.shape[0]} examples leaves "
                     f"{train.size} for training and {test.size} for testing; both parts need "
                     "at least one example (a class needs 2 examples to be held out)")
  return train, test


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
