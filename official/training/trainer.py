"""Pretraining (docs/protocol.md §3) as a task of official.training.loop: one objective, one
seed, one model directory.

    metrics = trainer.train(config.get_experiment("demo"), "/tmp/run", strategy=None)

Each of R replicas minimises its share of the global-batch loss (objective loss and
model.losses divided by R) and adds its share c * v / R of the weight-decay gradient directly,
so the summed gradient does not depend on R. Evaluation, the class separation R^2 and the
export use the weights' exponential moving average (EMA).

The model directory holds config.json (a different config refuses to resume),
checkpoints/ckpt-N (every `checkpoint_every_steps`, at every epoch end and on SIGTERM), train/
and eval/ TensorBoard scalars with the run's HParams, export/saved_model and metrics.json.
With `train.select_best_epoch` the best evaluated epoch's EMA weights are exported (early
stopping, docs/protocol.md §3). With `train.deterministic` a resumed run ends with exactly the
metrics of an uninterrupted one.
"""

import contextlib
import dataclasses
import os
from typing import Any, Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.analysis import class_separation
from official.core import config as config_lib
from official.core import io
from official.core.config import CONFIG_FILE, EXPORT_DIR, METRICS_FILE
from official.data import streams
from official.modeling import pretrained
from official.modeling import resnet
from official.training import distribute
from official.training import loop
from official.training import optimization

# The trainer's errors, raised by the loop.
TrainingDiverged = loop.TrainingDiverged
Preempted = loop.Preempted
# Layers after the penultimate features; they run in float32 under mixed precision so the
# head output z and the loss keep full precision.
FLOAT32_LAYERS = ("penultimate_dropout", "final_layer", "outputs")


@contextlib.contextmanager
def _global_dtype_policy(name: str):
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def build_model(config: config_lib.ExperimentConfig, objective: losses.Objective,
                name: str = "resnet", mixed_precision: Optional[bool] = None) -> keras.Model:
  """The ResNet of `config.model` with the objective's head, returning the endpoint dict.

  Under mixed precision ("mixed_bfloat16") the penultimate transform, the head and the output
  transform compute in float32. With `train.sync_batch_norm` every batch norm uses the
  statistics of the global batch (keras BatchNormalization(synchronized=True)).
  """
  mixed = config.train.mixed_precision if mixed_precision is None else mixed_precision
  size = config.model.image_size
  with _global_dtype_policy("mixed_bfloat16" if mixed else "float32"):
    model = resnet.build_model(config.model, config.model.num_classes, objective,
                               input_shape=(size, size, 3), name=name)
  for layer in model.layers:
    if mixed and layer.name in FLOAT32_LAYERS:
      layer.dtype_policy = "float32"
    if config.train.sync_batch_norm and isinstance(layer, keras.layers.BatchNormalization):
      layer.synchronized = True
  return model


class Trainer:
  """Model, EMA model, optimiser and the compiled train/eval steps under a strategy.

  With `train.select_best_epoch` also `best_model`, the EMA weights of the best evaluated epoch
  so far, and `eval_top1`, the evaluation top-1 of every epoch (-1: not evaluated).
  """

  def __init__(self, config: config_lib.ExperimentConfig, strategy: tf.distribute.Strategy,
               steps_per_epoch: int):
    self.config = config
    self.strategy = strategy
    train = config.train
    self.steps_per_epoch = int(steps_per_epoch)
    # An early-stopped run (stop_after_epochs) ends inside the schedule of `epochs` epochs.
    self.total_steps = self.steps_per_epoch * (train.stop_after_epochs or train.epochs)
    self.warmup_steps = int(round(train.warmup_epochs * self.steps_per_epoch))
    self.objective = losses.get_objective(config.objective.name, **config.objective.hparams)
    self.num_classes = config.model.num_classes
    with strategy.scope():
      self.model = build_model(config, self.objective, name="resnet")
      self.ema_model = build_model(config, self.objective, name="resnet_ema")
      self.schedule = optimization.learning_rate_schedule(
          train.peak_learning_rate, self.steps_per_epoch * train.epochs, self.warmup_steps)
      self.optimizer = optimization.build_optimizer(self.schedule, train.momentum,
                                                    train.nesterov)
      self.optimizer.build(self.model.trainable_variables)
    self.step = self.optimizer.iterations
    self.decayed = optimization.decayed_variables(self.model)
    decayed_ids = {id(v) for v in self.decayed}
    self._is_decayed = [id(v) in decayed_ids for v in self.model.trainable_variables]
    optimization.copy_weights(strategy, self.ema_model.weights, self.model.weights)
    tracked = dict(model=self.model, ema_model=self.ema_model, optimizer=self.optimizer,
                   step=self.step)
    if train.select_best_epoch:
      # Checkpointed, so that a resumed run selects the same epoch.
      with strategy.scope():
        self.best_model = build_model(config, self.objective, name="resnet_best")
      optimization.copy_weights(strategy, self.best_model.weights, self.ema_model.weights)
      self.eval_top1 = tf.Variable(tf.fill([train.epochs], -1.0), trainable=False)
      tracked.update(best_model=self.best_model, eval_top1=self.eval_top1)
    self.checkpoint = tf.train.Checkpoint(**tracked)
    self._compiled_gradients = (tf.function(self._gradients, jit_compile=True)
                                if train.jit_compile else self._gradients)
    self._train_loop = tf.function(self._train_loop_fn)
    self._eval_step = tf.function(self._eval_step_fn)
    self._finite = tf.function(self._finite_fn)

  # Training.

  def _gradients(self, images, labels):
    """Per-replica gradients of this replica's share of the loss (module docstring)."""
    replicas = self.strategy.num_replicas_in_sync
    with tf.GradientTape() as tape:
      endpoints = self.model(images, training=True)
      z = tf.cast(endpoints["final_layer"], tf.float32)
      # keras.losses.Loss already divides by the number of replicas in a replica context.
      objective_loss = self.objective.loss(labels, z)
      model_losses = sum((tf.cast(extra, tf.float32) for extra in self.model.losses),
                         tf.constant(0.0))
      loss = objective_loss + model_losses / replicas
    grads = tape.gradient(loss, self.model.trainable_variables)
    # The gradient of the weight decay c * 0.5 * ||v||^2 is c * v: added directly (this
    # replica's share c / R) instead of differentiating the penalty through the tape.
    share = self.config.train.weight_decay / replicas
    if share:
      grads = [g + share * tf.cast(v, g.dtype) if decayed else g
               for g, v, decayed in zip(grads, self.model.trainable_variables,
                                        self._is_decayed)]
    outputs = tf.cast(endpoints["outputs"], tf.float32)
    correct = tf.reduce_sum(tf.cast(
        tf.equal(tf.argmax(outputs, axis=-1), tf.cast(labels, tf.int64)), tf.float32))
    return grads, objective_loss, model_losses, correct

  def _replica_train_step(self, images, labels):
    grads, objective_loss, model_losses, correct = self._compiled_gradients(images, labels)
    self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
    return objective_loss, model_losses, correct

  def train_step(self, images, labels):
    """One step in cross-replica context: (mean objective loss, model.losses, correct)."""
    objective_loss, model_losses, correct = self.strategy.run(self._replica_train_step,
                                                              args=(images, labels))
    sum_ = tf.distribute.ReduceOp.SUM
    objective_loss = self.strategy.reduce(sum_, objective_loss, axis=None)
    model_losses = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, model_losses, axis=None)
    correct = self.strategy.reduce(sum_, correct, axis=None)
    decay = optimization.ema_decay_at(self.step, self.config.train.ema_decay,
                                      self.config.train.ema_warmup)
    optimization.update_ema(self.strategy, self.ema_model.weights, self.model.weights, decay)
    return objective_loss, model_losses, correct

  def _train_loop_fn(self, iterator, num_steps):
    loss_sum = tf.constant(0.0)
    model_losses_sum = tf.constant(0.0)
    correct_sum = tf.constant(0.0)
    finite = tf.constant(True)
    last_loss = tf.constant(0.0)
    for _ in tf.range(num_steps):
      images, labels = next(iterator)
      objective_loss, model_losses, correct = self.train_step(images, labels)
      loss_sum += objective_loss
      model_losses_sum += model_losses
      correct_sum += correct
      finite = tf.logical_and(finite, tf.math.is_finite(objective_loss + model_losses))
      last_loss = objective_loss
    steps = tf.cast(num_steps, tf.float32)
    weight_decay = optimization.weight_decay_penalty(self.decayed,
                                                     self.config.train.weight_decay)
    return {"loss": loss_sum / steps,
            "total_loss": (loss_sum + model_losses_sum) / steps + weight_decay,
            "correct": correct_sum, "finite": finite, "last_loss": last_loss}

  def train_loop(self, iterator, num_steps: int) -> dict[str, Any]:
    """Runs `num_steps` steps; host scalars: mean "loss", "total_loss" (with model.losses and
    the weight decay after the last step), "correct", "finite" (every step's loss)."""
    stats = self._train_loop(iterator, tf.constant(num_steps, tf.int64))
    return {k: v.numpy().item() for k, v in stats.items()}

  def learning_rate(self) -> float:
    return float(self.schedule(self.step))

  def _finite_fn(self):
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(tf.cast(v, tf.float32)))
                          for v in self.model.weights + self.ema_model.weights])

  def weights_finite(self) -> bool:
    """Whether every weight of the model and of its average is finite (checked before saving)."""
    return bool(self._finite())

  # Early stopping.

  def record_epoch(self, epoch: int, top1: float) -> None:
    """Records epoch `epoch`'s evaluation top-1; its EMA weights become the best if they beat
    every earlier epoch (strictly: ties keep the earlier epoch)."""
    if top1 > float(tf.reduce_max(self.eval_top1)):
      optimization.copy_weights(self.strategy, self.best_model.weights, self.ema_model.weights)
    self.eval_top1[epoch - 1].assign(top1)

  def epoch_curve(self) -> dict[int, float]:
    """{epoch: evaluation top-1} of the evaluated epochs (1-based)."""
    return {e + 1: float(v) for e, v in enumerate(self.eval_top1.numpy()) if v >= 0}

  def selected_epoch(self) -> int:
    """The evaluated epoch of highest top-1, the earliest of equal ones."""
    curve = self.epoch_curve()
    return max(curve, key=lambda e: (curve[e], -e))

  def use_best(self) -> None:
    """Puts the selected epoch's weights into `ema_model` (evaluated and exported next)."""
    optimization.copy_weights(self.strategy, self.ema_model.weights, self.best_model.weights)

  # Evaluation.

  def _replica_eval_step(self, images, labels):
    endpoints = self.ema_model(images, training=False)
    z = tf.cast(endpoints["final_layer"], tf.float32)
    outputs = tf.cast(endpoints["outputs"], tf.float32)
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int64)
    per_example = self.objective.loss.call(labels, z)
    k = min(5, self.num_classes)
    stats = {
        "loss": tf.reduce_sum(per_example),
        "top1": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, outputs, 1), tf.float32)),
        "top5": tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, outputs, k), tf.float32)),
        "count": tf.cast(tf.shape(labels)[0], tf.float32),
    }
    features = tf.cast(endpoints[resnet.PENULTIMATE], tf.float32)
    return stats, features, labels

  def _eval_step_fn(self, images, labels):
    stats, features, labels = self.strategy.run(self._replica_eval_step, args=(images, labels))
    stats = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
             for k, v in stats.items()}
    return stats, features, labels

  def evaluate(self, dataset, separation_examples: int) -> dict[str, float]:
    """EMA-weight top1, top5, loss, examples and class_separation (paper eq. 11, of the
    penultimate features of the first `separation_examples` examples) over `dataset`."""
    totals = {"loss": 0.0, "top1": 0.0, "top5": 0.0, "count": 0.0}
    features, labels, collected = [], [], 0
    for images, batch_labels in dataset:
      stats, batch_features, batch_labels = self._eval_step(images, batch_labels)
      for key, value in stats.items():
        totals[key] += float(value)
      if collected < separation_examples:
        features.append(self.strategy.gather(batch_features, axis=0).numpy())
        labels.append(self.strategy.gather(batch_labels, axis=0).numpy())
        collected += len(labels[-1])
    count = totals["count"]
    if not count:
      raise ValueError("evaluation split is empty: no example to evaluate")
    features = np.concatenate(features)[:separation_examples]
    if not np.all(np.isfinite(features)) or not np.isfinite(totals["loss"]):
      raise TrainingDiverged(
          f"training diverged at step {int(self.step.numpy())}: the averaged (EMA) network's "
          "evaluation loss or penultimate features are not finite; try a lower learning rate")
    r2 = class_separation.r2(features, np.concatenate(labels)[:separation_examples])
    return {"top1": totals["top1"] / count, "top5": totals["top5"] / count,
            "loss": totals["loss"] / count, "class_separation": float(r2),
            "examples": int(count)}


def check_resumable(config: config_lib.ExperimentConfig, model_dir: str) -> None:
  """Refuses a model directory whose config.json differs from `config` in a result key."""
  path = os.path.join(model_dir, CONFIG_FILE)
  if not io.exists(path):
    return
  try:
    previous = config_lib.read_run_config(model_dir)
  except ValueError as e:
    reason = str(e).removeprefix(f"{path}: ")
    raise ValueError(f"{path} is not a valid experiment config ({reason}); use another "
                     "--model_dir") from None
  if previous.data.class_names is None:
    # Written before class names were recorded: nothing to compare them with.
    previous = dataclasses.replace(
        previous, data=dataclasses.replace(previous.data, class_names=config.data.class_names))
  # With early stopping the evaluated epochs decide the exported weights.
  ignore = config_lib.RUN_ONLY_KEYS - (
      {"train.eval_every_epochs"} if config.train.select_best_epoch else set())
  diffs = config_lib.differences(previous, config, ignore)
  if diffs:
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in diffs[:6])
    more = f" (+{len(diffs) - 6} more)" if len(diffs) > 6 else ""
    raise ValueError(f"{model_dir} holds a run with a different config ({shown}{more}); "
                     "resume with the same settings or choose another --model_dir")


def export(trainer: Trainer, export_dir: str) -> None:
  """SavedModel of the EMA weights (float32) returning the endpoint dict."""
  config = trainer.config
  model = build_model(config, trainer.objective, name="resnet", mixed_precision=False)
  model.set_weights([w.numpy() for w in trainer.ema_model.weights])
  pretrained.export_saved_model(model, export_dir, config.model.image_size)


def train(config: config_lib.ExperimentConfig, model_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
  """Pretrains (or resumes) the run of `config` in `model_dir`; returns metrics.json's content.

  The metrics are those of the EMA weights on `data.eval_split` (with `train.select_best_epoch`
  of the selected epoch); images_per_second is of the training done by this call. Raises
  TrainingDiverged (a ValueError) on NaN/Inf and Preempted on SIGTERM after a checkpoint.
  """
  strategy = strategy or tf.distribute.get_strategy()
  config = config_lib.resolve(config)
  train_config = config.train
  _, _, is_chief = distribute.worker_info(strategy)
  check_resumable(config, model_dir)
  if train_config.deterministic:
    tf.config.experimental.enable_op_determinism()
  data = streams.PretrainingData.create(config)
  # Seeded once the data exists: preparing a dataset in this process (TFDS generation of the
  # demo data) draws from the global random state, which must not decide the initialisation.
  loop.seed_everything(train_config.seed)
  trainer = Trainer(config, strategy, data.steps_per_epoch)
  spe, total = trainer.steps_per_epoch, trainer.total_steps
  if is_chief:
    io.atomic_write_json(os.path.join(model_dir, CONFIG_FILE), config_lib.to_dict(config))
  runner = loop.Runner(model_dir, trainer.checkpoint, trainer.step, strategy,
                       keep_checkpoints=train_config.keep_checkpoints,
                       hparams=hparams(config), log=log, indent="  ")
  step = runner.step
  log(f"{config.objective.name} on {config.data.dataset}:{config.data.train_split} "
      f"({data.num_train_examples} examples, {spe} steps/epoch x {total // spe} epochs"
      f"{f' of {train_config.epochs}' if total // spe < train_config.epochs else ''}, "
      f"batch {train_config.batch_size} over {strategy.num_replicas_in_sync} replica(s)) "
      f"-> {model_dir}" + (f", resuming at step {step}" if step else ""))

  evaluations = {}
  select = train_config.select_best_epoch

  def run_eval(step: int, summaries: bool = True) -> dict[str, float]:
    metrics = trainer.evaluate(data.eval_dataset(strategy),
                               train_config.class_separation_examples)
    if summaries:
      runner.summaries("eval", step, {k: v for k, v in metrics.items() if k != "examples"})
    evaluations[step] = metrics
    return metrics

  def due(epoch: int, step: int) -> bool:
    return epoch % train_config.eval_every_epochs == 0 or step == total

  def on_epoch_end(epoch: int, step: int, seconds: float) -> None:
    if due(epoch, step):
      metrics = run_eval(step)
      if select:
        trainer.record_epoch(epoch, metrics["top1"])
      log(f"epoch {epoch}/{train_config.epochs}  step {step}  "
          f"eval top1 {metrics['top1']:.4f}  top5 {metrics['top5']:.4f}  "
          f"loss {metrics['loss']:.4f}  class_separation {metrics['class_separation']:.4f}"
          f"  ({seconds:.1f} s)")

  # The checkpoint at an epoch's end precedes its evaluation: a run resumed from it
  # evaluates that epoch first, so the selection sees every epoch once.
  if select and step and step % spe == 0 and due(step // spe, step) and (
      step // spe not in trainer.epoch_curve()):
    on_epoch_end(step // spe, step, 0.0)

  cadence = loop.Cadence(
      total_steps=total, steps_per_epoch=spe, steps_per_loop=train_config.steps_per_loop,
      log_every_steps=train_config.log_every_steps,
      checkpoint_every_steps=train_config.checkpoint_every_steps,
      checkpoint_at_epoch_end=True, batch_size=train_config.batch_size)
  progress = runner.train(trainer.train_loop,
                          lambda epoch, skip: data.train_dataset(strategy, epoch, skip),
                          trainer.learning_rate, cadence, weights_finite=trainer.weights_finite,
                          on_epoch_end=on_epoch_end)
  step = progress.step
  if select:  # the selected epoch's weights are evaluated and exported
    final_step = trainer.selected_epoch() * spe
    trainer.use_best()
    last_eval = evaluations.get(final_step) or run_eval(final_step, summaries=False)
  else:
    last_eval = evaluations.get(step) or run_eval(step)
  metrics = {
      **{k: last_eval[k] for k in ("top1", "top5", "class_separation", "loss")},
      "eval_split": config.data.eval_split, "eval_examples": last_eval["examples"],
      "steps": step, "epochs": step / spe,
      # The learning curve, (epoch, top-1) per evaluation: with `train.select_best_epoch`
      # every evaluated epoch (checkpointed), else the evaluations of this call.
      "top1_curve": ([[e, v] for e, v in trainer.epoch_curve().items()] if select else
                     [[s / spe, evaluations[s]["top1"]] for s in sorted(evaluations)]),
      "images_per_second": (progress.trained_images / progress.train_seconds
                            if progress.train_seconds
                            else _previous_metrics(model_dir).get("images_per_second")),
      "objective": config.objective.name, "hparams": dict(config.objective.hparams),
      "seed": train_config.seed,
      "dataset": data.info.name, "num_classes": config.model.num_classes,
      "class_names": (list(config.data.class_names) if config.data.class_names is not None
                      else None),
  }
  if select:
    metrics["selected_epoch"] = trainer.selected_epoch()
  if is_chief:
    export(trainer, os.path.join(model_dir, EXPORT_DIR))
    io.atomic_write_json(os.path.join(model_dir, METRICS_FILE), metrics)
  runner.close()
  return metrics


def hparams(config: config_lib.ExperimentConfig) -> dict[str, Any]:
  """The run's objective and hyperparameters for TensorBoard's HParams dashboard."""
  return {"objective": config.objective.name, "seed": config.train.seed,
          "dataset": config.data.dataset, "batch_size": config.train.batch_size,
          "epochs": config.train.epochs, "learning_rate": config.train.peak_learning_rate,
          **config.objective.hparams}


def _previous_metrics(model_dir: str) -> dict[str, Any]:
  path = os.path.join(model_dir, METRICS_FILE)
  return io.read_json(path) if io.exists(path) else {}
