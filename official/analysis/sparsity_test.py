"""Tests for the share of non-zero activations (Figure 3)."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.analysis import sparsity


def _relu_with_known_zeros(shape, num_zeros: int, seed: int) -> np.ndarray:
  """Positive activations with exactly `num_zeros` zero entries at random places."""
  rng = np.random.default_rng(seed)
  values = rng.uniform(0.1, 3.0, shape).astype(np.float32)
  values.reshape(-1)[rng.choice(values.size, num_zeros, replace=False)] = 0.0
  return values


def _fraction_nonzero(activations) -> float:
  metric = sparsity.Sparsity()
  metric.update_state({"layer": activations})
  return metric.result()["layer"]


class FractionNonzeroTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(((4, 6), 5), ((3, 2, 2, 5), 17), ((2, 7), 0), ((5, 1), 5))
  def test_exact_share(self, shape, num_zeros):
    activations = _relu_with_known_zeros(shape, num_zeros, seed=num_zeros)
    size = int(np.prod(shape))
    expected = (size - num_zeros) / size
    self.assertEqual(_fraction_nonzero(activations), expected)
    self.assertEqual(_fraction_nonzero(tf.constant(activations)), expected)

  def test_relu_of_symmetric_noise_is_half_nonzero(self):
    rng = np.random.default_rng(0)
    activations = np.maximum(rng.standard_normal((200, 8, 8, 4)), 0.0)
    self.assertAllClose(_fraction_nonzero(activations), 0.5, atol=0.01)

  @parameterized.named_parameters(
      ("nan", np.array([[1.0, np.nan]]), "NaN"),
      ("inf_tensor", tf.constant([[np.inf, 0.0]]), "NaN or Inf"),
      ("empty", np.zeros((0, 3)), "no entries"),
      ("empty_tensor", tf.zeros((0, 3)), "no entries"),
      ("strings", np.array([["a"]]), "numeric"),
  )
  def test_bad_input(self, activations, message):
    with self.assertRaisesRegex(ValueError, message) as raised:
      _fraction_nonzero(activations)
    self.assertNotIn("\n", str(raised.exception))


class SparsityTest(tf.test.TestCase, parameterized.TestCase):

  def test_streaming_per_endpoint_counts(self):
    batches = [{"block1": _relu_with_known_zeros((4, 3, 3, 2), 10, seed=i),
                "final_avg_pool": _relu_with_known_zeros((4, 8), 3 * i, seed=10 + i)}
               for i in range(3)]
    metric = sparsity.Sparsity()
    for i, batch in enumerate(batches):
      metric.update_state(batch if i % 2 else {k: tf.constant(v) for k, v in batch.items()})
    self.assertEqual(metric.total, {"block1": 216, "final_avg_pool": 96})
    self.assertEqual(metric.nonzero, {"block1": 216 - 30, "final_avg_pool": 96 - 9})
    self.assertEqual(list(metric.result()), ["block1", "final_avg_pool"])
    self.assertEqual(metric.result(), {"block1": 186 / 216, "final_avg_pool": 87 / 96})
    whole = np.concatenate([b["final_avg_pool"] for b in batches])
    self.assertEqual(metric.result()["final_avg_pool"], _fraction_nonzero(whole))

  def test_merge(self):
    first, second, whole = sparsity.Sparsity(), sparsity.Sparsity(), sparsity.Sparsity()
    a = {"block1": np.array([[0.0, 1.0, 2.0]])}
    b = {"block1": np.array([[0.0, 0.0, 0.0]]), "block2": np.array([[5.0, 0.0]])}
    first.update_state(a)
    second.update_state(b)
    whole.update_state(a)
    whole.update_state(b)
    first.merge(second)
    self.assertEqual(first.result(), whole.result())
    self.assertEqual(first.result(), {"block1": 2 / 6, "block2": 1 / 2})
    first.reset_state()
    self.assertEqual(first.total, {})

  @parameterized.named_parameters(
      ("array_not_mapping", lambda m: m.update_state(np.ones((2, 2))), "mapping"),
      ("empty_mapping", lambda m: m.update_state({}), "non-empty"),
      ("nan", lambda m: m.update_state({"block3": np.array([np.nan])}), "'block3'.*NaN"),
      ("result_before_update", lambda m: m.result(), "no activations"),
      ("merge_other_type", lambda m: m.merge({"block1": 1}), "expected a Sparsity"),
  )
  def test_bad_input(self, call, message):
    metric = sparsity.Sparsity()
    with self.assertRaisesRegex(ValueError, message) as raised:
      call(metric)
    self.assertNotIn("\n", str(raised.exception))
    self.assertEqual(metric.total, {})


if __name__ == "__main__":
  tf.test.main()
