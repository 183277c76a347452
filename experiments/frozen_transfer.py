"""Flags, input checks and output layout shared by the fixed-feature transfer binaries.

experiments/linear_probe and experiments/knn (SPEC §4, Table 1) take a pretrained network
(--model: a model_dir of experiments/train, its export/saved_model, or any SavedModel with
named endpoints) and transfer datasets (--datasets), and write

  <output_dir>/<method>/<dataset>.json   one result per dataset (method: linear_probe, knn,
                                         relearn_head), <dataset> spelt file-name safe
  <output_dir>/tensorboard/<method>/     TensorBoard scalars of the method
  <output_dir>/features/                 cache of the extracted features (--feature_cache),
                                         shared by the methods and reused by later runs

where <output_dir> defaults to <model_dir>/transfer for a training model_dir (or its
export/saved_model) and to ./transfer/<folder name> for a SavedModel from elsewhere, which is
only read.

A run checks every input first (flags, dataset names, the model and its endpoints), then
extracts and checks the features of every dataset (finite, as many labels as feature rows,
every evaluated class present in the training data), then computes, and writes last. Bad input
ends the run with `error: <one line>` and status 2 (official.core.cli) and nothing written:
features extracted by a run go to a private staging folder and join the cache only once every
dataset passed its checks.
"""

import dataclasses
import os
import shutil
import tempfile
import time
from typing import Callable, Mapping, Optional, Sequence

from absl import flags
import numpy as np
import tensorflow as tf

from official.core import cli
from official.core import io
from official.data import datasets
from official.evaluation import features
from official.evaluation import inputs
from official.evaluation import representations
from official.modeling import pretrained
from official.training import distribute

OUTPUT_SUBDIR = features.TRANSFER_SUBDIR
FEATURES_SUBDIR = features.CACHE_SUBDIR
TENSORBOARD_SUBDIR = "tensorboard"
# Preprocessing of the transfer features (SPEC §4: shorter side resized, centre crop).
PREPROCESS = "transfer"

MODEL = flags.DEFINE_string(
    "model", None, "The pretrained network: a model_dir of experiments/train, its "
    "export/saved_model, or any SavedModel whose serving signature returns named endpoints.")
DATASETS = flags.DEFINE_list(
    "datasets", list(datasets.DEMO_TRANSFER_DATASETS),
    "Transfer datasets (official.data.datasets specs: registry names such as cifar10 or pets, "
    "demo names such as demo_texture/small, folder:/path), comma-separated.")
CLASSES = flags.DEFINE_string(
    "classes", None, "Class subset applied to every dataset, e.g. '5-9' or '0,2,5' (ids of "
    "the full dataset, relabelled 0..K-1 in the given order).")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, f"Where results go (default: <model_dir>/{OUTPUT_SUBDIR}, or "
    f"./{OUTPUT_SUBDIR}/<name> for a SavedModel outside a training model_dir).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
FEATURE_CACHE = flags.DEFINE_string(
    "feature_cache", None, f"Folder of the feature cache (default: <output_dir>/"
    f"{FEATURES_SUBDIR}; '' keeps no cache).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 256,
                                  "Global batch size of feature extraction.")
STRATEGY = flags.DEFINE_string(
    "strategy", "default", f"tf.distribute strategy: {', '.join(distribute.STRATEGIES)}.")
TPU = flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")


def begin(argv: Sequence[str]) -> None:
  """Start of every main: no positional arguments; relative paths are the user's."""
  # Under `bazel run`, relative paths are the user's, not the runfiles tree's.
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


def given(flag: str) -> bool:
  """Whether a flag was set (on the command line or by a test), not left at its default."""
  return not flags.FLAGS[flag].using_default_value


def result_name(dataset: str) -> str:
  """File-name spelling of a dataset name ("demo_texture/small" -> "demo_texture_small")."""
  return representations.safe_name(dataset)


def parse_floats(flag: str, values: Optional[Sequence[str]]) -> Optional[tuple]:
  """Comma-separated numbers of a list flag; None when the flag is unset."""
  if values is None:
    return None
  parsed = []
  for value in values:
    try:
      parsed.append(float(value.strip()))
    except ValueError:
      raise cli.UsageError(f"--{flag}: {value!r} is not a number; expected comma-separated "
                           "numbers, e.g. 1e-4,1e-2,1") from None
  return tuple(parsed)


def training_model_dir(model_path: str) -> Optional[str]:
  """The training model_dir of a model path (itself, or the model_dir above its
  export/saved_model), None for a SavedModel outside a training model_dir."""
  path = os.path.normpath(os.path.abspath(model_path))
  if os.path.isfile(os.path.join(path, pretrained.CONFIG_FILE)):
    return path
  export_suffix = os.sep + os.path.normpath(pretrained.EXPORT_DIR)
  if path.endswith(export_suffix):
    parent = path[:-len(export_suffix)]
    if os.path.isfile(os.path.join(parent, pretrained.CONFIG_FILE)):
      return parent
  return None


def pretraining_data(model_path: str) -> dict:
  """The "data" section of the model's training config.json ({} without one): the dataset,
  class subset and class names the network was pretrained on."""
  model_dir = training_model_dir(model_path)
  if model_dir is None:
    return {}
  path = os.path.join(model_dir, pretrained.CONFIG_FILE)
  try:
    config = io.read_json(path)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e})") from None
  data = config.get("data") if isinstance(config, dict) else None
  return data if isinstance(data, dict) else {}


def default_output_dir(model_path: str) -> str:
  """<model_dir>/transfer, or ./transfer/<folder name> for a SavedModel from elsewhere."""
  model_dir = training_model_dir(model_path)
  if model_dir is not None:
    return os.path.join(model_dir, OUTPUT_SUBDIR)
  name = os.path.basename(os.path.normpath(os.path.abspath(model_path)))
  return os.path.join(OUTPUT_SUBDIR, representations.safe_name(name))


def resolve_datasets(names: Sequence[str], classes: Optional[str],
                     data_dir: Optional[str]) -> list:
  """DatasetInfo of every spec (each checked before any work), distinct result names."""
  names = [n.strip() for n in names or () if n.strip()]
  if not names:
    raise cli.UsageError("--datasets is empty; expected comma-separated dataset specs, e.g. "
                         f"{','.join(datasets.DEMO_TRANSFER_DATASETS)}")
  infos, seen = [], {}
  for name in names:
    info = datasets.get(name, data_dir=data_dir, classes=classes)
    key = result_name(info.name)
    if key in seen:
      raise cli.UsageError(f"--datasets: {name!r} and {seen[key]!r} both write "
                           f"{key}.json; list each dataset once")
    seen[key] = name
    infos.append(info)
  return infos


def load_model(path: str, endpoints: Sequence[str]) -> pretrained.EndpointModel:
  """The pretrained network, checked to have `endpoints`."""
  model = pretrained.load(path)
  missing = [e for e in endpoints if e not in model.endpoint_names]
  if missing:
    raise ValueError(f"model {path} has no {missing[0]!r} endpoint; it has: "
                     f"{', '.join(model.endpoint_names)}; expected a network exported with "
                     "its named endpoints (SPEC §2)")
  return model


@dataclasses.dataclass
class Run:
  """What a transfer binary works with, after the input checks.

  Attributes:
    model: the pretrained network.
    model_path: --model as an absolute path.
    infos: the datasets, in the order given.
    output_dir: where results go.
    cache_dir: the feature cache folder, or None for none.
    strategy: tf.distribute strategy of feature extraction.
    is_chief: whether this worker writes.
    data_dir: TFDS data directory.
    batch_size: global batch size of feature extraction.
  """
  model: pretrained.EndpointModel
  model_path: str
  infos: list
  output_dir: str
  cache_dir: Optional[str]
  strategy: tf.distribute.Strategy
  is_chief: bool
  data_dir: Optional[str]
  batch_size: int

  def extraction_kwargs(self) -> dict:
    return dict(batch_size=self.batch_size, data_dir=self.data_dir, strategy=self.strategy,
                preprocess=PREPROCESS, progress=True)


def output_dirs(model_path: str) -> tuple:
  """(output_dir, cache_dir or None) from --output_dir and --feature_cache."""
  output_dir = OUTPUT_DIR.value or default_output_dir(model_path)
  cache = FEATURE_CACHE.value
  cache_dir = os.path.join(output_dir, FEATURES_SUBDIR) if cache is None else (cache or None)
  return output_dir, cache_dir


def prepare() -> Run:
  """Checks the common flags, the datasets and the model (with `final_avg_pool`)."""
  path = MODEL.value
  if not os.path.exists(path):
    raise FileNotFoundError(f"--model: {path} does not exist; expected a training model_dir "
                            "or a SavedModel directory")
  infos = resolve_datasets(DATASETS.value, CLASSES.value, DATA_DIR.value)
  strategy = distribute.get_strategy(STRATEGY.value, TPU.value)
  _, _, is_chief = distribute.worker_info(strategy)
  model = load_model(path, (features.PENULTIMATE,))
  output_dir, cache_dir = output_dirs(path)
  return Run(model=model, model_path=os.path.abspath(path), infos=infos,
             output_dir=output_dir, cache_dir=cache_dir, strategy=strategy,
             is_chief=is_chief, data_dir=DATA_DIR.value, batch_size=BATCH_SIZE.value)


class FeatureStore:
  """Feature extraction through a private staging copy of the cache.

  The staging folder (a temporary directory under $TMPDIR, which must have room for the
  features of the run's datasets) links every cached `.npz` of `cache_dir`, so
  `official.evaluation.features.extract` reads what earlier runs cached and writes what it
  computes into the staging folder; `commit` moves the new files into `cache_dir`. Without
  `cache_dir` the staging folder is the run's only cache.
  """

  def __init__(self, cache_dir: Optional[str]):
    self.cache_dir = cache_dir
    self.staging = tempfile.mkdtemp(prefix="transfer-features-")
    if cache_dir and os.path.isdir(cache_dir):
      for name in os.listdir(cache_dir):
        if name.endswith(".npz") and not name.startswith("."):
          os.symlink(os.path.abspath(os.path.join(cache_dir, name)),
                     os.path.join(self.staging, name))

  def __enter__(self) -> "FeatureStore":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def extract(self, model, info, split: str, **kwargs) -> tuple:
    """`features.extract` against the staging folder."""
    return features.extract(model, info, split, cache_dir=self.staging, **kwargs)

  def commit(self) -> list:
    """Moves the features computed so far into the cache; returns their cache paths."""
    if not self.cache_dir:
      return []
    written = []
    for name in sorted(os.listdir(self.staging)):
      source = os.path.join(self.staging, name)
      if not name.endswith(".npz") or os.path.islink(source):
        continue
      target = os.path.join(self.cache_dir, name)
      os.makedirs(self.cache_dir, exist_ok=True)
      fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.cache_dir)
      os.close(fd)
      try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
      finally:
        if os.path.exists(tmp):
          os.remove(tmp)
      os.remove(source)
      os.symlink(os.path.abspath(target), source)
      written.append(target)
    return written

  def close(self) -> None:
    shutil.rmtree(self.staging, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class SplitCheck:
  """`evaluated` split's classes must all occur in the union of the `trained` splits."""
  evaluated: str
  trained: tuple


def _class_label(info, class_id: int) -> str:
  names = info.class_names
  if names and 0 <= class_id < len(names):
    return f"class {class_id} ({names[class_id]!r})"
  return f"class {class_id}"


def dataset_features(store: FeatureStore, run: Run, info, splits: Sequence[str],
                     checks: Sequence[SplitCheck]) -> dict:
  """Checked penultimate features of `splits` of one dataset: split -> (x [n, D], labels [n]).

  Raises:
    ValueError: non-finite features, a label count different from the feature rows, a
      training part with fewer than 2 classes, or an evaluated class absent from training.
  """
  out = {}
  for split in splits:
    arrays, labels = store.extract(run.model, info, split, endpoints=(features.PENULTIMATE,),
                                   **run.extraction_kwargs())
    where = f"{info.name}:{split}"
    x = inputs.check_features(arrays[features.PENULTIMATE], f"{where} features",
                              None if not out else next(iter(out.values()))[0].shape[1])
    y = inputs.check_labels(labels, f"{where} labels", x.shape[0], f"{where} features")
    out[split] = (x, y)
  for check in checks:
    trained = np.unique(np.concatenate([out[s][1] for s in check.trained]))
    trained_name = "+".join(check.trained)
    if trained.size < 2:
      raise ValueError(f"{info.name}:{trained_name} has {trained.size} class(es); a "
                       "classifier needs at least 2")
    evaluated = out[check.evaluated][1]
    missing = np.setdiff1d(np.unique(evaluated), trained)
    if missing.size:
      class_id = int(missing[0])
      count = int(np.sum(evaluated == class_id))
      raise ValueError(f"{info.name}: {_class_label(info, class_id)} occurs in "
                       f"{check.evaluated} ({count} of its {evaluated.size} examples) but not "
                       f"in {trained_name}; "
                       "every evaluated class must be trained on (choose classes present in "
                       "every split with --classes)")
  return out


def extract_and_check(store: FeatureStore, run: Run, splits: Sequence[str],
                      checks: Sequence[SplitCheck]) -> dict:
  """Extracts and checks every dataset's features (nothing is kept in memory); returns
  dataset name -> seconds spent. The caller commits the store afterwards."""
  seconds = {}
  for info in run.infos:
    start = time.perf_counter()
    dataset_features(store, run, info, splits, checks)
    seconds[info.name] = time.perf_counter() - start
  return seconds


def dataset_record(info) -> dict:
  """What identifies a dataset's classes in a result file."""
  return {
      "dataset": info.name,
      "num_classes": int(info.num_classes),
      "class_names": list(info.class_names) if info.class_names else None,
      "classes": list(info.classes) if info.classes is not None else None,
      "metric": info.metric,
  }


def model_record(run: Run) -> dict:
  data = pretraining_data(run.model_path)
  return {
      "model": run.model_path,
      "model_loaded_from": os.path.abspath(run.model.path),
      # What the network was pretrained on (from its config.json; None for a bare SavedModel).
      "pretrained_on": {key: data.get(key) for key in ("dataset", "classes", "class_names")}
                       if data else None,
      "endpoint": features.PENULTIMATE,
      "image_size": list(run.model.input_size),
      "preprocess": PREPROCESS,
      "feature_cache": run.cache_dir,
  }


def write_scalars(logdir: str, scalars: Sequence[tuple]) -> None:
  """TensorBoard scalars (tag, step, value), written in the order of their steps."""
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    for tag, step, value in sorted(scalars, key=lambda s: s[1]):
      tf.summary.scalar(tag, float(value), step=int(step))
  writer.flush()
  writer.close()


@dataclasses.dataclass
class Evaluation:
  """What a transfer method made of one dataset's features.

  Attributes:
    record: the method's fields of the result file (the loop adds the method, dataset,
      model and timing fields).
    scalars: TensorBoard scalars (tag, step, value), tags under the dataset's result name.
    line: the console line summarising the dataset.
    timings: the method's own timings in seconds (named <what>_seconds).
  """
  record: dict
  scalars: list
  line: str
  timings: dict = dataclasses.field(default_factory=dict)


# evaluate(info, result name, {split: (features [n, D], labels [n])}) -> Evaluation.
EvaluateFn = Callable[..., Evaluation]


def evaluate_datasets(run: Run, method: str, splits: Sequence[str],
                      checks: Sequence[SplitCheck], evaluate: EvaluateFn) -> dict:
  """The loop of a fixed-feature transfer binary: extract and check the features of every
  dataset first (nothing is computed or written on bad input), add them to the cache, then
  `evaluate` each dataset and write <output_dir>/<method>/<dataset>.json and the TensorBoard
  scalars (chief only). Returns result name -> record."""
  results, scalars = {}, []
  with FeatureStore(run.cache_dir) as store:
    feature_seconds = extract_and_check(store, run, splits, checks)
    if run.is_chief:
      store.commit()
    for info in run.infos:
      start = time.perf_counter()
      name = result_name(info.name)
      outcome = evaluate(info, name, dataset_features(store, run, info, splits, checks))
      results[name] = {
          "method": method,
          **dataset_record(info),
          **model_record(run),
          **outcome.record,
          "timings": {"features_seconds": feature_seconds[info.name], **outcome.timings,
                      f"{method}_seconds": time.perf_counter() - start},
      }
      scalars += outcome.scalars
      print(outcome.line, flush=True)
  if run.is_chief:
    write_results(run.output_dir, method, results, scalars)
    print(f"-> {os.path.join(run.output_dir, method)}/ ({len(results)} result"
          f"{'s' if len(results) != 1 else ''})", flush=True)
  return results


def write_results(output_dir: str, method: str, results: Mapping[str, dict],
                  scalars: Sequence[tuple]) -> list:
  """Writes <output_dir>/<method>/<name>.json for every result and the TensorBoard scalars;
  returns the JSON paths."""
  paths = []
  for name, result in results.items():
    path = os.path.join(output_dir, method, f"{name}.json")
    io.atomic_write_json(path, result)
    paths.append(path)
  write_scalars(os.path.join(output_dir, TENSORBOARD_SUBDIR, method), scalars)
  return paths
