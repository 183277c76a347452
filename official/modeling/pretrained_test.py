"""Tests for SavedModel export and for loading SavedModels and training model_dirs."""

import json
import os

import numpy as np
import tensorflow as tf

from official import losses
from official.modeling import pretrained
from official.modeling import resnet

IMAGE_SIZE = 16
MODEL_SECTION = {"depth": 18, "width_multiplier": 0.125, "small_input_stem": True,
                 "bn_momentum": 0.9, "bn_epsilon": 1e-5, "block_counts": [1, 1, 1, 1]}
NAMES = ["block1", "block2", "block3", "block4", "final_avg_pool", "final_layer", "outputs"]


def _tiny_model(num_classes=5, objective="cosine_softmax", hparams=None):
  return resnet.build_model(resnet.ResNetConfig.from_dict(MODEL_SECTION), num_classes,
                            losses.get_objective(objective, **(hparams or {})),
                            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def _images(n, seed=0):
  return np.random.RandomState(seed).standard_normal(
      (n, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


def _train_batch_norm(model):
  """Moves the batch-norm moving statistics away from their initial 0 / 1."""
  for seed in range(3):
    model(_images(8, seed=100 + seed), training=True)


def _perturb(model, seed):
  """Sets every weight of `model` to a random value (distinct per seed)."""
  rng = np.random.RandomState(seed)
  for variable in model.weights:
    value = variable.numpy()
    if "moving_variance" in variable.path:
      variable.assign(rng.uniform(0.5, 1.5, value.shape).astype(np.float32))
    else:
      variable.assign((value + 0.1 * rng.standard_normal(value.shape)).astype(np.float32))


def _write_model_dir(model_dir, num_classes, objective, hparams, checkpoint_objects):
  tf.io.gfile.makedirs(model_dir)
  config = {"model": {**MODEL_SECTION, "num_classes": num_classes,
                      "image_size": IMAGE_SIZE},
            "objective": {"name": objective, "hparams": hparams}}
  with open(os.path.join(model_dir, "config.json"), "w") as f:
    json.dump(config, f)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**checkpoint_objects),
                                       os.path.join(model_dir, "checkpoints"), max_to_keep=3)
  return manager


class ExportTest(tf.test.TestCase):

  def test_export_and_load_round_trip(self):
    model = _tiny_model()
    _train_batch_norm(model)
    model_dir = self.create_tempdir().full_path
    export_dir = os.path.join(model_dir, "export", "saved_model")
    self.assertEqual(pretrained.export_saved_model(model, export_dir, IMAGE_SIZE), export_dir)
    with open(os.path.join(export_dir, "assets", "endpoints.json")) as f:
      self.assertEqual(json.load(f), {"endpoint_names": NAMES, "image_size": IMAGE_SIZE,
                                      "num_classes": 5})

    x = _images(6, seed=1)
    expected = model(x, training=False)
    loaded = pretrained.load(model_dir)  # a training model_dir with export/saved_model
    self.assertEqual(loaded.path, export_dir)
    self.assertEqual(loaded.endpoint_names, NAMES)
    self.assertEqual(loaded.input_size, (IMAGE_SIZE, IMAGE_SIZE))
    self.assertEqual(loaded.num_classes, 5)
    self.assertIsNone(loaded.keras_model)
    got = loaded(x)
    self.assertEqual(list(got), NAMES)
    for name in NAMES:
      self.assertAllClose(got[name], expected[name], atol=1e-5, msg=name)
    self.assertEqual(list(loaded(x, endpoints=["final_avg_pool", "block2"])),
                     ["final_avg_pool", "block2"])

    # A second export replaces the first atomically: new weights, no leftover folders.
    _perturb(model, seed=7)
    pretrained.export_saved_model(model, export_dir, IMAGE_SIZE)
    self.assertEqual(os.listdir(os.path.join(model_dir, "export")), ["saved_model"])
    got = pretrained.load(export_dir)(x)  # the SavedModel directory itself
    expected = model(x, training=False)
    for name in NAMES:
      self.assertAllClose(got[name], expected[name], atol=1e-5, msg=name)

  def test_export_rejects_mismatched_image_size(self):
    with self.assertRaisesRegex(ValueError, "image_size=32 does not match"):
      pretrained.export_saved_model(_tiny_model(), self.create_tempdir().full_path, 32)

  def test_released_style_saved_model(self):
    # A SavedModel shaped like the released ones: input named `image`, 1001 classes with an
    # unused class 0, final_avg_pool of shape [B, 1, 1, D], no endpoints.json.
    kernel = tf.constant(np.random.RandomState(0).standard_normal((3, 1001)), tf.float32)
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32, name="image")])
    def serve(image):
      block = tf.nn.relu(image)
      pool = tf.reduce_mean(block, axis=(1, 2), keepdims=True)
      logits = tf.matmul(tf.reshape(pool, [-1, 3]), kernel)
      return {"block1": block, "final_avg_pool": pool, "final_layer": logits,
              "outputs": 2.0 * logits}

    module.serve = serve
    path = self.create_tempdir().full_path
    tf.saved_model.save(module, path, signatures={"serving_default": serve})

    loaded = pretrained.load(path)
    self.assertEqual(loaded.endpoint_names, ["block1", "final_avg_pool", "final_layer",
                                             "outputs"])
    self.assertEqual(loaded.input_size, (8, 8))
    self.assertEqual(loaded.num_classes, 1000)
    x = np.random.RandomState(1).standard_normal((4, 8, 8, 3)).astype(np.float32)
    got = loaded(x)
    pool = np.maximum(x, 0).mean(axis=(1, 2))
    self.assertAllClose(got["final_avg_pool"], pool, atol=1e-6)
    self.assertAllClose(got["final_layer"], (pool @ kernel.numpy())[:, 1:], atol=1e-5)
    self.assertAllClose(got["outputs"], 2.0 * (pool @ kernel.numpy())[:, 1:], atol=1e-5)
    self.assertEqual(got["block1"].shape, (4, 8, 8, 3))


class CheckpointTest(tf.test.TestCase):

  def test_restores_ema_weights_of_latest_checkpoint(self):
    hparams = {"keep_prob": 0.7}
    model = _tiny_model(objective="dropout", hparams=hparams)
    ema_model = _tiny_model(objective="dropout", hparams=hparams)
    model_dir = self.create_tempdir().full_path
    manager = _write_model_dir(model_dir, 5, "dropout", hparams,
                               {"model": model, "ema_model": ema_model})
    _perturb(ema_model, seed=1)
    manager.save()
    _perturb(model, seed=2)
    _perturb(ema_model, seed=3)
    manager.save()

    loaded = pretrained.load(model_dir)
    self.assertEqual(loaded.endpoint_names, NAMES)
    self.assertEqual(loaded.input_size, (IMAGE_SIZE, IMAGE_SIZE))
    self.assertEqual(loaded.num_classes, 5)
    self.assertIsNotNone(loaded.keras_model)
    for restored, ema in zip(loaded.keras_model.weights, ema_model.weights):
      self.assertAllEqual(restored, ema, msg=restored.path)
    x = _images(4, seed=5)
    got = loaded(x)
    expected = ema_model(x, training=False)
    raw = model(x, training=False)
    for name in NAMES:
      self.assertAllClose(got[name], expected[name], atol=1e-5, msg=name)
    self.assertNotAllClose(got["final_layer"], raw["final_layer"])

  def test_load_keras_model_of_a_given_checkpoint_and_input_size(self):
    ema_model = _tiny_model(objective="softmax")
    model_dir = self.create_tempdir().full_path
    manager = _write_model_dir(model_dir, 5, "softmax", {}, {"ema_model": ema_model})
    _perturb(ema_model, seed=1)
    first = manager.save()
    first_weights = [w.numpy() for w in ema_model.weights]
    _perturb(ema_model, seed=2)
    latest = manager.save()

    network = pretrained.read_model_dir(model_dir)
    self.assertEqual((network.checkpoint, network.num_classes, network.image_size,
                      network.objective.name), (latest, 5, (IMAGE_SIZE, IMAGE_SIZE), "softmax"))
    model = pretrained.load_keras_model(model_dir, image_size=32, checkpoint=first)
    self.assertEqual(model.input_shape, (None, 32, 32, 3))
    self.assertEqual(list(model.output), NAMES)
    for restored, value in zip(model.weights, first_weights):
      self.assertAllEqual(restored, value, msg=restored.path)
    # The latest checkpoint by default, at the training size.
    for restored, ema in zip(pretrained.load_keras_model(model_dir).weights, ema_model.weights):
      self.assertAllEqual(restored, ema, msg=restored.path)

  def test_background_class_is_dropped(self):
    ema_model = _tiny_model(num_classes=1001, objective="softmax")
    model_dir = self.create_tempdir().full_path
    _perturb(ema_model, seed=4)
    _write_model_dir(model_dir, 1001, "softmax", {}, {"ema_model": ema_model}).save()
    loaded = pretrained.load(model_dir)
    self.assertEqual(loaded.num_classes, 1000)
    x = _images(3, seed=6)
    got = loaded(x, endpoints=["final_layer", "outputs"])
    expected = ema_model(x, training=False)
    self.assertEqual(got["final_layer"].shape, (3, 1000))
    self.assertAllClose(got["final_layer"], expected["final_layer"][:, 1:], atol=1e-5)
    self.assertAllClose(got["outputs"], expected["outputs"][:, 1:], atol=1e-5)


class ErrorTest(tf.test.TestCase):

  def assertOneLineError(self, error_type, pattern, fn, *args, **kwargs):
    with self.assertRaisesRegex(error_type, pattern) as context:
      fn(*args, **kwargs)
    self.assertNotIn("\n", str(context.exception))

  def test_bad_paths(self):
    root = self.create_tempdir().full_path
    missing = os.path.join(root, "missing")
    self.assertOneLineError(FileNotFoundError, f"{missing} does not exist.*SavedModel",
                            pretrained.load, missing)
    a_file = self.create_tempfile("model.txt").full_path
    self.assertOneLineError(ValueError, f"{a_file} is not a directory", pretrained.load,
                            a_file)
    empty = self.create_tempdir().full_path
    self.assertOneLineError(ValueError, f"{empty} holds no model.*saved_model.pb",
                            pretrained.load, empty)

  def test_model_dir_without_checkpoint(self):
    model_dir = self.create_tempdir().full_path
    _write_model_dir(model_dir, 5, "softmax", {},
                     {"ema_model": _tiny_model(objective="softmax")})
    checkpoints = os.path.join(model_dir, "checkpoints")
    self.assertOneLineError(FileNotFoundError, f"no checkpoint in {checkpoints}",
                            pretrained.load, model_dir)

  def test_config_without_sections(self):
    model_dir = self.create_tempdir().full_path
    with open(os.path.join(model_dir, "config.json"), "w") as f:
      json.dump({"model": {"depth": 18}}, f)
    self.assertOneLineError(ValueError, "config.json must have 'model' and 'objective'",
                            pretrained.load, model_dir)

  def test_config_with_bad_values(self):
    for field, value, pattern in (("depth", 20, "depth=20 is not supported"),
                                  ("image_size", 0, "image_size=0 must be")):
      model_dir = self.create_tempdir().full_path
      _write_model_dir(model_dir, 5, "softmax", {},
                       {"ema_model": _tiny_model(objective="softmax")}).save()
      config_path = os.path.join(model_dir, "config.json")
      with open(config_path) as f:
        config = json.load(f)
      config["model"][field] = value
      with open(config_path, "w") as f:
        json.dump(config, f)
      self.assertOneLineError(ValueError, f"{config_path}: .*{pattern}", pretrained.load,
                              model_dir)

  def test_checkpoint_without_ema_model(self):
    model_dir = self.create_tempdir().full_path
    _write_model_dir(model_dir, 5, "softmax", {},
                     {"model": _tiny_model(objective="softmax")}).save()
    self.assertOneLineError(ValueError, "has no ema_model matching", pretrained.load,
                            model_dir)

  def test_missing_endpoint_and_bad_images(self):
    model_dir = self.create_tempdir().full_path
    ema_model = _tiny_model(objective="softmax")
    _write_model_dir(model_dir, 5, "softmax", {}, {"ema_model": ema_model}).save()
    loaded = pretrained.load(model_dir)
    self.assertOneLineError(ValueError, f"model {model_dir} has no endpoint 'block9'",
                            loaded, _images(1), endpoints=["block9"])
    self.assertOneLineError(ValueError, r"expected \[batch, 16, 16, 3\]", loaded,
                            np.zeros((1, 32, 32, 3), np.float32))


if __name__ == "__main__":
  tf.test.main()
