"""Tests for the one-pass representation analysis (sparsity, class separation, CKA)."""

import dataclasses
import glob
import io as _io
import os
import shutil
import tempfile

from absl.testing import absltest
import keras
import numpy as np
from PIL import Image
import tensorflow as tf

from official import losses
from official.analysis import class_separation
from official.analysis import cka as cka_lib
from official.data import datasets
from official.data import input_pipeline
from official.evaluation import representations
from official.modeling import pretrained
from official.modeling import resnet

IMAGE_SIZE = 32
TINY = resnet.ResNetConfig(depth=18, width_multiplier=0.125, small_input_stem=True,
                           block_counts=(1, 1, 1, 1))
ENDPOINTS = ["block1", "block2", "block3", "block4", "final_avg_pool"]
DATASET = "demo_digits"


def _export(directory: str, objective: str, seed: int, image_size: int = IMAGE_SIZE) -> str:
  keras.utils.set_random_seed(seed)
  model = resnet.build_model(TINY, 10, losses.get_objective(objective),
                             input_shape=(image_size, image_size, 3))
  return pretrained.export_saved_model(model, directory, image_size)


def _hsic1(k: np.ndarray, l: np.ndarray) -> float:
  """The unbiased HSIC1 of docs/protocol.md §6, written out with explicit matrices."""
  n = k.shape[0]
  k = k * (1.0 - np.eye(n))
  l = l * (1.0 - np.eye(n))
  ones = np.ones(n)
  return (np.trace(k @ l) + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2)) -
          2.0 / (n - 2) * (ones @ k @ l @ ones)) / (n * (n - 3))


def _minibatch_cka(x_batches, y_batches) -> float:
  """mean_i HSIC1(K_i, L_i) / sqrt(mean_i HSIC1(K_i, K_i) mean_i HSIC1(L_i, L_i))."""
  xy = xx = yy = 0.0
  for x, y in zip(x_batches, y_batches):
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)
    k, l = x @ x.T, y @ y.T
    xy += _hsic1(k, l)
    xx += _hsic1(k, k)
    yy += _hsic1(l, l)
  return xy / np.sqrt(xx * yy)


def _nan(value):
  """The result with None (undefined: collapsed features) as NaN, to compare with r2's NaN."""
  if isinstance(value, dict):
    return {k: _nan(v) for k, v in value.items()}
  return float("nan") if value is None else value


class _FakeModel:
  """Just what analyze checks before reading data."""

  def __init__(self, endpoint_names, input_size=(IMAGE_SIZE, IMAGE_SIZE)):
    self.endpoint_names = list(endpoint_names)
    self.input_size = tuple(input_size)
    self.path = "fake"


class RepresentationsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = root = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.data_dir = os.path.join(root, "tfds")
    cls.info = datasets.get(DATASET, data_dir=cls.data_dir)
    cls.models = {
        "softmax": pretrained.load(_export(os.path.join(root, "softmax"), "softmax", 0)),
        "mse": pretrained.load(_export(os.path.join(root, "mse"), "squared_error", 1)),
    }

    # 75 examples in batches of 24: three CKA minibatches; the last 3 examples only count
    # towards sparsity and class separation.
    cls.kwargs = dict(batch_size=24, max_examples=75, data_dir=cls.data_dir, progress=False)
    cls.result = representations.analyze(cls.models, cls.info, "test", **cls.kwargs)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _activations(self, model, num_examples, batch_size):
    """Independent of features.iterate: the pipeline's first examples, model called per batch."""
    ds = input_pipeline.build(self.info, "test", training=False, batch_size=num_examples,
                              image_size=IMAGE_SIZE, preprocess="eval",
                              data_dir=self.data_dir)
    images, labels = next(iter(ds))
    batches = []
    for start in range(0, num_examples, batch_size):
      outputs = model(images[start:start + batch_size], endpoints=ENDPOINTS)
      batches.append({e: v.numpy() for e, v in outputs.items()})
    return batches, labels.numpy()

  def test_several_minibatches_match_direct_computation(self):
    result = self.result
    self.assertEqual(result["models"], ["softmax", "mse"])
    self.assertEqual(result["endpoints"], ENDPOINTS)
    self.assertEqual((result["examples"], result["minibatches"]), (75, 3))
    self.assertEqual(result["shapes"]["softmax"]["block2"], [16, 16, 16])
    self.assertEqual(sorted(result["cka"]),
                     ["mse|mse", "mse|softmax", "softmax|mse", "softmax|softmax"])
    acts = {name: self._activations(m, 75, 24) for name, m in self.models.items()}
    labels = acts["softmax"][1]
    for name in self.models:
      batches = acts[name][0]
      for e in ENDPOINTS:
        full = np.concatenate([b[e] for b in batches])
        self.assertAllClose(result["sparsity"][name][e], np.count_nonzero(full) / full.size,
                            atol=1e-6)
        self.assertAllClose(_nan(result["class_separation"][name][e]),
                            class_separation.r2(full, labels), atol=1e-6)
    # CKA of every endpoint pair of every model pair: the per-minibatch formula, and a
    # MinibatchCKA fed by hand, over the three full minibatches.
    manual = cka_lib.MinibatchCKA(len(ENDPOINTS), len(ENDPOINTS))
    for a, b in zip(acts["softmax"][0][:3], acts["mse"][0][:3]):
      manual.update_state([a[e] for e in ENDPOINTS], [b[e] for e in ENDPOINTS])
    self.assertAllClose(np.array(result["cka"]["softmax|mse"]), manual.result(), atol=1e-6)
    for a in self.models:
      for b in self.models:
        matrix = np.array(result["cka"][f"{a}|{b}"])
        self.assertAllClose(matrix, np.array(result["cka"][f"{b}|{a}"]).T, atol=1e-12)
        for i in (0, 2, 4):
          for j in (1, 4):
            expected = _minibatch_cka([x[ENDPOINTS[i]] for x in acts[a][0][:3]],
                                      [y[ENDPOINTS[j]] for y in acts[b][0][:3]])
            self.assertAllClose(matrix[i, j], expected, atol=1e-6)
    # A network against itself: 1 on the diagonal, symmetric.
    within = np.array(result["cka"]["softmax|softmax"])
    self.assertAllClose(np.diag(within), np.ones(len(ENDPOINTS)), atol=1e-9)
    self.assertAllClose(within, within.T, atol=1e-12)

  def test_passes_match_brute_force_over_the_shuffled_orders(self):
    kwargs = dict(self.kwargs, max_examples=60, batch_size=20)
    result = representations.analyze(self.models, self.info, "test", passes=2,
                                     shuffle_seed=7, **kwargs)
    self.assertEqual((result["examples"], result["minibatches"], result["passes"]), (60, 6, 2))
    order = representations.pass_order(60, 7, 1)
    self.assertAllEqual(order, np.random.default_rng([7, 1]).permutation(60))
    self.assertNotAllEqual(order, np.arange(60))
    self.assertAllEqual(representations.pass_order(60, 7, 0), np.arange(60))
    # Brute force: every activation once, in stored order; pass 0 takes the minibatches of
    # the stored order, pass 1 those of the shuffled order, all six in one estimate.
    acts = {}
    for name, model in self.models.items():
      batches, _ = self._activations(model, 60, 60)
      acts[name] = batches[0]
    for a, b in (("softmax", "mse"), ("mse", "mse")):
      matrix = np.array(result["cka"][f"{a}|{b}"])
      for i, j in ((0, 4), (3, 1), (4, 4)):
        x, y = acts[a][ENDPOINTS[i]], acts[b][ENDPOINTS[j]]
        batches_x = [x[k:k + 20] for k in range(0, 60, 20)] + [
            x[order[k:k + 20]] for k in range(0, 60, 20)]
        batches_y = [y[k:k + 20] for k in range(0, 60, 20)] + [
            y[order[k:k + 20]] for k in range(0, 60, 20)]
        self.assertAllClose(matrix[i, j], _minibatch_cka(batches_x, batches_y), atol=1e-5)
    # One pass: the stored-order minibatches alone, a different estimate.
    single = representations.analyze(self.models, self.info, "test", **kwargs)
    self.assertEqual(single["minibatches"], 3)
    x, y = acts["softmax"][ENDPOINTS[0]], acts["mse"][ENDPOINTS[4]]
    self.assertAllClose(single["cka"]["softmax|mse"][0][4],
                        _minibatch_cka([x[k:k + 20] for k in range(0, 60, 20)],
                                       [y[k:k + 20] for k in range(0, 60, 20)]), atol=1e-5)
    self.assertNotAllClose(single["cka"]["softmax|mse"], result["cka"]["softmax|mse"])
    # Sparsity and class separation come from the first pass only.
    self.assertEqual(single["class_separation"], result["class_separation"])
    with self.assertRaisesRegex(ValueError, "passes: got 0; expected a positive integer"):
      representations.analyze(self.models, self.info, "test", passes=0, **kwargs)

  def test_one_minibatch_is_debiased_linear_cka(self):
    result = representations.analyze(self.models, self.info, "test", batch_size=64,
                                     max_examples=40, data_dir=self.data_dir,
                                     distance="squared_euclidean", progress=False)
    self.assertEqual((result["examples"], result["minibatches"]), (40, 1))
    (softmax,), labels = self._activations(self.models["softmax"], 40, 64)
    (mse,), _ = self._activations(self.models["mse"], 40, 64)
    acts = {"softmax": softmax, "mse": mse}
    for i, e in enumerate(ENDPOINTS):
      for j in (0, 3, 4):
        self.assertAllClose(result["cka"]["softmax|mse"][i][j],
                            cka_lib.linear_cka(acts["softmax"][e], acts["mse"][ENDPOINTS[j]],
                                               debiased=True), atol=1e-6)
      self.assertAllClose(
          result["class_separation"]["mse"][e],
          class_separation.r2(acts["mse"][e], labels, distance="squared_euclidean"),
          atol=1e-6)

  def test_one_pass_equals_separate_passes(self):
    joint = self.result
    for name, model in self.models.items():
      alone = representations.analyze({name: model}, self.info, "test", **self.kwargs)
      self.assertEqual(alone["endpoints"], ENDPOINTS)
      self.assertEqual((alone["examples"], alone["minibatches"]), (75, 3))
      for key in ("sparsity", "class_separation"):
        self.assertAllClose(_nan(alone[key][name]), _nan(joint[key][name]), atol=1e-12)
      self.assertAllClose(alone["cka"][f"{name}|{name}"], joint["cka"][f"{name}|{name}"],
                          atol=1e-12)

  def test_mirrored_strategy_gives_the_same_numbers(self):
    if len(tf.config.list_logical_devices("CPU")) < 2:
      self.skipTest("needs the CPU split into two logical devices")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = self.result
    # The last global batch of 3 examples is split 2 + 1 across the replicas.
    mirrored = representations.analyze(self.models, self.info, "test", strategy=strategy,
                                       **self.kwargs)
    self.assertEqual((mirrored["examples"], mirrored["minibatches"]), (75, 3))
    for key in ("sparsity", "class_separation"):
      self.assertAllClose(_nan(mirrored[key]), _nan(single[key]), atol=1e-6)
    self.assertAllClose(mirrored["cka"]["softmax|mse"], single["cka"]["softmax|mse"],
                        atol=1e-6)

  def test_figures_and_summaries(self):
    result = self.result
    images = representations.figures(result, dpi=50)
    self.assertEqual(sorted(images), ["fig2a_cka_softmax_vs_mse.png",
                                      "fig2b_cka_corresponding.png", "fig3_sparsity.png",
                                      "fig4_class_separation.png"])
    self.assertEqual(Image.open(_io.BytesIO(images["fig2a_cka_softmax_vs_mse.png"])).size,
                     (250, 225))
    # Four endpoints in Figure 2b by default: (4 * 3.4 + 0.9) x 3.2 inches.
    self.assertEqual(Image.open(_io.BytesIO(images["fig2b_cka_corresponding.png"])).size,
                     (round(14.5 * 50), 160))
    np.testing.assert_allclose(representations.corresponding_cka(result, "block4"),
                               [[result["cka"]["softmax|softmax"][3][3],
                                 result["cka"]["softmax|mse"][3][3]],
                                [result["cka"]["mse|softmax"][3][3],
                                 result["cka"]["mse|mse"][3][3]]])

    logdir = self.create_tempdir().full_path
    representations.write_summaries(result, logdir, images)
    scalars, image_tags = {}, set()
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
      for record in tf.data.TFRecordDataset(path):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
          if value.metadata.plugin_data.plugin_name == "scalars":
            scalars[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
          elif value.metadata.plugin_data.plugin_name == "images":
            image_tags.add(value.tag)
    self.assertEqual(image_tags, {"figures/" + name[:-4] for name in images})
    # Undefined class separation (None: collapsed features) is not written.
    defined = sum(v is not None for m in result["class_separation"].values()
                  for v in m.values())
    self.assertGreater(defined, 0)
    self.assertLen(scalars, 2 * len(ENDPOINTS) + defined)
    for step, e in enumerate(ENDPOINTS):
      self.assertAllClose(scalars[("sparsity/mse", step)], result["sparsity"]["mse"][e])
      value = result["class_separation"]["softmax"][e]
      self.assertEqual(("class_separation/softmax", step) in scalars, value is not None)
      if value is not None:
        self.assertAllClose(scalars[("class_separation/softmax", step)], value)

  def test_default_endpoints_are_shared_representations(self):
    models = {"a": _FakeModel(["block1", "block2", "final_avg_pool", "final_layer", "outputs"]),
              "b": _FakeModel(["block2", "block1", "final_avg_pool", "final_layer"])}
    self.assertEqual(representations.common_endpoints(models),
                     ["block1", "block2", "final_avg_pool"])

  def test_bad_input(self):
    one_class = dataclasses.replace(self.info, num_classes=1)
    cases = [
        ({}, self.info, {}, "^models: got dict; expected a non-empty mapping"),
        ({"a|b": self.models["mse"]}, self.info, {}, r"^models: name 'a\|b' is not valid"),
        ({"a": _FakeModel(["block1", "final_layer"]), "b": _FakeModel(["block9"])},
         self.info, {}, "^models: have no endpoint in common"),
        ({"a": _FakeModel(["block1"]), "b": _FakeModel(["block1"], (16, 16))}, self.info, {},
         r"^models: take different input sizes \(a: \(32, 32\), b: \(16, 16\)\)"),
        (self.models, one_class, {}, "^info: dataset 'demo_digits' has 1 class"),
        (self.models, self.info, {"endpoints": ["block1", "block7"]},
         "^endpoints: model 'softmax' has no endpoint 'block7'"),
        (self.models, self.info, {"batch_size": 3}, "^batch_size: got 3; minibatch CKA"),
        (self.models, self.info, {"max_examples": 2}, "^max_examples: got 2"),
        (self.models, self.info, {"distance": "l1"}, "^distance: unknown value 'l1'"),
    ]
    for models, info, kwargs, message in cases:
      with self.subTest(message):
        with self.assertRaisesRegex(ValueError, message) as raised:
          representations.analyze(models, info, "test", data_dir=self.data_dir,
                                  progress=False, **kwargs)
        self.assertNotIn("\n", str(raised.exception))
    with self.assertRaisesRegex(ValueError, "^split_name: 'dev'"):
      representations.analyze(self.models, self.info, "dev", data_dir=self.data_dir)


if __name__ == "__main__":
  # Two logical CPUs for the MirroredStrategy test (pytest's conftest does the same).
  cpus = tf.config.list_physical_devices("CPU")
  tf.config.set_logical_device_configuration(
      cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  tf.test.main()
