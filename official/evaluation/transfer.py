"""Fixed-feature transfer of one pretrained network to several datasets (paper Table 1).

`evaluate_datasets` extracts and checks the penultimate features of every dataset before it
evaluates each with one evaluator; `write_results` writes <output_dir>/<method>/<dataset>.json
and TensorBoard scalars under <output_dir>/tensorboard/<method>/. <output_dir> defaults to
<model_dir>/transfer for a training model_dir and to ./transfer/<folder name> for a SavedModel
from elsewhere, the feature cache to <output_dir>/features.
"""

import os
import time
from typing import Mapping, Optional, Sequence

import tensorflow as tf

from official.core import config
from official.core import io
from official.data import datasets
from official.evaluation import evaluators
from official.evaluation import features
from official.modeling import pretrained

TENSORBOARD_SUBDIR = "tensorboard"
# Preprocessing of the transfer features (docs/protocol.md §4: shorter side resized, centre
# crop).
PREPROCESS = "transfer"


def resolve_datasets(names: Sequence[str], classes: Optional[str],
                     data_dir: Optional[str]) -> list:
  """DatasetInfo of every spec (each checked before any work), with distinct result names."""
  names = [n.strip() for n in names or () if n.strip()]
  if not names:
    raise ValueError("--datasets is empty; expected comma-separated dataset specs, e.g. "
                     f"{','.join(config.DEMO_TRANSFER)}")
  infos, seen = [], {}
  for name in names:
    info = datasets.get(name, data_dir=data_dir, classes=classes)
    key = datasets.result_name(info.name)
    if key in seen:
      raise ValueError(f"--datasets: {name!r} and {seen[key]!r} both write {key}.json; list "
                       "each dataset once")
    seen[key] = name
    infos.append(info)
  return infos


def default_output_dir(model_path: str) -> str:
  """<model_dir>/transfer, or ./transfer/<folder name> for a SavedModel from elsewhere."""
  model_dir = pretrained.training_model_dir(model_path)
  if model_dir is not None:
    return os.path.join(model_dir, features.TRANSFER_SUBDIR)
  name = os.path.basename(io.absolute(model_path))
  return os.path.join(features.TRANSFER_SUBDIR, datasets.result_name(name))


def output_dirs(model_path: str, output_dir: Optional[str],
                feature_cache: Optional[str]) -> tuple:
  """(output_dir, cache_dir or None): the defaults where not given; feature_cache "" keeps no
  cache."""
  output_dir = output_dir or default_output_dir(model_path)
  if feature_cache is None:
    return output_dir, os.path.join(output_dir, features.CACHE_SUBDIR)
  return output_dir, feature_cache or None


def dataset_record(info) -> dict:
  """What identifies a dataset's classes in a result file."""
  return {
      "dataset": info.name,
      "num_classes": int(info.num_classes),
      **info.class_record(),
      "metric": info.metric,
  }


def model_record(model, model_path: str, cache_dir: Optional[str],
                 preprocess: str = PREPROCESS) -> dict:
  """What identifies the network and its features in a result file."""
  data = pretrained.training_config(model_path).get("data")
  return {
      "model": io.absolute(model_path),
      "model_loaded_from": io.absolute(model.path),
      # What the network was pretrained on (from its config.json; None for a bare SavedModel).
      "pretrained_on": {key: data.get(key) for key in ("dataset", "classes", "class_names")}
                       if isinstance(data, dict) and data else None,
      "endpoint": features.PENULTIMATE,
      "image_size": list(model.input_size),
      "preprocess": preprocess,
      "feature_cache": cache_dir,
  }


def evaluate_datasets(evaluator, model, model_path: str, infos: Sequence,
                      cache_dir: Optional[str], *, write_cache: bool = True,
                      **extraction) -> dict:
  """Extracts and checks the features of every dataset first, then evaluates each with
  `evaluator` (LinearProbe or KNN). Computed features join the cache (`cache_dir`; only
  when `write_cache`: the chief) once every dataset passed its checks, so bad input writes
  nothing; features not cached stay in memory. `extraction`: features.extract's arguments.
  Returns result name -> (Record, the result file's dict).
  """
  kwargs = dict(extraction, cache_dir=cache_dir, preprocess=PREPROCESS, progress=True)
  seconds, kept, computed = {}, {}, {}
  for info in infos:
    start = time.perf_counter()
    new = {}
    data = features.transfer_features(model, info, evaluators.SPLITS, defer=new, **kwargs)
    evaluator.check(info, data)
    seconds[info.name] = time.perf_counter() - start
    if not cache_dir or (new and not write_cache):
      kept[info.name] = data
    computed.update(new)
  if cache_dir and write_cache:
    for path, (arrays, labels) in computed.items():
      features.write_cached(path, arrays, labels)
  del computed
  results = {}
  for info in infos:
    start = time.perf_counter()
    data = kept.pop(info.name, None) or features.transfer_features(
        model, info, evaluators.SPLITS, **kwargs)
    record = evaluator.evaluate(info, data)
    record.timings = {"features_seconds": seconds[info.name], **record.timings,
                      f"{evaluator.name}_seconds": time.perf_counter() - start}
    results[datasets.result_name(info.name)] = (record, {
        **dataset_record(info), **model_record(model, model_path, cache_dir),
        **record.to_json()})
  return results


def write_results(output_dir: str, method: str, results: Mapping[str, dict],
                  scalars: Sequence[tuple]) -> list:
  """Writes <output_dir>/<method>/<name>.json for every result (atomically) and the
  TensorBoard scalars (tag, step, value) in the order of their steps; returns the JSON paths."""
  paths = []
  for name, result in results.items():
    paths.append(os.path.join(output_dir, method, f"{name}.json"))
    io.atomic_write_json(paths[-1], result)
  writer = tf.summary.create_file_writer(os.path.join(output_dir, TENSORBOARD_SUBDIR, method))
  with writer.as_default():
    for tag, step, value in sorted(scalars, key=lambda s: s[1]):
      tf.summary.scalar(tag, float(value), step=int(step))
  writer.close()  # flushes
  return paths
