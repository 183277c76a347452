"""The middle-scale study (`reproduce --experiment=imagenet32`) end to end on mocked TFDS data:
imagenet_resized/32x32 pretraining, representations, linear and kNN transfer to CIFAR-10 and
CIFAR-100, CKA and the report, shrunk to a few steps through overrides only."""

import os
from unittest import mock

from absl.testing import absltest
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from official.core import config
from official.core import io
from official.data import datasets
from official.study import driver
from official.study import store as store_lib

EXAMPLES = 96  # per stored split
LABELS = 6  # classes present in the mocked data (of the dataset's 1,000, 10 or 100)
# The stored splits of each mocked TFDS dataset.
STORED_SPLITS = {"imagenet_resized/32x32": ("train", "validation"),
                 "imagenet_resized/64x64": ("train", "validation"),
                 "cifar10": ("train", "test"), "cifar100": ("train", "test")}
# The study shrunk through overrides; class separation reads train_full, because ImageNet's
# tuning split train[:-50046] is empty in a mocked store of EXAMPLES images.
SHRINK = {
    "objectives": ("softmax", "cosine_softmax"), "seeds": (0, 1),
    "temperature_sweep": (0.02,), "temperature_seeds": (0,),
    "pretrain_overrides": {
        "model.width_multiplier": 0.125, "train.epochs": 1, "train.warmup_epochs": 0.5,
        "train.batch_size": 32, "train.mixed_precision": False, "train.eval_every_epochs": 1,
        "train.eval_batch_size": 48, "train.steps_per_loop": 3, "train.log_every_steps": 3,
        "train.class_separation_examples": 48},
    "class_separation_split": "train_full", "class_separation_examples": 64,
    "analysis_examples": 64, "relearn_test_per_class": 2, "cka_examples": 64,
    "cka_batch_size": 32, "cka_passes": 2, "feature_batch_size": 48, "knn_k_max": 5,
    "linear_max_iterations": 20,
}


def mocked_split(builder, split, *args, **kwargs):
  """EXAMPLES images of the builder's shape, labels 0..LABELS-1 in turn, for any split."""
  del args, kwargs
  shape = builder.info.features["image"].shape
  seed = sum(map(ord, builder.name + str(split)))
  images = np.random.default_rng(seed).integers(0, 255, (EXAMPLES, *shape), dtype=np.uint8)
  labels = np.arange(EXAMPLES, dtype=np.int64) % LABELS
  return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})


def mocked_split_infos(builder):
  """Recorded sizes of the mocked stores (mock_data records none)."""
  name = builder.info.full_name.split("/")
  name = "/".join(name[:2]) if name[0] == "imagenet_resized" else name[0]
  return {split: tfds.core.SplitInfo(name=split, shard_lengths=[EXAMPLES], num_bytes=0)
          for split in STORED_SPLITS[name]}


class MiddleScalePresetTest(absltest.TestCase):

  def test_pretraining_presets(self):
    c = config.get_experiment("imagenet32_resnet18")
    self.assertEqual((c.model.depth, c.model.small_input_stem, c.model.small_input_stem_stride,
                      c.model.image_size), (18, True, 1, 32))
    self.assertEqual((c.train.batch_size, c.train.epochs, c.train.warmup_epochs),
                     (1024, 30, 2))
    self.assertAlmostEqual(c.train.peak_learning_rate, 0.4)  # 0.1 * 1024 / 256
    self.assertEqual((c.train.momentum, c.train.nesterov, c.train.weight_decay,
                      c.train.ema_decay, c.train.mixed_precision), (0.9, True, 8e-5, 0.9999, True))
    self.assertEqual((c.data.train_split, c.data.eval_split), ("train_full", "test"))
    holdout = config.get_experiment("imagenet32_resnet18_holdout")
    self.assertEqual((holdout.data.train_split, holdout.data.eval_split), ("train", "validation"))
    self.assertEqual(config.differences(holdout, c),
                     [("data.eval_split", "validation", "test"),
                      ("data.train_split", "train", "train_full")])
    wide = config.get_experiment("imagenet64_resnet18")
    self.assertEqual((wide.model.image_size, wide.model.small_input_stem_stride,
                      wide.data.dataset), (64, 2, "imagenet64"))
    self.assertEqual(config.get_experiment("imagenet32_resnet50").model.depth, 50)

  def test_registry_splits(self):
    info = datasets.get("imagenet_resized/32x32")
    self.assertEqual((info.name, info.tfds_name, info.num_classes, info.image_size),
                     ("imagenet32", "imagenet_resized/32x32", 1000, 32))
    self.assertEqual([info.split(s) for s in datasets.SPLIT_NAMES],
                     ["train[:-50046]", "train[-50046:]", "validation", "train"])
    self.assertEqual(datasets.get("imagenet_resized/64x64").image_size, 64)
    imagenette = datasets.get("imagenette")
    self.assertEqual((imagenette.num_classes, imagenette.split("test")), (10, "validation"))

  def test_study_preset(self):
    study = config.get_study("imagenet32")
    study.validate()
    runs = study.runs()
    self.assertLen(runs, 9 * 3 + 8)  # the sweep's tau = 0.05 is a run of its own
    self.assertEqual(sorted({r.objective for r in runs}), sorted(study.objectives))
    self.assertEqual(study.transfer_datasets, ("cifar10", "cifar100"))
    grid = config.get_preset("finetune", study.finetune_experiment).grid()
    self.assertLen(grid, 9)


class ImageNet64PipelineTest(absltest.TestCase):

  def test_training_batches_of_the_64px_preset(self):
    # imagenet64_resnet18 reads imagenet_resized/64x64 through the same pipeline: 64x64 crops,
    # normalised, labels of the 1,000 classes; the holdout leaves train_full whole.
    from official.data import input_pipeline  # pylint: disable=g-import-not-at-top
    preset = config.get_experiment("imagenet64_resnet18")
    with tfds.testing.mock_data(as_dataset_fn=mocked_split), \
        mock.patch.object(datasets, "_split_infos", mocked_split_infos):
      info = datasets.get(preset.data.dataset)
      self.assertEqual((info.num_classes, info.image_size), (1000, 64))
      self.assertEqual(datasets.num_examples(info, "train_full"), EXAMPLES)
      images, labels = next(iter(input_pipeline.build(
          info, preset.data.train_split, training=True, batch_size=16,
          image_size=preset.model.image_size, area_range=preset.data.crop_area_range)))
    self.assertEqual(images.shape, (16, 64, 64, 3))
    self.assertEqual(images.dtype, tf.float32)
    # Normalised with the ImageNet mean and std: pixels in [0, 1] map into this range.
    self.assertLessEqual(float(tf.reduce_max(images)), (1 - 0.406) / 0.225 + 1e-5)
    self.assertGreaterEqual(float(tf.reduce_min(images)), -0.485 / 0.229 - 1e-5)
    self.assertTrue(np.all((labels.numpy() >= 0) & (labels.numpy() < LABELS)))


class MiddleScaleStudyTest(absltest.TestCase):

  def test_preset_study_end_to_end(self):
    workdir = self.create_tempdir().full_path
    study = config.override(config.get_study("imagenet32"),
                            {**SHRINK, "data_dir": os.path.join(workdir, "tfds")})
    self.assertEqual(study.pretrain_experiment, "imagenet32_resnet18")
    self.assertEqual(study.transfer_datasets, ("cifar10", "cifar100"))
    with tfds.testing.mock_data(as_dataset_fn=mocked_split), \
        mock.patch.object(datasets, "_split_infos", mocked_split_infos), \
        mock.patch.object(driver, "prepare_data"):  # the mocked data needs no preparation
      report = driver.run(study, os.path.join(workdir, "study"), log=lambda line: None)
    root = os.path.join(workdir, "study")
    store = store_lib.ResultStore(root)
    keys = set(store.keys())
    runs = [r.run_id for r in study.runs()]
    self.assertLen(runs, 5)
    for run_id in runs:
      self.assertIn(f"pretrain/{run_id}", keys)
      self.assertIn(f"representations/{run_id}", keys)
      for dataset in ("cifar10", "cifar100"):
        record = io.read_json(store.path(f"transfer/{run_id}/{dataset}"))["result"]
        for method in ("linear", "knn"):
          self.assertBetween(record[method]["test"], 0.0, 1.0)
        self.assertBetween(record["knn"]["k"], 1, 5)
    self.assertIn("cka", keys)
    # The preset's network and data trained, shrunk only in width and length.
    trained = config.read_run_config(os.path.join(root, "runs", "softmax", "seed0"))
    self.assertEqual((trained.model.depth, trained.model.small_input_stem,
                      trained.model.small_input_stem_stride, trained.model.image_size,
                      trained.model.num_classes, trained.data.dataset),
                     (18, True, 1, 32, 1000, "imagenet32"))
    self.assertEqual(trained.train.epochs, 1)
    for run_id in runs:
      pretrain = io.read_json(store.path(f"pretrain/{run_id}"))["result"]
      for name in ("top1", "top5"):
        self.assertBetween(pretrain[name], 0.0, 1.0)
      representations = io.read_json(store.path(f"representations/{run_id}"))["result"]
      self.assertEqual(set(representations["class_separation"]),
                       set(representations["endpoints"]))
      for endpoint in representations["endpoints"]:
        # R^2 (eq. 11) is defined (the mocked data has LABELS classes) and at most 1.
        self.assertTrue(np.isfinite(representations["class_separation"][endpoint]))
        self.assertLessEqual(representations["class_separation"][endpoint], 1.0)
        self.assertBetween(representations["fraction_nonzero"][endpoint], 0.0, 1.0)
    cka = io.read_json(store.path("cka"))["result"]
    self.assertEqual(cka["objectives"], ["softmax", "cosine_softmax"])
    self.assertEqual((cka["examples"], cka["passes"]), (64, 2))
    values = list(_numbers(cka["cka"]))
    self.assertNotEmpty(values)
    for value in values:
      # Minibatch CKA (unbiased HSIC) may dip below 0 for unrelated features, never past 1.
      self.assertBetween(value, -1.0, 1 + 1e-6)
    text = io.read_text(report)
    self.assertIn("## Table 1 (Linear transfer)", text)
    for dataset in ("cifar10", "cifar100"):
      self.assertIn(dataset, text)


def _numbers(value):
  """Every number in a nested record."""
  if isinstance(value, dict):
    for item in value.values():
      yield from _numbers(item)
  elif isinstance(value, list):
    for item in value:
      yield from _numbers(item)
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    yield float(value)

if __name__ == "__main__":
  absltest.main()
