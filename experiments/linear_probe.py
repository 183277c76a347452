r"""Linear transfer with fixed features (paper Table 1 "Linear", SPEC §4), and Figure 6.

  python -m experiments.linear_probe --model=runs/demo/softmax-seed0
  python -m experiments.linear_probe --model=runs/demo/softmax-seed0 \
      --datasets=demo_texture,demo_digits --classes=0-4 --l2_grid=1e-4,1e-2,1,100
  bazel run //experiments:linear_probe -- --model=/models/softmax/seed0 \
      --datasets=food101,cifar10,cifar100,sun397,cars196,pets,flowers --data_dir=/tfds
  python -m experiments.linear_probe --model=runs/demo/softmax-seed0 --relearn_head

For every dataset: penultimate (`final_avg_pool`) features of its train, validation and test
splits (transfer preprocessing; cached, see experiments/frozen_transfer.py), multinomial
logistic regression with an L2 penalty chosen on validation (the dataset's own validation
split, or its holdout of train), refitted on train + validation and scored on test with the
dataset's metric (official.evaluation.linear_probe.evaluate). Results:

  <output_dir>/linear_probe/<dataset>.json   chosen l2, validation and test scores, every
                                             penalty tried, class names, timings, model path
  <output_dir>/tensorboard/linear_probe/     scalars "<dataset>/test_<metric>" and
                                             "<dataset>/log10_l2" (step 0), and
                                             "<dataset>/validation_<metric>" against the
                                             penalty, step = round(1000 * log10(l2))
                                             (TensorBoard steps are integers)

--relearn_head instead compares, on the pretraining dataset's evaluation split (default: the
"data" section of <model_dir>/config.json), the network's own head with a linear head
relearned on the first --relearn_fraction of the split, both scored on the rest (paper
Figure 6, official.evaluation.relearn_head); results go to
<output_dir>/relearn_head/<dataset>.json and <output_dir>/tensorboard/relearn_head/. A dataset
whose class names differ from those config.json records (data.class_names) is refused: the
head's outputs would be scored against other labels.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import math
import os

from absl import flags

from experiments import frozen_transfer as ft
from official.core import cli
from official.data import datasets
from official.evaluation import linear_probe
from official.evaluation import relearn_head
from official.modeling import pretrained
from official.training import distribute

METHOD = "linear_probe"
RELEARN_METHOD = "relearn_head"
SPLITS = ("train", "validation", "test")
# The penalty is chosen on validation and the refit scored on test: both must hold only
# classes of train.
CHECKS = (ft.SplitCheck("validation", ("train",)), ft.SplitCheck("test", ("train",)))

_L2_GRID = flags.DEFINE_list(
    "l2_grid", None, "Penalties searched first, comma-separated (default: "
    f"{','.join(f'{v:g}' for v in linear_probe.DEFAULT_L2_GRID)}, then "
    f"{linear_probe.NUM_REFINEMENTS} halvings of the log step around the best).")
_MAX_ITERATIONS = flags.DEFINE_integer(
    "max_iterations", linear_probe.MAX_ITERATIONS, "L-BFGS iterations per fit.")
_RELEARN_HEAD = flags.DEFINE_bool(
    "relearn_head", False, "Instead of transfer: relearn the network's head on the "
    "pretraining dataset and compare it with the original head (paper Figure 6).")
_RELEARN_FRACTION = flags.DEFINE_float(
    "relearn_fraction", relearn_head.TRAIN_FRACTION, "With --relearn_head: fraction of the "
    "evaluation split, from its start, that trains the new head; the rest scores both heads.")
_PRETRAIN_DATASET = flags.DEFINE_string(
    "pretrain_dataset", None, "With --relearn_head: the pretraining dataset spec (default: "
    "data.dataset and data.classes of <model_dir>/config.json).")
_PRETRAIN_SPLIT = flags.DEFINE_string(
    "pretrain_split", None, "With --relearn_head: its evaluation split (default: "
    "data.eval_split of <model_dir>/config.json, else test).")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", None, "With --relearn_head: use only the first N examples of the split.")
_RELEARN_ONLY = ("relearn_fraction", "pretrain_dataset", "pretrain_split", "max_examples")


def _l2_grid() -> tuple:
  grid = ft.parse_floats("l2_grid", _L2_GRID.value)
  if grid is None:
    return tuple(linear_probe.DEFAULT_L2_GRID)
  if not grid or not all(math.isfinite(v) and v > 0 for v in grid):
    raise cli.UsageError(f"--l2_grid: {','.join(_L2_GRID.value)}; expected positive finite "
                         "penalties, e.g. 1e-4,1e-2,1")
  return grid


def _validation_curve(scores: dict) -> list:
  return [{"l2": float(l2), "log10_l2": math.log10(l2), "score": float(score)}
          for l2, score in scores.items()]


def _curve_scalars(name: str, tag: str, curve: list) -> list:
  return [(f"{name}/{tag}", round(1000 * point["log10_l2"]), point["score"]) for point in curve]


# --help lists the shared flags (--model, --datasets, ...) with this binary's own.
flags.adopt_module_key_flags(ft)


def main(argv):
  ft.begin(argv)
  grid = _l2_grid()
  if _MAX_ITERATIONS.value < 1:
    raise cli.UsageError(f"--max_iterations: {_MAX_ITERATIONS.value}; valid is a positive "
                         "integer")
  if _RELEARN_HEAD.value:
    return _relearn(grid)
  given = [f for f in _RELEARN_ONLY if ft.given(f)]
  if given:
    raise cli.UsageError(f"--{given[0]} applies only with --relearn_head")

  max_iterations = _MAX_ITERATIONS.value

  def evaluate(info, name: str, data: dict) -> ft.Evaluation:
    """The probe on one dataset: penalty chosen on validation, refitted, test scored."""
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (data[s] for s in SPLITS)
    scores = linear_probe.evaluate(train_x, train_y, val_x, val_y, test_x, test_y,
                                   metric=info.metric, l2_grid=grid,
                                   max_iterations=max_iterations)
    curve = _validation_curve(scores["validation_scores"])
    metric = info.metric
    record = {
        "l2": scores["l2"],
        "log10_l2": math.log10(scores["l2"]),
        "validation_score": scores["validation_score"],
        "test_score": scores["test_score"],
        "validation_scores": curve,
        "l2_grid": list(grid),
        "num_refinements": linear_probe.NUM_REFINEMENTS,
        "max_iterations": max_iterations,
        "num_train": scores["num_train"],
        "num_validation": scores["num_validation"],
        "num_test": scores["num_test"],
        "feature_dim": scores["feature_dim"],
    }
    scalars = [(f"{name}/test_{metric}", 0, scores["test_score"]),
               (f"{name}/log10_l2", 0, math.log10(scores["l2"]))]
    scalars += _curve_scalars(name, f"validation_{metric}", curve)
    line = (f"{info.name}: test {metric} {scores['test_score']:.4f} (l2 {scores['l2']:.3g}, "
            f"validation {scores['validation_score']:.4f}; {scores['num_train']} train, "
            f"{scores['num_validation']} validation, {scores['num_test']} test)")
    timings = {f"{key}_seconds": scores[f"seconds_{key}"] for key in ("search", "refit", "test")}
    return ft.Evaluation(record, scalars, line, timings)

  ft.evaluate_datasets(ft.prepare(), METHOD, SPLITS, CHECKS, evaluate)


def _names(names, shown: int = 4) -> str:
  """The first few class names, e.g. "['cat', 'dog', ...]"."""
  names = [str(n) for n in names]
  return "[" + ", ".join([repr(n) for n in names[:shown]] +
                         (["..."] if len(names) > shown else [])) + "]"


def _relearn(grid: tuple) -> None:
  """--relearn_head: Figure 6 on the pretraining dataset's evaluation split."""
  if ft.given("datasets"):
    raise cli.UsageError("--datasets does not apply with --relearn_head: the head is "
                         "relearned on the pretraining dataset (--pretrain_dataset)")
  fraction = _RELEARN_FRACTION.value
  if not 0.0 < fraction < 1.0:
    raise cli.UsageError(f"--relearn_fraction: {fraction}; valid is strictly between 0 and "
                         "1, e.g. 0.8")
  if _MAX_EXAMPLES.value is not None and _MAX_EXAMPLES.value < 2:
    raise cli.UsageError(f"--max_examples: {_MAX_EXAMPLES.value}; valid is at least 2")
  path = ft.MODEL.value
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model: {path} does not exist; expected a training model_dir "
                            "or a SavedModel directory")
  data = ft.pretraining_data(path)
  dataset = _PRETRAIN_DATASET.value or data.get("dataset")
  if not dataset:
    raise cli.UsageError(f"--pretrain_dataset is required: {path} has no "
                         f"{pretrained.CONFIG_FILE} naming the dataset it was pretrained on")
  if ft.given("classes"):
    classes = ft.CLASSES.value
  else:
    classes = None if _PRETRAIN_DATASET.value else data.get("classes")
  split = _PRETRAIN_SPLIT.value or data.get("eval_split") or "test"
  if split not in datasets.SPLIT_NAMES:
    raise cli.UsageError(f"--pretrain_split: {split!r}; valid are "
                         f"{', '.join(datasets.SPLIT_NAMES)}")
  data_dir = ft.DATA_DIR.value or data.get("data_dir")
  preprocess = data.get("eval_preprocess") or "eval"
  info = datasets.get(dataset, data_dir=data_dir, classes=classes)
  recorded = data.get("class_names")
  if recorded and info.class_names and tuple(recorded) != tuple(info.class_names):
    config_path = os.path.join(ft.training_model_dir(path), pretrained.CONFIG_FILE)
    names, recorded = list(info.class_names), list(recorded)
    k = next(k for k in range(max(len(names), len(recorded)))
             if names[k:k + 1] != recorded[k:k + 1])
    raise ValueError(
        f"{info.name}: its {len(names)} classes {_names(names)} are not the "
        f"{len(recorded)} classes {_names(recorded)} that {config_path} records the network "
        f"was pretrained on (label {k}: {names[k] if k < len(names) else None!r} vs "
        f"{recorded[k] if k < len(recorded) else None!r}), so its head would be scored "
        "against other labels; pass the dataset and --classes it was pretrained on")
  strategy = distribute.get_strategy(ft.STRATEGY.value, ft.TPU.value)
  _, _, is_chief = distribute.worker_info(strategy)
  model = pretrained.load(path)
  relearn_head.check_model(model, info)
  output_dir, cache_dir = ft.output_dirs(path)

  with ft.FeatureStore(cache_dir) as store:
    result = relearn_head.evaluate(
        model, info, split, train_fraction=fraction, max_examples=_MAX_EXAMPLES.value,
        batch_size=ft.BATCH_SIZE.value, data_dir=data_dir, strategy=strategy,
        cache_dir=store.staging, preprocess=preprocess, progress=True, l2_grid=grid,
        max_iterations=_MAX_ITERATIONS.value)
    if is_chief:
      store.commit()
  curve = [dict(point, log10_l2=math.log10(point["l2"]))
           for point in result.pop("validation_scores")]
  timings = {f"{key}_seconds": result.pop(f"seconds_{key}")
             for key in ("features", "fit", "total")}
  name = ft.result_name(info.name)
  record = {
      "method": RELEARN_METHOD,
      **ft.dataset_record(info),
      **result,
      "metric": "top1",
      "validation_scores": curve,
      "model": os.path.abspath(path),
      "model_loaded_from": os.path.abspath(model.path),
      "image_size": list(model.input_size),
      "preprocess": preprocess,
      "max_examples": _MAX_EXAMPLES.value,
      "l2_grid": list(grid),
      "max_iterations": _MAX_ITERATIONS.value,
      "feature_cache": cache_dir,
      "timings": timings,
  }
  print(f"{info.name}:{split}: original head top1 {result['original']:.4f}, relearned head "
        f"top1 {result['relearned']:.4f} (l2 {result['l2']:.3g}; trained on the first "
        f"{result['train_examples']}, scored on the other {result['test_examples']})",
        flush=True)
  if is_chief:
    scalars = [(f"{name}/original_top1", 0, result["original"]),
               (f"{name}/relearned_top1", 0, result["relearned"])]
    scalars += _curve_scalars(name, "validation_top1", curve)
    path = ft.write_results(output_dir, RELEARN_METHOD, {name: record}, scalars)[0]
    print(f"-> {path}", flush=True)


if __name__ == "__main__":
  cli.run(main)
