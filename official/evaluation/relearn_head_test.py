"""Tests of relearning the head (Figure 6): both accuracies against direct computations."""

import os
from unittest import mock

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.core import io
from official.data import datasets
from official.data import input_pipeline
from official.evaluation import evaluators
from official.evaluation import features
from official.evaluation import linear_probe
from official.evaluation import relearn_head
from official.modeling import pretrained
from official.modeling import resnet

IMAGE_SIZE = 32
TINY = {"depth": 18, "width_multiplier": 0.0625, "small_input_stem": True,
        "block_counts": [1, 1, 1, 1], "bn_momentum": 0.9, "bn_epsilon": 1e-5}
DATASET = "demo_size/small"  # 4 classes; 360 train, 40 validation, 200 test examples
FIT = {"l2_grid": (1e-2, 1.0, 100.0), "max_iterations": 100}


def build_tiny(num_classes: int, *, objective: str = "softmax", seed: int = 0,
               image_size: int = IMAGE_SIZE) -> keras.Model:
  """A tiny ResNet-18 (width 1/16, one block per stage) with its endpoints."""
  keras.utils.set_random_seed(seed)
  return resnet.build_model(resnet.ResNetConfig.from_dict(TINY), num_classes,
                            losses.get_objective(objective),
                            input_shape=(image_size, image_size, 3))


def make_model_dir(path: str, *, num_classes: int = 4, dataset: str = DATASET,
                   classes=None, eval_split: str = "test", objective: str = "softmax",
                   seed: int = 0, image_size: int = IMAGE_SIZE) -> str:
  """A training model_dir (the layout of experiments/train: config.json with model,
  objective and data sections, export/saved_model) of a tiny untrained ResNet; returns `path`."""
  model = build_tiny(num_classes, objective=objective, seed=seed, image_size=image_size)
  pretrained.export_saved_model(model, os.path.join(path, pretrained.EXPORT_DIR),
                                image_size)
  io.atomic_write_json(os.path.join(path, pretrained.CONFIG_FILE), {
      "model": dict(TINY, num_classes=num_classes, image_size=image_size),
      "objective": {"name": objective, "hparams": {}},
      "data": {"dataset": dataset, "classes": classes, "eval_split": eval_split,
               "eval_preprocess": "eval"}})
  return path


def export_without(path: str, drop: tuple, *, num_classes: int = 4) -> str:
  """A SavedModel of the tiny network whose signature lacks the endpoints `drop`."""
  model = build_tiny(num_classes)
  module = tf.Module()
  module.model = model

  @tf.function(input_signature=[
      tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name="images")])
  def serve(images):
    outputs = model(images, training=False)
    return {k: v for k, v in outputs.items() if k not in drop}

  module.serve = serve
  tf.saved_model.save(module, path, signatures={pretrained.SERVING_SIGNATURE: serve})
  return path


def relearn(model, info, split: str, *, test_per_class: int = relearn_head.TEST_PER_CLASS,
            max_examples=None, l2_grid=None, max_iterations=linear_probe.MAX_ITERATIONS,
            **extraction) -> dict:
  """The scores of the RelearnHead evaluator."""
  return evaluators.RelearnHead(
      test_per_class=test_per_class, max_examples=max_examples, l2_grid=l2_grid,
      max_iterations=max_iterations).evaluate(model, info, split, **extraction).scores

class _FakeModel:

  def __init__(self, endpoint_names, num_classes=8):
    self.endpoint_names = list(endpoint_names)
    self.num_classes = num_classes
    self.path = "fake"


class RelearnHeadTest(tf.test.TestCase, parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.get_temp_dir(cls())
    cls.data_dir = os.path.join(root, "tfds")
    cls.info = datasets.get(DATASET, data_dir=cls.data_dir)
    cls.model_dir = make_model_dir(os.path.join(root, "model"))
    cls.model = pretrained.load(cls.model_dir)

  def _direct(self, num_examples):
    """Penultimate features, outputs and labels of the first examples, model called once."""
    ds = input_pipeline.build(self.info, "test", training=False, batch_size=num_examples,
                              image_size=IMAGE_SIZE, preprocess="eval",
                              data_dir=self.data_dir)
    images, labels = next(iter(ds))
    out = self.model(images, endpoints=["final_avg_pool", "outputs"])
    return out["final_avg_pool"].numpy(), out["outputs"].numpy(), labels.numpy()

  def test_both_heads_match_direct_computation(self):
    x, logits, labels = self._direct(150)
    with mock.patch.object(linear_probe, "fit", wraps=linear_probe.fit) as fit:
      result = relearn(self.model, self.info, "test", max_examples=150, test_per_class=3,
                       batch_size=64, data_dir=self.data_dir, progress=False, **FIT)
    # The last 3 examples of each of the 4 classes score both heads, the other 138 train.
    test = np.sort(np.concatenate([np.flatnonzero(labels == c)[-3:] for c in range(4)]))
    train = np.setdiff1d(np.arange(150), test)
    self.assertEqual((result["train_examples"], result["test_examples"]), (138, 12))
    self.assertEqual((result["num_classes"], result["head_endpoint"], result["split"]),
                     (4, "outputs", "test"))
    fit.assert_called_once()
    (train_x, train_y), kwargs = fit.call_args[0], fit.call_args[1]
    self.assertAllClose(train_x, x[train], atol=1e-5)
    self.assertAllEqual(train_y, labels[train])
    self.assertEqual(kwargs["l2_grid"], FIT["l2_grid"])

    original = np.mean(np.argmax(logits[test], axis=1) == labels[test])
    self.assertAllClose(result["original"], original, atol=1e-12)
    self.assertAllClose(result["original"] * 12, round(result["original"] * 12), atol=1e-9)
    probe = linear_probe.fit(train_x, train_y, metric="top1", **FIT)
    self.assertEqual(result["l2"], probe.l2)
    self.assertAllClose(result["relearned"], np.mean(probe.predict(x[test]) == labels[test]),
                        atol=1e-12)
    self.assertEqual(result["train_classes"], np.unique(labels[train]).size)
    self.assertEqual(result["validation_score"],
                     max(p["score"] for p in result["validation_scores"]))

  def test_cache_is_reused(self):
    cache_dir = self.create_tempdir().full_path
    kwargs = dict(max_examples=40, batch_size=64, data_dir=self.data_dir, progress=False,
                  cache_dir=cache_dir, test_per_class=1, **FIT)
    first = relearn(self.model, self.info, "test", **kwargs)
    self.assertLen(os.listdir(cache_dir), 1)
    with mock.patch.object(features, "iterate", side_effect=AssertionError("recomputed")):
      again = relearn(self.model, self.info, "test", **kwargs)
    self.assertEqual((first["train_examples"], first["test_examples"]), (36, 4))
    for key in ("original", "relearned", "l2", "train_examples", "test_examples"):
      self.assertEqual(again[key], first[key])

  def test_per_class_split_holds_out_exact_counts(self):
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(1000), 50))  # ImageNet validation's shape
    train, test = relearn_head.per_class_split(labels, 10)
    self.assertEqual((train.size, test.size), (40_000, 10_000))
    self.assertAllEqual(np.bincount(labels[test], minlength=1000), np.full(1000, 10))
    self.assertEmpty(np.intersect1d(train, test))
    self.assertAllEqual(np.sort(np.concatenate([train, test])), np.arange(50_000))
    # The last 10 of each class in stored order, the same on every call.
    for c in (0, 517, 999):
      self.assertAllEqual(test[labels[test] == c], np.flatnonzero(labels == c)[-10:])
    again_train, again_test = relearn_head.per_class_split(labels.copy(), 10)
    self.assertAllEqual(again_train, train)
    self.assertAllEqual(again_test, test)

  def test_per_class_split_of_small_classes(self):
    labels = np.array([0, 1, 0, 2, 0, 1, 0, 3, 3, 1])
    train, test = relearn_head.per_class_split(labels, 2)
    # At most half of each class: class 0 (4 examples) its last 2; class 1 (3) and class 3
    # (2) their last 1; class 2 (1) none.
    self.assertAllEqual(test, [4, 6, 8, 9])
    self.assertAllEqual(train, [0, 1, 2, 3, 5, 7])

  @parameterized.parameters(([0, 1, 2], 1), ([0, 0], 0), ([0, 0], True), ([0, 0], 1.5))
  def test_per_class_split_rejects(self, labels, test_per_class):
    # One example per class leaves nothing to hold out; the count must be a positive integer.
    with self.assertRaisesRegex(ValueError, "test_per_class"):
      relearn_head.per_class_split(np.array(labels), test_per_class)

  def test_head_endpoint(self):
    self.assertEqual(relearn_head.head_endpoint(_FakeModel(["final_avg_pool", "final_layer",
                                                            "outputs"])), "outputs")
    self.assertEqual(relearn_head.head_endpoint(_FakeModel(["final_avg_pool", "final_layer"])),
                     "final_layer")
    with self.assertRaisesRegex(ValueError, "has no outputs or final_layer endpoint"):
      relearn_head.head_endpoint(_FakeModel(["final_avg_pool"]))

  def test_bad_inputs_fail_before_extraction(self):
    no_pool = pretrained.load(export_without(
        os.path.join(self.create_tempdir().full_path, "sm"), ("final_avg_pool",)))
    subset = datasets.get(DATASET, classes="0-2")
    with mock.patch.object(features, "iterate", side_effect=AssertionError("extracted")):
      with self.assertRaisesRegex(ValueError, "has no 'final_avg_pool' endpoint"):
        relearn(no_pool, self.info, "test", data_dir=self.data_dir)
      with self.assertRaisesRegex(ValueError, "has 4 outputs but dataset demo_size/small@0-2"
                                  " has 3 classes"):
        relearn(self.model, subset, "test", data_dir=self.data_dir)
      with self.assertRaisesRegex(ValueError, "test_per_class"):
        relearn(self.model, self.info, "test", test_per_class=0)
      with self.assertRaisesRegex(ValueError, "max_examples"):
        relearn(self.model, self.info, "test", max_examples=1)


if __name__ == "__main__":
  tf.test.main()
