"""Representation analysis of several networks on one dataset (paper §3.2-3.3, Figures 2-4).

`analyze` makes one pass over a split in which every network sees the same batches and
accumulates sparsity (Figure 3), class separation R^2 (eq. 11; Figure 4, Table 3) and
minibatch CKA (eq. 10, Figure 2) of every endpoint, as docs/protocol.md §6 says; with
`passes` > 1 CKA goes on over further passes in seeded random orders (the paper's 10).

All CKA values come from one `MinibatchCKA` over the L = n_models * n_endpoints layers; the
per-pair blocks are slices of its [L, L] matrix. Minibatches of fewer than 4 examples (the
estimator's minimum) only count towards sparsity and class separation.

`figures` renders Figures 2a, 2b, 3 and 4 from the result, `write_summaries` TensorBoard.
"""

import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from official.analysis import class_separation as class_separation_lib
from official.analysis import cka as cka_lib
from official.analysis import plots
from official.analysis import sparsity as sparsity_lib
from official.data import datasets
from official.data import preprocessing
from official.evaluation import features
from official.modeling import resnet

# Class scores, not representations: left out of the analysis by default.
EXCLUDED_ENDPOINTS = resnet.CLASS_ENDPOINTS
PAIR_SEPARATOR = "|"
# What `endpoint_statistics` computes per endpoint.
METRICS = ("sparsity", "class_separation")
# Figure 2b shows this many of the last endpoints by default.
CORRESPONDING_ENDPOINTS = 4


def pair_key(model_a: str, model_b: str) -> str:
  """Key of the CKA block of two networks in the result: "<model_a>|<model_b>"."""
  return f"{model_a}{PAIR_SEPARATOR}{model_b}"


def common_endpoints(models: Mapping[str, Any]) -> list[str]:
  """Endpoints every network has, in the first network's order, without final_layer/outputs."""
  models = _check_models(models)
  first = next(iter(models.values()))
  shared = set.intersection(*(set(m.endpoint_names) for m in models.values()))
  return [e for e in first.endpoint_names if e in shared and e not in EXCLUDED_ENDPOINTS]


def _check_models(models: Mapping[str, Any]) -> Mapping[str, Any]:
  if not isinstance(models, Mapping) or not models:
    raise ValueError(f"models: got {type(models).__name__}; expected a non-empty mapping "
                     "name -> EndpointModel")
  for name, model in models.items():
    if not isinstance(name, str) or not name or PAIR_SEPARATOR in name:
      raise ValueError(f"models: name {name!r} is not valid; expected a non-empty string "
                       f"without {PAIR_SEPARATOR!r}")
    if not hasattr(model, "endpoint_names") or not hasattr(model, "input_size"):
      raise ValueError(f"models[{name!r}]: a {type(model).__name__} has no endpoint_names / "
                       "input_size; expected an official.modeling.pretrained.EndpointModel")
  return models


def _check_endpoints(models: Mapping[str, Any], endpoints: Optional[Sequence[str]]) -> list[str]:
  if endpoints is None:
    chosen = common_endpoints(models)
    if not chosen:
      listing = "; ".join(f"{n}: {', '.join(m.endpoint_names)}" for n, m in models.items())
      raise ValueError(f"models: have no endpoint in common besides final_layer/outputs "
                       f"({listing}); expected networks with shared named endpoints")
    return chosen
  if isinstance(endpoints, str) or not endpoints:
    raise ValueError(f"endpoints: got {endpoints!r}; expected a non-empty list of endpoint "
                     "names (or None for all shared endpoints)")
  chosen = list(endpoints)
  if len(set(chosen)) != len(chosen):
    raise ValueError(f"endpoints: {chosen} repeats a name; expected each endpoint once")
  for name, model in models.items():
    missing = [e for e in chosen if e not in model.endpoint_names]
    if missing:
      raise ValueError(f"endpoints: model {name!r} has no endpoint {missing[0]!r}; its "
                       f"endpoints: {', '.join(model.endpoint_names)}")
  return chosen


class _SameBatches:
  """All networks as one function images -> {"<i>/<endpoint>": activations}, so
  features.iterate feeds every network the same batches in one pass."""

  def __init__(self, models: Sequence[Any], endpoints: Sequence[str]):
    self._models = list(models)
    self._endpoints = list(endpoints)
    self.input_size = tuple(self._models[0].input_size)
    self.path = ", ".join(str(getattr(m, "path", "")) for m in self._models)
    self.endpoint_names = [self.key(i, e) for i in range(len(self._models))
                           for e in self._endpoints]

  @staticmethod
  def key(model_index: int, endpoint: str) -> str:
    return f"{model_index}/{endpoint}"

  def __call__(self, images, endpoints: Optional[Sequence[str]] = None) -> dict:
    del endpoints  # Always every endpoint of every network.
    outputs = {}
    for i, model in enumerate(self._models):
      for endpoint, value in model(images, endpoints=self._endpoints).items():
        outputs[self.key(i, endpoint)] = value
    return outputs


class _EndpointStatistics:
  """Streaming sparsity (Figure 3) and class separation R^2 (eq. 11; Figure 4, Table 3) of
  the endpoints of one network, fed batch by batch."""

  def __init__(self, endpoints: Sequence[str], num_classes: int, distance: str,
               metrics: Sequence[str] = METRICS):
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
      raise ValueError(f"metrics: {unknown[0]!r} is not computed per endpoint; valid are "
                       f"{', '.join(METRICS)}")
    self._endpoints = list(endpoints)
    self._nonzero = sparsity_lib.Sparsity() if "sparsity" in metrics else None
    self._separation = (
        {e: class_separation_lib.ClassSeparation(num_classes, distance=distance)
         for e in endpoints} if "class_separation" in metrics else None)

  def update(self, activations: Mapping[str, np.ndarray], labels: np.ndarray) -> None:
    if self._nonzero is not None:
      self._nonzero.update_state(activations)
    for e, separation in (self._separation or {}).items():
      separation.update_state(activations[e], labels)

  def result(self) -> dict:
    out = {}
    if self._nonzero is not None:
      fractions = self._nonzero.result()
      out["sparsity"] = {e: _finite_or_none(fractions[e]) for e in self._endpoints}
    if self._separation is not None:
      out["class_separation"] = {e: _finite_or_none(self._separation[e].result())
                                 for e in self._endpoints}
    return out


def endpoint_statistics(model, info, split: str, endpoints: Sequence[str], *,
                        metrics: Sequence[str] = METRICS, batch_size: int = 256,
                        max_examples: Optional[int] = None, data_dir: Optional[str] = None,
                        distance: str = "cosine", preprocess: str = "eval",
                        strategy: Optional[tf.distribute.Strategy] = None,
                        progress: bool = False) -> dict:
  """metric -> {endpoint: value} (None where undefined) of one network in one pass."""
  statistics = _EndpointStatistics(endpoints, info.num_classes, distance, metrics)
  for outputs, labels in features.iterate(
      model, info, split, endpoints=endpoints, batch_size=batch_size, data_dir=data_dir,
      preprocess=preprocess, max_examples=max_examples, strategy=strategy, progress=progress):
    labels = np.asarray(labels).astype(np.int64)
    if labels.size:
      statistics.update(outputs, labels)
  return statistics.result()


def _finite_or_none(value: float) -> Optional[float]:
  value = float(value)
  return value if math.isfinite(value) else None


def pass_order(num_examples: int, seed: int, pass_index: int) -> np.ndarray:
  """The order of CKA pass `pass_index`: stored for pass 0, else seeded by (seed, pass)."""
  if pass_index == 0:
    return np.arange(num_examples)
  return np.random.default_rng([int(seed), int(pass_index)]).permutation(num_examples)


def _reordered_batches(joint: "_SameBatches", order: np.ndarray, *, source: list,
                       element_spec, batch_size: int, preprocess: str) -> Any:
  """All networks' activations on `source[i]` for i in `order`: `source` holds the encoded
  examples in memory, so a pass reads no data again; preprocessed as input_pipeline.build."""
  image_size = joint.input_size[0]

  def generate():
    for i in order:
      yield source[i]

  @tf.autograph.experimental.do_not_convert
  def process(image, label):
    return preprocessing.preprocess(datasets.decode(image), image_size, preprocess), label

  stream = tf.data.Dataset.from_generator(generate, output_signature=element_spec)
  stream = stream.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(batch_size).prefetch(tf.data.AUTOTUNE)
  forward = tf.function(joint.__call__, reduce_retracing=True)
  for images, labels in stream:
    yield {k: np.asarray(v) for k, v in forward(images).items()}, np.asarray(labels)


def analyze(models: Mapping[str, Any], info, split: str, *,
            endpoints: Optional[Sequence[str]] = None, batch_size: int = 256,
            max_examples: Optional[int] = None, data_dir: Optional[str] = None,
            distance: str = "cosine", preprocess: str = "eval",
            strategy: Optional[tf.distribute.Strategy] = None,
            progress: bool = True, passes: int = 1, shuffle_seed: int = 0) -> dict:
  """Sparsity, class separation and all-pairs minibatch CKA of networks on one split.

  `models`: name -> official.modeling.pretrained.EndpointModel in display order, all of one
  input size; `batch_size` is also the CKA minibatch (the paper: 1500). Pass p of `passes`
  visits the examples in pass_order(examples, shuffle_seed, p); only pass 0 counts towards
  sparsity and class separation. Returns a JSON-ready dict (None where undefined) of the
  settings, "shapes", "sparsity" and "class_separation" ({model: {endpoint: value}}) and "cka"
  ({"A|B": [E][E] CKA of A's endpoint i and B's endpoint j} for every ordered pair).
  """
  models = _check_models(models)
  names = list(models)
  chosen = _check_endpoints(models, endpoints)
  sizes = {name: tuple(m.input_size) for name, m in models.items()}
  if len(set(sizes.values())) > 1:
    listing = ", ".join(f"{n}: {s}" for n, s in sizes.items())
    raise ValueError(f"models: take different input sizes ({listing}); expected networks fed "
                     "the same images")
  if info.num_classes < 2:
    raise ValueError(f"info: dataset {info.name!r} has {info.num_classes} class; class "
                     "separation needs a dataset with at least 2 classes")
  if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size: got {batch_size!r}; expected a positive integer")
  if batch_size < cka_lib.MIN_EXAMPLES_UNBIASED:
    raise ValueError(f"batch_size: got {batch_size}; minibatch CKA needs at least "
                     f"{cka_lib.MIN_EXAMPLES_UNBIASED} examples per batch")
  if max_examples is not None and (
      isinstance(max_examples, bool) or int(max_examples) != max_examples or
      max_examples < cka_lib.MIN_EXAMPLES_UNBIASED):
    raise ValueError(f"max_examples: got {max_examples!r}; expected None or an integer >= "
                     f"{cka_lib.MIN_EXAMPLES_UNBIASED}")
  if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 1:
    raise ValueError(f"passes: got {passes!r}; expected a positive integer (the paper: 10)")
  info.split(split)  # Raises on an unknown split name.

  joint = _SameBatches([models[n] for n in names], chosen)
  layers = joint.endpoint_names  # Network-major: network i's endpoints are layers i*E..i*E+E-1.
  # Batches arrive gathered on the host, so the accumulators live outside any strategy.
  minibatch_cka = cka_lib.MinibatchCKA(len(layers), 0)
  statistics = {n: _EndpointStatistics(chosen, info.num_classes, distance) for n in names}
  shapes = None
  examples = minibatches = 0

  def add_to_cka(outputs, labels) -> None:
    nonlocal minibatches
    if labels.size >= cka_lib.MIN_EXAMPLES_UNBIASED:
      minibatch_cka.update_state([outputs[k] for k in layers])
      minibatches += 1

  for outputs, labels in features.iterate(
      joint, info, split, endpoints=layers, batch_size=int(batch_size), data_dir=data_dir,
      preprocess=preprocess, max_examples=max_examples, strategy=strategy, progress=progress):
    labels = np.asarray(labels).astype(np.int64)
    if labels.size == 0:
      continue
    examples += labels.size
    for i, name in enumerate(names):
      statistics[name].update({e: outputs[joint.key(i, e)] for e in chosen}, labels)
    if shapes is None:
      shapes = {n: {e: list(outputs[joint.key(i, e)].shape[1:]) for e in chosen}
                for i, n in enumerate(names)}
    add_to_cka(outputs, labels)
  if minibatches == 0:
    raise ValueError(f"split: {info.name!r} {split!r} gave {examples} example(s); minibatch "
                     f"CKA needs a batch of at least {cka_lib.MIN_EXAMPLES_UNBIASED}")
  if passes > 1:
    encoded = datasets.load_encoded(info, split, data_dir=data_dir).take(examples)
    source = list(encoded.as_numpy_iterator())
    for pass_index in range(1, int(passes)):
      for outputs, labels in _reordered_batches(
          joint, pass_order(examples, shuffle_seed, pass_index), source=source,
          element_spec=encoded.element_spec, batch_size=int(batch_size),
          preprocess=preprocess):
        add_to_cka(outputs, labels)

  all_pairs, _ = minibatch_cka.within_network_results()
  size = len(chosen)
  cka = {}
  for i, a in enumerate(names):
    for j, b in enumerate(names):
      block = all_pairs[i * size:(i + 1) * size, j * size:(j + 1) * size]
      cka[pair_key(a, b)] = [[_finite_or_none(v) for v in row] for row in block]
  return {
      "models": names,
      "model_paths": {n: str(getattr(models[n], "path", "")) for n in names},
      "endpoints": chosen,
      "dataset": info.name,
      "split": split,
      "num_classes": int(info.num_classes),
      "examples": int(examples),
      "minibatches": int(minibatches),
      "passes": int(passes),
      "shuffle_seed": int(shuffle_seed),
      "batch_size": int(batch_size),
      "distance": distance,
      "preprocess": preprocess,
      "shapes": shapes,
      "sparsity": {n: statistics[n].result()["sparsity"] for n in names},
      "class_separation": {n: statistics[n].result()["class_separation"] for n in names},
      "cka": cka,
  }


def corresponding_cka(result: Mapping[str, Any], endpoint: str) -> np.ndarray:
  """[M, M] CKA between `endpoint` of network a and of network b (Figure 2b), NaN for None."""
  names = result["models"]
  index = result["endpoints"].index(endpoint)
  # None (undefined) becomes NaN in a float array.
  return np.array([[result["cka"][pair_key(a, b)][index][index] for b in names]
                   for a in names], dtype=float)


def _file_names(names: Sequence[str]) -> dict[str, str]:
  """Distinct file-name-safe spellings of the network names."""
  out, used = {}, set()
  for i, name in enumerate(names):
    candidate = datasets.result_name(name)
    if candidate in used:
      candidate = f"{candidate}-{i}"
    used.add(candidate)
    out[name] = candidate
  return out


def figures(result: Mapping[str, Any], *,
            corresponding_endpoints: Optional[Sequence[str]] = None,
            dpi: int = 100) -> dict[str, bytes]:
  """PNG figures of an `analyze` result, file name -> bytes: fig2a_cka_<A>_vs_<B>.png per
  pair of networks, fig2b_cka_corresponding.png (the last CORRESPONDING_ENDPOINTS endpoints
  by default; two or more networks), fig3_sparsity.png and fig4_class_separation.png.
  """
  names = list(result["models"])
  endpoints = list(result["endpoints"])
  files = _file_names(names)
  out = {}
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      out[f"fig2a_cka_{files[a]}_vs_{files[b]}.png"] = plots.cka_heatmap(
          result["cka"][pair_key(a, b)], row_labels=endpoints, column_labels=endpoints,
          row_title=a, column_title=b, title=f"CKA on {result['dataset']} ({result['split']})",
          dpi=dpi)
  if len(names) > 1:
    chosen = (endpoints[-CORRESPONDING_ENDPOINTS:] if corresponding_endpoints is None
              else list(corresponding_endpoints))
    unknown = [e for e in chosen if e not in endpoints]
    if unknown or not chosen:
      raise ValueError(f"corresponding_endpoints: {unknown[0] if unknown else chosen!r} is "
                       f"not an analysed endpoint; expected some of {', '.join(endpoints)}")
    out["fig2b_cka_corresponding.png"] = plots.corresponding_cka_heatmaps(
        {e: corresponding_cka(result, e) for e in chosen}, names,
        title="CKA between corresponding endpoints", dpi=dpi)
  shapes = (result.get("shapes") or {}).get(names[0])
  boundaries = plots.stage_boundaries([shapes[e] for e in endpoints]) if shapes else []
  out["fig3_sparsity.png"] = plots.sparsity_plot(
      result["sparsity"], endpoints, stage_boundaries=boundaries,
      title=f"Sparsity on {result['dataset']} ({result['split']})", dpi=dpi)
  out["fig4_class_separation.png"] = plots.class_separation_plot(
      result["class_separation"], endpoints, stage_boundaries=boundaries,
      title=f"Class separation ({result['distance']}) on {result['dataset']} "
            f"({result['split']})", dpi=dpi)
  return out


def write_summaries(result: Mapping[str, Any], logdir: str,
                    images: Optional[Mapping[str, bytes]] = None) -> None:
  """TensorBoard summaries of an `analyze` result: scalars "<metric>/<model>" with the
  endpoint index as the step (reading as Figures 3-4), a text "endpoints" naming the steps,
  and each PNG of `images` as "figures/<file stem>".
  """
  names = list(result["models"])
  endpoints = list(result["endpoints"])
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    table = "| step | endpoint |\n|---|---|\n" + "\n".join(
        f"| {i} | {e} |" for i, e in enumerate(endpoints))
    tf.summary.text("endpoints", table, step=0)
    for metric in ("sparsity", "class_separation"):
      for name in names:
        for step, endpoint in enumerate(endpoints):
          value = result[metric][name][endpoint]
          if value is not None:
            tf.summary.scalar(f"{metric}/{datasets.result_name(name)}", value, step=step)
    for file_name, png in (images or {}).items():
      stem = file_name[:-4] if file_name.endswith(".png") else file_name
      image = tf.io.decode_png(png, channels=4)[tf.newaxis]
      tf.summary.image(f"figures/{datasets.result_name(stem)}", image, step=0)
  writer.close()  # flushes
