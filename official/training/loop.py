"""The one training loop: pretraining (training.trainer) and fine-tuning
(evaluation.finetune) are tasks of it (Model Garden's Task + runner split).

    runner = loop.Runner(run_dir, task.checkpoint, task.step, strategy, keep_checkpoints=3,
                         hparams={"learning_rate": 0.1})
    progress = runner.train(task.train_loop, train_dataset, task.learning_rate, cadence)

A task supplies its tf.train.Checkpoint and step variable; `train_loop(iterator, num_steps)`,
num_steps compiled steps returning host scalars "loss", "total_loss", "finite" and optionally
"correct"; `train_dataset(epoch, skip_steps)`, epoch `epoch` without its first skip_steps
global batches (its order a function of (seed, epoch) only, so a resumed epoch continues the
same stream); `learning_rate()` and the `Cadence`. The `Runner` owns checkpoints/ckpt-N (a
non-chief worker saves to .worker<i>/checkpoints, deleted after each save) and the train/ and
eval/ TensorBoard scalars.
"""

import contextlib
import dataclasses
import os
import signal
import threading
import time
from typing import Any, Callable, Iterator, Optional

import keras
import tensorflow as tf

from official.core import io
from official.core.config import CHECKPOINT_DIR
from official.training import distribute


class TrainingDiverged(ValueError):
  """The loss or the weights became NaN/Inf; the last finite checkpoint is kept."""


class Preempted(Exception):
  """SIGTERM arrived; a checkpoint was saved and rerunning the same job resumes from it."""


def seed_everything(seed: int) -> None:
  """Seeds Python, NumPy and Keras (initialisation, dropout) with `seed`.

  TensorFlow's global seed is then cleared: the data order and augmentation depend on their own
  seeds only, so the stream is the same in every process, whatever global seed a caller set.
  """
  keras.utils.set_random_seed(seed)
  tf.random.set_seed(None)


class _StopSignal:
  """Whether SIGTERM arrived; set by the handler of `preemption_guard`."""

  def __init__(self):
    self.requested = False

  def requested_on_any_worker(self, strategy: tf.distribute.Strategy,
                              num_workers: int) -> bool:
    """Whether SIGTERM arrived here or, with num_workers > 1, on any worker (a collective)."""
    if num_workers > 1:
      # ReduceOp has SUM and MEAN only: any worker's 1 makes the sum positive.
      value = strategy.run(lambda: tf.constant(1.0 if self.requested else 0.0))
      self.requested = bool(strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) > 0)
    return self.requested


_active_guard: Optional[_StopSignal] = None


@contextlib.contextmanager
def preemption_guard() -> Iterator[_StopSignal]:
  """Context manager under which SIGTERM only sets a flag, checked between compiled loops.

  Unlike tf.distribute.experimental.PreemptionCheckpointHandler, it leaves saving and exiting
  to the caller: one process runs many loops, and callers turn `Preempted` into a clean exit.
  A guard entered inside another one is that one (a SIGTERM caught by either is seen by both).
  Outside the main thread no handler can be installed and `stop.requested` stays False.
  """
  global _active_guard
  if threading.current_thread() is not threading.main_thread():
    yield _StopSignal()
    return
  if _active_guard is not None:
    yield _active_guard
    return
  stop = _StopSignal()

  def handle(signum, frame):
    del signum, frame
    stop.requested = True

  previous = signal.signal(signal.SIGTERM, handle)
  _active_guard = stop
  try:
    yield stop
  finally:
    _active_guard = None
    if previous is not None:
      signal.signal(signal.SIGTERM, previous)


@dataclasses.dataclass(frozen=True)
class Cadence:
  """When the loop stops, logs and saves; logging and checkpoints also at the last step.

  `steps_per_loop`: steps per call of the compiled loop; `checkpoint_every_steps` 0: none but
  at epoch ends (`checkpoint_at_epoch_end`) and the last step.
  """
  total_steps: int
  steps_per_epoch: int
  steps_per_loop: int
  log_every_steps: int
  checkpoint_every_steps: int
  checkpoint_at_epoch_end: bool
  batch_size: int


@dataclasses.dataclass
class Progress:
  """What `Runner.train` did: `diverged` when the loss became NaN/Inf under
  stop_on_divergence; `last_loss` of the last finite compiled loop (None: none ran)."""
  step: int
  diverged: bool = False
  last_loss: Optional[float] = None
  train_seconds: float = 0.0
  trained_images: int = 0


class Runner:
  """A run directory: checkpoint manager, resumption, summary writers and HParams.

  The latest checkpoint of <run_dir>/checkpoints is restored into `checkpoint` (`restored`
  names it; None: a fresh run, whose `hparams` the chief writes for TensorBoard).
  """

  def __init__(self, run_dir: str, checkpoint: tf.train.Checkpoint, step: tf.Variable,
               strategy: tf.distribute.Strategy, *, keep_checkpoints: int,
               hparams: dict[str, Any], log: Callable[[str], None] = print, indent: str = ""):
    self.run_dir = run_dir
    self.strategy = strategy
    self.log = log
    self.indent = indent
    self._step = step
    self.num_workers, worker_index, self.is_chief = distribute.worker_info(strategy)
    io.makedirs(run_dir)
    self.checkpoint_dir = os.path.join(run_dir, CHECKPOINT_DIR)
    # Every worker takes part in saving; only the chief's copy is kept.
    self._worker_dir = None if self.is_chief else os.path.join(run_dir, f".worker{worker_index}")
    write_dir = (self.checkpoint_dir if self.is_chief
                 else os.path.join(self._worker_dir, CHECKPOINT_DIR))
    self.manager = tf.train.CheckpointManager(checkpoint, write_dir,
                                              max_to_keep=keep_checkpoints, step_counter=step)
    self.restored = tf.train.latest_checkpoint(self.checkpoint_dir)
    if self.restored:
      checkpoint.restore(self.restored).assert_existing_objects_matched()
    if self.is_chief and not self.restored:
      _write_hparams(run_dir, hparams)
    self._writers = {name: (tf.summary.create_file_writer(os.path.join(run_dir, name))
                            if self.is_chief else tf.summary.create_noop_writer())
                     for name in ("train", "eval")}

  @property
  def step(self) -> int:
    return int(self._step.numpy())

  def summaries(self, writer: str, step: int, values: dict[str, float]) -> None:
    """Scalars `values` at `step` in <run_dir>/<writer> ("train" or "eval")."""
    with self._writers[writer].as_default(step=step):
      for key, value in values.items():
        tf.summary.scalar(key, value)
    self._writers[writer].flush()

  def close(self) -> None:
    for writer in self._writers.values():
      writer.close()

  def delete_checkpoints(self) -> None:
    """Removes <run_dir>/checkpoints (the chief's; once a run's result is written)."""
    if self.is_chief and io.exists(self.checkpoint_dir):
      io.rmtree(self.checkpoint_dir)

  def _kept(self) -> str:
    last = tf.train.latest_checkpoint(self.checkpoint_dir)
    return (f"the last finite checkpoint {last} is kept" if last
            else "no checkpoint had been written")

  def save(self, step: int, weights_finite: Optional[Callable[[], bool]] = None) -> None:
    """Checkpoint `step` (once); refused with TrainingDiverged when `weights_finite()` is
    False, so the last checkpoint written is always finite."""
    if weights_finite is not None and not weights_finite():
      raise TrainingDiverged(
          f"training diverged at step {step}: the weights are not finite; {self._kept()}; "
          "try a lower learning rate")
    if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
      return
    self.manager.save(checkpoint_number=step)
    if self._worker_dir is not None and io.exists(self._worker_dir):
      io.rmtree(self._worker_dir)

  def train(self, train_loop: Callable[[Any, int], dict[str, Any]],
            train_dataset: Callable[[int, int], Any], learning_rate: Callable[[], float],
            cadence: Cadence, *, stop_on_divergence: bool = False,
            weights_finite: Optional[Callable[[], bool]] = None,
            on_epoch_end: Optional[Callable[[int, int, float], None]] = None) -> Progress:
    """Trains from the restored step to `cadence.total_steps`.

    A NaN/Inf loss raises TrainingDiverged, or with `stop_on_divergence` stops and is reported
    in the Progress (fine-tuning scores it 0); `weights_finite` is checked before every
    checkpoint. `on_epoch_end(epochs_done, step, epoch_seconds)` runs after the checkpoint at
    the end of each full epoch. SIGTERM saves a checkpoint and raises Preempted.
    """
    total, spe, batch = cadence.total_steps, cadence.steps_per_epoch, cadence.batch_size
    progress = Progress(step=self.step)
    step = progress.step
    window_loss, window_correct, window_steps, window_time = 0.0, 0.0, 0, 0.0
    with preemption_guard() as stop:
      while step < total:
        epoch, offset = divmod(step, spe)
        epoch_end = (epoch + 1) * spe
        epoch_start = time.time()
        iterator = iter(train_dataset(epoch, offset))
        while step < min(total, epoch_end):
          # The step boundaries: a compiled loop ends where a log line or checkpoint is due.
          boundary = min(total, epoch_end)
          for every in (cadence.log_every_steps, cadence.checkpoint_every_steps):
            if every:
              boundary = min(boundary, (step // every + 1) * every)
          num = min(cadence.steps_per_loop, boundary - step)

          # One compiled loop.
          start = time.time()
          stats = train_loop(iterator, num)
          elapsed = time.time() - start

          step += num
          # Divergence.
          if not stats["finite"]:
            if not stop_on_divergence:
              raise TrainingDiverged(
                  f"training diverged between steps {step - num} and {step}: the loss is "
                  f"{stats.get('last_loss', stats['loss'])}; {self._kept()}; try a lower "
                  "learning rate")
            self.log(f"{self.indent}step {step}/{total}  the loss is not finite: diverged")
            progress.step, progress.diverged = step, True
            return progress
          progress.step, progress.last_loss = step, stats["loss"]
          progress.train_seconds += elapsed
          progress.trained_images += num * batch
          window_loss += stats["loss"] * num
          window_correct += stats.get("correct", 0.0)
          window_steps += num
          window_time += elapsed

          # Checkpoints.
          every = cadence.checkpoint_every_steps
          if (every and step % every == 0) or step == total or (
              cadence.checkpoint_at_epoch_end and step == epoch_end):
            self.save(step, weights_finite)

          # Summaries and the progress line.
          if step % cadence.log_every_steps == 0 or step == total:
            lr = learning_rate()
            images_per_second = window_steps * batch / max(window_time, 1e-9)
            values = {"loss": window_loss / window_steps, "total_loss": stats["total_loss"],
                      "learning_rate": lr, "images_per_second": images_per_second}
            if "correct" in stats:
              values["top1"] = window_correct / (window_steps * batch)
            self.summaries("train", step, values)
            self.log(f"{self.indent}step {step}/{total}  loss {window_loss / window_steps:.4f}"
                     f"  lr {lr:.4g}  {images_per_second:.0f} img/s")
            window_loss, window_correct, window_steps, window_time = 0.0, 0.0, 0, 0.0

          # Preemption.
          if stop.requested_on_any_worker(self.strategy, self.num_workers):
            self.save(step, weights_finite)
            raise Preempted(f"SIGTERM: checkpoint saved at step {step} in "
                            f"{self.checkpoint_dir}; rerun the same command to resume")

        # The end of an epoch.
        if step == epoch_end and on_epoch_end is not None:
          on_epoch_end(epoch + 1, step, time.time() - epoch_start)
    return progress


def _write_hparams(run_dir: str, values: dict[str, Any]) -> None:
  """`values` for TensorBoard's HParams dashboard, the trial named after `run_dir`."""
  from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(run_dir)
  with writer.as_default():
    hp.hparams(values, trial_id=os.path.basename(os.path.normpath(run_dir)))
  writer.close()
