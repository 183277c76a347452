r"""Linear transfer with fixed features (paper Table 1 "Linear", docs/protocol.md §4); Figure 6.

  python -m experiments.linear_probe --model=runs/demo/softmax-seed0
  python -m experiments.linear_probe --model=runs/demo/softmax-seed0 \
      --datasets=demo_size,demo_digits --classes=0-4 --l2_grid=1e-4,1e-2,1,100
  bazel run //experiments:linear_probe -- --model=/models/softmax/seed0 \
      --datasets=food101,cifar10,cifar100,sun397,cars196,pets,flowers --data_dir=/tfds
  python -m experiments.linear_probe --model=runs/demo/softmax-seed0 --relearn_head

For every dataset, the probe of docs/protocol.md §4 on cached penultimate features
(official.evaluation.evaluators.LinearProbe). Results:

  <output_dir>/linear_probe/<dataset>.json   chosen l2, validation and test scores, every
                                             penalty tried, class names, timings, model path
  <output_dir>/tensorboard/linear_probe/     "<dataset>/test_<metric>", "<dataset>/log10_l2"
                                             and "<dataset>/validation_<metric>" at step
                                             round(1000 * log10(l2))

--relearn_head instead compares, on the pretraining dataset's evaluation split (default: from
<model_dir>/config.json), the network's own head with a linear head relearned on the split
less --relearn_test_per_class examples of each class, both scored on those (paper Figure 6);
results go to <output_dir>/relearn_head/. A dataset whose class names differ from those of
config.json is refused: the head would be scored against other labels.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import math
import os

from absl import flags

from experiments import common_flags
from experiments import frozen_transfer as ft
from official.core import cli
from official.data import datasets
from official.evaluation import evaluators
from official.evaluation import linear_probe
from official.evaluation import relearn_head
from official.evaluation import transfer
from official.modeling import pretrained
from official.training import distribute

_L2_GRID = flags.DEFINE_list(
    "l2_grid", None, "Penalties searched first, comma-separated (default: "
    f"{','.join(f'{v:g}' for v in linear_probe.DEFAULT_L2_GRID)}, then "
    f"{linear_probe.NUM_REFINEMENTS} halvings of the log step around the best).")
_MAX_ITERATIONS = flags.DEFINE_integer(
    "max_iterations", linear_probe.MAX_ITERATIONS, "L-BFGS iterations per fit.")
_RELEARN_HEAD = flags.DEFINE_bool(
    "relearn_head", False, "Instead of transfer: relearn the network's head on the "
    "pretraining dataset and compare it with the original head (paper Figure 6).")
_RELEARN_TEST_PER_CLASS = flags.DEFINE_integer(
    "relearn_test_per_class", relearn_head.TEST_PER_CLASS, "With --relearn_head: the last N "
    "examples of each class of the evaluation split score both heads; the rest trains the new "
    "head (paper: 10 per class).")
_PRETRAIN_DATASET = flags.DEFINE_string(
    "pretrain_dataset", None, "With --relearn_head: the pretraining dataset spec (default: "
    "data.dataset and data.classes of <model_dir>/config.json).")
_PRETRAIN_SPLIT = flags.DEFINE_string(
    "pretrain_split", None, "With --relearn_head: its evaluation split (default: "
    "data.eval_split of <model_dir>/config.json, else test).")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", None, "With --relearn_head: use only the first N examples of the split.")
_RELEARN_ONLY = ("relearn_test_per_class", "pretrain_dataset", "pretrain_split", "max_examples")


def _l2_grid() -> tuple:
  grid = common_flags.parse_numbers("l2_grid", _L2_GRID.value)
  if grid is None:
    return tuple(linear_probe.DEFAULT_L2_GRID)
  if not grid or not all(math.isfinite(v) and v > 0 for v in grid):
    raise cli.UsageError(f"--l2_grid: {','.join(_L2_GRID.value)}; expected positive finite "
                         "penalties, e.g. 1e-4,1e-2,1")
  return grid


def _curve_scalars(name: str, tag: str, curve: list) -> list:
  return [(f"{name}/{tag}", round(1000 * point["log10_l2"]), point["score"]) for point in curve]


def _scalars(name: str, record: evaluators.Record) -> list:
  s = record.scores
  return [(f"{name}/test_{record.metric}", 0, s["test_score"]),
          (f"{name}/log10_l2", 0, s["log10_l2"]),
          *_curve_scalars(name, f"validation_{record.metric}", s["validation_scores"])]


def _line(record: evaluators.Record) -> str:
  s = record.scores
  return (f"{record.dataset}: test {record.metric} {s['test_score']:.4f} (l2 {s['l2']:.3g}, "
          f"validation {s['validation_score']:.4f}; {s['num_train']} train, "
          f"{s['num_validation']} validation, {s['num_test']} test)")


# --help lists the shared flags (--model, --datasets, --data_dir, ...) with this binary's own.
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
  ft.run(evaluators.LinearProbe(l2_grid=grid, max_iterations=_MAX_ITERATIONS.value),
         _scalars, _line)


def _relearn(grid: tuple) -> None:
  """--relearn_head: Figure 6 on the pretraining dataset's evaluation split."""
  if ft.given("datasets"):
    raise cli.UsageError("--datasets does not apply with --relearn_head: the head is "
                         "relearned on the pretraining dataset (--pretrain_dataset)")
  test_per_class = _RELEARN_TEST_PER_CLASS.value
  if test_per_class < 1:
    raise cli.UsageError(f"--relearn_test_per_class: {test_per_class}; valid is a positive "
                         "integer, e.g. 10")
  if _MAX_EXAMPLES.value is not None and _MAX_EXAMPLES.value < 2:
    raise cli.UsageError(f"--max_examples: {_MAX_EXAMPLES.value}; valid is at least 2")
  path = ft.MODEL.value
  data = pretrained.training_config(path).get("data") or {}
  dataset = _PRETRAIN_DATASET.value or data.get("dataset")
  if not dataset:
    raise cli.UsageError(f"--pretrain_dataset is required: {path} has no "
                         f"{pretrained.CONFIG_FILE} naming the dataset it was pretrained on")
  # --classes, else the pretraining classes of config.json unless another dataset is named.
  classes = (ft.CLASSES.value if ft.given("classes") else
             None if _PRETRAIN_DATASET.value else data.get("classes"))
  split = _PRETRAIN_SPLIT.value or data.get("eval_split") or "test"
  if split not in datasets.SPLIT_NAMES:
    raise cli.UsageError(f"--pretrain_split: {split!r}; valid are "
                         f"{', '.join(datasets.SPLIT_NAMES)}")
  data_dir = common_flags.DATA_DIR.value or data.get("data_dir")
  preprocess = data.get("eval_preprocess") or "eval"
  info = datasets.get(dataset, data_dir=data_dir, classes=classes)
  difference = datasets.class_name_difference(info.class_names or (),
                                              data.get("class_names") or ())
  if data.get("class_names") and info.class_names and difference:
    config_path = os.path.join(pretrained.training_model_dir(path), pretrained.CONFIG_FILE)
    raise ValueError(f"{info.name}: {difference} by {config_path} as the classes the network "
                     "was pretrained on, so its head would be scored against other labels; "
                     "pass the dataset and --classes it was pretrained on")
  strategy = common_flags.strategy()
  _, _, is_chief = distribute.worker_info(strategy)
  model, _ = pretrained.resolve(path)
  relearn_head.check_model(model, info)
  output_dir, cache_dir = ft.output_dirs()
  evaluator = evaluators.RelearnHead(test_per_class=test_per_class,
                                     max_examples=_MAX_EXAMPLES.value, l2_grid=grid,
                                     max_iterations=_MAX_ITERATIONS.value)
  record = evaluator.evaluate(model, info, split, batch_size=ft.BATCH_SIZE.value,
                              data_dir=data_dir, strategy=strategy,
                              cache_dir=cache_dir if is_chief else None,
                              preprocess=preprocess, progress=True)
  s, name = record.scores, datasets.result_name(info.name)
  print(f"{info.name}:{split}: original head top1 {s['original']:.4f}, relearned head "
        f"top1 {s['relearned']:.4f} (l2 {s['l2']:.3g}; trained on "
        f"{s['train_examples']}, scored on {s['test_examples']} held out per class)", flush=True)
  if is_chief:
    result = {**transfer.dataset_record(info),
              **transfer.model_record(model, path, cache_dir, preprocess), **record.to_json()}
    scalars = [(f"{name}/original_top1", 0, s["original"]),
               (f"{name}/relearned_top1", 0, s["relearned"]),
               *_curve_scalars(name, "validation_top1", s["validation_scores"])]
    path = transfer.write_results(output_dir, evaluator.name, {name: result}, scalars)[0]
    print(f"-> {path}", flush=True)


if __name__ == "__main__":
  cli.run(main)
