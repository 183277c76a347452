"""Tests for the heads, the final-layer L2 penalty, penultimate dropout and output layers."""

import math

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.losses import heads


def _unit_rows(x, axis):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


class CosineSoftmaxHeadTest(tf.test.TestCase, parameterized.TestCase):

  def _head_and_weights(self, normalize_features, seed=0, dim=7, classes=5):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((dim, classes)).astype(np.float32)
    bias = rng.standard_normal(classes).astype(np.float32)
    features = rng.standard_normal((4, dim)).astype(np.float32) * 3
    head = heads.CosineSoftmaxHead(classes, normalize_features=normalize_features)
    head.build((None, dim))
    head.set_weights([kernel, bias])
    return head, kernel, bias, features

  def test_paper_head_is_cosine_similarity_plus_bias(self):
    head, kernel, bias, x = self._head_and_weights(normalize_features=True)
    expected = _unit_rows(x, 1) @ _unit_rows(kernel, 0) + bias
    self.assertAllClose(head(x), expected, atol=1e-6)
    # Eq. 7: cos(W_k, x) lies in [-1, 1] whatever the scale of x.
    self.assertAllClose(head(100 * x), expected, atol=1e-5)

  def test_released_head_normalizes_only_the_kernel(self):
    head, kernel, bias, x = self._head_and_weights(normalize_features=False)
    self.assertAllClose(head(x), x @ _unit_rows(kernel, 0) + bias, atol=1e-5)

  def test_zero_features_give_the_bias_and_finite_gradient(self):
    head, _, bias, _ = self._head_and_weights(normalize_features=True)
    zeros = tf.zeros((2, 7))
    with tf.GradientTape() as tape:
      tape.watch(zeros)
      out = head(zeros)
    self.assertAllClose(out, np.tile(bias, (2, 1)))
    self.assertTrue(np.all(np.isfinite(tape.gradient(out, zeros).numpy())))

  def test_initialization_kernel_normal_0_01_bias_zero(self):
    head = losses.get_objective("cosine_softmax").head(200)
    head.build((None, 300))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in head.weights)
    self.assertEqual(kernel.shape, (300, 200))
    self.assertAllClose(kernel.std(), 0.01, rtol=0.02)
    self.assertAllClose(kernel.mean(), 0.0, atol=5e-4)
    self.assertAllEqual(bias, np.zeros(200))

  @parameterized.parameters(True, False)
  def test_config_round_trip(self, normalize_features):
    head, _, _, x = self._head_and_weights(normalize_features)
    restored = heads.CosineSoftmaxHead.from_config(head.get_config())
    restored.build((None, 7))
    restored.set_weights(head.get_weights())
    self.assertEqual(restored.normalize_features, normalize_features)
    self.assertAllClose(restored(x), head(x))


class DenseHeadTest(tf.test.TestCase):

  def test_sigmoid_head_bias_is_minus_log_k(self):
    head = losses.get_objective("sigmoid").head(37)
    head.build((None, 400))
    self.assertAllClose(head.bias, np.full(37, -math.log(37)))
    self.assertAllClose(np.std(keras.ops.convert_to_numpy(head.kernel)), 0.01, rtol=0.03)
    # Initial sigmoid outputs are ~1/K (paper §2).
    probs = keras.ops.sigmoid(head(np.zeros((1, 400), np.float32)))
    self.assertAllClose(probs, np.full((1, 37), 1 / 38), rtol=1e-5)

  def test_softmax_head_bias_is_zero(self):
    head = losses.get_objective("softmax").head(6)
    head.build((None, 3))
    self.assertAllEqual(head.bias, np.zeros(6))
    self.assertEqual(head.name, "final_layer")

  def test_extra_l2_penalty_is_in_layer_and_model_losses(self):
    lambda_ = 3e-3
    objective = losses.get_objective("extra_final_layer_l2", lambda_=lambda_)
    head = objective.head(4)
    head.build((None, 6))
    kernel = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    head.set_weights([kernel, np.ones(4, np.float32)])
    expected = lambda_ * 0.5 * np.sum(kernel.astype(np.float64) ** 2)
    self.assertLen(head.losses, 1)
    self.assertAllClose(float(head.losses[0]), expected, rtol=1e-6)

    inputs = keras.Input((6,))
    model = keras.Model(inputs, head(inputs))
    self.assertLen(model.losses, 1)
    self.assertAllClose(float(model.losses[0]), expected, rtol=1e-6)
    # d/dW of lambda * 0.5 * ||W||^2 is lambda * W; the bias is not penalised.
    with tf.GradientTape() as tape:
      penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, [head.kernel, head.bias])
    self.assertAllClose(grads[0], lambda_ * kernel, rtol=1e-6)
    self.assertIsNone(grads[1])

  def test_other_heads_have_no_penalty(self):
    for name in losses.NAMES:
      if name == "extra_final_layer_l2":
        continue
      head = losses.get_objective(name).head(3)
      head.build((None, 2))
      self.assertEmpty(head.losses, msg=name)

  def test_final_layer_l2_config_round_trip(self):
    penalty = heads.FinalLayerL2(2e-3)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(penalty))
    self.assertIsInstance(restored, heads.FinalLayerL2)
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    self.assertAllClose(float(restored(w)), 2e-3 * 0.5 * 55)

  def test_bad_num_classes(self):
    with self.assertRaisesRegex(ValueError, "num_classes=0 is not a positive integer"):
      losses.get_objective("softmax").head(0)
    with self.assertRaisesRegex(ValueError, "num_classes=2.5"):
      losses.get_objective("cosine_softmax").head(2.5)


class PenultimateDropoutTest(tf.test.TestCase):

  def test_keeps_fraction_rho_scaled_by_one_over_rho_in_training(self):
    layer = losses.get_objective("dropout", keep_prob=0.7).penultimate()
    self.assertEqual(layer.name, "penultimate_dropout")
    x = np.ones((200, 500), np.float32)
    out = keras.ops.convert_to_numpy(layer(x, training=True))
    kept = out != 0
    self.assertAllClose(kept.mean(), 0.7, atol=0.01)
    self.assertAllClose(out[kept], np.full(kept.sum(), 1 / 0.7), rtol=1e-6)

  def test_identity_at_inference(self):
    layer = losses.get_objective("dropout").penultimate()
    x = np.random.default_rng(0).standard_normal((4, 9)).astype(np.float32)
    self.assertAllEqual(layer(x, training=False), x)
    self.assertAllEqual(layer(x), x)

  def test_other_objectives_have_identity_penultimate(self):
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    for name in losses.NAMES:
      if name == "dropout":
        continue
      self.assertAllEqual(losses.get_objective(name).penultimate()(x, training=True), x,
                          msg=name)


class OutputsTest(tf.test.TestCase):

  def test_logit_normalization_outputs(self):
    layer = losses.get_objective("logit_normalization", tau=0.1).outputs()
    z = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    self.assertAllClose(layer(z), [[6.0, 8.0, 0.0], [0.0, 0.0, 0.0]])
    self.assertEqual(layer.name, "outputs")

  def test_cosine_softmax_outputs_divide_by_tau(self):
    layer = losses.get_objective("cosine_softmax", tau=0.05).outputs()
    self.assertAllClose(layer(np.array([[1.0, -0.5]], np.float32)), [[20.0, -10.0]])

  def test_float16_layer_normalizes_in_float32(self):
    # (1e-4)^2 and the 1e-12 floor underflow in float16; the float32 normalisation does not.
    layer = heads.LogitNormalization(tau=1.0, dtype="float16")
    out = layer(np.array([[1e-4, 0.0], [0.0, 0.0]], np.float32))
    self.assertAllClose(tf.cast(out, tf.float32), [[1.0, 0.0], [0.0, 0.0]])

  def test_config_round_trips(self):
    z = np.array([[1.0, 2.0]], np.float32)
    for layer in (heads.LogitNormalization(tau=0.3), heads.TemperatureScaling(tau=0.3)):
      restored = type(layer).from_config(layer.get_config())
      self.assertEqual(restored.tau, 0.3)
      self.assertAllClose(restored(z), layer(z))


if __name__ == "__main__":
  tf.test.main()
