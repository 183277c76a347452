"""Activations of a pretrained network on a dataset, streamed in batches and cached on disk.

Transfer with fixed features (docs/protocol.md §4) reads `final_avg_pool`. Arrays are cached
under `cache_dir` (any tf.io.gfile path), one `.npz` per model fingerprint, dataset, split,
endpoints and preprocessing, written atomically: the one feature cache of the study and of
the transfer binaries (<model_dir>/transfer/features).
"""

import hashlib
import io as _io
import json
import os
import sys
from typing import Iterator, Optional, Sequence

import numpy as np
import tensorflow as tf
import tqdm

from official.core import io
from official.data import datasets
from official.data import input_pipeline
from official.evaluation import inputs
from official.modeling import pretrained
from official.modeling import resnet

PENULTIMATE = resnet.PENULTIMATE
# Fixed-feature transfer of a training folder writes under <model_dir>/transfer, and caches
# its features in <model_dir>/transfer/features (shared by the study and the binaries).
TRANSFER_SUBDIR = "transfer"
CACHE_SUBDIR = "features"


def default_cache_dir(model_dir: str) -> str:
  """The feature cache of a training folder: <model_dir>/transfer/features."""
  return os.path.join(model_dir, TRANSFER_SUBDIR, CACHE_SUBDIR)


def _model_path(model) -> str:
  """Where a loaded model came from (`EndpointModel.path`)."""
  return str(getattr(model, "path", None) or getattr(model, "source", None) or "")


def model_fingerprint(model) -> str:
  """Identifies a loaded model by where it came from and the files that define the network: a
  SavedModel's, or a training folder's `config.json`, `checkpoints/` and `export/`."""
  source = io.absolute(_model_path(model))
  parts = [source]
  if io.isdir(source):
    saved_model = io.exists(io.join(source, "saved_model.pb"))
    for name in [""] if saved_model else ["config.json", "checkpoints", "export"]:
      root = io.join(source, name) if name else source
      if io.isdir(root):
        files = [f"{name}/{relative}" if name else relative for relative in io.walk_files(root)]
      else:
        files = [name] if io.exists(root) else []
      for relative in files:
        stat = io.stat(io.join(source, *relative.split("/")))
        parts.append(f"{relative}:{stat.size}:{stat.mtime_ns}")
  return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


def iterate(model, info, split: str, *, endpoints: Sequence[str] = (PENULTIMATE,),
            batch_size: int = 256, data_dir: Optional[str] = None,
            preprocess: str = "transfer", max_examples: Optional[int] = None,
            strategy: Optional[tf.distribute.Strategy] = None,
            progress: bool = True) -> Iterator[tuple[dict, np.ndarray]]:
  """Yields `({endpoint: array [b, ...]}, labels [b])` of an EndpointModel batch by batch,
  in dataset order: the first `max_examples` of `split`, preprocessed by `preprocess`, in
  global batches spread over the replicas of `strategy`; `progress`: a bar on stderr."""
  missing = [e for e in endpoints if e not in model.endpoint_names]
  if missing:
    raise ValueError(f"model {_model_path(model)!r} has no endpoint(s) "
                     f"{', '.join(missing)}; it has: {', '.join(model.endpoint_names)}")
  image_size = model.input_size[0]
  dataset = input_pipeline.build(
      info, split, training=False, batch_size=batch_size, image_size=image_size, seed=0,
      data_dir=data_dir, preprocess=preprocess, drop_remainder=False, repeat=False)
  if max_examples is not None:
    dataset = dataset.unbatch().take(max_examples).batch(batch_size)
  wanted = tuple(endpoints)

  def forward(images):
    outputs = model(images)
    return {name: outputs[name] for name in wanted}

  if strategy is not None and strategy.num_replicas_in_sync > 1:
    distributed = strategy.experimental_distribute_dataset(dataset)

    @tf.function
    def step(images):
      per_replica = strategy.run(forward, args=(images,))
      return {k: strategy.gather(v, axis=0) for k, v in per_replica.items()}

    stream = ((step(images), strategy.gather(labels, axis=0))
              for images, labels in distributed)
  else:
    # One traced function per model and endpoint set, reused by later calls on the model.
    cache = model.__dict__.setdefault("_feature_functions", {})
    if wanted not in cache:
      cache[wanted] = tf.function(forward, reduce_retracing=True)
    step = cache[wanted]
    stream = ((step(images), labels) for images, labels in dataset)

  try:
    total = datasets.num_examples(info, split, data_dir=data_dir)
  except (AttributeError, ValueError, KeyError):
    total = None
  if max_examples is not None and total is not None:
    total = min(total, max_examples)
  with tqdm.tqdm(total=total, unit="img", desc=f"{info.name}:{split}", leave=False,
                 disable=not progress or not sys.stderr.isatty(), file=sys.stderr) as bar:
    for outputs, labels in stream:
      labels = np.asarray(labels)
      bar.update(len(labels))
      yield {k: np.asarray(v) for k, v in outputs.items()}, labels


def cache_path(cache_dir: str, model, info, split: str, *,
               endpoints: Sequence[str] = (PENULTIMATE,), **kwargs) -> str:
  """<cache_dir>/<dataset>-<split>-<key>.npz, the key a hash of everything the activations
  depend on (`kwargs` as for `iterate`)."""
  description = {
      "model": model_fingerprint(model), "dataset": info.name,
      "classes": getattr(info, "classes", None), "split": split,
      "split_spec": info.split(split) if hasattr(info, "split") else None,
      "data_dir": io.absolute(kwargs["data_dir"]) if kwargs.get("data_dir")
                  else None,
      "endpoints": list(endpoints), "preprocess": kwargs.get("preprocess", "transfer"),
      "max_examples": kwargs.get("max_examples"), "image_size": list(model.input_size)}
  if getattr(info, "content_hash", None):
    # An image folder: its files (and so its class names) are part of what is cached.
    description["content_hash"] = info.content_hash
  key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]
  return os.path.join(cache_dir, f"{info.name.replace('/', '_').replace(':', '_')}"
                                 f"-{split}-{key}.npz")


def read_cached(path: str, endpoints: Sequence[str]) -> Optional[tuple[dict, np.ndarray]]:
  """`({endpoint: array}, labels)` of a cache file, None when there is none."""
  if not io.exists(path):
    return None
  with tf.io.gfile.GFile(path, "rb") as f, np.load(_io.BytesIO(f.read())) as cached:
    return {e: cached[e] for e in endpoints}, cached["labels"]


def write_cached(path: str, arrays: dict, labels: np.ndarray) -> None:
  """Writes a cache file atomically (a reader sees the whole file or none)."""
  buffer = _io.BytesIO()
  np.savez(buffer, labels=labels, **arrays)
  io.atomic_write_bytes(path, buffer.getvalue())


def extract(model, info, split: str, *, endpoints: Sequence[str] = (PENULTIMATE,),
            cache_dir: Optional[str] = None, defer: Optional[dict] = None,
            **kwargs) -> tuple[dict, np.ndarray]:
  """All activations of `endpoints` on a split: `({endpoint: [n, ...]}, labels [n])`.

  With `cache_dir`, read from and written to `cache_path`; with `defer` as well, computed
  arrays are added to it as path -> (arrays, labels) for the caller to write once checked.
  """
  path = cache_path(cache_dir, model, info, split, endpoints=endpoints,
                    **kwargs) if cache_dir else None
  cached = read_cached(path, endpoints) if path else None
  if cached is not None:
    return cached
  chunks = {e: [] for e in endpoints}
  labels = []
  for outputs, batch_labels in iterate(model, info, split, endpoints=endpoints, **kwargs):
    for e in endpoints:
      chunks[e].append(outputs[e])
    labels.append(batch_labels)
  if not labels:
    raise ValueError(f"dataset {info.name!r} split {split!r} is empty")
  arrays = {e: np.concatenate(v) for e, v in chunks.items()}
  labels = np.concatenate(labels).astype(np.int64)
  if path and defer is not None:
    defer[path] = (arrays, labels)
  elif path:
    write_cached(path, arrays, labels)
  return arrays, labels


def transfer_features(model, info, splits: Sequence[str], **kwargs) -> dict:
  """split -> (x [n, D], labels [n]) from `extract` (same keyword arguments), checked:
  finite, one feature size, one label per row (else ValueError)."""
  out = {}
  for split in splits:
    arrays, labels = extract(model, info, split, endpoints=(PENULTIMATE,), **kwargs)
    where = f"{info.name}:{split}"
    x = inputs.check_features(arrays[PENULTIMATE], f"{where} features",
                              next(iter(out.values()))[0].shape[1] if out else None)
    out[split] = (x, inputs.check_labels(labels, f"{where} labels", x.shape[0],
                                         f"{where} features"))
  return out
