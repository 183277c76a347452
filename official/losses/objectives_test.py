"""Every registered objective against an independent float64 NumPy form of docs/protocol.md §1."""

import json

from absl.testing import parameterized
import keras
import numpy as np
from scipy import special
import tensorflow as tf

from official import losses


def _logsumexp(z):
  return special.logsumexp(z, axis=-1)


def _rows(y):
  return np.arange(len(y)), y


def _tau_factor(hp):
  return hp["tau"] if hp["scale_loss_by_tau"] and hp["tau"] < 0.05 else 1.0


def _softmax_ref(z, y, hp):
  del hp
  return _logsumexp(z) - z[_rows(y)]


def _label_smoothing_ref(z, y, hp):
  # -(1/(1-a)) sum_k ((1-a) t_k + a/K) log softmax_k, expanded (paper eq. 2).
  a, k = hp["alpha"], z.shape[-1]
  return (_logsumexp(z) - (1 - a) * z[_rows(y)] - a / k * z.sum(-1)) / (1 - a)


def _sigmoid_ref(z, y, hp):
  del hp
  return np.logaddexp(0.0, z).sum(-1) - z[_rows(y)]


def _logit_penalty_ref(z, y, hp):
  return _softmax_ref(z, y, hp) + hp["beta"] * 0.5 * (z ** 2).sum(-1)


def _logit_normalization_ref(z, y, hp):
  norm = np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-6)
  return _tau_factor(hp) * _softmax_ref(z / (hp["tau"] * norm), y, hp)


def _cosine_softmax_ref(z, y, hp):
  return _tau_factor(hp) * _softmax_ref(z / hp["tau"], y, hp)


def _squared_error_ref(z, y, hp):
  others = np.ones_like(z, dtype=bool)
  others[_rows(y)] = False
  correct = hp["kappa"] * (z[_rows(y)] - hp["m"]) ** 2
  return hp["loss_scale"] * (correct + np.where(others, z ** 2, 0.0).sum(-1))


# Per-example reference (float64 logits [B, K], int labels [B], hparams) for each objective.
REFERENCES = {
    "softmax": _softmax_ref,
    "label_smoothing": _label_smoothing_ref,
    "sigmoid": _sigmoid_ref,
    "extra_final_layer_l2": _softmax_ref,
    "dropout": _softmax_ref,
    "logit_penalty": _logit_penalty_ref,
    "logit_normalization": _logit_normalization_ref,
    "cosine_softmax": _cosine_softmax_ref,
    "squared_error": _squared_error_ref,
}


def perturbed_hparams(name):
  """Non-default, valid hyperparameters: every number halved, every switch flipped."""
  return {k: (not v) if isinstance(v, bool) else v * 0.5
          for k, v in losses.DEFAULT_HPARAMS[name].items()}


def _case(name, scale, seed, batch=6, num_classes=5):
  rng = np.random.default_rng(seed)
  z = (rng.standard_normal((batch, num_classes)) * scale).astype(np.float32)
  y = rng.integers(0, num_classes, size=batch)
  # One row whose true class wins by far and one where it loses by far.
  z[0, y[0]] = 3 * scale
  z[1, y[1]] = -3 * scale
  return z, y


def _reference(name, z, y, hp):
  return REFERENCES[name](z.astype(np.float64), y, hp)


def _named(extra=((),)):
  return [(f"_{name}{''.join('_' + str(e) for e in ex)}", name, *ex)
          for name in losses.NAMES for ex in extra]


class ReferenceCoverageTest(tf.test.TestCase):

  def test_every_registered_objective_has_a_reference(self):
    self.assertCountEqual(REFERENCES, losses.NAMES)


class ObjectiveValueTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      _named(extra=[(scale, hp, one_hot) for scale in (3.0, 1e4)
                    for hp in ("defaults", "perturbed") for one_hot in (False, True)]))
  def test_matches_numpy_reference(self, name, scale, hparams, one_hot):
    hp = (dict(losses.DEFAULT_HPARAMS[name]) if hparams == "defaults"
          else {**losses.DEFAULT_HPARAMS[name], **perturbed_hparams(name)})
    z, y = _case(name, scale, seed=len(name))
    labels = np.eye(z.shape[-1], dtype=np.float32)[y] if one_hot else y
    loss = losses.get(name, **hp)
    expected = _reference(name, z, y, hp)
    per_example = keras.ops.convert_to_numpy(
        type(loss).from_config({**loss.get_config(), "reduction": None})(labels, z))
    self.assertTrue(np.all(np.isfinite(per_example)))
    # float32 math on float32 inputs: relative 1e-5, absolute ~ulp of the logits' magnitude.
    self.assertAllClose(per_example, expected, rtol=1e-5, atol=2e-6 * scale)
    self.assertAllClose(float(loss(labels, z)), expected.mean(), rtol=1e-5, atol=2e-6 * scale)

  @parameterized.named_parameters(_named())
  def test_integer_labels_of_shape_batch_by_one(self, name):
    z, y = _case(name, 2.0, seed=3)
    loss = losses.get(name)
    self.assertAllClose(loss(y[:, None], z), loss(y, z))

  @parameterized.named_parameters(_named())
  def test_zero_logits_give_finite_value_and_gradient(self, name):
    z = tf.zeros((3, 4))
    y = np.array([0, 1, 3])
    with tf.GradientTape() as tape:
      tape.watch(z)
      value = losses.get(name)(y, z)
    grad = tape.gradient(value, z)
    self.assertAllClose(float(value), _reference(name, z.numpy(), y,
                                                 losses.DEFAULT_HPARAMS[name]).mean())
    self.assertTrue(np.all(np.isfinite(grad.numpy())))

  @parameterized.named_parameters(_named(extra=[("bfloat16",), ("float16",)]))
  def test_low_precision_logits_give_float32_loss(self, name, dtype):
    z, y = _case(name, 4.0, seed=5)
    low = tf.cast(z, dtype)
    value = losses.get(name)(y, low)
    self.assertEqual(value.dtype, tf.float32)
    upcast = tf.cast(low, tf.float32).numpy()
    self.assertAllClose(float(value), _reference(name, upcast, y,
                                                 losses.DEFAULT_HPARAMS[name]).mean(),
                        rtol=1e-5)


class ObjectiveGradientTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(_named(extra=[(1.0,), (1e4,)]))
  def test_gradient_matches_finite_differences_of_reference(self, name, scale):
    hp = {**losses.DEFAULT_HPARAMS[name], **perturbed_hparams(name)}
    z, y = _case(name, scale, seed=11, batch=4, num_classes=3)
    logits = tf.constant(z)
    with tf.GradientTape() as tape:
      tape.watch(logits)
      value = losses.get(name, **hp)(y, logits)
    grad = tape.gradient(value, logits).numpy()
    self.assertTrue(np.all(np.isfinite(grad)))

    z64 = z.astype(np.float64)
    step = 1e-5 * max(1.0, scale)
    numeric = np.zeros_like(z64)
    for index in np.ndindex(*z64.shape):
      plus, minus = z64.copy(), z64.copy()
      plus[index] += step
      minus[index] -= step
      numeric[index] = (REFERENCES[name](plus, y, hp).mean() -
                        REFERENCES[name](minus, y, hp).mean()) / (2 * step)
    self.assertAllClose(grad, numeric, rtol=2e-3, atol=1e-4 * max(1.0, np.abs(numeric).max()))


class SerializationTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(_named())
  def test_serialize_deserialize_round_trip(self, name):
    loss = losses.get(name, **perturbed_hparams(name))
    serialized = json.loads(json.dumps(keras.losses.serialize(loss)))
    restored = keras.losses.deserialize(serialized)
    self.assertIs(type(restored), type(loss))
    self.assertEqual(restored.get_config(), loss.get_config())
    for key, value in perturbed_hparams(name).items():
      self.assertEqual(restored.get_config()[key], value)
    z, y = _case(name, 2.0, seed=1)
    self.assertAllClose(restored(y, z), loss(y, z))

  @parameterized.named_parameters(_named())
  def test_from_get_config_round_trip(self, name):
    loss = losses.get(name, **perturbed_hparams(name))
    restored = type(loss).from_config(loss.get_config())
    self.assertEqual(restored.get_config(), loss.get_config())
    self.assertEqual(restored.name, name)


class LabelValidationTest(tf.test.TestCase, parameterized.TestCase):

  def _assert_one_line_error(self, regex, loss, labels, logits):
    with self.assertRaisesRegex(ValueError, regex) as raised:
      loss(labels, logits)
    self.assertNotIn("\n", str(raised.exception))

  @parameterized.named_parameters(_named())
  def test_bad_labels_raise(self, name):
    loss = losses.get(name)
    z = np.zeros((3, 4), np.float32)
    self._assert_one_line_error(r"labels: class ids .* \[0, 4\)", loss, [0, 1, 4], z)
    self._assert_one_line_error(r"labels: class ids", loss, [0, -1, 2], z)
    self._assert_one_line_error(r"labels: class ids", loss, [0, 1.5, 2], z)
    self._assert_one_line_error(r"labels: class ids", loss, tf.constant([0, 1, 7]), z)
    self._assert_one_line_error(r"labels: shape \(3, 5\)", loss, np.eye(5)[:3], z)
    self._assert_one_line_error(r"labels: batch size 2", loss, [0, 1], z)
    self._assert_one_line_error(r"labels: one-hot", loss, 2 * np.eye(4)[:3], z)
    self._assert_one_line_error(r"logits: expected shape \[batch, num_classes\]",
                                loss, [0, 1, 2], np.zeros((3,), np.float32))

  def test_static_shape_mismatch_raises_while_tracing(self):
    loss = losses.get("softmax")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32),
                                  tf.TensorSpec([None, 4], tf.float32)])
    def mismatched(labels, logits):
      return loss(labels, logits)

    with self.assertRaisesRegex(ValueError, r"labels: shape \(None, 3\)"):
      mismatched.get_concrete_function()

  def test_graph_mode_with_unknown_batch_matches_eager(self):
    loss = losses.get("label_smoothing")
    z, y = _case("label_smoothing", 2.0, seed=2)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64),
                                  tf.TensorSpec([None, z.shape[1]], tf.float32)])
    def traced(labels, logits):
      return loss(labels, logits)

    self.assertAllClose(traced(y, z), loss(y, z))


if __name__ == "__main__":
  tf.test.main()
