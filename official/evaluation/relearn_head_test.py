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
DATASET = "demo_texture/small"  # 8 classes; 360 train, 40 validation, 200 test examples
FIT = {"l2_grid": (1e-2, 1.0, 100.0), "max_iterations": 100}


def build_tiny(num_classes: int, *, objective: str = "softmax", seed: int = 0,
               image_size: int = IMAGE_SIZE) -> keras.Model:
  """A tiny ResNet-18 (width 1/16, one block per stage) with its endpoints."""
  keras.utils.set_random_seed(seed)
  return resnet.build_model(resnet.ResNetConfig.from_dict(TINY), num_classes,
                            losses.get_objective(objective),
                            input_shape=(image_size, image_size, 3))


def make_model_dir(path: str, *, num_classes: int = 8, dataset: str = DATASET,
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


def export_without(path: str, drop: tuple, *, num_classes: int = 8) -> str:
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


def relearn(model, info, split: str, *, train_fraction: float = relearn_head.TRAIN_FRACTION,
            max_examples=None, l2_grid=None, max_iterations=linear_probe.MAX_ITERATIONS,
            **extraction) -> dict:
  """The scores of the RelearnHead evaluator."""
  return evaluators.RelearnHead(
      train_fraction=train_fraction, max_examples=max_examples, l2_grid=l2_grid,
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
      result = relearn(self.model, self.info, "test", max_examples=150,
                                     batch_size=64, data_dir=self.data_dir, progress=False,
                                     **FIT)
    # The first 80% (120 examples) train the new head, the other 30 score both heads.
    self.assertEqual((result["train_examples"], result["test_examples"]), (120, 30))
    self.assertEqual((result["num_classes"], result["head_endpoint"], result["split"]),
                     (8, "outputs", "test"))
    fit.assert_called_once()
    (train_x, train_y), kwargs = fit.call_args[0], fit.call_args[1]
    self.assertAllClose(train_x, x[:120], atol=1e-5)
    self.assertAllEqual(train_y, labels[:120])
    self.assertEqual(kwargs["l2_grid"], FIT["l2_grid"])

    original = np.mean(np.argmax(logits[120:], axis=1) == labels[120:])
    self.assertAllClose(result["original"], original, atol=1e-12)
    self.assertAllClose(result["original"] * 30, round(result["original"] * 30), atol=1e-9)
    probe = linear_probe.fit(train_x, train_y, metric="top1", **FIT)
    self.assertEqual(result["l2"], probe.l2)
    self.assertAllClose(result["relearned"], np.mean(probe.predict(x[120:]) == labels[120:]),
                        atol=1e-12)
    self.assertEqual(result["train_classes"], np.unique(labels[:120]).size)
    self.assertEqual(result["validation_score"],
                     max(p["score"] for p in result["validation_scores"]))

  def test_cache_is_reused(self):
    cache_dir = self.create_tempdir().full_path
    kwargs = dict(max_examples=40, batch_size=64, data_dir=self.data_dir, progress=False,
                  cache_dir=cache_dir, train_fraction=0.75, **FIT)
    first = relearn(self.model, self.info, "test", **kwargs)
    self.assertLen(os.listdir(cache_dir), 1)
    with mock.patch.object(features, "iterate", side_effect=AssertionError("recomputed")):
      again = relearn(self.model, self.info, "test", **kwargs)
    self.assertEqual((first["train_examples"], first["test_examples"]), (30, 10))
    for key in ("original", "relearned", "l2", "train_examples", "test_examples"):
      self.assertEqual(again[key], first[key])

  @parameterized.parameters((50_000, 0.8, 40_000), (10, 0.8, 8), (7, 0.8, 5), (3, 0.5, 1))
  def test_split_point(self, n, fraction, expected):
    self.assertEqual(relearn_head.split_point(n, fraction), expected)

  @parameterized.parameters((10, 0.0), (10, 1.0), (10, 1.5), (1, 0.8), (4, 0.1))
  def test_split_point_rejects(self, n, fraction):
    with self.assertRaises(ValueError):
      relearn_head.split_point(n, fraction)

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
    subset = datasets.get(DATASET, classes="0-4")
    with mock.patch.object(features, "iterate", side_effect=AssertionError("extracted")):
      with self.assertRaisesRegex(ValueError, "has no 'final_avg_pool' endpoint"):
        relearn(no_pool, self.info, "test", data_dir=self.data_dir)
      with self.assertRaisesRegex(ValueError, "has 8 outputs but dataset demo_texture/small@0-4"
                                  " has 5 classes"):
        relearn(self.model, subset, "test", data_dir=self.data_dir)
      with self.assertRaisesRegex(ValueError, "train_fraction"):
        relearn(self.model, self.info, "test", train_fraction=1.0)
      with self.assertRaisesRegex(ValueError, "max_examples"):
        relearn(self.model, self.info, "test", max_examples=1)
    # The cut needs an example on each side.
    with self.assertRaisesRegex(ValueError, "both parts need at least one example"):
      relearn(self.model, self.info, "test", max_examples=4, train_fraction=0.1,
                            data_dir=self.data_dir, progress=False)


if __name__ == "__main__":
  tf.test.main()
