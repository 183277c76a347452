"""Tests of fine-tuning (docs/protocol.md §5): protocol constants, weight loading, training, resumption."""

import math
import os
import signal
from unittest import mock

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.core import config as config_lib
from official.core import io
from official.data import datasets
from official.evaluation import finetune
from official.modeling import resnet
from official.training import distribute
from official.training import trainer as trainer_lib

TINY = {"depth": 18, "width_multiplier": 0.125, "small_input_stem": True,
        "block_counts": [1, 1, 1, 1], "bn_momentum": 0.9, "bn_epsilon": 1e-5}


def make_model_dir(path: str, *, num_classes: int = 5, image_size: int = 16,
                   objective: str = "softmax", seed: int = 0) -> dict:
  """A training model_dir (the layout of experiments/train) of a tiny ResNet whose EMA differs from its
  raw weights; returns {"model": raw weights, "ema": EMA weights} as lists of arrays."""
  config = resnet.ResNetConfig.from_dict(TINY)
  model = resnet.build_model(config, num_classes, losses.get_objective(objective),
                             input_shape=(image_size, image_size, 3), name="resnet")
  ema = resnet.build_model(config, num_classes, losses.get_objective(objective),
                           input_shape=(image_size, image_size, 3), name="resnet_ema")
  # Kernels drawn from `seed` (LeCun normal), the other weights at their initial values.
  rng = np.random.default_rng(seed)
  raw = [w.numpy() for w in model.weights]
  raw = [rng.normal(0.0, (1.0 / np.prod(r.shape[:-1])) ** 0.5, r.shape).astype(r.dtype)
         if w.path.endswith("kernel") else r for r, w in zip(raw, model.weights)]
  model.set_weights(raw)
  averaged = [w + rng.normal(0.0, 0.1, w.shape).astype(w.dtype) for w in raw]
  # Batch-norm moving variances must stay positive.
  averaged = [np.abs(a) if "variance" in w.path else a for a, w in zip(averaged, model.weights)]
  ema.set_weights(averaged)
  checkpoint = tf.train.Checkpoint(model=model, ema_model=ema)
  tf.train.CheckpointManager(checkpoint, os.path.join(path, "checkpoints"),
                             max_to_keep=1).save(checkpoint_number=7)
  io.atomic_write_json(os.path.join(path, "config.json"), {
      "model": dict(TINY, num_classes=num_classes, image_size=image_size),
      "objective": {"name": objective, "hparams": {}}})
  return {"model": raw, "ema": averaged, "paths": [w.path for w in model.weights]}


class ProtocolTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(1, 5, 10, 20, 50, 100, 195, 1000, 20_000)
  def test_bn_momentum_rule(self, steps_per_epoch):
    self.assertAlmostEqual(finetune.bn_momentum(steps_per_epoch),
                           max(1.0 - 10.0 / steps_per_epoch, 0.9), places=12)

  def test_bn_momentum_values(self):
    # s = 195 (CIFAR at batch 256): 1 - 10/195; s = 31 (demo): the floor 0.9.
    self.assertAlmostEqual(finetune.bn_momentum(195), 0.948717948717, places=9)
    self.assertEqual(finetune.bn_momentum(31), 0.9)
    self.assertAlmostEqual(finetune.bn_momentum(1000), 0.99, places=12)

  def test_paper_grid(self):
    config = config_lib.get_preset("finetune", "paper")
    np.testing.assert_allclose(config.learning_rates,
                               [10.0 ** (-4 + 0.5 * i) for i in range(7)], rtol=1e-12)
    self.assertEqual(config.weight_decays[0], 0.0)
    np.testing.assert_allclose(config.weight_decays[1:],
                               [10.0 ** (-6 + 0.5 * i) for i in range(7)], rtol=1e-12)
    self.assertLen(config.grid(), 56)
    self.assertEqual(config.grid()[0], (1e-4, 0.0))
    self.assertEqual((config.steps, config.batch_size, config.momentum, config.nesterov,
                      config.schedule), (20_000, 256, 0.9, True, "cosine"))

  def test_demo_preset_and_overrides(self):
    config = config_lib.get_preset("finetune", "demo")
    self.assertLen(config.grid(), 4)
    changed = config_lib.override(config, {"steps": 7, "learning_rates": [0.5], "seed": None})
    self.assertEqual((changed.steps, changed.learning_rates, changed.seed), (7, (0.5,), 0))
    with self.assertRaisesRegex(ValueError, "unknown fine-tuning setting 'step'"):
      config_lib.override(config, {"step": 3})
    with self.assertRaisesRegex(ValueError, "unknown fine-tuning preset"):
      config_lib.get_preset("finetune", "large")
    with self.assertRaisesRegex(ValueError, "weight_decays must be >= 0"):
      config_lib.override(config, {"weight_decays": [-1.0]})

  @parameterized.parameters("cosine", "constant")
  def test_learning_rate_schedule(self, schedule):
    config = config_lib.override(config_lib.get_preset("finetune", "demo"), {"steps": 100,
                                                             "schedule": schedule})
    lr = finetune.learning_rate_schedule(config, 0.02)
    for t in (0, 25, 50, 99, 100):
      expected = 0.02 * 0.5 * (1 + math.cos(math.pi * t / 100)) if schedule == "cosine" else 0.02
      value = float(lr(t)) if callable(lr) else lr
      self.assertAlmostEqual(value, expected, places=7)


class ModelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.model_dir = os.path.join(cls.get_temp_dir(cls()), "pretrained")
    cls.weights = make_model_dir(cls.model_dir)

  def _trainer(self, lr=0.01, wd=1e-4, steps_per_epoch=50):
    network = finetune.find_pretrained(self.model_dir)
    config = config_lib.override(config_lib.get_preset("finetune", "demo"), {"steps": 10})
    return finetune.FinetuneTrainer(network, 3, 16, config, lr, wd, steps_per_epoch,
                                    tf.distribute.get_strategy())

  def test_backbone_starts_at_ema_weights(self):
    model = self._trainer().model
    by_path = {p: (raw, ema) for p, raw, ema in zip(
        self.weights["paths"], self.weights["model"], self.weights["ema"])}
    compared = 0
    for w in model.weights:
      if w.path.startswith(finetune.HEAD_NAME):
        continue
      raw, ema = by_path[w.path]
      np.testing.assert_array_equal(w.numpy(), ema)
      self.assertGreater(np.max(np.abs(w.numpy() - raw)), 0.0)
      compared += 1
    # Every backbone weight: stem + 4 basic blocks with projections -> 13 conv + 13 BN (4 each).
    self.assertEqual(compared, 13 + 13 * 4)
    head = model.get_layer(finetune.HEAD_NAME)
    kernel, bias = head.kernel.numpy(), head.bias.numpy()
    self.assertEqual(kernel.shape, (64, 3))
    np.testing.assert_array_equal(bias, np.zeros(3))
    self.assertAllClose(kernel.std(), 0.01, rtol=0.3)
    self.assertNotIn("final_layer", [layer.name for layer in model.layers])

  def test_bn_momentum_on_every_layer_and_used(self):
    trainer = self._trainer(steps_per_epoch=200)
    expected = 1.0 - 10.0 / 200  # 0.95, above the 0.9 floor and the built-in 0.9
    model = trainer.model
    bn = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    self.assertLen(bn, 13)
    self.assertEqual([l.momentum for l in bn], [expected] * 13)
    # The moving mean moves by (1 - m) towards the batch mean in a training step.
    images = tf.random.stateless_normal([8, 16, 16, 3], seed=[1, 2])
    stem_input = keras.Model(model.input, model.get_layer("stem_conv").output)(images)
    batch_mean = tf.reduce_mean(stem_input, axis=[0, 1, 2]).numpy()
    stem_bn = model.get_layer("stem_bn")
    before = stem_bn.moving_mean.numpy()
    model(images, training=True)
    np.testing.assert_allclose(stem_bn.moving_mean.numpy(),
                               expected * before + (1 - expected) * batch_mean,
                               rtol=1e-5, atol=1e-6)

  def test_penalty_is_weight_decay_over_learning_rate(self):
    lr, wd = 0.03, 2e-4
    trainer = self._trainer(lr=lr, wd=wd)
    squares = 0.0
    for layer in trainer.model.layers:
      if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        squares += float(np.sum(np.square(layer.kernel.numpy().astype(np.float64))))
    self.assertGreater(squares, 0.0)
    self.assertAllClose(float(trainer.penalty()), (wd / lr) * 0.5 * squares, rtol=1e-5)
    self.assertAllClose(float(self._trainer(lr=lr, wd=0.0).penalty()), 0.0)

  def test_missing_model(self):
    with self.assertRaisesRegex(FileNotFoundError, "does not exist"):
      finetune.find_pretrained(os.path.join(self.get_temp_dir(), "nothing"))
    empty = self.create_tempdir().full_path
    with self.assertRaisesRegex(ValueError, "holds no config.json"):
      finetune.find_pretrained(empty)


def _train_steps(strategy, model_dir, steps=4, global_batch=16, lr=0.5, wd=0.05):
  """Fine-tunes `steps` steps on fixed data; returns the losses and the final weights."""
  config = config_lib.override(config_lib.get_preset("finetune", "demo"), {
      "steps": steps, "batch_size": global_batch, "schedule": "constant",
      "sync_batch_norm": True})
  trainer = finetune.FinetuneTrainer(finetune.find_pretrained(model_dir), 3, 16, config, lr,
                                     wd, 200, strategy)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(steps * global_batch, 16, 16, 3)).astype(np.float32)
  labels = rng.integers(0, 3, size=steps * global_batch)
  dataset = tf.data.Dataset.from_tensor_slices((images, labels))

  def dataset_fn(context):
    # Consecutive per-replica batches make up one global batch, whatever the topology.
    return dataset.batch(context.get_per_replica_batch_size(global_batch))

  iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
  losses_ = [trainer.train_loop(iterator, 1)["loss"] for _ in range(steps)]
  return {"losses": losses_, "weights": [w.numpy() for w in trainer.model.weights],
          "penalty": float(trainer.penalty())}


class DistributeTest(tf.test.TestCase):
  """One device and MirroredStrategy over two logical CPUs give the same fine-tuning."""

  def test_mirrored_matches_one_device(self):
    if len(tf.config.list_logical_devices("CPU")) < 2:
      self.skipTest("needs two logical CPU devices (configured before TensorFlow starts)")
    model_dir = self.create_tempdir().full_path
    make_model_dir(model_dir, num_classes=5, image_size=16)
    single = _train_steps(tf.distribute.get_strategy(), model_dir)
    mirrored = _train_steps(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), model_dir)
    self.assertAllClose(mirrored["losses"], single["losses"], atol=1e-5, rtol=0)
    for a, b in zip(mirrored["weights"], single["weights"]):
      self.assertAllClose(a, b, atol=1e-5, rtol=0)
    # The decay (wd / lr = 0.1) moves the weights far beyond that tolerance: a penalty
    # counted once per replica would show.
    without_decay = _train_steps(tf.distribute.get_strategy(), model_dir, wd=0.0)
    self.assertGreater(max(float(np.max(np.abs(a - b))) for a, b in zip(
        without_decay["weights"], single["weights"])), 1e-3)


class _Interrupt(Exception):
  """Stands for the process being killed."""


class TrainingTest(tf.test.TestCase):
  """Fine-tuning on the embedded demo data (demo_size/small: 4 size classes)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.get_temp_dir(cls())
    cls.model_dir = os.path.join(root, "pretrained")
    make_model_dir(cls.model_dir, num_classes=5, image_size=32)
    cls.data_dir = os.path.join(root, "tfds")
    cls.info = datasets.get("demo_size/small", data_dir=cls.data_dir)
    cls.data = finetune.TransferData.create(cls.info, cls.data_dir, 32)
    cls.network = finetune.find_pretrained(cls.model_dir)
    cls.config = config_lib.override(config_lib.get_preset("finetune", "demo"), {
        "steps": 30, "batch_size": 16, "steps_per_loop": 5, "log_every_steps": 10,
        "checkpoint_every_steps": 10, "eval_batch_size": 100})

  def _train(self, workdir, log=lambda line: None, lr=0.1, wd=1e-4):
    return finetune.train_and_score(
        self.network, self.data, self.config, lr, wd, train_split="train", eval_split="test",
        workdir=workdir, strategy=tf.distribute.get_strategy(), log=log)

  def test_split_sizes(self):
    counts = self.data.counts
    self.assertEqual([int(counts[s].sum()) for s in ("train", "validation", "train_full",
                                                     "test")], [360, 40, 400, 200])
    np.testing.assert_array_equal(counts["train"] + counts["validation"],
                                  counts["train_full"])
    self.assertEqual(self.data.steps_per_epoch("train", 32), 11)

  def test_improves_and_resumes_exactly(self):
    strategy = tf.distribute.get_strategy()
    initial = finetune.FinetuneTrainer(self.network, 8, 32, self.config, 0.1, 1e-4, 22,
                                       strategy)
    initial_score = initial.evaluate(self.data.eval_dataset("test", 100), "top1")

    workdir = self.create_tempdir().full_path
    result = self._train(workdir)
    self.assertFalse(result["diverged"])
    self.assertEqual((result["steps"], result["steps_per_epoch"]), (30, 360 // 16))
    self.assertEqual(result["bn_momentum"], 0.9)  # max(1 - 10/22, 0.9)
    self.assertAllClose(result["decay_coefficient"], 1e-4 / 0.1)
    # 8 balanced classes: chance is 1/8; 30 steps lift the test accuracy well above it.
    self.assertGreater(result["score"], initial_score + 0.1)
    self.assertEqual(io.read_json(os.path.join(workdir, "result.json"))["score"],
                     result["score"])
    self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints")))
    self.assertNotEmpty(tf.io.gfile.glob(os.path.join(workdir, "train", "events.*")))

    # SIGTERM during the loop ending at step 15 (no periodic checkpoint there): a checkpoint
    # at step 15, Preempted, and the previous SIGTERM handler back.
    interrupted = self.create_tempdir().full_path
    checkpoints = os.path.join(interrupted, "checkpoints")
    handler = signal.getsignal(signal.SIGTERM)
    train_loop = finetune.FinetuneTrainer.train_loop

    def sigterm_in_loop_to_15(trainer, iterator, num_steps):
      stats = train_loop(trainer, iterator, num_steps)
      if int(trainer.step.numpy()) == 15:
        os.kill(os.getpid(), signal.SIGTERM)
      return stats

    with mock.patch.object(finetune.FinetuneTrainer, "train_loop", sigterm_in_loop_to_15):
      with self.assertRaises(trainer_lib.Preempted) as raised:
        self._train(interrupted)
    self.assertEqual(str(raised.exception), f"SIGTERM: checkpoint saved at step 15 in "
                     f"{checkpoints}; rerun the same command to resume")
    self.assertIs(signal.getsignal(signal.SIGTERM), handler)
    self.assertFalse(os.path.exists(os.path.join(interrupted, "result.json")))
    self.assertEqual(tf.train.latest_checkpoint(checkpoints),
                     os.path.join(checkpoints, "ckpt-15"))

    # Rerun from step 15, killed after the checkpoint at step 20 (in epoch 0).
    lines = []

    def kill_at_step_20(line):
      lines.append(line)
      if line.strip().startswith("step 20/"):
        raise _Interrupt()

    with self.assertRaises(_Interrupt):
      self._train(interrupted, log=kill_at_step_20)
    self.assertIn("resuming", lines[0])
    self.assertIn("at step 15", lines[0])
    self.assertFalse(os.path.exists(os.path.join(interrupted, "result.json")))
    self.assertEqual(tf.train.latest_checkpoint(checkpoints),
                     os.path.join(checkpoints, "ckpt-20"))

    # Rerun from step 20 with a SIGTERM during the evaluation: the grid point is finished
    # (result.json) before Preempted, with exactly the uninterrupted run's result.
    evaluate = finetune.FinetuneTrainer.evaluate

    def sigterm_then_evaluate(trainer, *args):
      os.kill(os.getpid(), signal.SIGTERM)
      return evaluate(trainer, *args)

    lines = []
    with mock.patch.object(finetune.FinetuneTrainer, "evaluate", sigterm_then_evaluate):
      with self.assertRaisesRegex(trainer_lib.Preempted, "finished and its result saved"):
        self._train(interrupted, log=lines.append)
    self.assertIn("at step 20", lines[0])
    self.assertEqual([l.split()[1] for l in lines[1:]], ["30/30"])  # only step 30 is run
    resumed = io.read_json(os.path.join(interrupted, "result.json"))
    self.assertEqual(resumed["steps"], 30)
    self.assertAllClose(resumed["final_loss"], result["final_loss"], rtol=1e-6, atol=0)
    self.assertEqual(resumed["score"], result["score"])

  def test_run_chooses_on_validation_refits_and_skips_done_points(self):
    output_dir = self.create_tempdir().full_path
    overrides = {"learning_rates": [0.1], "weight_decays": [0.0, 1e-2], "steps": 6,
                 "batch_size": 32, "steps_per_loop": 3, "log_every_steps": 3,
                 "checkpoint_every_steps": 3, "eval_batch_size": 100}
    lines = []
    result = finetune.run(self.model_dir, "demo_size/small", output_dir,
                          data_dir=self.data_dir, overrides=overrides, log=lines.append)
    self.assertLen([l for l in lines if l.startswith("grid ")], 2)
    scores = [s["score"] for s in result["validation_scores"]]
    self.assertEqual([(s["learning_rate"], s["weight_decay"])
                      for s in result["validation_scores"]], [(0.1, 0.0), (0.1, 1e-2)])
    best = int(np.argmax(scores))
    self.assertEqual((result["learning_rate"], result["weight_decay"], result["validation"]),
                     (0.1, [0.0, 1e-2][best], scores[best]))
    final = io.read_json(os.path.join(output_dir, "final",
                                      finetune.grid_point_name(0.1, [0.0, 1e-2][best]),
                                      "result.json"))
    self.assertEqual((final["train_split"], final["eval_split"], final["score"]),
                     ("train_full", "test", result["test"]))
    self.assertEqual(final["steps_per_epoch"], 400 // 32)
    self.assertEqual((result["num_train"], result["num_validation"], result["num_test"]),
                     (360, 40, 200))
    self.assertEqual(io.read_json(os.path.join(output_dir, "result.json"))["test"],
                     result["test"])

    lines = []
    again = finetune.run(self.model_dir, "demo_size/small", output_dir,
                         data_dir=self.data_dir, overrides=overrides, log=lines.append)
    self.assertFalse([l for l in lines if l.strip().startswith("step ")])
    self.assertLen([l for l in lines if l.endswith("(done before)")], 2)
    again.pop("timings"), result.pop("timings")
    self.assertEqual(again, result)

    with self.assertRaisesRegex(ValueError, "holds fine-tuning results with other settings"):
      finetune.run(self.model_dir, "demo_size/small", output_dir, data_dir=self.data_dir,
                   overrides=dict(overrides, steps=7), log=lines.append)


def setUpModule():
  try:
    distribute.split_cpu(2)
  except RuntimeError:  # TensorFlow already started (another test module of this process).
    pass


if __name__ == "__main__":
  tf.test.main()
