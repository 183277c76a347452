"""Linear probe: L2-regularised multinomial logistic regression on frozen features.

Transfer with fixed features (docs/protocol.md §4, Table 1 "Linear"). On features x [n, D] with
classes y in 0..K-1 the probe minimises, over weights W [D, K] and bias b [K],

  J(W, b) = sum_i CE(x_i W + b, y_i) + l2 * ||W||_F^2,      CE(z, y) = logsumexp(z) - z_y,

the scaling of Kornblith's `linear_eval` (scikit-learn's `LogisticRegression(C=1 / (2 * l2))`).

The solver is full-batch L-BFGS (compact inverse Hessian, weak Wolfe line search) on J / n, so
its gradient tolerance is per example, inside one `tf.function`. It works class-major on centred
features (the bias absorbs the mean: the same minimiser, with far less elongated curvature), and
as the logits are affine in the step, each line-search trial costs O(n K) after one product X d.

`search_penalty` chooses the penalty; every solve is warm-started (`warm_start`). Without a
validation split a stratified `holdout_fraction` of train is held out; `standardize=True`
z-scores the features and folds the scaling back into `weights`/`bias`.
"""

import dataclasses
import functools
import math
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from official.evaluation import inputs
from official.evaluation import metrics

# Kornblith's linear_eval grid: 10^-6, 10^-4, ..., 10^6 (docs/protocol.md §4).
DEFAULT_L2_GRID = tuple(float(10.0**e) for e in range(-6, 7, 2))
NUM_REFINEMENTS = 4
MAX_ITERATIONS = 1000
# Max-norm of the gradient of J / n at which L-BFGS stops (scikit-learn's default `tol`).
TOLERANCE = 1e-4
HISTORY_SIZE = 10
HOLDOUT_FRACTION = 0.2
# jit_compile=None compiles the solver with XLA up to this many feature entries n x D (small
# problems, dominated by per-op overhead); the XLA path holds a transposed copy of the features.
XLA_MAX_ENTRIES = 2**21

# Wolfe constants (sufficient decrease, curvature) and line-search trial budget.
_C1 = 1e-4
_C2 = 0.9
_MAX_LINE_SEARCH = 30
# Slack of the sufficient-decrease test, in units of J's rounding (machine epsilon x |J / n|).
_ROUNDING_ULPS = 8

# Solver stopping reasons.
STATUS_CONVERGED = 0
STATUS_MAX_ITERATIONS = 1
STATUS_NO_PROGRESS = 2
_STATUS_RUNNING = -1


@dataclasses.dataclass(frozen=True)
class Solution:
  """Minimiser W [D, K], b [K] of J at penalty l2, with J / n there (`objective`), max |dJ/n|,
  the iterations run and the status: STATUS_CONVERGED, STATUS_MAX_ITERATIONS or
  STATUS_NO_PROGRESS (no step decreased J any more: as accurate as the arithmetic allows).
  """
  weights: np.ndarray
  bias: np.ndarray
  l2: float
  objective: float
  gradient_max_norm: float
  iterations: int
  status: int


def _inverse_hessian_times(g, s_hist, y_hist, gamma, count):
  """H g for the L-BFGS inverse-Hessian H of the stored pairs, in the compact form of Byrd,
  Nocedal and Schnabel (1994; Nocedal & Wright eq. 7.24) with H_0 = gamma I.

  s_hist, y_hist: [m, P] pairs, oldest first; the last `count` rows are valid, the others zero.
  A few matrix products instead of the two-loop recursion's 4m dependent vector operations.
  """
  m = s_hist.shape[0]
  a = tf.linalg.matvec(s_hist, g)
  b = tf.linalg.matvec(y_hist, g)
  sy = tf.matmul(s_hist, y_hist, transpose_b=True)
  yy = tf.matmul(y_hist, y_hist, transpose_b=True)
  valid = tf.range(m) >= m - count
  diagonal = tf.where(valid, tf.linalg.diag_part(sy), tf.zeros([], g.dtype))
  # R: the upper triangle of S Y^T, with a unit diagonal in the empty slots.
  r = tf.linalg.set_diag(tf.linalg.band_part(sy, 0, -1),
                         tf.where(valid, diagonal, tf.ones([], g.dtype)))
  x1 = tf.linalg.triangular_solve(r, a[:, None], lower=False)
  v = diagonal[:, None] * x1 + gamma * tf.matmul(yy, x1) - gamma * b[:, None]
  top = tf.linalg.triangular_solve(r, v, lower=False, adjoint=True)
  return (gamma * g + tf.linalg.matvec(s_hist, top[:, 0], transpose_a=True)
          - gamma * tf.linalg.matvec(y_hist, x1[:, 0], transpose_a=True))


def _lbfgs(x, x_transposed, y, theta0, l2, max_iterations, tolerance, history_size):
  """Minimises J / n over theta = [W^T, b] ([K, D + 1], bias last) by L-BFGS.

  x [n, D] features, x_transposed its transpose or None (with it the logits read X^T: XLA on a
  CPU multiplies a transposed operand several times slower), y [K, n] one-hot labels, theta0
  the start; returns theta, J / n, the gradient max-norm, the iterations and the status.
  Class-major (logits Z^T [K, n]): the sums over classes add contiguous rows.
  """
  dtype = x.dtype
  n = tf.cast(tf.shape(x)[0], dtype)
  c = l2 / n  # J / n = mean CE + c ||W||^2

  def logits(theta):
    if x_transposed is not None:
      return tf.matmul(theta[:, :-1], x_transposed) + theta[:, -1:]
    return tf.matmul(theta[:, :-1], x, transpose_b=True) + theta[:, -1:]

  def cross_entropy(z):
    """Mean CE and the softmax probabilities of logits z, from one exponential."""
    shifted = z - tf.reduce_max(z, axis=0, keepdims=True)
    e = tf.exp(shifted)
    total = tf.reduce_sum(e, axis=0, keepdims=True)
    ce = tf.reduce_mean(tf.math.log(total[0]) - tf.reduce_sum(y * shifted, axis=0))
    return ce, e / total

  def gradient(theta, p):
    residual = p - y  # [K, n]: the gradient of W^T is R X
    g_w = tf.matmul(residual, x) / n + 2.0 * c * theta[:, :-1]
    g_b = tf.reduce_sum(residual, axis=1, keepdims=True) / n
    return tf.concat([g_w, g_b], axis=1)

  def max_norm(v):
    return tf.reduce_max(tf.abs(v))

  z0 = logits(theta0)
  ce0, p0 = cross_entropy(z0)
  f0 = ce0 + c * tf.reduce_sum(tf.square(theta0[:, :-1]))
  g0 = gradient(theta0, p0)
  zero_hist = tf.zeros([history_size, tf.size(theta0)], dtype)
  one = tf.constant(1.0, dtype)
  status0 = tf.where(max_norm(g0) <= tolerance, STATUS_CONVERGED, _STATUS_RUNNING)

  def cond(it, theta, z, f, g, s_hist, y_hist, gamma, count, status):
    del theta, z, f, g, s_hist, y_hist, gamma, count
    return tf.logical_and(status == _STATUS_RUNNING, it < max_iterations)

  def body(it, theta, z, f, g, s_hist, y_hist, gamma, count, status):
    direction = -tf.reshape(
        _inverse_hessian_times(tf.reshape(g, [-1]), s_hist, y_hist, gamma, count), tf.shape(g))
    slope = tf.reduce_sum(g * direction)
    # Not a descent direction (rounding): restart from steepest descent.
    restart = tf.logical_or(tf.logical_not(slope < 0), tf.logical_not(tf.math.is_finite(slope)))
    direction = tf.where(restart, -g, direction)
    slope = tf.where(restart, -tf.reduce_sum(g * g), slope)
    count = tf.where(restart, 0, count)
    s_hist = tf.where(restart, tf.zeros_like(s_hist), s_hist)
    y_hist = tf.where(restart, tf.zeros_like(y_hist), y_hist)
    first = tf.equal(count, 0)
    gamma = tf.where(first, one, gamma)
    t0 = tf.where(first, tf.minimum(one, one / tf.norm(direction)), one)

    u = logits(direction)  # X d_W + d_b: the logits move by t * u along the direction
    w_dot_d = tf.reduce_sum(theta[:, :-1] * direction[:, :-1])
    d_dot_d = tf.reduce_sum(tf.square(direction[:, :-1]))
    w_dot_w = tf.reduce_sum(tf.square(theta[:, :-1]))

    def phi(t):
      ce, p = cross_entropy(z + t * u)
      value = ce + c * (w_dot_w + 2.0 * t * w_dot_d + t * t * d_dot_d)
      deriv = (tf.reduce_mean(tf.reduce_sum((p - y) * u, axis=0))
               + 2.0 * c * (w_dot_d + t * d_dot_d))
      return value, deriv, ce, p

    inf = tf.constant(np.inf, dtype)
    # Sufficient decrease up to J's rounding: near the optimum a step's decrease is below the
    # resolution of J / n, which would reject every step while the gradient can still shrink.
    rounding = _ROUNDING_ULPS * np.finfo(dtype.as_numpy_dtype).eps * tf.abs(f)

    def ls_cond(i, t, lo, f_lo, df_lo, hi, f_hi, done, ce_t, p_t):
      del t, lo, f_lo, df_lo, hi, f_hi, ce_t, p_t
      return tf.logical_and(tf.logical_not(done), i < _MAX_LINE_SEARCH)

    def ls_body(i, t, lo, f_lo, df_lo, hi, f_hi, done, ce_t, p_t):
      f_t, df_t, ce_t, p_t = phi(t)
      finite = tf.logical_and(tf.math.is_finite(f_t), tf.math.is_finite(df_t))
      armijo = tf.logical_and(finite, f_t <= f + _C1 * t * slope + rounding)
      curvature = df_t >= _C2 * slope
      done = tf.logical_and(armijo, curvature)
      # Sufficient decrease fails: the step is too long, shrink the bracket from above.
      hi, f_hi = tf.where(armijo, hi, t), tf.where(armijo, f_hi, f_t)
      # Still descending steeply: the step is too short, raise the lower end.
      raise_lo = tf.logical_and(armijo, tf.logical_not(curvature))
      lo, f_lo, df_lo = (tf.where(raise_lo, t, lo), tf.where(raise_lo, f_t, f_lo),
                         tf.where(raise_lo, df_t, df_lo))
      width = hi - lo
      # Minimiser of the quadratic through (lo, f_lo, df_lo) and (hi, f_hi), kept inside the
      # bracket; expansion while no upper end is known.
      curv = f_hi - f_lo - df_lo * width
      quad = lo - df_lo * width * width / (2.0 * curv)
      quad = tf.where(tf.logical_and(tf.math.is_finite(quad), curv > 0), quad, lo + 0.5 * width)
      quad = tf.clip_by_value(quad, lo + 0.1 * width, hi - 0.1 * width)
      quad = tf.where(tf.math.is_finite(f_hi), quad, lo + 0.1 * width)
      t_next = tf.where(tf.math.is_inf(hi), 4.0 * t, quad)
      t_next = tf.where(done, t, t_next)
      return i + 1, t_next, lo, f_lo, df_lo, hi, f_hi, done, ce_t, p_t

    _, t, lo, _, _, _, _, found, ce_t, p_t = tf.while_loop(
        ls_cond, ls_body,
        (tf.constant(0), t0, tf.zeros([], dtype), f, slope, inf, inf, tf.constant(False),
         f, tf.zeros_like(z)))
    # Budget spent with a sufficient-decrease step in hand: take it (progress is judged by the
    # gradient, which float32 still resolves near the optimum where J's decrease is not).
    t = tf.where(found, t, lo)
    moved = t > 0
    step = t * direction
    theta_new = theta + step
    z_new = z + t * u
    # The accepted trial's probabilities, recomputed only after a spent budget.
    ce_new, p_new = tf.cond(found, lambda: (ce_t, p_t), lambda: cross_entropy(z_new))
    f_new = ce_new + c * tf.reduce_sum(tf.square(theta_new[:, :-1]))
    g_new = gradient(theta_new, p_new)

    dg = g_new - g
    sy = tf.reduce_sum(step * dg)
    yy = tf.reduce_sum(dg * dg)
    store = tf.logical_and(moved, sy > 1e-10 * yy)
    # The newest pair goes last; the oldest drops out of the window.
    s_hist = tf.where(store, tf.concat([s_hist[1:], tf.reshape(step, [1, -1])], 0), s_hist)
    y_hist = tf.where(store, tf.concat([y_hist[1:], tf.reshape(dg, [1, -1])], 0), y_hist)
    gamma = tf.where(store, sy / tf.where(store, yy, one), gamma)
    count = tf.where(store, tf.minimum(count + 1, history_size), count)

    theta = tf.where(moved, theta_new, theta)
    z = tf.where(moved, z_new, z)
    f = tf.where(moved, f_new, f)
    g = tf.where(moved, g_new, g)
    status = tf.where(max_norm(g) <= tolerance, STATUS_CONVERGED,
                      tf.where(moved, _STATUS_RUNNING, STATUS_NO_PROGRESS))
    return it + 1, theta, z, f, g, s_hist, y_hist, gamma, count, status

  it, theta, _, f, g, *_, status = tf.while_loop(
      cond, body,
      (tf.constant(0), theta0, z0, f0, g0, zero_hist, zero_hist, one, tf.constant(0),
       status0))
  status = tf.where(status == _STATUS_RUNNING, STATUS_MAX_ITERATIONS, status)
  return theta, f, max_norm(g), it, status


def _lbfgs_path(x, y, theta0, settings, history_size, transpose_once):
  """Solves a path of penalties in order, each from the previous one's solution.

  settings [tolerance, max_iterations, l2_1, ..., l2_G] (one argument: each argument of a call
  costs dispatch time); theta0 starts l2_1. Returns thetas [G, K, D + 1] and the per-penalty
  J / n, gradient max-norms, iterations and statuses [G].
  """
  tolerance = settings[0]
  max_iterations = tf.cast(settings[1], tf.int32)
  penalties = settings[2:]
  count = tf.shape(penalties)[0]
  x_transposed = tf.transpose(x) if transpose_once else None
  dtype = x.dtype
  outputs = (tf.zeros(tf.concat([[count], tf.shape(theta0)], 0), dtype), tf.zeros([count], dtype),
             tf.zeros([count], dtype), tf.zeros([count], tf.int32), tf.zeros([count], tf.int32))

  def body(i, theta, outputs):
    solved = _lbfgs(x, x_transposed, y, theta, penalties[i], max_iterations, tolerance,
                    history_size)
    outputs = tuple(tf.tensor_scatter_nd_update(out, [[i]], value[None])
                    for out, value in zip(outputs, solved))
    return i + 1, solved[0], outputs

  _, _, outputs = tf.while_loop(lambda i, *_: i < count, body, (tf.constant(0), theta0, outputs))
  return outputs


@functools.cache
def _solver(dtype: tf.DType, history_size: int, jit_compile: bool):
  """The L-BFGS path tf.function for one arithmetic, traced once for every problem size."""
  matrix = tf.TensorSpec([None, None], dtype)
  return tf.function(
      functools.partial(_lbfgs_path, history_size=history_size, transpose_once=jit_compile),
      jit_compile=jit_compile,
      input_signature=[matrix, matrix, matrix, tf.TensorSpec([None], dtype)])


class _Problem:
  """Centred features and one-hot labels placed once, for a path of solves at several
  penalties; solutions go in and out in the parameters of the raw features."""

  def __init__(self, x: np.ndarray, labels: np.ndarray, num_classes: int, dtype: str):
    self.dtype = tf.as_dtype(dtype)
    x = np.asarray(x, dtype=self.dtype.as_numpy_dtype)
    self.mean = x.mean(axis=0, dtype=np.float64)
    self.x = tf.convert_to_tensor(x - self.mean.astype(x.dtype))
    # One-hot [K, n], built in NumPy (cheaper than an eager tf.one_hot).
    one_hot = np.zeros((num_classes, x.shape[0]), x.dtype)
    one_hot[labels, np.arange(x.shape[0])] = 1
    self.y = tf.constant(one_hot)
    self.num_features = int(x.shape[1])
    self.num_classes = num_classes

  def solve(self, penalties: Sequence[float], init: Optional[Solution], *, max_iterations: int,
            tolerance: float, history_size: int, jit_compile: Optional[bool]) -> list[Solution]:
    """Solutions at `penalties`, solved in order in one call, the first from `init` (None:
    zeros), each next one from the previous one's solution."""
    # The solver's parameters are class-major, [W^T, b] ([K, D + 1]).
    if init is None:
      theta0 = tf.constant(np.zeros((self.num_classes, self.num_features + 1),
                                    self.dtype.as_numpy_dtype))
    else:
      bias = init.bias + self.mean @ init.weights
      theta0 = tf.constant(np.concatenate([init.weights.T, bias[:, None]], 1),
                           dtype=self.dtype)
    if jit_compile is None:
      jit_compile = self.x.shape[0] * self.num_features <= XLA_MAX_ENTRIES
    settings = tf.constant([tolerance, max_iterations, *penalties], self.dtype)
    outputs = _solver(self.dtype, int(history_size), bool(jit_compile))(
        self.x, self.y, theta0, settings)
    thetas, objectives, gradients, iterations, statuses = (v.numpy() for v in outputs)
    solutions = []
    for l2, theta, f, g_max, it, status in zip(penalties, thetas, objectives, gradients,
                                               iterations, statuses):
      weights = np.ascontiguousarray(theta[:, :-1].T)
      bias = theta[:, -1] - (self.mean @ weights).astype(theta.dtype)
      solutions.append(Solution(weights=weights, bias=bias, l2=float(l2), objective=float(f),
                                gradient_max_norm=float(g_max), iterations=int(it),
                                status=int(status)))
    return solutions


def holdout_split(labels: np.ndarray, fraction: float = HOLDOUT_FRACTION,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic stratified split of train into (fit, held-out) index arrays.

  Each class of c examples gives round(fraction * c) examples, at most c - 1, to the held-out
  part, chosen by a permutation seeded with `seed`; both index arrays are sorted.
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  held = []
  for cls in np.unique(labels):
    members = np.flatnonzero(labels == cls)
    count = min(members.size - 1, int(round(fraction * members.size)))
    if count > 0:
      held.append(members[rng.permutation(members.size)[:count]])
  if not held:
    raise ValueError(f"train has too few examples per class to hold out a validation part "
                     f"(holdout_fraction={fraction}); pass val_x and val_y")
  held = np.sort(np.concatenate(held))
  keep = np.setdiff1d(np.arange(labels.size), held)
  return keep, held


def search_penalty(train_fn: Callable[[list, dict], list], score_fn: Callable[[Any], float],
                   l2_grid: Sequence[float] = DEFAULT_L2_GRID,
                   num_refinements: int = NUM_REFINEMENTS) -> tuple[float, Any, dict]:
  """Chooses the penalty as Kornblith's `linear_eval`.

  `train_fn(penalties, solved)` fits a path of penalties (list, fitted in that order, each
  free to start from the previous one's fit) given `solved` (l2 -> fit of every penalty
  fitted before, for warm starts) and returns their fits; `score_fn(fit)` is a fit's
  validation score (larger is better). The grid is one path, from the largest penalty down;
  each refined penalty is a path of one. Returns (best l2, its fit, l2 -> score of every
  penalty in the order tried).
  """
  grid = sorted(float(v) for v in l2_grid)
  solutions = dict(zip(reversed(grid), train_fn(list(reversed(grid)), {})))
  scores = {l2: float(score_fn(solution)) for l2, solution in solutions.items()}
  best_index = int(np.argmax([scores[l2] for l2 in grid]))  # ties: the smallest penalty
  best_l2 = grid[best_index]
  best_score = scores[best_l2]
  best = solutions[best_l2]
  # Steps in log10 so that refined penalties of a decade grid print as 0.1, 10^-0.5, ...
  upper = max(best_index, 1)  # the grid step next to the best penalty
  log_step = math.log10(grid[upper] / grid[upper - 1]) if len(grid) > 1 else 0.0
  best_exponent = math.log10(best_l2)
  for _ in range(num_refinements if log_step > 0 else 0):
    log_step /= 2.0
    for sign in (-1.0, 1.0):
      exponent = best_exponent + sign * log_step
      l2 = float(10.0**exponent)
      [solution] = train_fn([l2], dict(solutions))
      solutions[l2] = solution
      score = float(score_fn(solution))
      scores[l2] = score
      if score > best_score:
        best_l2, best, best_score, best_exponent = l2, solution, score, exponent
        break
  return best_l2, best, scores


@dataclasses.dataclass
class LinearProbe:
  """A fitted linear probe: W [D, K] on the raw features (standardisation folded in), b [K],
  the sorted class label of each output, the chosen penalty l2 (J's scaling), the search's
  record (scores and L-BFGS iterations per penalty) and the sizes and times of search and
  refit (refit_iterations 0: no refit)."""
  weights: np.ndarray
  bias: np.ndarray
  classes: np.ndarray
  l2: float
  metric: str
  validation_scores: dict
  validation_score: float
  iterations: dict
  refit_iterations: int
  solution: Solution
  num_train: int
  num_validation: int
  seconds_search: float
  seconds_refit: float

  def logits(self, x) -> np.ndarray:
    """[n, K] logits x W + b of features x [n, D]."""
    x = inputs.check_features(x, "x", self.weights.shape[0])
    return (x.astype(self.weights.dtype) @ self.weights + self.bias)

  def predict_proba(self, x) -> np.ndarray:
    """[n, K] softmax probabilities, columns in the order of `classes`."""
    z = self.logits(x).astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)

  def predict(self, x) -> np.ndarray:
    """[n] predicted class labels (argmax of the logits)."""
    return self.classes[np.argmax(self.logits(x), axis=1)]

  def score(self, x, y, metric: Optional[str] = None) -> float:
    """Metric (default: the selection metric) of the predictions on (x, y)."""
    return metrics.compute(metric or self.metric, np.asarray(y), self.predict(x))


def solve(features, labels, l2: float, *, num_classes: Optional[int] = None,
          initial_weights=None, initial_bias=None, max_iterations: int = MAX_ITERATIONS,
          tolerance: float = TOLERANCE, history_size: int = HISTORY_SIZE,
          dtype: str = "float32", jit_compile: Optional[bool] = None) -> Solution:
  """Minimises J at one penalty by L-BFGS.

  features [n, D], labels [n] in 0..num_classes-1 (K default: max label + 1); the warm start
  defaults to zeros; stops when max |grad of J / n| <= tolerance; jit_compile None: XLA up
  to XLA_MAX_ENTRIES feature entries.
  """
  x = inputs.check_features(features, "features")
  y = inputs.check_labels(labels, "labels", x.shape[0], "features").astype(np.int64)
  if y.min() < 0:
    raise ValueError("labels must be class ids in 0..num_classes-1, got a negative id")
  k = int(y.max()) + 1 if num_classes is None else int(num_classes)
  if y.max() >= k:
    raise ValueError(f"labels must be class ids in 0..{k - 1}, got {int(y.max())}")
  _check_solver_args(l2, max_iterations, tolerance, history_size, dtype)
  init = None
  if initial_weights is not None or initial_bias is not None:
    w0 = np.zeros((x.shape[1], k)) if initial_weights is None else np.asarray(initial_weights)
    b0 = np.zeros((k,)) if initial_bias is None else np.asarray(initial_bias)
    if w0.shape != (x.shape[1], k) or b0.shape != (k,):
      raise ValueError(f"initial_weights/initial_bias must have shapes {(x.shape[1], k)} and "
                       f"{(k,)}, got {w0.shape} and {b0.shape}")
    init = Solution(w0, b0, l2, math.nan, math.nan, 0, STATUS_CONVERGED)
  [solution] = _Problem(x, y, k, dtype).solve(
      [l2], init, max_iterations=max_iterations, tolerance=tolerance, history_size=history_size,
      jit_compile=jit_compile)
  return solution


def _check_solver_args(l2, max_iterations, tolerance, history_size, dtype):
  if not (math.isfinite(l2) and l2 >= 0):
    raise ValueError(f"l2 must be a finite penalty >= 0, got {l2}")
  if int(max_iterations) < 1:
    raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
  if not tolerance >= 0:
    raise ValueError(f"tolerance must be >= 0, got {tolerance}")
  if int(history_size) < 1:
    raise ValueError(f"history_size must be >= 1, got {history_size}")
  if dtype not in ("float32", "float64"):
    raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")


def warm_start(l2: float, solved: dict) -> Optional[Solution]:
  """The start of the solve at `l2` from the solutions `solved` (l2 -> Solution) of other
  penalties (docs/protocol.md §4): between two solved penalties, their interpolation linear in
  log l2; outside them, the nearest one; None when nothing is solved."""
  if not solved:
    return None
  exponent = math.log10(l2)
  below = [v for v in solved if v < l2]
  above = [v for v in solved if v > l2]
  if not below or not above:
    return solved[min(solved, key=lambda v: abs(math.log10(v) - exponent))]
  low, high = solved[max(below)], solved[min(above)]
  w = (exponent - math.log10(low.l2)) / (math.log10(high.l2) - math.log10(low.l2))
  return Solution((1 - w) * low.weights + w * high.weights, (1 - w) * low.bias + w * high.bias,
                  l2, math.nan, math.nan, 0, STATUS_CONVERGED)


def fit(train_x, train_y, val_x=None, val_y=None, *, l2_grid: Optional[Sequence[float]] = None,
        num_refinements: int = NUM_REFINEMENTS, metric: str = "top1",
        max_iterations: int = MAX_ITERATIONS, tolerance: float = TOLERANCE,
        history_size: int = HISTORY_SIZE, holdout_fraction: float = HOLDOUT_FRACTION,
        seed: int = 0, standardize: bool = False, refit: bool = True,
        dtype: str = "float32", jit_compile: Optional[bool] = None) -> LinearProbe:
  """Fits a linear probe, choosing the penalty on validation data (docs/protocol.md §4).

  train_x [n, D] and train_y [n] (integers or strings); val_x / val_y (every class in
  train_y), or None to hold out `holdout_fraction` of each class (seeded by `seed`). `metric`
  chooses the penalty; `refit=False` keeps the train-only fit; the solver arguments are
  `solve`'s, per solve.
  """
  metric_fn = metrics.get(metric)
  _check_solver_args(0.0, max_iterations, tolerance, history_size, dtype)
  grid = DEFAULT_L2_GRID if l2_grid is None else tuple(float(v) for v in l2_grid)
  if not grid or not all(math.isfinite(v) and v > 0 for v in grid):
    raise ValueError(f"l2_grid must be a non-empty list of positive finite penalties, got "
                     f"{list(grid)}")
  if int(num_refinements) < 0:
    raise ValueError(f"num_refinements must be >= 0, got {num_refinements}")
  train_x = inputs.check_features(train_x, "train_x")
  train_y = inputs.check_labels(train_y, "train_y", train_x.shape[0], "train_x")
  if (val_x is None) != (val_y is None):
    raise ValueError("val_x and val_y must be given together (or both omitted to hold out "
                     "part of train)")
  classes = inputs.training_classes(train_y, "train_y", "a linear probe")
  train_ids = inputs.encode_labels(classes, train_y, "train_y")
  if val_x is None:
    keep, held = holdout_split(train_ids, holdout_fraction, seed)
    fit_x, fit_ids, eval_x, eval_ids = (train_x[keep], train_ids[keep], train_x[held],
                                        train_ids[held])
    all_x, all_ids = train_x, train_ids
  else:
    val_x = inputs.check_features(val_x, "val_x", train_x.shape[1])
    val_y = inputs.check_labels(val_y, "val_y", val_x.shape[0], "val_x")
    val_ids = inputs.encode_labels(classes, val_y, "val_y")
    fit_x, fit_ids, eval_x, eval_ids = train_x, train_ids, val_x, val_ids
    all_x = np.concatenate([train_x, val_x], axis=0)
    all_ids = np.concatenate([train_ids, val_ids], axis=0)

  if standardize:
    mean = fit_x.mean(axis=0, dtype=np.float64)
    std = fit_x.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
  else:
    mean = np.zeros(train_x.shape[1])
    std = np.ones(train_x.shape[1])

  def transform(x):
    return x if not standardize else (x - mean) / std

  solver_args = dict(max_iterations=int(max_iterations), tolerance=float(tolerance),
                     history_size=int(history_size), jit_compile=jit_compile)
  k = classes.size
  start = time.perf_counter()
  problem = _Problem(transform(fit_x), fit_ids, k, dtype)
  eval_features = transform(eval_x)
  iterations = {}

  def train_fn(penalties, solved):
    solutions = problem.solve(penalties, warm_start(penalties[0], solved), **solver_args)
    iterations.update((s.l2, s.iterations) for s in solutions)
    return solutions

  def score_fn(solution):
    logits = eval_features @ solution.weights + solution.bias
    return metric_fn(eval_ids, np.argmax(logits, axis=1))

  l2, solution, scores = search_penalty(train_fn, score_fn, grid, int(num_refinements))
  del problem
  seconds_search = time.perf_counter() - start
  start = time.perf_counter()
  refit_iterations = 0
  if refit:
    [solution] = _Problem(transform(all_x), all_ids, k, dtype).solve([l2], solution,
                                                                     **solver_args)
    refit_iterations = solution.iterations
  seconds_refit = time.perf_counter() - start
  weights = solution.weights / std[:, None].astype(solution.weights.dtype)
  bias = solution.bias - (mean / std).astype(solution.weights.dtype) @ solution.weights
  return LinearProbe(weights=weights, bias=bias, classes=classes, l2=l2, metric=metric,
                     validation_scores=scores, validation_score=scores[l2],
                     iterations=iterations, refit_iterations=refit_iterations,
                     solution=solution, num_train=int(fit_x.shape[0]),
                     num_validation=int(eval_x.shape[0]), seconds_search=seconds_search,
                     seconds_refit=seconds_refit)
