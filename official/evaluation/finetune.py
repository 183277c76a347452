"""Fine-tuning a whole pretrained network on a transfer dataset (Table 2, docs/protocol.md §5).

    from official.evaluation import finetune
    result = finetune.run("runs/demo/softmax-seed0", "demo_size", "/tmp/ft", preset="demo")
    result["test"], result["learning_rate"], result["weight_decay"]

`output_dir` holds config.json (the resolved settings; others are refused), one folder per grid
point grid/lr<lr>_wd<wd>/ (checkpoints/ while training, TensorBoard scalars, result.json),
final/lr<lr>_wd<wd>/ (the chosen setting retrained on train_full, scored on test) and
result.json. Each grid point is a task of official.training.loop: a rerun skips finished grid
points and resumes an unfinished one; a NaN/Inf loss stops a grid point, which scores 0.
"""

import dataclasses
import os
import time
from typing import Any, Callable, Mapping, Optional

import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.core import config as config_lib
from official.core import io
from official.core.config import CHECKPOINT_DIR, CONFIG_FILE
from official.data import datasets
from official.data import input_pipeline
from official.data import streams
from official.evaluation import metrics
from official.modeling import pretrained
from official.modeling import resnet
from official.training import distribute
from official.training import loop
from official.training import optimization

HEAD_NAME = "finetune_head"
RESULT_FILE = "result.json"
GRID_DIR = "grid"
FINAL_DIR = "final"
# Preset fields that do not change a result (left out of the resumption check).
BOOKKEEPING_FIELDS = ("eval_batch_size", "steps_per_loop", "log_every_steps",
                      "checkpoint_every_steps", "keep_checkpoints")


def bn_momentum(steps_per_epoch: int, epochs: float = 10.0, minimum: float = 0.9) -> float:
  """Batch-norm momentum of fine-tuning (docs/protocol.md §5): max(1 - epochs / s, minimum)."""
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch={steps_per_epoch} must be >= 1")
  return max(1.0 - epochs / steps_per_epoch, minimum)


def learning_rate_schedule(config: config_lib.FinetuneConfig, learning_rate: float):
  """lr(t): cosine decay lr * 0.5 * (1 + cos(pi * t / steps)), or the constant lr."""
  if config.schedule == "constant":
    return float(learning_rate)
  return optimization.learning_rate_schedule(learning_rate, config.steps, warmup_steps=0)


def grid_point_name(learning_rate: float, weight_decay: float) -> str:
  """Folder of a grid point, e.g. "lr0.000316228_wd1e-06" (6 significant digits)."""
  return f"lr{learning_rate:.6g}_wd{weight_decay:.6g}"


def find_pretrained(path: str) -> pretrained.ModelDir:
  """Resolves a training model_dir (or its export/saved_model, which leads back to it): the
  network every grid point rebuilds from config.json with the EMA weights of its latest
  checkpoint."""
  path = os.fspath(path)
  path = path if io.is_remote(path) else os.path.normpath(path)
  expected = f"expected a training model_dir ({CONFIG_FILE} + {CHECKPOINT_DIR}/)"
  if not io.exists(path):
    raise FileNotFoundError(f"pretrained model {path} does not exist: {expected}")
  if not io.isdir(path):
    raise ValueError(f"pretrained model {path} is not a directory: {expected}")
  model_dir = path
  if not io.exists(os.path.join(path, CONFIG_FILE)):
    if not tf.saved_model.contains_saved_model(path):
      raise ValueError(f"pretrained model {path} holds no {CONFIG_FILE}: {expected}")
    model_dir = os.path.dirname(os.path.dirname(path))  # above export/saved_model
    if not io.exists(os.path.join(model_dir, CONFIG_FILE)):
      pretrained.resolve(path, (resnet.PENULTIMATE,))
      raise ValueError(f"pretrained model {path} is a SavedModel without its training "
                       f"model_dir; fine-tuning needs trainable weights: pass a model_dir "
                       f"with config.json and {CHECKPOINT_DIR}/")
  network = pretrained.read_model_dir(model_dir)
  height, width = network.image_size
  if height != width:
    raise ValueError(f"{network.config_path}: fine-tuning needs square images, got image_size "
                     f"{[height, width]}")
  return network


def build_model(network: pretrained.ModelDir, num_classes: int, image_size: int,
                seed: int = 0) -> keras.Model:
  """Normalised images [B, S, S, 3] -> logits z [B, K]: the EMA weights up to
  `final_avg_pool`, then z = x W + b, W ~ N(0, 0.01) from `seed`, b = 0 (the released softmax
  head's initialisation). Call inside the strategy's scope."""
  source = pretrained.load_keras_model(network.model_dir, image_size=image_size,
                                      checkpoint=network.checkpoint)
  head = keras.layers.Dense(
      num_classes, name=HEAD_NAME, bias_initializer="zeros",
      kernel_initializer=keras.initializers.RandomNormal(
          mean=0.0, stddev=losses.heads.HEAD_KERNEL_STDDEV, seed=seed))
  return keras.Model(source.input, head(source.output[resnet.PENULTIMATE]), name="finetune")


@dataclasses.dataclass
class TransferData:
  """A transfer dataset (datasets.DatasetInfo) as the fine-tuning streams at side S =
  `image_size`; `counts`: split -> per-class example counts [K]."""
  info: Any
  data_dir: Optional[str]
  image_size: int
  counts: dict

  @classmethod
  def create(cls, info, data_dir: Optional[str], image_size: int) -> "TransferData":
    """Counts the labels of every split and checks that each evaluated class is trained on."""
    counts = {split: _label_counts(info, split, data_dir, info.num_classes)
              for split in ("train", "validation", "train_full", "test")}
    for evaluated, trained in (("validation", "train"), ("test", "train_full")):
      absent = np.flatnonzero((counts[evaluated] > 0) & (counts[trained] == 0))
      if absent.size:
        raise ValueError(f"dataset {info.name}: class {int(absent[0])} occurs in {evaluated} "
                         f"but not in {trained}; every evaluated class must be trained on")
    return cls(info, data_dir, image_size, counts)

  def num_examples(self, split: str) -> int:
    return int(self.counts[split].sum())

  def steps_per_epoch(self, split: str, batch_size: int) -> int:
    steps = self.num_examples(split) // batch_size
    if steps < 1:
      raise ValueError(f"finetune batch_size={batch_size} is larger than the "
                       f"{self.num_examples(split)} examples of {self.info.name}:{split}")
    return steps

  def train_dataset(self, strategy: tf.distribute.Strategy, split: str, batch_size: int,
                    seed: int, epoch: int, skip_steps: int = 0):
    """Epoch `epoch` of `split` (random crop + flip; order and augmentation a function of
    (seed, epoch)) without its first `skip_steps` global batches, distributed."""
    return streams.distributed_epoch(
        strategy, self.info, split, batch_size=batch_size, image_size=self.image_size,
        seed=seed, epoch=epoch, skip_steps=skip_steps,
        steps_per_epoch=self.steps_per_epoch(split, batch_size), preprocess="train",
        data_dir=self.data_dir)

  def eval_dataset(self, split: str, batch_size: int) -> tf.data.Dataset:
    """`split` resized to S * 256 / 224 and centre-cropped, in batches of exactly
    `batch_size`: the last one is padded with label -1 (static shapes for every strategy)."""
    ds = input_pipeline.build(
        self.info, split, training=False, batch_size=batch_size, image_size=self.image_size,
        seed=0, preprocess="finetune_eval", drop_remainder=False, repeat=False,
        data_dir=self.data_dir)

    def pad(images, labels):
      missing = batch_size - tf.shape(labels)[0]
      images = tf.pad(images, [[0, missing], [0, 0], [0, 0], [0, 0]])
      labels = tf.pad(tf.cast(labels, tf.int64), [[0, missing]], constant_values=-1)
      return (tf.ensure_shape(images, [batch_size, self.image_size, self.image_size, 3]),
              tf.ensure_shape(labels, [batch_size]))

    return ds.map(pad)


def _label_counts(info, split: str, data_dir: Optional[str], num_classes: int) -> np.ndarray:
  # Images stay encoded: only the labels are read.
  labels = datasets.load_encoded(info, split, data_dir=data_dir).map(
      lambda image, label: tf.cast(label, tf.int64),
      num_parallel_calls=tf.data.AUTOTUNE).batch(4096)
  counts = np.zeros([num_classes], np.int64)
  for batch in labels.as_numpy_iterator():
    if batch.size and (batch.min() < 0 or batch.max() >= num_classes):
      raise ValueError(f"dataset {info.name}:{split} has label {int(batch.max())} outside "
                       f"[0, {num_classes}) of its {num_classes} classes")
    counts += np.bincount(batch, minlength=num_classes)
  if not counts.sum():
    raise ValueError(f"dataset {info.name}: split {split!r} is empty")
  return counts


class FinetuneTrainer:
  """The fine-tuned model, its optimiser and the compiled steps under a strategy.

  Per replica r of R, one step minimises mean_r CE(z, y) / R (keras.losses.Loss divides by R)
  + c * 0.5 * sum ||kernel||^2 / R with c = wd / lr; the gradients are summed across replicas.
  """

  def __init__(self, network: pretrained.ModelDir, num_classes: int, image_size: int,
               config: config_lib.FinetuneConfig, learning_rate: float, weight_decay: float,
               steps_per_epoch: int, strategy: tf.distribute.Strategy):
    self.strategy = strategy
    self.config = config
    self.coefficient = float(weight_decay) / float(learning_rate)
    self.bn_momentum = bn_momentum(steps_per_epoch, config.bn_momentum_epochs,
                                   config.min_bn_momentum)
    self.loss = losses.get("softmax")
    with strategy.scope():
      self.model = build_model(network, num_classes, image_size, config.seed)
      self.schedule = learning_rate_schedule(config, learning_rate)
      self.optimizer = optimization.build_optimizer(self.schedule, config.momentum,
                                                    config.nesterov)
      self.optimizer.build(self.model.trainable_variables)
    for layer in self.model._flatten_layers(include_self=False):  # pylint: disable=protected-access
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum, layer.synchronized = self.bn_momentum, bool(config.sync_batch_norm)
    self.decayed = optimization.decayed_variables(self.model)
    self.step = self.optimizer.iterations
    self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)
    self._train_loop = tf.function(self._train_loop_fn)
    self._predict = tf.function(self._predict_fn)

  def penalty(self) -> tf.Tensor:
    """(wd / lr) * 0.5 * sum over convolution and dense kernels of ||v||^2 (float32)."""
    return optimization.weight_decay_penalty(self.decayed, self.coefficient)

  def _replica_step(self, images, labels):
    replicas = self.strategy.num_replicas_in_sync
    with tf.GradientTape() as tape:
      logits = tf.cast(self.model(images, training=True), tf.float32)
      cross_entropy = self.loss(labels, logits)
      penalty = self.penalty()
      total = cross_entropy + penalty / replicas
    variables = self.model.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return cross_entropy, penalty

  def _train_loop_fn(self, iterator, num_steps):
    loss_sum = tf.constant(0.0)
    penalty = tf.constant(0.0)
    finite = tf.constant(True)
    for _ in tf.range(num_steps):
      images, labels = next(iterator)
      cross_entropy, penalty = self.strategy.run(self._replica_step, args=(images, labels))
      cross_entropy = self.strategy.reduce(tf.distribute.ReduceOp.SUM, cross_entropy, axis=None)
      penalty = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, penalty, axis=None)
      loss_sum += cross_entropy
      finite = tf.logical_and(finite, tf.math.is_finite(cross_entropy + penalty))
    return {"loss": loss_sum / tf.cast(num_steps, tf.float32), "penalty": penalty,
            "finite": finite}

  def train_loop(self, iterator, num_steps: int) -> dict[str, Any]:
    """Runs `num_steps` steps: mean cross-entropy ("loss"), last penalty, "total_loss" (their
    sum) and whether every step was finite."""
    stats = self._train_loop(iterator, tf.constant(num_steps, tf.int64))
    stats = {k: v.numpy().item() for k, v in stats.items()}
    return dict(stats, total_loss=stats["loss"] + stats["penalty"])

  def learning_rate(self) -> float:
    return float(self.schedule(self.step)) if callable(self.schedule) else self.schedule

  def _predict_fn(self, images):
    """argmax z of a distributed batch, gathered."""
    classes = self.strategy.run(
        lambda x: tf.argmax(self.model(x, training=False), axis=-1), args=(images,))
    return self.strategy.gather(classes, axis=0)

  def evaluate(self, dataset: tf.data.Dataset, metric: str) -> float:
    """The metric ("top1" | "mean_per_class") of argmax z over a padded eval dataset."""
    predictions, labels = [], []
    for images, batch_labels in self.strategy.experimental_distribute_dataset(dataset):
      predictions.append(self._predict(images).numpy())
      labels.append(self.strategy.gather(batch_labels, axis=0).numpy())
    predictions, labels = np.concatenate(predictions), np.concatenate(labels)
    keep = labels >= 0
    return metrics.compute(metric, labels[keep], predictions[keep])


def train_and_score(network: pretrained.ModelDir, data: TransferData,
                    config: config_lib.FinetuneConfig, learning_rate: float,
                    weight_decay: float, *, train_split: str, eval_split: str, workdir: str,
                    strategy: tf.distribute.Strategy,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
  """Fine-tunes one (learning rate, weight decay) on `train_split`, scores `eval_split`.

  Resumes from <workdir>/checkpoints; the chief writes the result to <workdir>/result.json. On
  SIGTERM during the evaluation the result is written before loop.Preempted is raised.
  """
  num_workers, _, is_chief = distribute.worker_info(strategy)
  # The data order then depends on (seed, epoch) only, whatever global seed a caller set.
  loop.seed_everything(config.seed)
  spe = data.steps_per_epoch(train_split, config.batch_size)
  trainer = FinetuneTrainer(network, data.info.num_classes, data.image_size, config,
                            learning_rate, weight_decay, spe, strategy)
  runner = loop.Runner(workdir, trainer.checkpoint, trainer.step, strategy, keep_checkpoints=1,
                       hparams={"learning_rate": learning_rate, "weight_decay": weight_decay},
                       log=log, indent="    ")
  if runner.restored:
    log(f"    resuming from {runner.restored} at step {runner.step}")
  cadence = loop.Cadence(
      total_steps=config.steps, steps_per_epoch=spe, steps_per_loop=config.steps_per_loop,
      log_every_steps=config.log_every_steps,
      checkpoint_every_steps=config.checkpoint_every_steps, checkpoint_at_epoch_end=False,
      batch_size=config.batch_size)
  started = time.time()
  # SIGTERM during the evaluation: the grid point is finished first (the guard spans both).
  with loop.preemption_guard() as stop:
    progress = runner.train(
        trainer.train_loop,
        lambda epoch, skip: data.train_dataset(strategy, train_split, config.batch_size,
                                               config.seed, epoch, skip),
        trainer.learning_rate, cadence, stop_on_divergence=True)
    train_seconds = time.time() - started
    score = 0.0 if progress.diverged else trainer.evaluate(
        data.eval_dataset(eval_split, config.eval_batch_size), data.info.metric)
  runner.summaries("eval", progress.step, {f"{eval_split}_{data.info.metric}": score})
  runner.close()
  result = {
      "learning_rate": learning_rate, "weight_decay": weight_decay,
      "decay_coefficient": trainer.coefficient, "train_split": train_split,
      "eval_split": eval_split, "metric": data.info.metric, "score": float(score),
      "steps": progress.step, "steps_per_epoch": spe, "bn_momentum": trainer.bn_momentum,
      "final_loss": progress.last_loss, "diverged": progress.diverged,
      "train_seconds": train_seconds,
  }
  if is_chief:
    io.atomic_write_json(os.path.join(workdir, RESULT_FILE), result)
    if not config.keep_checkpoints:
      runner.delete_checkpoints()
  if stop.requested_on_any_worker(strategy, num_workers):
    raise loop.Preempted(f"SIGTERM: {workdir} finished and its result saved; rerun the same "
                         "command to resume")
  return result


def _settings(network: pretrained.ModelDir, dataset_spec: str, info, preset: str,
              config: config_lib.FinetuneConfig, image_size: int) -> dict[str, Any]:
  """Everything that decides the result (bookkeeping fields left out)."""
  values = {k: v for k, v in config.to_dict().items() if k not in BOOKKEEPING_FIELDS}
  values["image_size"] = image_size
  return {"model_dir": io.absolute(network.model_dir),
          "checkpoint": os.path.basename(network.checkpoint), "dataset": dataset_spec,
          "num_classes": info.num_classes, "metric": info.metric, "preset": preset,
          "finetune": values}


def _check_resumable(output_dir: str, settings: dict) -> None:
  """Refuses an output_dir whose config.json records other settings."""
  path = os.path.join(output_dir, CONFIG_FILE)
  if not io.exists(path):
    return
  diffs = config_lib.differences(io.read_json(path), settings, ignore=())
  if diffs:
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:4])
    raise ValueError(f"{output_dir} holds fine-tuning results with other settings ({shown}); "
                     "use another output directory")


def _read_result(workdir: str, learning_rate: float, weight_decay: float) -> Optional[dict]:
  """The finished grid point's result.json, or None when it has none yet."""
  path = os.path.join(workdir, RESULT_FILE)
  if not io.exists(path):
    return None
  result = io.read_json(path)
  if (result.get("learning_rate"), result.get("weight_decay")) != (learning_rate, weight_decay):
    raise ValueError(f"{path} holds lr {result.get('learning_rate')} wd "
                     f"{result.get('weight_decay')}, not lr {learning_rate} wd {weight_decay}; "
                     "grid values must differ in their first 6 significant digits")
  return result


def run(model_path: str, dataset_spec: str, output_dir: str, *, preset: str = "demo",
        data_dir: Optional[str] = None, strategy: Optional[tf.distribute.Strategy] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
  """Fine-tuning accuracy of one pretrained network on one dataset (paper Table 2).

  `model_path`: a training model_dir (or its export/saved_model); `overrides`: FinetuneConfig
  fields to replace (config.override). Returns the chosen "learning_rate" / "weight_decay", its
  "validation" score, every grid point's in "validation_scores" and the retrained "test" score.
  """
  strategy = strategy or tf.distribute.get_strategy()
  config = config_lib.override(config_lib.get_preset("finetune", preset), overrides)
  network = find_pretrained(model_path)
  info = datasets.get(dataset_spec, data_dir=data_dir)
  image_size = config.image_size or network.image_size[0]
  data = TransferData.create(info, data_dir, image_size)
  for split in ("train", "train_full"):
    data.steps_per_epoch(split, config.batch_size)
  settings = _settings(network, dataset_spec, info, preset, config, image_size)
  _check_resumable(output_dir, settings)
  num_workers, _, is_chief = distribute.worker_info(strategy)
  if is_chief:
    io.atomic_write_json(os.path.join(output_dir, CONFIG_FILE), settings)

  # SIGTERM from the first line on: the grid point being trained saves a checkpoint and
  # Preempted is raised (train_and_score).
  with loop.preemption_guard() as stop:
    grid = config.grid()
    log(f"fine-tuning {network.model_dir} on {dataset_spec} ({data.num_examples('train')} train "
        f"/ {data.num_examples('validation')} validation / {data.num_examples('test')} test, "
        f"{info.num_classes} classes, {info.metric}): {len(grid)} grid points x {config.steps} "
        f"steps at batch {config.batch_size} over {strategy.num_replicas_in_sync} replica(s) "
        f"-> {output_dir}")
    scores, grid_seconds = [], 0.0
    for index, (lr, wd) in enumerate(grid, 1):
      workdir = os.path.join(output_dir, GRID_DIR, grid_point_name(lr, wd))
      result = _read_result(workdir, lr, wd)
      label = f"grid {index}/{len(grid)}  lr {lr:.3g}  wd {wd:.3g}"
      if result is None:
        result = train_and_score(network, data, config, lr, wd, train_split="train",
                                 eval_split="validation", workdir=workdir, strategy=strategy,
                                 log=log)
        log(f"{label}: validation {info.metric} {result['score']:.4f}"
            f"{'  (diverged)' if result['diverged'] else ''}  ({result['train_seconds']:.1f} s)")
      else:
        log(f"{label}: validation {info.metric} {result['score']:.4f}  (done before)")
      grid_seconds += result["train_seconds"]
      scores.append({"learning_rate": lr, "weight_decay": wd, "score": result["score"],
                     "diverged": result["diverged"]})

    # Ties go to the first grid point in grid order.
    best = max(range(len(scores)), key=lambda i: (scores[i]["score"], -i))
    lr, wd = scores[best]["learning_rate"], scores[best]["weight_decay"]
    workdir = os.path.join(output_dir, FINAL_DIR, grid_point_name(lr, wd))
    final = _read_result(workdir, lr, wd)
    if final is None:
      log(f"retraining lr {lr:.3g} wd {wd:.3g} on train_full")
      final = train_and_score(network, data, config, lr, wd, train_split="train_full",
                              eval_split="test", workdir=workdir, strategy=strategy, log=log)
    log(f"{dataset_spec}: chosen lr {lr:.3g} wd {wd:.3g} (validation {info.metric} "
        f"{scores[best]['score']:.4f}), test {info.metric} {final['score']:.4f}")
    result = {
        "dataset": dataset_spec, "metric": info.metric, "learning_rate": lr,
        "weight_decay": wd, "validation": scores[best]["score"], "validation_scores": scores,
        "test": final["score"], "test_diverged": final["diverged"], "steps": config.steps,
        "batch_size": config.batch_size, "bn_momentum": final["bn_momentum"],
        "num_classes": info.num_classes, "num_train": data.num_examples("train"),
        "num_validation": data.num_examples("validation"),
        "num_train_full": data.num_examples("train_full"),
        "num_test": data.num_examples("test"), "image_size": image_size, "preset": preset,
        "config": config.to_dict(),
        "timings": {"grid_seconds": grid_seconds, "final_seconds": final["train_seconds"]},
    }
    if is_chief:
      io.atomic_write_json(os.path.join(output_dir, RESULT_FILE), result)
    if stop.requested_on_any_worker(strategy, num_workers):
      raise loop.Preempted(f"SIGTERM: {output_dir} finished and its result saved; "
                                  "rerun the same command to resume")
  return result
