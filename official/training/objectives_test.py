"""Every objective of the registry trains on the embedded demo data without NaN.

For each name in official.losses.NAMES a tiny ResNet takes three optimiser steps on real demo
images; the losses and all weights must stay finite, and the penalty added to the loss must
equal the weight decay 8e-5 * 0.5 * sum ||kernel||^2 (plus, for extra_final_layer_l2, the
head's lambda * 0.5 * ||W||^2) computed independently from the layers' weights.
"""

import os
import tempfile

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.data import datasets
from official.data import input_pipeline
from official.core import config as config_lib
from official.training import loop
from official.training import optimization
from official.training import trainer as trainer_lib

BATCH = 16
STEPS = 3
_BATCHES = []  # (images, labels) of STEPS demo batches, filled by setUpModule


def setUpModule():
  global _BATCHES
  # Eager steps: the same numbers as the compiled loop (tested in trainer_test and
  # distribute_test) without tracing a graph per objective.
  tf.config.run_functions_eagerly(True)
  loop.seed_everything(0)
  data_dir = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
  info = datasets.get("demo_pretrain/small", data_dir=data_dir)
  ds = input_pipeline.build(info, "train", training=True, batch_size=BATCH, image_size=32,
                            seed=0, data_dir=data_dir)
  _BATCHES = list(ds.take(STEPS).as_numpy_iterator())


def tearDownModule():
  tf.config.run_functions_eagerly(False)


def _independent_penalty(model, objective_name):
  kernels = [l.get_weights()[0] for l in model.layers if isinstance(l, keras.layers.Conv2D)]
  head = model.get_layer("final_layer").get_weights()[0]
  penalty = 8e-5 * 0.5 * sum(np.sum(k.astype(np.float64) ** 2) for k in kernels + [head])
  if objective_name == "extra_final_layer_l2":
    penalty += losses.DEFAULT_HPARAMS[objective_name]["lambda_"] * 0.5 * np.sum(
        head.astype(np.float64) ** 2)
  return penalty


class ObjectivesTrainTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(*losses.NAMES)
  def test_trains_without_nan(self, name):
    keras.utils.set_random_seed(0)
    trainer = trainer_lib.Trainer(self._config(name), tf.distribute.get_strategy(),
                                  steps_per_epoch=STEPS)
    penalty = _independent_penalty(trainer.model, name)
    self.assertGreater(penalty, 0.0)
    computed = (optimization.weight_decay_penalty(trainer.decayed,
                                                   trainer.config.train.weight_decay) +
                sum(float(extra) for extra in trainer.model.losses))
    self.assertAllClose(float(computed), penalty, rtol=1e-5)
    iterator = iter(tf.data.Dataset.from_tensor_slices(
        tuple(np.stack(parts) for parts in zip(*_BATCHES))))
    first = trainer.train_loop(iterator, 1)
    rest = trainer.train_loop(iterator, STEPS - 1)
    for stats in (first, rest):
      self.assertTrue(stats["finite"])
      self.assertTrue(np.isfinite(stats["total_loss"]))
    self.assertTrue(trainer.weights_finite())
    self.assertEqual(int(trainer.step.numpy()), STEPS)

  def _config(self, name, **train):
    return config_lib.ExperimentConfig(
        model=config_lib.ModelConfig(depth=18, width_multiplier=0.125, small_input_stem=True,
                                     block_counts=(1, 1, 1, 1), num_classes=48,
                                     image_size=32),
        objective=config_lib.ObjectiveConfig(name),
        train=config_lib.TrainConfig(batch_size=BATCH, epochs=1, warmup_epochs=0,
                                     learning_rate=0.01, ema_decay=0.5, **train))


if __name__ == "__main__":
  tf.test.main()
