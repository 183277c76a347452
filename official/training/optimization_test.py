"""Tests of the schedule, weight decay and EMA against independent NumPy computations."""

import math

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.modeling import resnet
from official.training import optimization


def _tiny_model(objective_name="softmax", num_classes=5):
  config = resnet.ResNetConfig(depth=18, width_multiplier=0.0625, small_input_stem=True,
                               block_counts=(1, 1, 1, 1))
  return resnet.build_model(config, num_classes, losses.get_objective(objective_name),
                            input_shape=(16, 16, 3))


class LearningRateScheduleTest(tf.test.TestCase):

  def test_values_at_known_steps(self):
    peak, total, warmup = 1.6, 1000, 50
    schedule = optimization.learning_rate_schedule(peak, total, warmup)

    def expected(t):
      if t < warmup:
        return peak * t / warmup
      return peak * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))

    for step in (0, 1, 25, 49, 50, 51, 300, 525, 999, 1000, 1500):
      self.assertAllClose(float(schedule(step)), expected(min(step, total)), rtol=1e-5,
                          atol=1e-7, msg=f"step {step}")
    self.assertAllClose(float(schedule(25)), 0.8)
    self.assertAllClose(float(schedule(525)), 0.8, rtol=1e-5)  # half-way through the cosine
    self.assertAllClose(float(schedule(1000)), 0.0, atol=1e-7)

  def test_no_warmup_starts_at_peak(self):
    schedule = optimization.learning_rate_schedule(0.4, 100, 0)
    self.assertAllClose(float(schedule(0)), 0.4)
    self.assertAllClose(float(schedule(50)), 0.2, rtol=1e-5)

  def test_rejects_warmup_longer_than_training(self):
    with self.assertRaisesRegex(ValueError, "total_steps > warmup_steps"):
      optimization.learning_rate_schedule(0.1, 10, 10)

  def test_sgd_nesterov_update(self):
    # Keras SGD with Nesterov: m <- mu m - lr g; w <- w + mu m - lr g.
    optimizer = optimization.build_optimizer(0.1, momentum=0.9, nesterov=True)
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    optimizer.build([w])
    m, expected = np.zeros(2), np.array([1.0, -2.0])
    for g in (np.array([0.5, 1.0]), np.array([-1.0, 0.25])):
      optimizer.apply_gradients([(tf.constant(g, tf.float32), w)])
      m = 0.9 * m - 0.1 * g
      expected = expected + 0.9 * m - 0.1 * g
    self.assertAllClose(w.numpy(), expected, rtol=1e-6)


class WeightDecayTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters("softmax", "cosine_softmax", "extra_final_layer_l2", "sigmoid")
  def test_selects_every_kernel_and_nothing_else(self, objective_name):
    model = _tiny_model(objective_name)
    selected = optimization.decayed_variables(model)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    head = model.get_layer("final_layer")
    expected_ids = {id(l.kernel) for l in convs} | {id(head.kernel)}
    self.assertEqual({id(v) for v in selected}, expected_ids)
    self.assertLen(selected, len(convs) + 1)
    bn_ids = {id(w) for l in model.layers if isinstance(l, keras.layers.BatchNormalization)
              for w in l.weights}
    self.assertEmpty(bn_ids & {id(v) for v in selected})
    self.assertNotIn(id(head.bias), {id(v) for v in selected})

  def test_penalty_equals_released_formula(self):
    model = _tiny_model("cosine_softmax")
    # Independent: every 4-D conv kernel and the head's [D, K] kernel, from get_weights().
    arrays = [l.get_weights()[0] for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    arrays.append(model.get_layer("final_layer").get_weights()[0])
    expected = 8e-5 * 0.5 * sum(float(np.sum(a.astype(np.float64) ** 2)) for a in arrays)
    penalty = optimization.weight_decay_penalty(optimization.decayed_variables(model), 8e-5)
    self.assertAllClose(float(penalty), expected, rtol=1e-5)
    self.assertGreater(expected, 0.0)

  def test_zero_decay_is_zero(self):
    model = _tiny_model()
    self.assertEqual(
        float(optimization.weight_decay_penalty(optimization.decayed_variables(model), 0.0)),
        0.0)


class EmaTest(tf.test.TestCase):

  def test_decay_warmup(self):
    self.assertAllClose(float(optimization.ema_decay_at(1, 0.9999, True)), 2 / 11)
    self.assertAllClose(float(optimization.ema_decay_at(98, 0.9, True)), 0.9)
    self.assertAllClose(float(optimization.ema_decay_at(50, 0.99, True)), 51 / 60)
    self.assertAllClose(float(optimization.ema_decay_at(1, 0.9999, False)), 0.9999)

  def test_update_and_copy(self):
    strategy = tf.distribute.get_strategy()
    weights = [keras.Variable(np.array([1.0, 2.0], np.float32)),
               keras.Variable(np.array([[3.0]], np.float32))]
    averages = [keras.Variable(np.zeros(2, np.float32)),
                keras.Variable(np.zeros((1, 1), np.float32))]
    optimization.copy_weights(strategy, averages, weights)
    self.assertAllClose(averages[0].numpy(), [1.0, 2.0])
    weights[0].assign([3.0, -2.0])
    weights[1].assign([[1.0]])
    optimization.update_ema(strategy, averages, weights, tf.constant(0.75))
    self.assertAllClose(averages[0].numpy(), [0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * -2])
    self.assertAllClose(averages[1].numpy(), [[0.75 * 3 + 0.25 * 1]])


if __name__ == "__main__":
  tf.test.main()
