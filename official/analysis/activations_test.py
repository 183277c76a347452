"""Tests for reading activations as [n, features] float64 matrices."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.analysis import activations


class AsMatrixTest(parameterized.TestCase):

  def test_convolutional_activations_flatten_per_example(self):
    conv = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    matrix = activations.as_matrix(conv, "x")
    self.assertEqual(matrix.shape, (2, 24))
    self.assertEqual(matrix.dtype, np.float64)
    np.testing.assert_array_equal(matrix[1], np.arange(24, 48))

  def test_eager_tensor(self):
    matrix = activations.as_matrix(tf.constant([[1.5, 2.0], [0.0, -1.0]]), "x")
    np.testing.assert_array_equal(matrix, [[1.5, 2.0], [0.0, -1.0]])

  def test_reduced_precision_tensor(self):
    matrix = activations.as_matrix(tf.constant([[0.5, -2.0]], tf.bfloat16), "x")
    np.testing.assert_array_equal(matrix, [[0.5, -2.0]])
    self.assertEqual(matrix.dtype, np.float64)

  @parameterized.named_parameters(
      ("vector", np.ones(3), "shape \\(3,\\); expected \\[n, features\\]"),
      ("empty", np.ones((0, 4)), "no entries"),
      ("nan", np.array([[0.0, np.nan]]), "NaN or Inf"),
      ("inf", np.array([[-np.inf, 1.0]]), "NaN or Inf"),
      ("ragged", [[1.0], [1.0, 2.0]], "cannot be read"),
  )
  def test_bad_input(self, value, message):
    with self.assertRaisesRegex(ValueError, "^layer: .*" + message) as raised:
      activations.as_matrix(value, "layer")
    self.assertNotIn("\n", str(raised.exception))


if __name__ == "__main__":
  absltest.main()
