"""Tests for linear CKA (eq. 10), the unbiased HSIC1 estimator and MinibatchCKA."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.analysis import cka


def _split_cpu_in_two() -> None:
  """Two logical CPUs for the MirroredStrategy test; only possible before TF starts."""
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass


_split_cpu_in_two()


def _reference_hsic1(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
  """HSIC1 written literally from the formula, with matrix products (Song et al. 2012)."""
  n = gram_x.shape[0]
  k = gram_x - np.diag(np.diag(gram_x))
  l = gram_y - np.diag(np.diag(gram_y))
  ones = np.ones(n)
  return float((np.trace(k @ l) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2)) -
                2.0 / (n - 2) * (ones @ k @ l @ ones)) / (n * (n - 3)))


def _reference_cka(x: np.ndarray, y: np.ndarray, debiased: bool) -> float:
  """CKA from raw (uncentred) linear Grams: HSIC1, or tr(K H L H) for the plug-in form."""
  x = x.reshape(x.shape[0], -1)
  y = y.reshape(y.shape[0], -1)
  gram_x, gram_y = x @ x.T, y @ y.T
  if debiased:
    hsic = _reference_hsic1
  else:
    n = x.shape[0]
    centring = np.eye(n) - np.ones((n, n)) / n
    hsic = lambda k, l: np.trace(k @ centring @ l @ centring)
  return hsic(gram_x, gram_y) / np.sqrt(hsic(gram_x, gram_x) * hsic(gram_y, gram_y))


def _correlated(rng: np.random.Generator, n: int, p1: int, p2: int, noise: float = 1.0):
  """Two ReLU representations driven by a shared 8-dimensional latent, with an offset."""
  latent = rng.standard_normal((n, 8))
  x = np.maximum(latent @ rng.standard_normal((8, p1)) + noise * rng.standard_normal((n, p1)),
                 0.0) + 3.0
  y = np.maximum(latent @ rng.standard_normal((8, p2)) + noise * rng.standard_normal((n, p2)),
                 0.0)
  return x, y


class LinearCKATest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.product(debiased=[False, True], form=["features", "gram"])
  def test_identical_representations_give_one(self, debiased, form):
    x, _ = _correlated(np.random.default_rng(0), 40, 12, 5)
    self.assertAllClose(cka.linear_cka(x, x, debiased=debiased, form=form), 1.0, atol=1e-12)

  @parameterized.product(debiased=[False, True], form=["features", "gram"])
  def test_invariant_to_orthogonal_transform_and_isotropic_scaling(self, debiased, form):
    rng = np.random.default_rng(1)
    x, y = _correlated(rng, 50, 10, 7)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    base = cka.linear_cka(x, y, debiased=debiased, form=form)
    self.assertBetween(base, 0.05, 0.95)
    self.assertAllClose(cka.linear_cka(x @ orthogonal, y, debiased=debiased, form=form), base,
                        atol=1e-12)
    self.assertAllClose(cka.linear_cka(x, 7.5 * y, debiased=debiased, form=form), base,
                        atol=1e-12)
    self.assertAllClose(cka.linear_cka(0.01 * x @ orthogonal, 3.0 * y, debiased=debiased,
                                       form=form), base, atol=1e-12)

  @parameterized.parameters(False, True)
  def test_not_invariant_to_general_invertible_map(self, debiased):
    rng = np.random.default_rng(2)
    x, y = _correlated(rng, 60, 10, 7)
    invertible = np.diag(np.geomspace(0.05, 20.0, 10)) @ rng.standard_normal((10, 10))
    self.assertGreater(abs(np.linalg.det(invertible)), 1e-6)
    base = cka.linear_cka(x, y, debiased=debiased)
    mapped = cka.linear_cka(x @ invertible, y, debiased=debiased)
    self.assertGreater(abs(mapped - base), 0.02)

  @parameterized.product(debiased=[False, True], shape=[(30, 5, 9), (12, 40, 25), (20, 3, 60)])
  def test_feature_space_and_gram_forms_agree(self, debiased, shape):
    n, p1, p2 = shape
    x, y = _correlated(np.random.default_rng(3), n, p1, p2)
    features = cka.linear_cka(x, y, debiased=debiased, form="features")
    gram = cka.linear_cka(x, y, debiased=debiased, form="gram")
    automatic = cka.linear_cka(x, y, debiased=debiased)
    self.assertAllClose(features, gram, atol=1e-12)
    self.assertAllClose(automatic, gram, atol=1e-12)
    self.assertAllClose(gram, _reference_cka(x, y, debiased), atol=1e-10)

  def test_debiased_matches_brute_force_hsic1(self):
    rng = np.random.default_rng(4)
    x, y = _correlated(rng, 9, 4, 6, noise=2.0)
    expected = _reference_cka(x, y, debiased=True)
    self.assertAllClose(cka.linear_cka(x, y, debiased=True), expected, atol=1e-12)
    self.assertAllClose(cka.linear_cka(x, y, debiased=True, form="features"), expected,
                        atol=1e-12)
    # The unbiased estimate differs from the plug-in one on few examples.
    self.assertGreater(abs(cka.linear_cka(x, y) - expected), 1e-3)

  def test_convolutional_activations_are_flattened(self):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 3, 3, 4))
    y = x.reshape(16, -1) @ rng.standard_normal((36, 5)) + rng.standard_normal((16, 5))
    self.assertAllClose(cka.linear_cka(x, y), cka.linear_cka(x.reshape(16, 36), y), atol=1e-14)
    self.assertAllClose(cka.linear_cka(tf.constant(x, tf.float32), y),
                        _reference_cka(x.astype(np.float32).astype(np.float64), y, False),
                        atol=1e-10)

  def test_constant_representation_is_nan(self):
    x = np.ones((10, 3))
    y = np.random.default_rng(6).standard_normal((10, 2))
    self.assertTrue(np.isnan(cka.linear_cka(x, y)))
    self.assertTrue(np.isnan(cka.linear_cka(x, y, debiased=True)))

  @parameterized.named_parameters(
      ("mismatched_n", lambda: cka.linear_cka(np.ones((5, 2)), np.ones((6, 2))), "examples"),
      ("too_few_examples", lambda: cka.linear_cka(np.eye(3), np.eye(3), debiased=True),
       "at least 4"),
      ("nan", lambda: cka.linear_cka(np.full((5, 2), np.nan), np.ones((5, 2))), "NaN"),
      ("inf", lambda: cka.linear_cka(np.ones((5, 2)), np.full((5, 2), np.inf)), "Inf"),
      ("vector", lambda: cka.linear_cka(np.ones(5), np.ones((5, 2))), "expected \\[n"),
      ("form", lambda: cka.linear_cka(np.eye(5), np.eye(5), form="svd"), "features, gram"),
  )
  def test_bad_input(self, call, message):
    with self.assertRaisesRegex(ValueError, message) as raised:
      call()
    self.assertNotIn("\n", str(raised.exception))


def _layers(rng: np.random.Generator, n: int):
  """Three layers of X (one convolutional) and two of Y, correlated through a latent."""
  latent = rng.standard_normal((n, 6))
  project = lambda p: np.maximum(
      latent @ rng.standard_normal((6, p)) + rng.standard_normal((n, p)), 0.0)
  xs = [project(48).reshape(n, 4, 4, 3), project(20), project(5)]
  ys = [project(30), rng.standard_normal((n, 7))]
  return [x.astype(np.float32) for x in xs], [y.astype(np.float32) for y in ys]


def _all_pairs(xs, ys, debiased=True):
  return np.array([[cka.linear_cka(x, y, debiased=debiased) for y in ys] for x in xs])


class MinibatchCKATest(tf.test.TestCase, parameterized.TestCase):

  def test_one_minibatch_equals_debiased_cka(self):
    xs, ys = _layers(np.random.default_rng(10), 24)
    metric = cka.MinibatchCKA(3, 2)
    metric.update_state(xs, ys)
    self.assertAllClose(metric.result(), _all_pairs(xs, ys), atol=1e-10)
    within_x, within_y = metric.within_network_results()
    self.assertAllClose(within_x, _all_pairs(xs, xs), atol=1e-10)
    self.assertAllClose(within_y, _all_pairs(ys, ys), atol=1e-10)
    self.assertAllClose(np.diag(within_x), np.ones(3), atol=1e-12)

  def test_uncentred_activations_with_large_offset(self):
    xs, ys = _layers(np.random.default_rng(18), 32)
    shifted = [x + 100.0 for x in xs]
    metric = cka.MinibatchCKA(3, 2)
    metric.update_state(shifted, ys)
    self.assertAllClose(metric.result(), _all_pairs(shifted, ys), atol=1e-9)

  def test_unequal_minibatches_average_hsic1(self):
    rng = np.random.default_rng(11)
    batches = [_layers(rng, 10), _layers(rng, 17)]
    metric = cka.MinibatchCKA(3, 2)
    for xs, ys in batches:
      metric.update_state(xs, ys)
    flat = lambda a: a.reshape(a.shape[0], -1).astype(np.float64)
    grams = lambda layers: [flat(a) @ flat(a).T for a in layers]
    hsic_xy = np.zeros((3, 2))
    hsic_xx = np.zeros(3)
    hsic_yy = np.zeros(2)
    for xs, ys in batches:
      kx, ky = grams(xs), grams(ys)
      hsic_xy += [[_reference_hsic1(k, l) for l in ky] for k in kx]
      hsic_xx += [_reference_hsic1(k, k) for k in kx]
      hsic_yy += [_reference_hsic1(l, l) for l in ky]
    expected = hsic_xy / np.sqrt(hsic_xx[:, None] * hsic_yy[None, :])
    self.assertAllClose(metric.result(), expected, atol=1e-10)
    self.assertEqual(float(metric.num_minibatches.numpy()), 2.0)

  def test_many_minibatches_approach_full_data_cka(self):
    rng = np.random.default_rng(12)
    n, batch = 4000, 200
    x, y = _correlated(rng, n, 30, 20, noise=1.5)
    metric = cka.MinibatchCKA(1, 1)
    for start in range(0, n, batch):
      metric.update_state([x[start:start + batch]], [y[start:start + batch]])
    full = cka.linear_cka(x, y)
    self.assertBetween(full, 0.3, 0.9)
    self.assertAllClose(metric.result()[0, 0], full, atol=0.02)
    # One small minibatch alone is a much noisier estimate than the average over 20.
    single = cka.linear_cka(x[:20], y[:20], debiased=True)
    self.assertGreater(abs(single - full), abs(metric.result()[0, 0] - full))

  def test_merging_two_halves_equals_one_object_fed_both(self):
    rng = np.random.default_rng(13)
    batches = [_layers(rng, 12) for _ in range(4)]
    whole, first, second = (cka.MinibatchCKA(3, 2) for _ in range(3))
    for i, (xs, ys) in enumerate(batches):
      whole.update_state(xs, ys)
      (first if i < 2 else second).update_state(xs, ys)
    first.merge(second)
    self.assertAllClose(first.hsic_sums.numpy(), whole.hsic_sums.numpy(), atol=1e-12)
    self.assertAllClose(first.result(), whole.result(), atol=1e-12)
    self.assertEqual(float(first.num_minibatches.numpy()), 4.0)
    whole.reset_state()
    self.assertAllEqual(whole.hsic_sums.numpy(), np.zeros((5, 5)))

  def test_mirrored_strategy_sums_replicas(self):
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
      self.skipTest("TensorFlow started before the CPU could be split into 2 logical devices")
    rng = np.random.default_rng(14)
    steps = [[_layers(rng, 8), _layers(rng, 8)] for _ in range(2)]
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    with strategy.scope():
      replicated = cka.MinibatchCKA(3, 2)

    @tf.function
    def step(xs, ys):
      strategy.run(replicated.update_state, args=(xs, ys))

    single = cka.MinibatchCKA(3, 2)
    for per_replica in steps:
      inputs = strategy.experimental_distribute_values_from_function(
          lambda context, batches=per_replica: batches[context.replica_id_in_sync_group])
      step(*inputs)
      for xs, ys in per_replica:
        single.update_state(xs, ys)
    self.assertEqual(float(replicated.num_minibatches.numpy()), 4.0)
    self.assertAllClose(replicated.result(), single.result(), atol=1e-10)

  def test_inside_tf_function_with_unknown_batch_size(self):
    xs, ys = _layers(np.random.default_rng(15), 16)
    metric = cka.MinibatchCKA(3, 2)
    spec = lambda a: tf.TensorSpec([None] + list(a.shape[1:]), tf.float32)
    update = tf.function(metric.update_state,
                         input_signature=[[spec(a) for a in xs], [spec(a) for a in ys]])
    update(xs, ys)
    self.assertAllClose(metric.result(), _all_pairs(xs, ys), atol=1e-10)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "at least 4"):
      update([a[:3] for a in xs], [a[:3] for a in ys])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "different numbers"):
      update(xs, [a[:10] for a in ys])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "NaN or Inf"):
      update(xs, [ys[0], ys[1] * np.inf])
    self.assertEqual(float(metric.num_minibatches.numpy()), 1.0)
    self.assertAllClose(metric.result(), _all_pairs(xs, ys), atol=1e-10)

  def test_eager_and_graph_updates_agree(self):
    # Eager Grams are NumPy's symmetric rank-k updates, graph ones TensorFlow matrix products:
    # the same sums up to rounding, here with a large offset that U-centring must cancel.
    rng = np.random.default_rng(18)
    eager, graph = cka.MinibatchCKA(3, 2), cka.MinibatchCKA(3, 2)
    update = tf.function(graph.update_state)
    for n in (12, 12, 7):
      xs, ys = _layers(rng, n)
      xs[1] += 100.0
      eager.update_state(xs, ys)
      update([tf.constant(a) for a in xs], [tf.constant(a) for a in ys])
    self.assertAllClose(eager.hsic_sums.numpy(), graph.hsic_sums.numpy(), rtol=1e-9, atol=1e-9)
    self.assertAllClose(eager.result(), graph.result(), rtol=0, atol=1e-12)

  def test_single_network(self):
    xs, _ = _layers(np.random.default_rng(16), 20)
    metric = cka.MinibatchCKA(3, 0)
    metric.update_state(xs)
    self.assertEqual(metric.result().shape, (3, 0))
    self.assertAllClose(metric.within_network_results()[0], _all_pairs(xs, xs), atol=1e-10)

  @parameterized.named_parameters(
      ("mismatched_n", lambda m, xs, ys: m.update_state(xs, [ys[0][:5], ys[1]]), "examples"),
      ("too_few_examples", lambda m, xs, ys: m.update_state(
          [a[:3] for a in xs], [a[:3] for a in ys]), "at least 4"),
      ("nan", lambda m, xs, ys: m.update_state(xs, [ys[0] * np.nan, ys[1]]), "NaN"),
      ("layer_count", lambda m, xs, ys: m.update_state(xs[:2], ys), "expected a sequence of 3"),
      ("array_for_layers", lambda m, xs, ys: m.update_state(xs[0], ys), "got a ndarray"),
      ("mapping_for_layers", lambda m, xs, ys: m.update_state(dict(enumerate(xs)), ys),
       "got a dict"),
      ("result_before_update", lambda m, xs, ys: m.result(), "no minibatches"),
      ("merge_mismatch", lambda m, xs, ys: m.merge(cka.MinibatchCKA(2, 2)), "layers \\(2, 2\\)"),
      ("num_layers", lambda m, xs, ys: cka.MinibatchCKA(0, 2), "num_layers_x"),
  )
  def test_bad_input(self, call, message):
    xs, ys = _layers(np.random.default_rng(17), 8)
    with self.assertRaisesRegex(ValueError, message) as raised:
      call(cka.MinibatchCKA(3, 2), xs, ys)
    self.assertNotIn("\n", str(raised.exception))


if __name__ == "__main__":
  tf.test.main()
