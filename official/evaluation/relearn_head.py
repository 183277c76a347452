"""Relearning the head on the pretraining task (paper Figure 6, SPEC §6).

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
part can only be predicted by the original head.
"""

import math
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from official.evaluation import features
from official.evaluation import inputs
from official.evaluation import linear_probe
from official.evaluation import metrics

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


def evaluate(model, info, split: str, *, train_fraction: float = TRAIN_FRACTION,
             max_examples: Optional[int] = None, batch_size: int = 256,
             data_dir: Optional[str] = None,
             strategy: Optional[tf.distribute.Strategy] = None,
             cache_dir: Optional[str] = None, preprocess: str = "eval",
             progress: bool = True, **fit_kwargs) -> dict:
  """Top-1 accuracy of the network's head and of a relearned linear head (Figure 6).

  Args:
    model: an `official.modeling.pretrained.EndpointModel` with `final_avg_pool` and
      `outputs` (or `final_layer`) endpoints, K = info.num_classes outputs.
    info: the pretraining dataset (`official.data.datasets.DatasetInfo`).
    split: its evaluation split ("test" for ImageNet's validation set).
    train_fraction: fraction of the examples, from the start, that trains the new head.
    max_examples: use only the first N examples of the split.
    batch_size: global batch size of feature extraction.
    data_dir: TFDS data directory.
    strategy: tf.distribute strategy of feature extraction.
    cache_dir: feature cache folder (official.evaluation.features).
    preprocess: image preprocessing, "eval" (the centre crop the network was evaluated with).
    progress: show a progress bar while extracting.
    **fit_kwargs: passed to `linear_probe.fit` (l2_grid, max_iterations, ...).

  Returns:
    JSON-ready dict: original and relearned (top-1 accuracies on the held-out part),
    train_examples, test_examples, l2 (the chosen penalty), validation_score and
    validation_scores (penalty search on a holdout of the training part), num_classes,
    train_classes (classes present in the training part), head_endpoint, train_fraction,
    split, dataset, feature_dim, seconds_features, seconds_fit, seconds_total.
  """
  start = time.perf_counter()
  check_fraction(train_fraction)
  head = check_model(model, info)
  if max_examples is not None and int(max_examples) < 2:
    raise ValueError(f"max_examples: {max_examples!r}; valid is at least 2 (one example to "
                     "train on and one to test on)")
  arrays, labels = features.extract(
      model, info, split, endpoints=(features.PENULTIMATE, head), cache_dir=cache_dir,
      batch_size=batch_size, data_dir=data_dir, preprocess=preprocess,
      max_examples=max_examples, strategy=strategy, progress=progress)
  where = f"{info.name}:{split}"
  x = inputs.check_features(arrays[features.PENULTIMATE], f"{where} {features.PENULTIMATE}")
  logits = inputs.check_features(arrays[head], f"{where} {head}", info.num_classes)
  labels = inputs.check_labels(labels, f"{where} labels", x.shape[0], f"{where} features")
  if logits.shape[0] != x.shape[0]:
    raise ValueError(f"{where}: {head} has {logits.shape[0]} rows but "
                     f"{features.PENULTIMATE} has {x.shape[0]}; they must match")
  if labels.min() < 0 or labels.max() >= info.num_classes:
    raise ValueError(f"{where}: labels outside 0..{info.num_classes - 1}; the network's "
                     "classes must be the dataset's")
  num_train = split_point(x.shape[0], train_fraction)
  seconds_features = time.perf_counter() - start

  test_labels = labels[num_train:]
  original = metrics.top1(test_labels, np.argmax(logits[num_train:], axis=1))
  fit_start = time.perf_counter()
  probe = linear_probe.fit(x[:num_train], labels[:num_train], metric="top1", **fit_kwargs)
  relearned = metrics.top1(test_labels, probe.predict(x[num_train:]))
  end = time.perf_counter()
  return {
      "original": original,
      "relearned": relearned,
      "train_examples": int(num_train),
      "test_examples": int(x.shape[0] - num_train),
      "l2": probe.l2,
      "validation_score": probe.validation_score,
      "validation_scores": [{"l2": float(l2), "score": float(score)}
                            for l2, score in probe.validation_scores.items()],
      "num_classes": int(info.num_classes),
      "train_classes": int(probe.classes.size),
      "head_endpoint": head,
      "train_fraction": float(train_fraction),
      "split": split,
      "dataset": info.name,
      "feature_dim": int(x.shape[1]),
      "seconds_features": seconds_features,
      "seconds_fit": end - fit_start,
      "seconds_total": end - start,
  }
