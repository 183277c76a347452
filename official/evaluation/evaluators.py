"""The evaluations of a pretrained network behind one interface, each returning one `Record`.

LinearProbe and KNN (Table 1), RelearnHead (Figure 6), Representations (Table 3, Figures 3-4)
and FineTune (Table 2). Every evaluator has a `name`, `settings()` (what its numbers depend on
besides the network and the data) and `evaluate(...) -> Record`; LinearProbe and KNN take the
features of `SPLITS` (features.transfer_features) and first `check` that every evaluated class
is trained on.
"""

import dataclasses
import math
import time
from typing import Any, Optional, Sequence

import numpy as np

from official.evaluation import features
from official.evaluation import inputs
from official.evaluation import knn
from official.evaluation import linear_probe
from official.evaluation import metrics
from official.evaluation import relearn_head
from official.evaluation import representations

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class Record:
  """What one evaluation of one network on one dataset measured: JSON-ready `scores`, the
  evaluator's `settings()`, the dataset's `metric` (None for representations) and
  "<what>_seconds" timings."""
  evaluator: str
  dataset: str
  metric: Optional[str]
  scores: dict
  settings: dict
  timings: dict = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    """The flat layout of a result file: {"method", "dataset", "metric", **scores, **settings,
    "timings"}."""
    return {"method": self.evaluator, "dataset": self.dataset, "metric": self.metric,
            **self.scores, **self.settings, "timings": dict(self.timings)}


class _ProbeOptions:
  """The linear probe's options of an evaluator; None: linear_probe.fit's defaults."""

  def __init__(self, l2_grid: Optional[Sequence[float]], max_iterations: int,
               jit_compile: Optional[bool]):
    self.l2_grid = None if l2_grid is None else tuple(float(v) for v in l2_grid)
    self.max_iterations = int(max_iterations)
    self.jit_compile = jit_compile

  def grid(self) -> list[float]:
    return [float(v) for v in (linear_probe.DEFAULT_L2_GRID if self.l2_grid is None
                               else self.l2_grid)]

  def fit_kwargs(self) -> dict:
    return {"l2_grid": self.l2_grid, "max_iterations": self.max_iterations,
            "jit_compile": self.jit_compile}


def check_classes(info, data: dict, evaluated: str, trained: Sequence[str]) -> None:
  """Every class of split `evaluated` occurs in the union of the `trained` splits (>= 2
  classes), else ValueError; `data`: split -> (features [n, D], labels [n])."""
  classes = np.unique(np.concatenate([data[s][1] for s in trained]))
  trained_name = "+".join(trained)
  if classes.size < 2:
    raise ValueError(f"{info.name}:{trained_name} has {classes.size} class(es); a classifier "
                     "needs at least 2")
  labels = data[evaluated][1]
  missing = np.setdiff1d(np.unique(labels), classes)
  if missing.size:
    class_id = int(missing[0])
    label = f"class {class_id}"
    if info.class_names and 0 <= class_id < len(info.class_names):
      label += f" ({info.class_names[class_id]!r})"
    raise ValueError(f"{info.name}: {label} occurs in {evaluated} "
                     f"({int(np.sum(labels == class_id))} of its {labels.size} examples) but "
                     f"not in {trained_name}; every evaluated class must be trained on "
                     "(choose classes present in every split, e.g. with --classes)")


def _curve(points) -> list:
  return [{"l2": float(l2), "log10_l2": math.log10(l2), "score": float(score)}
          for l2, score in points]


class _FixedFeatures:
  """An evaluator of fixed features: `checks` are (evaluated split, trained splits) pairs."""

  checks = ()

  def check(self, info, data: dict) -> None:
    """Every evaluated class is trained on (check_classes), before any fit."""
    for evaluated, trained in self.checks:
      check_classes(info, data, evaluated, trained)


class LinearProbe(_FixedFeatures, _ProbeOptions):
  """Linear transfer on fixed features (Table 1 "Linear"), official.evaluation.linear_probe."""

  name = "linear_probe"
  # The penalty is chosen on validation and the refit scored on test: both must hold only
  # classes of train.
  checks = (("validation", ("train",)), ("test", ("train",)))

  def __init__(self, *, l2_grid: Optional[Sequence[float]] = None,
               max_iterations: int = linear_probe.MAX_ITERATIONS,
               jit_compile: Optional[bool] = None):
    _ProbeOptions.__init__(self, l2_grid, max_iterations, jit_compile)

  def settings(self) -> dict:
    return {"l2_grid": self.grid(), "num_refinements": linear_probe.NUM_REFINEMENTS,
            "max_iterations": self.max_iterations}

  def evaluate(self, info, data: dict) -> Record:
    """Penalty chosen on validation, refitted on train + validation, test scored."""
    start = time.perf_counter()
    self.check(info, data)
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (data[s] for s in SPLITS)
    probe = linear_probe.fit(train_x, train_y, val_x, val_y, metric=info.metric,
                             **self.fit_kwargs())
    test_start = time.perf_counter()
    test_score = probe.score(test_x, test_y, info.metric)
    end = time.perf_counter()
    scores = {"l2": probe.l2, "log10_l2": math.log10(probe.l2),
              "validation_score": probe.validation_score, "test_score": test_score,
              "validation_scores": _curve(probe.validation_scores.items()),
              "num_train": probe.num_train, "num_validation": probe.num_validation,
              "num_test": int(test_x.shape[0]), "feature_dim": int(test_x.shape[1])}
    return Record(self.name, info.name, info.metric, scores, self.settings(), {
        "search_seconds": probe.seconds_search, "refit_seconds": probe.seconds_refit,
        "test_seconds": end - test_start, "total_seconds": end - start})


class KNN(_FixedFeatures):
  """k-nearest-neighbour transfer on fixed features (Table 1 "kNN"), official.evaluation.knn."""

  name = "knn"
  # Neighbours come from train + validation ("train_full"): test must hold only their classes.
  checks = (("test", ("train", "validation")),)

  def __init__(self, *, k_max: int = knn.K_MAX, distance: str = "cosine"):
    self.k_max = int(k_max)
    self.distance = distance

  def settings(self) -> dict:
    return {"k_max": self.k_max, "distance": self.distance}

  def evaluate(self, info, data: dict) -> Record:
    """Neighbours from train + validation (in stored order: the dataset's train_full split), k
    by leave-one-out, test scored."""
    start = time.perf_counter()
    self.check(info, data)
    train_x = np.concatenate([data["train"][0], data["validation"][0]])
    train_y = np.concatenate([data["train"][1], data["validation"][1]])
    test_x, test_y = data["test"]
    model = knn.fit(train_x, train_y, metric=info.metric, k_max=self.k_max,
                    distance=self.distance)
    test_start = time.perf_counter()
    test_score = model.score(test_x, test_y, info.metric)
    end = time.perf_counter()
    scores = {"k": model.k, "loo_score": model.loo_score, "test_score": test_score,
              "loo_scores": [{"k": int(k), "score": float(v)}
                             for k, v in sorted(model.loo_accuracy.items())],
              "num_train": int(model.train_x.shape[0]), "num_test": int(test_x.shape[0]),
              "feature_dim": int(test_x.shape[1])}
    return Record(self.name, info.name, info.metric, scores, self.settings(), {
        "search_seconds": model.seconds_search, "vote_seconds": model.seconds_vote,
        "test_seconds": end - test_start, "total_seconds": end - start})


class RelearnHead(_ProbeOptions):
  """The network's own head against a linear head relearned on its penultimate features
  (Figure 6; the protocol: official.evaluation.relearn_head)."""

  name = "relearn_head"

  def __init__(self, *, test_per_class: int = relearn_head.TEST_PER_CLASS,
               max_examples: Optional[int] = None,
               l2_grid: Optional[Sequence[float]] = None,
               max_iterations: int = linear_probe.MAX_ITERATIONS,
               jit_compile: Optional[bool] = None):
    super().__init__(l2_grid, max_iterations, jit_compile)
    self.test_per_class = test_per_class
    self.max_examples = max_examples

  def settings(self) -> dict:
    return {"max_examples": self.max_examples, "test_per_class": self.test_per_class,
            "l2_grid": self.grid(), "max_iterations": self.max_iterations}

  def evaluate(self, model, info, split: str, *, batch_size: int = 256,
               data_dir: Optional[str] = None, strategy: Any = None,
               cache_dir: Optional[str] = None, preprocess: str = "eval",
               progress: bool = True) -> Record:
    """Top-1 accuracy of both heads on `test_per_class` held-out examples of each class of
    the pretraining dataset's `split`, the new head trained on the others
    (relearn_head.per_class_split); the other arguments are features.extract's.
    """
    start = time.perf_counter()
    relearn_head.check_test_per_class(self.test_per_class)
    head = relearn_head.check_model(model, info)
    if self.max_examples is not None and int(self.max_examples) < 2:
      raise ValueError(f"max_examples: {self.max_examples!r}; valid is at least 2 (one "
                       "example to train on and one to test on)")
    arrays, labels = features.extract(
        model, info, split, endpoints=(features.PENULTIMATE, head), cache_dir=cache_dir,
        batch_size=batch_size, data_dir=data_dir, preprocess=preprocess,
        max_examples=self.max_examples, strategy=strategy, progress=progress)
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
    train, test = relearn_head.per_class_split(labels, self.test_per_class)
    seconds_features = time.perf_counter() - start
    test_labels = labels[test]
    original = metrics.top1(test_labels, np.argmax(logits[test], axis=1))
    fit_start = time.perf_counter()
    probe = linear_probe.fit(x[train], labels[train], metric="top1", **self.fit_kwargs())
    relearned = metrics.top1(test_labels, probe.predict(x[test]))
    end = time.perf_counter()
    scores = {"original": original, "relearned": relearned, "train_examples": int(train.size),
              "test_examples": int(test.size), "l2": probe.l2,
              "validation_score": probe.validation_score,
              "validation_scores": _curve(probe.validation_scores.items()),
              "num_classes": int(info.num_classes), "train_classes": int(probe.classes.size),
              "head_endpoint": head, "test_per_class": int(self.test_per_class),
              "split": split, "dataset": info.name, "feature_dim": int(x.shape[1])}
    return Record(self.name, info.name, "top1", scores, self.settings(), {
        "features_seconds": seconds_features, "fit_seconds": end - fit_start,
        "total_seconds": end - start})


class Representations:
  """Class separation and sparsity of every endpoint (Table 3, Figures 3-4), and optionally
  the relearned head (Figure 6), on the pretraining dataset."""

  name = "representations"

  def __init__(self, *, separation_split: str, separation_examples: Optional[int],
               sparsity_split: str, sparsity_examples: Optional[int],
               relearn: Optional[RelearnHead] = None):
    self.separation = (separation_split, separation_examples)
    self.sparsity = (sparsity_split, sparsity_examples)
    self.relearn = relearn

  def settings(self) -> dict:
    return {"class_separation": list(self.separation), "sparsity": list(self.sparsity),
            "relearn_head": self.relearn.settings() if self.relearn else None}

  def evaluate(self, model, info, *, batch_size: int = 256,
               data_dir: Optional[str] = None) -> Record:
    """Per endpoint except final_layer/outputs: R^2 (eq. 11) on the separation split and the
    fraction of non-zero activations on the sparsity split (eval preprocessing); with
    `relearn`, the relearned head on the sparsity split."""
    start = time.perf_counter()
    endpoints = [e for e in model.endpoint_names
                 if e not in representations.EXCLUDED_ENDPOINTS]
    passes = {}
    for metric, (split, examples) in (("class_separation", self.separation),
                                      ("sparsity", self.sparsity)):
      passes[metric] = representations.endpoint_statistics(
          model, info, split, endpoints, metrics=(metric,), batch_size=batch_size,
          max_examples=examples, data_dir=data_dir)[metric]
    scores = {"endpoints": endpoints, "class_separation": passes["class_separation"],
              "fraction_nonzero": passes["sparsity"]}
    timings = {"endpoints_seconds": time.perf_counter() - start}
    if self.relearn is not None:
      relearned = self.relearn.evaluate(model, info, self.sparsity[0], batch_size=batch_size,
                                        data_dir=data_dir, progress=False)
      scores["relearned_head"] = {k: relearned.scores[k] for k in (
          "original", "relearned", "train_examples", "test_examples", "l2")}
      timings["relearn_head_seconds"] = relearned.timings["total_seconds"]
    return Record(self.name, info.name, None, scores, self.settings(), timings)


class FineTune:
  """Fine-tuning of the whole network (Table 2), official.evaluation.finetune.run."""

  name = "finetune"

  def __init__(self, *, preset: str = "demo", overrides: Optional[dict] = None):
    self.preset = preset
    self.overrides = dict(overrides or {})

  def settings(self) -> dict:
    return {"preset": self.preset, "overrides": self.overrides}

  def evaluate(self, model_dir: str, dataset: str, output_dir: str, *,
               data_dir: Optional[str] = None, strategy: Any = None, **kwargs) -> Record:
    """Grid search on validation, retrained on train + validation, test scored; the grid
    points, checkpoints and results of the run go to `output_dir` (resumed when rerun)."""
    from official.evaluation import finetune  # pylint: disable=g-import-not-at-top
    result = finetune.run(model_dir, dataset, output_dir, preset=self.preset,
                          data_dir=data_dir, strategy=strategy,
                          overrides=self.overrides or None, **kwargs)
    scores = {k: v for k, v in result.items() if not is_timing(k)}
    timings = {k: v for k, v in result.items() if is_timing(k)}
    return Record(self.name, result.get("dataset", dataset), result.get("metric"), scores,
                  self.settings(), timings)


def is_timing(key: str) -> bool:
  """Whether a result key holds a duration (kept out of what is compared across runs)."""
  return any(word in key for word in ("second", "time", "duration", "wall"))
