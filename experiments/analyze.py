r"""Compares the representations of pretrained networks on one dataset (paper Figures 2-4).

  python -m experiments.analyze runs/demo/softmax-seed0 runs/demo/squared_error-seed0 \
      demo_pretrain --max_examples=1000
  bazel run //experiments:analyze -- /models/softmax /models/sigmoid imagenet2012 \
      --data_dir=/tfds --batch_size=1500 --names=softmax,sigmoid

Positional arguments: two or more models (model_dirs of experiments/train or SavedModels with
named endpoints), then the dataset (an official.data.datasets spec); the analysis is
official.evaluation.representations.analyze (sparsity, class separation, minibatch CKA).

The output directory (default analysis/<dataset>-<hash of the arguments>, printed) receives
analysis.json (written last: its presence means the analysis is complete), fig2a_*.png (one per
pair of networks), fig2b_cka_corresponding.png, fig3_sparsity.png,
fig4_class_separation.png and TensorBoard summaries in tensorboard/.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

import hashlib
import json
import os

from absl import flags
from absl import logging

from experiments import common_flags
from official.analysis import class_separation
from official.core import cli
from official.core import io
from official.data import datasets
from official.evaluation import representations
from official.modeling import pretrained

RESULT_FILE = "analysis.json"
TENSORBOARD_DIR = "tensorboard"
DEFAULT_ROOT = "analysis"
USAGE = "expected two or more model paths, then a dataset: analyze <model> <model> [...] <dataset>"

_NAMES = flags.DEFINE_list(
    "names", None, "Display names of the models, in order (default: <objective>-seed<seed> "
    "from each model's config.json, else the folder name).")
_SPLIT = flags.DEFINE_string(
    "split", "test", f"Split analysed: {', '.join(datasets.SPLIT_NAMES)} (the paper: the "
    "ImageNet validation set, which is the test split here).")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", None, "Analyse only the first N examples of the split (default: all).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 256, "Global batch size; each batch is one CKA minibatch (the paper: 1500).")
_DISTANCE = flags.DEFINE_string(
    "distance", "cosine", "Distance of class separation: cosine (eq. 11) or squared_euclidean.")
_ENDPOINTS = flags.DEFINE_list(
    "endpoints", None, "Endpoints to analyse (default: all the models share except "
    "final_layer and outputs).")
_FIG2B_ENDPOINTS = flags.DEFINE_list(
    "fig2b_endpoints", None, "Endpoints of Figure 2b (default: the last "
    f"{representations.CORRESPONDING_ENDPOINTS}).")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, f"Where results go (default: {DEFAULT_ROOT}/<dataset>-<hash>).")
_CLASSES = flags.DEFINE_string(
    "classes", None, "Class subset of the dataset, e.g. '0-9' or '0,2,5'.")


# --help lists --data_dir, --strategy and --tpu with this binary's own flags.
flags.adopt_module_key_flags(common_flags)


def default_name(model_path: str) -> str:
  """<objective>-seed<seed> from the run's config.json, else the model folder's name."""
  try:
    config = pretrained.training_config(model_path)
    if config:
      objective = config["objective"]["name"]
      seed = config.get("train", {}).get("seed")
      return objective if seed is None else f"{objective}-seed{seed}"
  except (OSError, ValueError, KeyError, TypeError, AttributeError):
    logging.warning("cannot read the objective from the config.json of %s; naming the model "
                    "by its folder", model_path)
  return os.path.basename(io.absolute(model_path))


def model_names(paths: list[str], names: list[str] | None) -> list[str]:
  """--names checked against the paths, or distinct default names."""
  if names is not None:
    if len(names) != len(paths):
      raise cli.UsageError(f"--names: {len(names)} names for {len(paths)} models; expected "
                           "one name per model, in order")
    if len(set(names)) != len(names) or not all(names):
      raise cli.UsageError(f"--names: {','.join(names)} has an empty or repeated name; "
                           "expected distinct names")
    return list(names)
  out = []
  for path in paths:
    name = default_name(path).replace(representations.PAIR_SEPARATOR, "_")
    candidate, k = name, 2
    while candidate in out:
      candidate, k = f"{name}-{k}", k + 1
    out.append(candidate)
  return out


def default_output_dir(dataset: str, settings: dict) -> str:
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
  return os.path.join(DEFAULT_ROOT, f"{datasets.result_name(dataset)}-{digest}")


def main(argv):
  # Under `bazel run`, relative paths are the user's, not the runfiles tree's.
  if os.environ.get("BUILD_WORKING_DIRECTORY"):
    os.chdir(os.environ["BUILD_WORKING_DIRECTORY"])
  args = argv[1:]
  if len(args) < 3:
    raise cli.UsageError(f"got {len(args)} positional argument(s); {USAGE}")
  paths, spec = args[:-1], args[-1]
  for path in paths:
    if not io.isdir(path):
      problem = "does not exist" if not io.exists(path) else "is not a directory"
      raise cli.UsageError(f"model path {path} {problem}; {USAGE}")
  names = model_names(paths, _NAMES.value)
  if _MAX_EXAMPLES.value is not None and _MAX_EXAMPLES.value < 4:
    raise cli.UsageError(f"--max_examples: {_MAX_EXAMPLES.value}; expected at least 4 "
                         "(minibatch CKA needs 4 examples)")
  if _BATCH_SIZE.value < 4:
    raise cli.UsageError(f"--batch_size: {_BATCH_SIZE.value}; expected at least 4 "
                         "(minibatch CKA needs 4 examples per batch)")
  if _SPLIT.value not in datasets.SPLIT_NAMES:
    raise cli.UsageError(f"--split: {_SPLIT.value!r}; valid are "
                         f"{', '.join(datasets.SPLIT_NAMES)}")
  if _DISTANCE.value not in class_separation.DISTANCES:
    raise cli.UsageError(f"--distance: {_DISTANCE.value!r}; valid are "
                         f"{', '.join(class_separation.DISTANCES)}")
  info = datasets.get(spec, data_dir=common_flags.DATA_DIR.value, classes=_CLASSES.value)
  strategy = common_flags.strategy()
  models = {name: pretrained.load(path) for name, path in zip(names, paths)}
  analysed = _ENDPOINTS.value or representations.common_endpoints(models)
  unknown = [e for e in _FIG2B_ENDPOINTS.value or () if e not in analysed]
  if unknown and analysed:
    raise cli.UsageError(f"--fig2b_endpoints: {unknown[0]!r} is not analysed; valid are "
                         f"{', '.join(analysed)}")

  settings = {"models": [io.absolute(p) for p in paths], "names": names,
              "dataset": info.name, "split": _SPLIT.value, "max_examples": _MAX_EXAMPLES.value,
              "batch_size": _BATCH_SIZE.value, "distance": _DISTANCE.value,
              "endpoints": _ENDPOINTS.value}
  output_dir = _OUTPUT_DIR.value or default_output_dir(info.name, settings)
  result = representations.analyze(
      models, info, _SPLIT.value, endpoints=_ENDPOINTS.value, batch_size=_BATCH_SIZE.value,
      max_examples=_MAX_EXAMPLES.value, data_dir=common_flags.DATA_DIR.value,
      distance=_DISTANCE.value, strategy=strategy, progress=True)
  images = representations.figures(result, corresponding_endpoints=_FIG2B_ENDPOINTS.value)
  # Label k of the analysed split is class_names[k] (classes: ids in the full dataset).
  result.update(info.class_record())

  # Only now, with everything computed, does anything get written.
  print(f"output_dir: {output_dir}", flush=True)
  for file_name, png in images.items():
    io.atomic_write_bytes(os.path.join(output_dir, file_name), png)
  representations.write_summaries(result, os.path.join(output_dir, TENSORBOARD_DIR), images)
  io.atomic_write_json(os.path.join(output_dir, RESULT_FILE), result)

  last = result["endpoints"][-1]
  print(f"{result['examples']} examples of {result['dataset']} ({result['split']}), "
        f"{len(result['endpoints'])} endpoints; at {last}:", flush=True)
  width = max(len(n) for n in names)
  for name in names:
    sparsity = result["sparsity"][name][last]
    separation = result["class_separation"][name][last]
    print(f"  {name:<{width}}  non-zero {_format(sparsity, 100.0, '%')}  "
          f"class_separation {_format(separation, 1.0, '')}", flush=True)
  print(f"-> {os.path.join(output_dir, RESULT_FILE)}", flush=True)


def _format(value, scale: float, unit: str) -> str:
  return "n/a" if value is None else f"{scale * value:.3f}{unit}"


if __name__ == "__main__":
  cli.run(main)
