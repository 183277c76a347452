"""End-to-end tests of trainer.train on the embedded demo data (a tiny ResNet, 8 steps).

One run is shared by most tests; its metrics are checked against an independent evaluation of
the exported SavedModel (NumPy top-1/top-5, class separation and loss), its checkpoint against
the export, its TensorBoard logs, config and resumption rules. A second run diverges on
purpose.
"""

import glob
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from official import losses
from official.core import io
from official.data import datasets
from official.data import preprocessing
from official.modeling import pretrained
from official.core import config as config_lib
from official.training import trainer

EVAL_EXAMPLES = 64


def tiny_config(data_dir: str, **overrides) -> config_lib.ExperimentConfig:
  config = config_lib.override(config_lib.get_experiment("demo"), {
      "data.dataset": "demo_pretrain/small", "data.data_dir": data_dir,
      "data.train_split": "train", "data.eval_split": "test",
      "data.train_examples": 128, "data.eval_examples": EVAL_EXAMPLES,
      "model.block_counts": [1, 1, 1, 1], "model.width_multiplier": 0.125,
      "train.batch_size": 32, "train.epochs": 2, "train.warmup_epochs": 0.5,
      "train.steps_per_loop": 2, "train.log_every_steps": 2,
      "train.checkpoint_every_steps": 3, "train.keep_checkpoints": 10,
      "train.eval_batch_size": 16, "train.eval_every_epochs": 1,
      "train.class_separation_examples": 48,
      "train.ema_decay": 0.9, "objective.name": "label_smoothing"})
  return config_lib.override(config, overrides)


def _cosine_r2(features, labels):
  """Class separation R^2 (paper eq. 11, cosine) by brute force over all pairs."""
  u = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  distance = 1.0 - u @ u.T
  classes = np.unique(labels)
  within = np.mean([distance[np.ix_(labels == k, labels == k)].mean() for k in classes])
  total = np.mean([distance[np.ix_(labels == j, labels == k)].mean()
                   for j in classes for k in classes])
  return 1.0 - within / total


def _scalar_tags(directory):
  tags = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append((event.step, value))
  return tags


class TrainTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cls.data_dir = os.path.join(cls.root, "tfds")
    cls.model_dir = os.path.join(cls.root, "run")
    cls.config = tiny_config(cls.data_dir)
    cls.lines = []
    cls.metrics = trainer.train(cls.config, cls.model_dir, log=cls.lines.append)

  def test_metrics_file_and_counts(self):
    saved = io.read_json(os.path.join(self.model_dir, "metrics.json"))
    self.assertEqual(saved, self.metrics)
    self.assertEqual(saved["steps"], 8)  # 128 examples / 32 per batch x 2 epochs
    self.assertEqual(saved["epochs"], 2.0)
    self.assertEqual(saved["eval_examples"], EVAL_EXAMPLES)
    self.assertEqual(saved["objective"], "label_smoothing")
    self.assertEqual(saved["hparams"], {"alpha": 0.1})
    self.assertEqual(saved["seed"], 0)
    self.assertGreater(saved["images_per_second"], 0)
    # One line per epoch plus step lines every 2 steps.
    self.assertLen([l for l in self.lines if l.startswith("epoch ")], 2)
    self.assertLen([l for l in self.lines if l.strip().startswith("step ")], 4)

  def test_metrics_match_independent_evaluation_of_the_export(self):
    export_dir = os.path.join(self.model_dir, "export", "saved_model")
    model = pretrained.load(export_dir)
    self.assertEqual(model.endpoint_names, ["block1", "block2", "block3", "block4",
                                            "final_avg_pool", "final_layer", "outputs"])
    info = datasets.get("demo_pretrain/small", data_dir=self.data_dir)
    examples = list(datasets.load(info, "test", data_dir=self.data_dir)
                    .take(EVAL_EXAMPLES).as_numpy_iterator())
    images = tf.stack([preprocessing.preprocess_for_eval(image, 32) for image, _ in examples])
    labels = np.array([label for _, label in examples])
    endpoints = {k: v.numpy() for k, v in model(images).items()}
    self.assertEqual(endpoints["final_layer"].shape, (EVAL_EXAMPLES, 48))
    self.assertEqual(endpoints["block4"].shape[0], EVAL_EXAMPLES)

    outputs = endpoints["outputs"]
    ranks = np.argsort(-outputs, axis=1)
    top1 = np.mean(ranks[:, 0] == labels)
    top5 = np.mean(np.any(ranks[:, :5] == labels[:, None], axis=1))
    z = endpoints["final_layer"].astype(np.float64)
    alpha, k = 0.1, z.shape[1]
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    targets = (1 - alpha) * np.eye(k)[labels] + alpha / k
    loss = np.mean(-(targets * log_p).sum(1)) / (1 - alpha)  # docs/protocol.md §1 label smoothing
    r2 = _cosine_r2(endpoints["final_avg_pool"][:48].astype(np.float64), labels[:48])

    self.assertAllClose(self.metrics["top1"], top1, atol=1e-6)
    self.assertAllClose(self.metrics["top5"], top5, atol=1e-6)
    self.assertAllClose(self.metrics["loss"], loss, rtol=1e-4)
    self.assertAllClose(self.metrics["class_separation"], r2, atol=1e-4)

  def test_checkpoint_holds_the_exported_ema_weights(self):
    checkpoint_dir = os.path.join(self.model_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    self.assertTrue(latest.endswith("ckpt-8"))
    # Periodic (every 3 steps) and epoch-end (4, 8) checkpoints.
    steps = sorted(int(p.split("-")[-1].split(".")[0])
                   for p in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")))
    self.assertEqual(steps, [3, 4, 6, 8])
    config = config_lib.resolve(self.config)
    objective = losses.get_objective("label_smoothing")
    ema = trainer.build_model(config, objective)
    raw = trainer.build_model(config, objective)
    tf.train.Checkpoint(ema_model=ema, model=raw).restore(latest).expect_partial()
    images = tf.random.stateless_normal([4, 32, 32, 3], seed=[1, 2])
    exported = pretrained.load(os.path.join(self.model_dir, "export", "saved_model"))
    self.assertAllClose(ema(images, training=False)["outputs"], exported(images)["outputs"],
                        atol=1e-5)
    differences = [np.max(np.abs(a - b)) for a, b in zip(ema.get_weights(), raw.get_weights())]
    self.assertGreater(max(differences), 1e-4)  # the average is not the last weights

  def test_config_json_is_the_resolved_config(self):
    saved = config_lib.from_dict(io.read_json(os.path.join(self.model_dir, "config.json")))
    self.assertEqual(saved, config_lib.resolve(self.config))
    self.assertEqual(saved.model.num_classes, 48)

  def test_tensorboard_logs(self):
    train_tags = _scalar_tags(os.path.join(self.model_dir, "train"))
    eval_tags = _scalar_tags(os.path.join(self.model_dir, "eval"))
    for tag in ("loss", "total_loss", "learning_rate", "top1", "images_per_second"):
      self.assertIn(tag, train_tags)
    self.assertEqual([step for step, _ in train_tags["loss"]], [2, 4, 6, 8])
    for tag in ("top1", "top5", "loss", "class_separation"):
      self.assertEqual([step for step, _ in eval_tags[tag]], [4, 8])
    final_top1 = tf.make_ndarray(eval_tags["top1"][-1][1].tensor)
    self.assertAllClose(final_top1, self.metrics["top1"])
    hparams = [v for _, values in _scalar_tags(self.model_dir).items() for _, v in values]
    self.assertTrue(any(v.metadata.plugin_data.plugin_name == "hparams" for v in hparams))

  def test_resume_rules(self):
    model_dir = os.path.join(self.root, "resumed")
    shutil.copytree(self.model_dir, model_dir)
    # A run-only setting may change; the finished run is evaluated again, not retrained.
    again = trainer.train(tiny_config(self.data_dir, **{"train.log_every_steps": 1}),
                          model_dir, log=lambda line: None)
    self.assertEqual(again["steps"], 8)
    self.assertEqual(again["images_per_second"], self.metrics["images_per_second"])
    for key in ("top1", "top5", "loss", "class_separation"):
      self.assertAllClose(again[key], self.metrics[key], atol=1e-6)
    # Anything that changes the result is refused, naming the keys.
    changed = tiny_config(self.data_dir, **{"train.seed": 3, "model.width_multiplier": 0.25})
    with self.assertRaisesRegex(
        ValueError, r"holds a run with a different config \(model.width_multiplier: 0.125 -> "
        r"0.25; train.seed: 0 -> 3\)") as caught:
      trainer.train(changed, model_dir)
    self.assertNotIn("\n", str(caught.exception))

  def test_data_generated_in_process_leaves_the_initialisation_unchanged(self):
    # setUpClass generated demo_pretrain/small inside train(); this run finds it prepared.
    # TFDS generation draws from the global random state, so the seed must come after it.
    metrics = trainer.train(self.config, os.path.join(self.root, "data_ready"),
                            log=lambda line: None)
    for key in ("loss", "top1", "top5", "class_separation"):
      self.assertAllClose(metrics[key], self.metrics[key], rtol=1e-5, atol=1e-6, msg=key)

  def test_unreadable_config_is_refused(self):
    model_dir = os.path.join(self.root, "unreadable")
    os.makedirs(model_dir)
    io.atomic_write_json(os.path.join(model_dir, "config.json"), {
        "model": {}, "objective": {"name": "softmax"}, "train": {"epoch": 3}})
    with self.assertRaisesRegex(ValueError, r"config.json is not a valid experiment config "
                                r"\(.*unknown config key\(s\) train.epoch;.*use another "
                                "--model_dir"):
      trainer.check_resumable(self.config, model_dir)

  def test_divergence_stops_and_keeps_the_last_finite_checkpoint(self):
    model_dir = os.path.join(self.root, "diverging")
    # Squared error at a huge learning rate: step 1 has learning rate 0 (warm-up), then the
    # loss explodes within a few steps.
    config = tiny_config(self.data_dir, **{
        "objective.name": "squared_error", "train.learning_rate": 50.0,
        "train.warmup_epochs": 1, "train.checkpoint_every_steps": 1,
        "train.steps_per_loop": 1})
    with self.assertRaisesRegex(trainer.TrainingDiverged, "training diverged") as caught:
      trainer.train(config, model_dir, log=lambda line: None)
    self.assertNotIn("\n", str(caught.exception))
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    self.assertIsNotNone(latest)
    reader = tf.train.load_checkpoint(latest)
    values = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    floats = [v for v in values if np.asarray(v).dtype.kind == "f"]
    self.assertGreater(len(floats), 10)
    self.assertTrue(all(np.all(np.isfinite(v)) for v in floats))
    self.assertFalse(os.path.exists(os.path.join(model_dir, "metrics.json")))


if __name__ == "__main__":
  tf.test.main()
