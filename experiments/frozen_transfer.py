"""Flags and their checks shared by experiments/linear_probe and experiments/knn.

Both take --model and --datasets; official.evaluation.transfer runs them and lays out the
results. A run checks every input first (flags, datasets, the model and its endpoints, then
every dataset's features): bad input ends it with `error: <one line>`, status 2, nothing
written.
"""

import os
from typing import Sequence

from absl import flags

from experiments import common_flags
from official.core import cli
from official.core import config
from official.core import io
from official.data import datasets
from official.evaluation import features
from official.evaluation import transfer
from official.modeling import pretrained
from official.training import distribute

MODEL = flags.DEFINE_string(
    "model", None, "The pretrained network: a model_dir of experiments/train, its "
    "export/saved_model, or any SavedModel whose serving signature returns named endpoints.")
DATASETS = flags.DEFINE_list(
    "datasets", list(config.DEMO_TRANSFER),
    "Transfer datasets (official.data.datasets specs: registry names such as cifar10 or pets, "
    "demo names such as demo_size/small, folder:/path), comma-separated.")
CLASSES = flags.DEFINE_string(
    "classes", None, "Class subset applied to every dataset, e.g. '5-9' or '0,2,5' (ids of "
    "the full dataset, relabelled 0..K-1 in the given order).")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, f"Where results go (default: <model_dir>/{features.TRANSFER_SUBDIR}, "
    f"or ./{features.TRANSFER_SUBDIR}/<name> for a SavedModel outside a training model_dir).")
FEATURE_CACHE = flags.DEFINE_string(
    "feature_cache", None, f"Folder of the feature cache (default: <output_dir>/"
    f"{features.CACHE_SUBDIR}; '' keeps no cache).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 256,
                                  "Global batch size of feature extraction.")
# --data_dir, --strategy and --tpu are key flags here too, so every binary adopting these has them.
flags.adopt_module_key_flags(common_flags)


def begin(argv: Sequence[str]) -> None:
  """Start of every main: no positional arguments; relative paths are the user's (also
  under `bazel run`, which starts in the runfiles tree)."""
  if os.environ.get("BUILD_WORKING_DIRECTORY"):
    os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}; everything is a flag, "
                         "e.g. --model=<dir> --datasets=cifar10,pets")
  if not MODEL.value:
    raise cli.UsageError("--model is required: a training model_dir or a SavedModel with "
                         "named endpoints")
  if BATCH_SIZE.value < 1:
    raise cli.UsageError(f"--batch_size: {BATCH_SIZE.value}; valid is a positive integer")
  if not io.exists(MODEL.value):
    raise FileNotFoundError(f"--model: {MODEL.value} does not exist; expected a training "
                            "model_dir or a SavedModel directory")


def given(flag: str) -> bool:
  """Whether a flag was set (on the command line or by a test), not left at its default."""
  return not flags.FLAGS[flag].using_default_value


def output_dirs() -> tuple:
  """(output_dir, cache_dir or None) of --model, --output_dir and --feature_cache."""
  return transfer.output_dirs(MODEL.value, OUTPUT_DIR.value, FEATURE_CACHE.value)


def run(evaluator, scalars, line) -> dict:
  """flags -> official.evaluation.transfer.evaluate_datasets -> result files.

  Checks the datasets and the model (with `final_avg_pool`), evaluates, prints `line(record)`
  per dataset and writes <output_dir>/<method>/ with the TensorBoard scalars
  `scalars(name, record)` (chief only). Returns result name -> result file dict.
  """
  infos = transfer.resolve_datasets(DATASETS.value, CLASSES.value, common_flags.DATA_DIR.value)
  strategy = common_flags.strategy()
  _, _, is_chief = distribute.worker_info(strategy)
  model, _ = pretrained.resolve(MODEL.value, (features.PENULTIMATE,))
  output_dir, cache_dir = output_dirs()
  results = transfer.evaluate_datasets(
      evaluator, model, MODEL.value, infos, cache_dir, write_cache=is_chief,
      batch_size=BATCH_SIZE.value, strategy=strategy, data_dir=common_flags.DATA_DIR.value)
  for record, _ in results.values():
    print(line(record), flush=True)
  files = {name: result for name, (_, result) in results.items()}
  if is_chief:
    transfer.write_results(output_dir, evaluator.name, files,
                           [s for name, (record, _) in results.items()
                            for s in scalars(name, record)])
    print(f"-> {os.path.join(output_dir, evaluator.name)}/ ({len(files)} result"
          f"{'s' if len(files) != 1 else ''})", flush=True)
  return files
