r"""Pretrains one network with one objective (docs/protocol.md §1-3) and exports its EMA weights.

  python -m experiments.train --loss=mse                      # demo preset, ~30 s on a CPU
  python -m experiments.train --loss=cosine_softmax --tau=0.02 --seed=1
  python -m experiments.train --experiment=imagenet_resnet50 --loss=softmax \
      --data_dir=gs://... --strategy=tpu --tpu=my-tpu --model_dir=gs://.../softmax/seed0
  python -m experiments.train --params_override=train.epochs=2,model.width_multiplier=0.5
  python -m experiments.train --dataset=folder:/data/photos --classes=0-4 --batch_size=32

The model directory (default runs/<experiment>/<loss>-seed<seed>) receives config.json,
checkpoints/, TensorBoard logs (train/, eval/, HParams), export/saved_model and metrics.json.
Rerunning the same command resumes from the latest checkpoint; SIGTERM saves a checkpoint and
exits 0. Precedence: preset < flags < --params_override.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import os
import time

from absl import flags

from official import losses
from experiments import common_flags
from official.core import cli
from official.data import datasets
from official.core import config
from official.training import trainer

_EXPERIMENT = flags.DEFINE_string(
    "experiment", "demo", f"Preset: {', '.join(config.EXPERIMENTS)}.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run directory (default: runs/<experiment>/<loss>-seed<seed>).")
_LOSS = flags.DEFINE_string(
    "loss", None, f"Objective: {', '.join(losses.NAMES)} (alias mse); default: the preset's.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of initialisation and data order.")


# --help lists --data_dir, --strategy and --tpu with this binary's own flags.
flags.adopt_module_key_flags(common_flags)

def _hparam_flags() -> dict[str, str]:
  """Flag name -> help for every numeric objective hyperparameter (docs/protocol.md §1),
  with the released defaults read from official.losses' registry."""
  uses = {}
  for objective, defaults in losses.DEFAULT_HPARAMS.items():
    for name, value in defaults.items():
      if not isinstance(value, bool):
        uses.setdefault(name, []).append(f"{objective} ({value:g})")
  return {name: f"objective.hparams.{name} of {' / '.join(objectives)}; unset: the "
                "released default." for name, objectives in uses.items()}


# Each objective's hyperparameters; unset flags keep the released defaults.
_HPARAMS = {name: flags.DEFINE_float(name, None, text) for name, text in _hparam_flags().items()}

_EPOCHS = flags.DEFINE_integer("train_epochs", None, "train.epochs")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "train.batch_size (global batch).")
_LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "train.learning_rate: peak learning rate (default: "
    f"{config.TrainConfig.base_learning_rate:g} per 256 examples of the global batch).")
_MIXED_PRECISION = flags.DEFINE_bool("mixed_precision", None,
                                     "train.mixed_precision (bfloat16).")
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", None, "train.jit_compile (XLA).")
_DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", None, "train.deterministic: deterministic ops (exact resumption).")
_DATASET = flags.DEFINE_string(
    "dataset", None, "data.dataset: an official.data.datasets spec (a registry or demo name, "
    "or folder:/path for root/{train,test[,validation]}/<class>/<image>).")
_CLASSES = flags.DEFINE_string(
    "classes", None, "data.classes: class subset pretrained on, e.g. '0-4' or '0,2,5' "
    "(relabelled 0..K-1; class ids of a folder follow its sorted class-folder names).")
_PARAMS_OVERRIDE = flags.DEFINE_string(
    "params_override", None, "Any config value: section.field=value,... "
    "(e.g. train.epochs=2,model.block_counts=[1,1,1,1],objective.hparams.tau=0.02).")


def build_config() -> config.ExperimentConfig:
  """The preset overridden by the flags, then by --params_override (not yet resolved)."""
  experiment = config.get_experiment(_EXPERIMENT.value)
  overrides = {}
  if _LOSS.value is not None:
    overrides["objective.name"] = losses.canonical_name(_LOSS.value)
    if overrides["objective.name"] != experiment.objective.name:
      experiment.objective.hparams = {}
  for name, holder in _HPARAMS.items():
    if holder.value is not None:
      overrides[f"objective.hparams.{name}"] = holder.value
  for key, holder in (("train.seed", _SEED), ("train.epochs", _EPOCHS),
                      ("train.batch_size", _BATCH_SIZE),
                      ("train.learning_rate", _LEARNING_RATE),
                      ("train.mixed_precision", _MIXED_PRECISION),
                      ("train.jit_compile", _JIT_COMPILE),
                      ("train.deterministic", _DETERMINISTIC),
                      ("data.dataset", _DATASET),
                      ("data.classes", _CLASSES)):
    if holder.value is not None:
      overrides[key] = holder.value
  if common_flags.DATA_DIR.value is not None:
    overrides["data.data_dir"] = caller_path(common_flags.DATA_DIR.value)
  if _DATASET.value is not None and _DATASET.value.strip().startswith(datasets.FOLDER_PREFIX):
    path = _DATASET.value.strip()[len(datasets.FOLDER_PREFIX):]
    overrides["data.dataset"] = datasets.FOLDER_PREFIX + caller_path(path)
  overrides.update(config.parse_params_override(_PARAMS_OVERRIDE.value))
  return config.override(experiment, overrides)


def caller_path(path: str) -> str:
  """`path` relative to the caller's directory (`bazel run` starts in the runfiles)."""
  return os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), path)


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  start = time.time()
  resolved = config.resolve(build_config())
  strategy = common_flags.strategy()
  model_dir = caller_path(_MODEL_DIR.value or os.path.join(
      "runs", _EXPERIMENT.value, f"{resolved.objective.name}-seed{resolved.train.seed}"))
  print(f"model_dir: {model_dir}", flush=True)
  try:
    metrics = trainer.train(resolved, model_dir, strategy,
                            log=lambda line: print(line, flush=True))
  except trainer.Preempted as e:
    print(f"preempted: {e}", flush=True)
    return
  print(f"done in {time.time() - start:.1f} s: top1 {metrics['top1']:.4f}  "
        f"top5 {metrics['top5']:.4f}  class_separation {metrics['class_separation']:.4f}  "
        f"-> {os.path.join(model_dir, config.METRICS_FILE)}", flush=True)


if __name__ == "__main__":
  cli.run(main)
