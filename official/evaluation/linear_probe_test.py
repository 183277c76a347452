"""Tests for the linear probe: L-BFGS against scikit-learn, penalty selection, bad input."""

import math

from absl.testing import parameterized
import numpy as np
from sklearn import linear_model
import tensorflow as tf

from official.evaluation import linear_probe


def _objective(x, y, weights, bias, l2):
  """J / n = mean cross-entropy + (l2 / n) ||W||^2, in float64."""
  z = x.astype(np.float64) @ weights + bias
  z_max = z.max(axis=1, keepdims=True)
  lse = np.log(np.exp(z - z_max).sum(axis=1)) + z_max[:, 0]
  return np.mean(lse - z[np.arange(len(y)), y]) + l2 / len(y) * np.sum(np.square(weights))


def _softmax(z):
  z = z - z.max(axis=1, keepdims=True)
  return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _gaussian_classes(n, dim, num_classes, noise, seed, nuisance=0.0):
  """Class centres N(0, I) (fixed), isotropic noise, optional shared nuisance direction."""
  rng = np.random.default_rng(seed)
  fixed = np.random.default_rng(100)
  centres = fixed.standard_normal((num_classes, dim))
  direction = centres[0] - centres[1] + fixed.standard_normal(dim)
  direction /= np.linalg.norm(direction)
  y = np.arange(n) % num_classes
  x = (centres[y] + noise * rng.standard_normal((n, dim))
       + nuisance * rng.standard_normal((n, 1)) * direction)
  return x.astype(np.float32), y


class SolverTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.parameters(0.3, 10.0)
  def test_matches_scikit_learn(self, l2):
    x, y = _gaussian_classes(240, 12, 4, noise=1.5, seed=0)
    x += 0.5  # nonzero mean: the unpenalised bias has work to do
    solution = linear_probe.solve(x, y, l2, dtype="float64", tolerance=1e-10)
    self.assertEqual(solution.status, linear_probe.STATUS_CONVERGED)
    # scikit-learn minimises C * sum CE + ||W||^2 / 2 without penalising the intercept.
    reference = linear_model.LogisticRegression(C=1.0 / (2.0 * l2), tol=1e-12, max_iter=10000)
    reference.fit(x.astype(np.float64), y)
    ours = _objective(x, y, solution.weights, solution.bias, l2)
    theirs = _objective(x, y, reference.coef_.T, reference.intercept_, l2)
    self.assertAllClose(ours, theirs, rtol=1e-9)
    self.assertAllClose(solution.objective, ours, rtol=1e-9)
    probabilities = _softmax(x @ solution.weights + solution.bias)
    self.assertAllClose(probabilities, reference.predict_proba(x), atol=1e-5)
    # float32 arithmetic reaches the same probabilities to ~1e-4.
    single = linear_probe.solve(x, y, l2, tolerance=1e-6)
    self.assertAllClose(_softmax(x @ single.weights + single.bias), reference.predict_proba(x),
                        atol=2e-4)

  def test_gradient_vanishes_at_solution(self):
    x, y = _gaussian_classes(150, 6, 3, noise=1.0, seed=1)
    l2 = 2.0
    solution = linear_probe.solve(x, y, l2, dtype="float64", tolerance=1e-9)
    p = _softmax(x.astype(np.float64) @ solution.weights + solution.bias)
    residual = p - np.eye(3)[y]
    grad_w = x.T @ residual / len(y) + 2 * l2 / len(y) * solution.weights
    grad_b = residual.mean(axis=0)  # the bias carries no penalty
    self.assertLess(np.abs(grad_w).max(), 1e-8)
    self.assertLess(np.abs(grad_b).max(), 1e-8)
    self.assertLessEqual(solution.gradient_max_norm, 1e-9)

  def test_warm_start_reaches_same_optimum(self):
    x, y = _gaussian_classes(200, 10, 3, noise=2.0, seed=2)
    cold = linear_probe.solve(x, y, 1.0, dtype="float64", tolerance=1e-10)
    far = linear_probe.solve(x, y, 1000.0, dtype="float64", tolerance=1e-10)
    warm = linear_probe.solve(x, y, 1.0, initial_weights=far.weights, initial_bias=far.bias,
                              dtype="float64", tolerance=1e-10)
    self.assertAllClose(warm.objective, cold.objective, rtol=1e-12)
    self.assertAllClose(warm.weights, cold.weights, atol=1e-6)
    self.assertAllClose(warm.bias, cold.bias, atol=1e-6)
    # Starting at the optimum needs (almost) no iterations.
    again = linear_probe.solve(x, y, 1.0, initial_weights=cold.weights, initial_bias=cold.bias,
                               dtype="float64", tolerance=1e-8)
    self.assertLessEqual(again.iterations, 1)

  def test_compact_inverse_hessian_is_the_bfgs_recursion(self):
    # H g from the compact form against H built by the BFGS update, pair by pair from H_0.
    rng = np.random.default_rng(5)
    num, history, count = 7, 4, 3
    s_hist = np.zeros((history, num))
    y_hist = np.zeros((history, num))
    a = rng.standard_normal((num, num))
    hessian = a @ a.T + num * np.eye(num)  # y = B s for an SPD B: every s^T y > 0
    s_hist[-count:] = rng.standard_normal((count, num))
    y_hist[-count:] = s_hist[-count:] @ hessian
    gamma = 0.7
    g = rng.standard_normal(num)
    h = gamma * np.eye(num)
    for s, y in zip(s_hist[-count:], y_hist[-count:]):  # oldest pair first
      rho = 1.0 / (s @ y)
      v = np.eye(num) - rho * np.outer(y, s)
      h = v.T @ h @ v + rho * np.outer(s, s)
    compact = linear_probe._inverse_hessian_times(
        tf.constant(g), tf.constant(s_hist), tf.constant(y_hist), tf.constant(gamma, tf.float64),
        tf.constant(count))
    self.assertAllClose(compact, h @ g, rtol=1e-10)
    # No pairs: H = gamma I.
    empty = linear_probe._inverse_hessian_times(
        tf.constant(g), tf.zeros((history, num), tf.float64), tf.zeros((history, num), tf.float64),
        tf.constant(gamma, tf.float64), tf.constant(0))
    self.assertAllClose(empty, gamma * g, rtol=1e-12)

  def test_shifted_features_shift_only_the_bias(self):
    # Centring is a reparametrisation: x + c has the minimiser (W, b - c W).
    x, y = _gaussian_classes(160, 6, 3, noise=1.5, seed=6)
    shift = np.linspace(-3.0, 5.0, 6).astype(np.float32)
    base = linear_probe.solve(x, y, 0.8, dtype="float64", tolerance=1e-10)
    moved = linear_probe.solve(x + shift, y, 0.8, dtype="float64", tolerance=1e-10)
    self.assertAllClose(moved.weights, base.weights, atol=1e-6)
    self.assertAllClose(moved.bias, base.bias - shift @ base.weights, atol=1e-5)
    self.assertAllClose(moved.objective, base.objective, rtol=1e-10)

  def test_warm_start_interpolates_between_solved_penalties(self):
    def solution(l2, value):
      return linear_probe.Solution(np.full((2, 3), value), np.full((3,), -value), l2,
                                   0.0, 0.0, 0, linear_probe.STATUS_CONVERGED)
    solved = {1.0: solution(1.0, 2.0), 100.0: solution(100.0, 6.0),
              1e4: solution(1e4, 10.0)}
    self.assertIsNone(linear_probe.warm_start(10.0, {}))
    # log10 l2 = 1.5 lies three quarters of the way from 10^0 to 10^2.
    start = linear_probe.warm_start(10**1.5, solved)
    self.assertAllClose(start.weights, np.full((2, 3), 2.0 + 0.75 * 4.0))
    self.assertAllClose(start.bias, np.full((3,), -(2.0 + 0.75 * 4.0)))
    self.assertEqual(start.l2, 10**1.5)
    # Outside the solved penalties: the nearest one in log l2.
    self.assertIs(linear_probe.warm_start(1e-3, solved), solved[1.0])
    self.assertIs(linear_probe.warm_start(1e7, solved), solved[1e4])

  def test_xla_compiled_solver_agrees(self):
    x, y = _gaussian_classes(90, 5, 3, noise=1.0, seed=3)
    # A short history keeps the compiled graph (and the test) small.
    plain = linear_probe.solve(x, y, 0.5, dtype="float64", tolerance=1e-9, history_size=3)
    compiled = linear_probe.solve(x, y, 0.5, dtype="float64", tolerance=1e-9, history_size=3,
                                  jit_compile=True)
    self.assertAllClose(compiled.objective, plain.objective, rtol=1e-10)

  def test_path_of_penalties_in_one_call_is_the_chain_of_solves(self):
    # One call over penalties [a, b, c]: each solved from the previous one's solution, the
    # same as separate solves warm-started in turn (float64, converged: equal to rounding).
    x, y = _gaussian_classes(120, 6, 3, noise=1.5, seed=8)
    args = dict(max_iterations=500, tolerance=1e-9, history_size=10, jit_compile=False)
    problem = linear_probe._Problem(x, y, 3, "float64")
    path = problem.solve([100.0, 1.0, 0.01], None, **args)
    previous = None
    for l2, solved in zip([100.0, 1.0, 0.01], path):
      [alone] = problem.solve([l2], previous, **args)
      self.assertEqual(solved.l2, l2)
      self.assertEqual(solved.status, linear_probe.STATUS_CONVERGED)
      self.assertAllClose(solved.weights, alone.weights, atol=1e-7)
      self.assertAllClose(solved.objective, alone.objective, rtol=1e-12)
      previous = alone

  def test_iteration_budget(self):
    x, y = _gaussian_classes(90, 5, 3, noise=1.0, seed=3)
    solution = linear_probe.solve(x, y, 1e-3, max_iterations=2, tolerance=0.0)
    self.assertEqual(solution.iterations, 2)
    self.assertEqual(solution.status, linear_probe.STATUS_MAX_ITERATIONS)


class SelectionTest(parameterized.TestCase, tf.test.TestCase):

  def test_search_follows_linear_eval_with_warm_starts(self):
    calls = []

    def train_fn(penalties, solved):
      calls.append((penalties, solved))
      return list(penalties)

    def score_fn(l2):
      return -abs(math.log10(l2) - 0.4)  # validation score peaks at l2 = 10^0.4

    best, solution, scores = linear_probe.search_penalty(train_fn, score_fn)
    # The grid is one path from the largest penalty down, with nothing solved before it.
    self.assertAllClose(calls[0][0], [1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6])
    self.assertEqual(calls[0][1], {})
    # Best grid value 1; then steps of 10^1, 10^0.5, 10^0.25, 10^0.125 around the best, one
    # penalty per call, each given the solutions of all the penalties tried before it.
    refined = [10**-1, 10**1, 10**-0.5, 10**0.5, 10**0.25, 10**0.75, 10**0.375]
    self.assertEqual([len(penalties) for penalties, _ in calls[1:]], [1] * len(refined))
    self.assertAllClose([penalties[0] for penalties, _ in calls[1:]], refined)
    tried = list(calls[0][0])
    for penalties, solved in calls[1:]:
      self.assertEqual(solved, {l2: l2 for l2 in tried})
      tried += penalties
    self.assertAllClose(best, 10**0.375)
    self.assertEqual(solution, best)
    self.assertLen(scores, 14)

  def test_ties_prefer_smallest_penalty(self):
    best, _, _ = linear_probe.search_penalty(lambda penalties, init: list(penalties),
                                             lambda l2: float(l2 < 1), num_refinements=0)
    self.assertEqual(best, 1e-6)

  def test_recovers_separable_problem(self):
    rng = np.random.default_rng(4)
    direction = rng.standard_normal(8)
    direction /= np.linalg.norm(direction)
    x = rng.standard_normal((600, 8)).astype(np.float32)
    margin = x @ direction
    keep = np.abs(margin) > 0.3
    x, y = x[keep], (margin[keep] > 0).astype(np.int64)
    probe = linear_probe.fit(x[:300], y[:300], x[300:400], y[300:400])
    self.assertGreaterEqual(probe.score(x[400:], y[400:]), 0.97)
    learned = probe.weights[:, 1] - probe.weights[:, 0]
    self.assertGreater(learned @ direction / np.linalg.norm(learned), 0.98)

  def test_larger_penalty_for_few_noisy_than_many_clean(self):
    few = linear_probe.fit(*_gaussian_classes(30, 100, 3, noise=3.0, seed=1),
                           *_gaussian_classes(600, 100, 3, noise=3.0, seed=51))
    many = linear_probe.fit(*_gaussian_classes(1500, 100, 3, noise=0.5, seed=1, nuisance=6.0),
                            *_gaussian_classes(600, 100, 3, noise=0.5, seed=51, nuisance=6.0))
    self.assertGreaterEqual(few.l2, 100.0)
    self.assertLessEqual(many.l2, 1.0)
    # In the clean case a strong penalty really is worse on validation.
    self.assertLess(many.validation_scores[1e6], many.validation_score)

  def test_heldout_path_is_deterministic_and_stratified(self):
    x, y = _gaussian_classes(120, 6, 3, noise=2.0, seed=5)
    first = linear_probe.fit(x, y, num_refinements=1)
    second = linear_probe.fit(x, y, num_refinements=1)
    self.assertEqual(first.l2, second.l2)
    self.assertEqual(first.validation_scores, second.validation_scores)
    self.assertAllEqual(first.weights, second.weights)
    self.assertEqual((first.num_train, first.num_validation), (96, 24))
    keep, held = linear_probe.holdout_split(y, 0.2, seed=0)
    self.assertAllEqual(np.bincount(y[held]), [8, 8, 8])
    self.assertAllEqual(np.sort(np.concatenate([keep, held])), np.arange(120))
    other_keep, _ = linear_probe.holdout_split(y, 0.2, seed=1)
    self.assertNotAllEqual(keep, other_keep)

  def test_refit_uses_train_and_validation(self):
    x, y = _gaussian_classes(160, 6, 4, noise=2.0, seed=6)
    probe = linear_probe.fit(x[:100], y[:100], x[100:], y[100:], l2_grid=[3.0],
                             num_refinements=0, tolerance=1e-6)
    full = linear_probe.solve(x, y, 3.0, tolerance=1e-6)
    self.assertEqual(probe.l2, 3.0)
    self.assertAllClose(probe.weights, full.weights, atol=1e-3)

  def test_standardize_folds_scaling_into_weights(self):
    x, y = _gaussian_classes(150, 5, 3, noise=1.0, seed=7)
    x = x * np.array([1e-3, 1.0, 50.0, 1.0, 7.0], np.float32) + 3.0
    kwargs = dict(l2_grid=[1.0], num_refinements=0, refit=False, dtype="float64",
                  tolerance=1e-10)
    raw = linear_probe.fit(x[:100], y[:100], x[100:], y[100:], standardize=True, **kwargs)
    # The statistics come from the training rows.
    z = (x - x[:100].mean(axis=0)) / x[:100].std(axis=0)
    scaled = linear_probe.fit(z[:100], y[:100], z[100:], y[100:], **kwargs)
    self.assertAllClose(raw.logits(x), scaled.logits(z), atol=1e-6)

  def test_string_labels_and_score(self):
    x, y = _gaussian_classes(180, 6, 3, noise=1.0, seed=8)
    names = np.array(["cat", "dog", "eel"])[y]
    probe = linear_probe.fit(x[:90], names[:90], x[90:120], names[90:120],
                             metric="mean_per_class", num_refinements=1)
    predictions = probe.classes[np.argmax(x[120:] @ probe.weights + probe.bias, axis=1)]
    per_class = [np.mean(predictions[names[120:] == c] == c) for c in ("cat", "dog", "eel")]
    self.assertAllClose(probe.score(x[120:], names[120:], "mean_per_class"), np.mean(per_class))
    self.assertContainsSubset(set(probe.predict(x[:5])), {"cat", "dog", "eel"})
    self.assertEqual(probe.classes.size, 3)

  @parameterized.named_parameters(
      ("length", dict(train_y=np.zeros(5, int)), "train_y has 5 labels"),
      ("nan", dict(train_x=np.full((8, 2), np.nan)), "train_x contains NaN"),
      ("one_class", dict(train_y=np.zeros(8, int)), "at least 2"),
      ("val_class", dict(val_y=[0, 1, 2, 1]), "val_y contains class 2"),
      ("val_alone", dict(val_y=None), "must be given together"),
      ("val_width", dict(val_x=np.ones((4, 3))), "val_x has 3 features per example; expected 2"),
      ("metric", dict(metric="top5"), "metric must be one of"),
      ("grid", dict(l2_grid=[1.0, -1.0]), "l2_grid must be"),
  )
  def test_bad_input(self, overrides, message):
    args = dict(train_x=np.eye(8, 2), train_y=[0, 1] * 4, val_x=np.ones((4, 2)),
                val_y=[0, 1, 0, 1])
    args.update(overrides)
    with self.assertRaisesRegex(ValueError, message) as context:
      linear_probe.fit(args.pop("train_x"), args.pop("train_y"), args.pop("val_x"),
                       args.pop("val_y"), **args)
    self.assertNotIn("\n", str(context.exception))


if __name__ == "__main__":
  tf.test.main()
