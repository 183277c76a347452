"""Mixed precision (bfloat16) and XLA compilation of the training step.

Mixed precision computes the convolutions in bfloat16 while the head, the loss and every
variable stay in float32; the XLA-compiled step (train.jit_compile) gives the losses of the
plain step to 1e-4 relative.
"""

import keras
import numpy as np
import tensorflow as tf

from official.core import config as config_lib
from official.training import trainer as trainer_lib

BATCH = 8


def _config(**train):
  return config_lib.ExperimentConfig(
      model=config_lib.ModelConfig(depth=18, width_multiplier=0.125, small_input_stem=True,
                                   block_counts=(1, 1, 1, 1), num_classes=10, image_size=16),
      objective=config_lib.ObjectiveConfig("softmax"),
      train=config_lib.TrainConfig(batch_size=BATCH, epochs=1, warmup_epochs=0,
                                   learning_rate=0.05, ema_decay=0.5, **train))


def _batches():
  rng = np.random.default_rng(0)
  images = rng.normal(size=(BATCH, 16, 16, 3)).astype(np.float32)
  labels = rng.integers(0, 10, size=BATCH)
  return iter(tf.data.Dataset.from_tensors((images, labels)).repeat())


class PrecisionTest(tf.test.TestCase):

  def test_mixed_precision_keeps_head_and_loss_in_float32(self):
    trainer = trainer_lib.Trainer(_config(mixed_precision=True), tf.distribute.get_strategy(),
                                  steps_per_epoch=4)
    self.assertEqual(trainer.model.get_layer("stem_conv").compute_dtype, "bfloat16")
    self.assertEqual(trainer.model.get_layer("final_layer").compute_dtype, "float32")
    self.assertEqual(trainer.model.get_layer("outputs").compute_dtype, "float32")
    self.assertTrue(all(w.dtype == "float32" for w in trainer.model.weights))
    endpoints = trainer.model(tf.zeros([2, 16, 16, 3]))
    self.assertEqual(endpoints["block1"].dtype, tf.bfloat16)
    self.assertEqual(endpoints["final_layer"].dtype, tf.float32)
    stats = trainer.train_loop(_batches(), 2)
    self.assertTrue(stats["finite"])
    self.assertEqual(keras.config.dtype_policy().name, "float32")  # global policy restored

  def test_xla_step_matches_the_plain_step(self):
    losses = []
    for jit_compile in (False, True):
      keras.utils.set_random_seed(0)
      trainer = trainer_lib.Trainer(_config(jit_compile=jit_compile),
                                    tf.distribute.get_strategy(), steps_per_epoch=4)
      iterator = _batches()
      losses.append([trainer.train_loop(iterator, 1)["total_loss"] for _ in range(3)])
    self.assertAllClose(losses[0], losses[1], rtol=1e-4)
    self.assertLess(losses[0][2], losses[0][0])  # the same batch: the loss decreases


if __name__ == "__main__":
  tf.test.main()
