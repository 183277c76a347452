"""Linear CKA (paper eq. 10) and minibatch CKA of unbiased HSIC1 (docs/protocol.md §6).

`linear_cka` takes the feature-space or the Gram form, whichever is cheaper; debiased, it
replaces <K_c, L_c> by HSIC1 (Song et al. 2012). `MinibatchCKA` U-centres each layer's Gram
matrix once per minibatch (Szekely & Rizzo 2014):

  K_U[i, j] = K~[i, j] - (1/(n-2)) sum_l K~[i, l] - (1/(n-2)) sum_l K~[l, j]
              + (1/((n-1)(n-2))) sum_{k,l} K~[k, l]  (i != j),   K_U[i, i] = 0,

for which <K_U, L_U> / (n (n-3)) = HSIC1(K, L) exactly: with the flattened K_U of all layers
as the rows of G, G G^T holds every HSIC1 of the minibatch.
"""

from concurrent import futures
import os
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow as tf
import threadpoolctl

from official.analysis import activations as activations_lib

FORMS = ("auto", "features", "gram")
MIN_EXAMPLES_UNBIASED = 4


def _check_pair(x: Any, y: Any, debiased: bool) -> tuple[np.ndarray, np.ndarray]:
  x = activations_lib.as_matrix(x, "x")
  y = activations_lib.as_matrix(y, "y")
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"x, y: have {x.shape[0]} and {y.shape[0]} examples; CKA compares two "
                     "representations of the same examples (equal first dimensions)")
  if debiased and x.shape[0] < MIN_EXAMPLES_UNBIASED:
    raise ValueError(f"x, y: have {x.shape[0]} examples; the unbiased HSIC1 estimator needs "
                     f"at least {MIN_EXAMPLES_UNBIASED}")
  return x - x.mean(axis=0), y - y.mean(axis=0)


def _normalise(hsic_xy: float, hsic_xx: float, hsic_yy: float) -> float:
  if hsic_xx <= 0.0 or hsic_yy <= 0.0:
    return float("nan")
  return float(hsic_xy / np.sqrt(hsic_xx * hsic_yy))


def _hsic1_from_moments(cross: float, diag_dot: float, trace_x: float, trace_y: float,
                        n: int) -> float:
  """HSIC1 of centred linear Grams K = X X^T, L = Y Y^T from feature-space moments.

  With X, Y column-centred, K 1 = 0, so 1^T K~ 1 = -tr(K), K~ 1 = -diag(K) and
  tr(K~ L~) = <K, L> - diag(K).diag(L); `cross` is <K, L> = ||Y^T X||_F^2, `diag_dot`
  diag(K) . diag(L), `trace_x` tr(K) = ||X||_F^2.
  """
  return (cross - n / (n - 2.0) * diag_dot + trace_x * trace_y / ((n - 1.0) * (n - 2.0))) / (
      n * (n - 3.0))


def _feature_space_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
  cross = np.sum(np.square(y.T @ x))
  self_x = np.sum(np.square(x.T @ x))
  self_y = np.sum(np.square(y.T @ y))
  if not debiased:
    return _normalise(cross, self_x, self_y)
  n = x.shape[0]
  rows_x = np.einsum("ij,ij->i", x, x)
  rows_y = np.einsum("ij,ij->i", y, y)
  trace_x, trace_y = rows_x.sum(), rows_y.sum()
  return _normalise(
      _hsic1_from_moments(cross, rows_x @ rows_y, trace_x, trace_y, n),
      _hsic1_from_moments(self_x, rows_x @ rows_x, trace_x, trace_x, n),
      _hsic1_from_moments(self_y, rows_y @ rows_y, trace_y, trace_y, n))


def _hsic1(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
  """HSIC1(K, L) of symmetric [n, n] Gram matrices (Song et al. 2012; module docstring)."""
  n = gram_x.shape[0]
  k = gram_x.copy()
  l = gram_y.copy()
  np.fill_diagonal(k, 0.0)
  np.fill_diagonal(l, 0.0)
  # For symmetric K~, L~: tr(K~ L~) = sum(K~ * L~) and 1^T K~ L~ 1 = (K~ 1) . (L~ 1).
  return (np.sum(k * l) + k.sum() * l.sum() / ((n - 1.0) * (n - 2.0)) -
          2.0 / (n - 2.0) * (k.sum(axis=0) @ l.sum(axis=0))) / (n * (n - 3.0))


def _gram_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
  gram_x = x @ x.T
  gram_y = y @ y.T
  if not debiased:
    # Centred features give centred Grams: H K H = K.
    return _normalise(np.sum(gram_x * gram_y), np.sum(gram_x * gram_x),
                      np.sum(gram_y * gram_y))
  return _normalise(_hsic1(gram_x, gram_y), _hsic1(gram_x, gram_x), _hsic1(gram_y, gram_y))


def linear_cka(x: Any, y: Any, *, debiased: bool = False, form: str = "auto") -> float:
  """Linear CKA (paper eq. 10) of activations x [n, ...] and y [n, ...] of the same examples.

  `form`: "features", "gram" or "auto" (features when p1 p2 + p1^2 + p2^2 <= n (p1 + p2)); all
  give the same number. `debiased` uses HSIC1 (n >= 4). Returns a float64 Python float, NaN
  where CKA is undefined (zero variance; debiased: non-positive HSIC1(K, K)).
  """
  if form not in FORMS:
    raise ValueError(f"form: unknown value {form!r}; expected one of {', '.join(FORMS)}")
  x, y = _check_pair(x, y, debiased)
  n, p1 = x.shape
  p2 = y.shape[1]
  if form == "auto":
    form = "features" if p1 * p2 + p1 * p1 + p2 * p2 <= n * (p1 + p2) else "gram"
  if form == "features":
    return _feature_space_cka(x, y, debiased)
  return _gram_cka(x, y, debiased)


def _flatten(activations: Any, name: str) -> tf.Tensor:
  """[n, features] tensor of one layer's activations [n, ...]."""
  x = tf.convert_to_tensor(activations)
  if x.shape.rank is not None and x.shape.rank < 2:
    raise ValueError(f"{name}: has shape {x.shape}; expected [n, features] or "
                     "[n, height, width, channels]")
  if x.shape.is_fully_defined():
    flat_shape = [x.shape[0], int(np.prod(x.shape[1:]))]
  else:
    flat_shape = [x.shape[0] if x.shape[0] is not None else tf.shape(x)[0], -1]
  return tf.reshape(x, flat_shape)


def _hsic_matrix(grams: tf.Tensor) -> tf.Tensor:
  """[L, L] HSIC1 between all layers from their float64 Grams [L, n, n] (module docstring);
  U-centring makes centring the activations unnecessary."""
  count = tf.cast(tf.shape(grams)[1], tf.float64)
  zeros = tf.zeros(tf.shape(grams)[:2], tf.float64)
  grams = tf.linalg.set_diag(grams, zeros)
  means = tf.reduce_sum(grams, axis=1) / (count - 2.0)
  means -= tf.reduce_sum(means, axis=1, keepdims=True) / (2.0 * (count - 1.0))
  grams = tf.linalg.set_diag(grams - means[:, :, None] - means[:, None, :], zeros)
  # Not `/ tf.sqrt(.)`, which graph optimisation rewrites as `* tf.math.rsqrt(.)`: rounded
  # differently, so graphs and eager execution would disagree in the last bit.
  rows = tf.math.divide_no_nan(tf.reshape(grams, [tf.shape(grams)[0], -1]),
                               tf.sqrt(count * (count - 3.0)))
  return tf.matmul(rows, rows, transpose_b=True)


# Eager updates run the centring and G G^T as one graph, traced once for every shape.
_EAGER_HSIC_MATRIX = tf.function(
    _hsic_matrix, input_signature=[tf.TensorSpec([None, None, None], tf.float64)])
_BLAS = threadpoolctl.ThreadpoolController()


def _numpy_grams(layers: Sequence[tf.Tensor]) -> np.ndarray:
  """[L, n, n] float64 Grams X X^T of eager layers [n, features].

  NumPy's x @ x.T is a symmetric rank-k update (half a matrix product's work); each runs on
  one BLAS thread, the layers on Python threads, as idle BLAS threads busy-wait and would
  starve TensorFlow's.
  """
  def gram(a):
    x = np.asarray(a, np.float64)
    return x @ x.T

  with _BLAS.limit(limits=1, user_api="blas"), futures.ThreadPoolExecutor(
      min(len(layers), os.cpu_count() or 1)) as pool:
    return np.stack(list(pool.map(gram, layers)))


class MinibatchCKA(tf.Module):
  """Minibatch CKA between every layer of network X (L1 >= 1) and of network Y (L2 >= 0).

  State: `hsic_sums`, the [L, L] sum over minibatches of HSIC1 between all L = L1 + L2 layers
  (X's first), and `num_minibatches`, float64 variables with aggregation=SUM. Created inside
  `strategy.scope()` and updated inside `strategy.run`, each replica's batch is one minibatch
  and the replicas' contributions add up; separately filled objects combine with `merge`.
  """

  def __init__(self, num_layers_x: int, num_layers_y: int, name: str = "minibatch_cka"):
    super().__init__(name=name)
    if not isinstance(num_layers_x, (int, np.integer)) or num_layers_x < 1:
      raise ValueError(f"num_layers_x: got {num_layers_x!r}; expected an integer >= 1")
    if not isinstance(num_layers_y, (int, np.integer)) or num_layers_y < 0:
      raise ValueError(f"num_layers_y: got {num_layers_y!r}; expected an integer >= 0")
    self.num_layers_x = int(num_layers_x)
    self.num_layers_y = int(num_layers_y)
    size = self.num_layers_x + self.num_layers_y
    with self.name_scope:
      self.hsic_sums = tf.Variable(
          tf.zeros([size, size], tf.float64), trainable=False, name="hsic_sums",
          aggregation=tf.VariableAggregation.SUM)
      self.num_minibatches = tf.Variable(
          tf.zeros([], tf.float64), trainable=False, name="num_minibatches",
          aggregation=tf.VariableAggregation.SUM)

  def _layers(self, activations: Sequence[Any], expected: int, name: str) -> list[tf.Tensor]:
    is_list = (isinstance(activations, Sequence) and
               not isinstance(activations, (tf.Tensor, np.ndarray, Mapping)))
    if not is_list or len(activations) != expected:
      given = f"{len(activations)} layers" if is_list else f"a {type(activations).__name__}"
      raise ValueError(f"{name}: got {given}; expected a sequence of {expected} layers' "
                       "activations [n, ...]")
    return [_flatten(a, f"{name}[{i}]") for i, a in enumerate(activations)]

  def update_state(self, activations_x: Sequence[Any], activations_y: Sequence[Any] = ()):
    """Adds one minibatch of n >= 4 examples: L1 and L2 tensors [n, ...] of X and Y.

    Works eagerly and inside `tf.function` / `strategy.run` (dynamic shapes are checked by
    runtime assertions).
    """
    names = ([f"activations_x[{i}]" for i in range(self.num_layers_x)] +
             [f"activations_y[{i}]" for i in range(self.num_layers_y)])
    layers = (self._layers(activations_x, self.num_layers_x, "activations_x") +
              self._layers(activations_y, self.num_layers_y, "activations_y"))
    sizes = {int(a.shape[0]) for a in layers if a.shape[0] is not None}
    if len(sizes) > 1:
      raise ValueError(f"activations_x, activations_y: layers have different numbers of "
                       f"examples {sorted(sizes)}; expected one minibatch of the same examples")
    if sizes and min(sizes) < MIN_EXAMPLES_UNBIASED:
      raise ValueError(f"activations_x: minibatch has {min(sizes)} examples; the unbiased "
                       f"HSIC1 estimator needs at least {MIN_EXAMPLES_UNBIASED}")
    if any(a.shape[0] is None for a in layers):
      n = tf.shape(layers[0])[0]
      checks = [tf.debugging.assert_greater_equal(
          n, MIN_EXAMPLES_UNBIASED,
          message="activations_x: the unbiased HSIC1 estimator needs at least 4 examples")]
      checks += [tf.debugging.assert_equal(
          tf.shape(a)[0], n, message="activations_x, activations_y: different numbers of "
          "examples") for a in layers[1:]]
      with tf.control_dependencies(checks):
        layers = [tf.identity(a) for a in layers]
    if tf.executing_eagerly():
      grams = _numpy_grams(layers)
      finite = np.isfinite(np.diagonal(grams, axis1=1, axis2=2)).all(axis=1)
      if not finite.all():
        raise ValueError(f"{names[int(np.argmin(finite))]}: contains NaN or Inf; expected "
                         "finite activations")
      hsic = _EAGER_HSIC_MATRIX(tf.constant(grams))
    else:
      hsic = _hsic_matrix(tf.stack([tf.debugging.assert_all_finite(
          tf.matmul(a, a, transpose_b=True),
          f"{name}: contains NaN or Inf; expected finite activations")
          for a, name in zip([tf.cast(a, tf.float64) for a in layers], names)]))
    # In graphs, a failed check must leave both accumulators unchanged.
    with tf.control_dependencies([hsic]):
      self.hsic_sums.assign_add(hsic)
      self.num_minibatches.assign_add(tf.ones([], tf.float64))

  def merge(self, other: "MinibatchCKA") -> None:
    """Adds the accumulators of `other` (same layer counts) into this object."""
    if not isinstance(other, MinibatchCKA) or (
        (other.num_layers_x, other.num_layers_y) != (self.num_layers_x, self.num_layers_y)):
      shape = ((other.num_layers_x, other.num_layers_y) if isinstance(other, MinibatchCKA)
               else type(other).__name__)
      raise ValueError(f"other: has layers {shape}; expected a MinibatchCKA with layers "
                       f"{(self.num_layers_x, self.num_layers_y)}")
    self.hsic_sums.assign_add(tf.convert_to_tensor(other.hsic_sums))
    self.num_minibatches.assign_add(tf.convert_to_tensor(other.num_minibatches))

  def reset_state(self) -> None:
    """Sets the accumulators back to zero."""
    self.hsic_sums.assign(tf.zeros_like(self.hsic_sums))
    self.num_minibatches.assign(tf.zeros([], tf.float64))

  def _cka_matrix(self) -> np.ndarray:
    if float(tf.convert_to_tensor(self.num_minibatches)) == 0.0:
      raise ValueError("MinibatchCKA: no minibatches accumulated; call update_state first")
    hsic = tf.convert_to_tensor(self.hsic_sums).numpy()
    self_hsic = np.diag(hsic)
    scale = np.sqrt(np.where(self_hsic > 0.0, self_hsic, np.nan))
    return hsic / scale[:, None] / scale[None, :]

  def result(self) -> np.ndarray:
    """[L1, L2] float64 minibatch CKA, NaN where a layer's mean HSIC1(K, K) is not positive."""
    return self._cka_matrix()[:self.num_layers_x, self.num_layers_x:]

  def within_network_results(self) -> tuple[np.ndarray, np.ndarray]:
    """([L1, L1], [L2, L2]) minibatch CKA among the layers of X and among those of Y."""
    matrix = self._cka_matrix()
    split = self.num_layers_x
    return matrix[:split, :split], matrix[split:, split:]
