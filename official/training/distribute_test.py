"""The result of training does not depend on the number of replicas (MirroredStrategy).

Four optimiser steps on the same global batches (16 examples) give the same losses, weights
and EMA weights on one device (TF's default strategy) and on MirroredStrategy over two
logical CPU devices (8 examples per replica), within an absolute tolerance of 1e-5 on the
losses and the weights (float32 sums in another order). Batch norm is synchronised
(train.sync_batch_norm) and the objective is extra_final_layer_l2 with a large weight decay,
so that a penalty counted once per replica instead of once (the double-scaling mistake) would
move the weights by far more than the tolerance; the test checks that margin too.
multi_worker_test.py does the same with two worker processes.

The logical devices must be configured before TensorFlow initialises; when another test in
the same process initialised it first, the test re-runs itself in a fresh process.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from official.core import config as config_lib
from official.training import distribute
from official.training import trainer as trainer_lib

GLOBAL_BATCH = 16
STEPS = 4
NUM_CLASSES = 6
TOLERANCE = 1e-5


def tiny_config(weight_decay: float = 0.05) -> config_lib.ExperimentConfig:
  return config_lib.ExperimentConfig(
      model=config_lib.ModelConfig(depth=18, width_multiplier=0.125, small_input_stem=True,
                                   block_counts=(1, 1, 1, 1), num_classes=NUM_CLASSES,
                                   image_size=16),
      objective=config_lib.ObjectiveConfig("extra_final_layer_l2", {"lambda_": 0.05}),
      train=config_lib.TrainConfig(batch_size=GLOBAL_BATCH, epochs=1, warmup_epochs=0,
                                   base_learning_rate=0.8, weight_decay=weight_decay,
                                   ema_decay=0.5, ema_warmup=False, sync_batch_norm=True))


def run_steps(strategy: tf.distribute.Strategy, weight_decay: float = 0.05) -> dict:
  """Trains STEPS steps on fixed data; returns the per-step losses and the final weights."""
  keras.utils.set_random_seed(0)
  trainer = trainer_lib.Trainer(tiny_config(weight_decay), strategy, steps_per_epoch=STEPS)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(STEPS * GLOBAL_BATCH, 16, 16, 3)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, size=STEPS * GLOBAL_BATCH)
  dataset = tf.data.Dataset.from_tensor_slices((images, labels))

  def dataset_fn(context):
    # Consecutive per-replica batches make up one global batch, whatever the topology.
    batches = dataset.batch(context.get_per_replica_batch_size(GLOBAL_BATCH))
    return batches.shard(context.num_input_pipelines, context.input_pipeline_id)

  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
  losses = [trainer.train_loop(iterator, 1)["total_loss"] for _ in range(STEPS)]
  return {"losses": losses, "weights": [w.numpy() for w in trainer.model.weights],
          "ema": [w.numpy() for w in trainer.ema_model.weights]}


def max_difference(a, b):
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def subprocess_env(**extra):
  env = dict(os.environ)
  env.pop("TF_CONFIG", None)
  env.update(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), TF_CPP_MIN_LOG_LEVEL="2",
             **extra)
  return env


def setUpModule():
  try:
    distribute.split_cpu(2)
  except RuntimeError:  # TF already initialised by another test module of this process.
    pass


class DistributeTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.single = run_steps(tf.distribute.get_strategy())

  def assertSameTraining(self, result):
    self.assertAllClose(result["losses"], self.single["losses"], atol=TOLERANCE, rtol=0)
    self.assertLess(max_difference(result["weights"], self.single["weights"]), TOLERANCE)
    self.assertLess(max_difference(result["ema"], self.single["ema"]), TOLERANCE)

  def test_penalty_moves_weights_far_beyond_tolerance(self):
    # The penalties' gradient is what a wrong per-replica scaling would double.
    without_decay = run_steps(tf.distribute.get_strategy(), weight_decay=0.0)
    self.assertGreater(max_difference(without_decay["weights"], self.single["weights"]),
                       100 * TOLERANCE)
    self.assertTrue(np.all(np.isfinite(self.single["losses"])))

  def test_mirrored_two_replicas_matches_one_device(self):
    if len(tf.config.list_logical_devices("CPU")) < 2:
      self._rerun_in_fresh_process("DistributeTest.test_mirrored_two_replicas_matches_one_device")
      return
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    self.assertEqual(strategy.num_replicas_in_sync, 2)
    self.assertSameTraining(run_steps(strategy))

  def _rerun_in_fresh_process(self, test_name):
    process = subprocess.run(
        [sys.executable, "-m", "official.training.distribute_test", test_name],
        env=subprocess_env(), capture_output=True, text=True, timeout=300)
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])


if __name__ == "__main__":
  tf.test.main()
