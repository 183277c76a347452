"""Tests of the tf.data pipelines on the small demo size dataset (400 train / 200 test)."""

import shutil
import tempfile

import numpy as np
import tensorflow as tf

from official.data import datasets
from official.data import input_pipeline
from official.data import preprocessing

MEAN = np.array(preprocessing.MEAN_RGB, np.float32)
STD = np.array(preprocessing.STDDEV_RGB, np.float32)


def _batches(ds):
  images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
  return list(images), list(labels)


class InputPipelineTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.data_dir = tempfile.mkdtemp(prefix="input_pipeline_test_")
    cls.info = datasets.get("demo_size/small")
    raw = list(datasets.load(cls.info, "train_full", data_dir=cls.data_dir).as_numpy_iterator())
    cls.images = np.stack([image for image, _ in raw])
    cls.labels = np.array([label for _, label in raw])

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.data_dir, ignore_errors=True)
    super().tearDownClass()

  def build(self, split_name="train_full", **kwargs):
    kwargs.setdefault("training", True)
    kwargs.setdefault("batch_size", 64)
    kwargs.setdefault("seed", 1)
    return input_pipeline.build(self.info, split_name, data_dir=self.data_dir, **kwargs)

  def test_shapes_counts_and_cardinality(self):
    ds = self.build(image_size=24)
    self.assertEqual(ds.element_spec[0].shape.as_list(), [64, 24, 24, 3])
    images, labels = _batches(ds)
    self.assertLen(images, 400 // 64)
    self.assertEqual(int(ds.cardinality()), 400 // 64)
    self.assertTrue(all(l.dtype == np.int64 for l in labels))
    eval_ds = self.build("test", training=False, batch_size=64)
    self.assertEqual(int(eval_ds.cardinality()), 4)  # ceil(200 / 64)
    _, eval_labels = _batches(eval_ds)
    self.assertEqual(sum(len(l) for l in eval_labels), 200)

  def test_eval_stream_is_stored_order_and_numpy_normalisation(self):
    ds = self.build(training=False, batch_size=50, preprocess="transfer")
    images, labels = _batches(ds)
    self.assertAllEqual(np.concatenate(labels), self.labels)
    expected = (self.images.astype(np.float32) / 255.0 - MEAN) / STD
    self.assertAllClose(np.concatenate(images), expected, atol=1e-5)

  def test_training_epoch_is_a_seeded_permutation(self):
    _, first = _batches(self.build(preprocess="transfer", drop_remainder=False))
    _, again = _batches(self.build(preprocess="transfer", drop_remainder=False))
    _, epoch1 = _batches(self.build(preprocess="transfer", drop_remainder=False, epoch=1))
    _, seed2 = _batches(self.build(preprocess="transfer", drop_remainder=False, seed=2))
    first, again = np.concatenate(first), np.concatenate(again)
    epoch1, seed2 = np.concatenate(epoch1), np.concatenate(seed2)
    self.assertAllEqual(first, again)
    self.assertAllEqual(np.sort(first), np.sort(self.labels))
    self.assertNotAllEqual(first, self.labels)
    self.assertNotAllEqual(first, epoch1)
    self.assertNotAllEqual(first, seed2)
    self.assertAllEqual(np.sort(epoch1), np.sort(self.labels))

  def test_augmentation_deterministic_and_resumable(self):
    full, _ = _batches(self.build())
    again, _ = _batches(self.build())
    self.assertAllClose(np.stack(full), np.stack(again), atol=0)
    resumed, _ = _batches(self.build(skip_batches=4))
    self.assertLen(resumed, len(full) - 4)
    self.assertAllClose(np.stack(resumed), np.stack(full[4:]), atol=0)
    # Augmented images differ from the plain ones.
    plain, _ = _batches(self.build(preprocess="transfer"))
    self.assertGreater(np.abs(np.stack(plain) - np.stack(full)).mean(), 0.05)

  def test_repeat_stream_crosses_epochs_and_resumes(self):
    per_epoch = 400 // 80
    stream = self.build(repeat=True, batch_size=80, preprocess="transfer")
    labels = [y.numpy() for _, y in stream.take(3 * per_epoch)]
    epoch2 = [y.numpy() for _, y in self.build(batch_size=80, epoch=2,
                                                preprocess="transfer")]
    self.assertAllEqual(np.concatenate(labels[2 * per_epoch:]), np.concatenate(epoch2))
    resumed = self.build(repeat=True, batch_size=80, preprocess="transfer",
                         skip_batches=2 * per_epoch + 1)
    self.assertAllEqual(next(iter(resumed))[1], labels[2 * per_epoch + 1])

  def pipelines(self, num_pipelines, num_replicas, **kwargs):
    """The batches of each of `num_pipelines` input pipelines feeding `num_replicas`."""
    streams = []
    for pipeline_id in range(num_pipelines):
      context = tf.distribute.InputContext(num_input_pipelines=num_pipelines,
                                           input_pipeline_id=pipeline_id,
                                           num_replicas_in_sync=num_replicas)
      ds = self.build(input_context=context, **kwargs)
      self.assertEqual(int(ds.cardinality()), len(list(ds)))
      streams.append(_batches(ds))
    return streams

  def sliced(self, global_batches, num_pipelines, num_replicas, skip=0):
    """Per pipeline, its per-replica batches cut out of the single pipeline's global batches:
    replica r (pipeline r // (num_replicas / num_pipelines)) gets slots [r*b, (r+1)*b)."""
    b = len(global_batches[0]) // num_replicas
    per_pipeline = num_replicas // num_pipelines
    return [[batch[r * b:(r + 1) * b] for batch in global_batches
             for r in range(p * per_pipeline, (p + 1) * per_pipeline)
             if len(batch[r * b:(r + 1) * b])][skip:]
            for p in range(num_pipelines)]

  def test_pipelines_hold_their_slots_of_the_single_pipeline_batches(self):
    # 400 examples: 8 global batches of 48 and 16 dropped (training) or kept (evaluation).
    for training in (True, False):
      images, labels = _batches(self.build(training=training, batch_size=48))
      self.assertLen(labels, 8 if training else 9)
      for num_pipelines, num_replicas, skip in ((2, 2, 0), (4, 4, 0), (2, 4, 0), (2, 2, 3),
                                                (4, 4, 5), (2, 4, 5)):
        with self.subTest(training=training, pipelines=num_pipelines, replicas=num_replicas,
                          skip=skip):
          streams = self.pipelines(num_pipelines, num_replicas, training=training,
                                   batch_size=48, skip_batches=skip)
          for (got_images, got_labels), want_images, want_labels in zip(
              streams, self.sliced(images, num_pipelines, num_replicas, skip),
              self.sliced(labels, num_pipelines, num_replicas, skip)):
            self.assertEqual(len(got_labels), len(want_labels))
            for got, want in zip(got_labels, want_labels):
              self.assertAllEqual(got, want)
            for got, want in zip(got_images, want_images):
              self.assertAllClose(got, want, atol=0, rtol=0)

  def test_class_subset_pipelines_hold_their_slots(self):
    # 100 examples of 2 classes (their count unknown to tf.data): 6 global batches of 16.
    info = datasets.get("demo_size/small", classes="3,1")
    kwargs = dict(training=True, batch_size=16, seed=0, data_dir=self.data_dir,
                  preprocess="transfer")
    _, labels = _batches(input_pipeline.build(info, "test", **kwargs))
    self.assertLen(labels, 6)
    for p, want in enumerate(self.sliced(labels, 2, 4, skip=1)):
      ds = input_pipeline.build(info, "test", skip_batches=1,
                                input_context=tf.distribute.InputContext(2, p, 4), **kwargs)
      got = [y.numpy() for _, y in ds]
      self.assertEqual(int(ds.cardinality()), len(want))
      self.assertAllEqual(np.concatenate(got), np.concatenate(want))

  def test_evaluation_pipelines_hold_the_split_once_in_stored_order(self):
    # 200 test examples in global batches of 48: the last one holds 8 (pipeline 0's slots).
    streams = self.pipelines(4, 4, split_name="test", training=False, batch_size=48,
                             preprocess="transfer")
    self.assertEqual([len(labels) for _, labels in streams], [5, 4, 4, 4])
    order = np.concatenate([np.concatenate([streams[p][1][g] for p in range(4)])
                            for g in range(4)] + [streams[0][1][4]])
    stored = np.array([label for _, label in datasets.load(
        self.info, "test", data_dir=self.data_dir).as_numpy_iterator()])
    self.assertAllEqual(order, stored)

  def test_repeat_pipelines_resume_across_epochs(self):
    # Global batches of 96 straddle the 400-example epochs; resume in global batch 5 (examples
    # 480..575: epoch 1 from its 80th example on).
    single = [y.numpy() for _, y in self.build(repeat=True, batch_size=96,
                                               preprocess="transfer").take(10)]
    streams = [[y.numpy() for _, y in ds.take(4)] for ds in (
        self.build(repeat=True, batch_size=96, preprocess="transfer", skip_batches=11,
                   input_context=tf.distribute.InputContext(2, p, 4)) for p in range(2))]
    for p in range(2):
      # Pipeline batches 11.. are replica 2p + 1 of global batch 5, then 2p, 2p + 1 of 6, ...
      want = self.sliced(single, 2, 4, skip=11)[p][:4]
      self.assertAllEqual(np.concatenate(streams[p]), np.concatenate(want))

  def test_uneven_replicas_are_refused(self):
    with self.assertRaisesRegex(ValueError, "batch_size"):
      self.build(input_context=tf.distribute.InputContext(2, 0, 3), batch_size=48)

  def test_class_subset_labels(self):
    info = datasets.get("demo_size/small", classes="3,1")
    ds = input_pipeline.build(info, "test", training=True, batch_size=16, seed=0,
                              data_dir=self.data_dir, drop_remainder=False)
    labels = np.concatenate([y.numpy() for _, y in ds])
    self.assertLen(labels, 100)  # 50 test images per size class
    self.assertEqual(set(labels.tolist()), {0, 1})
    self.assertEqual(input_pipeline.steps_per_epoch(info, "test", 16, data_dir=self.data_dir),
                     6)

  def test_steps_per_epoch(self):
    self.assertEqual(input_pipeline.steps_per_epoch(self.info, "train", 64,
                                                    data_dir=self.data_dir), 5)  # 360 // 64
    self.assertEqual(input_pipeline.steps_per_epoch(self.info, "train", 64,
                                                    drop_remainder=False,
                                                    data_dir=self.data_dir), 6)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "preprocess"):
      self.build(preprocess="center")
    with self.assertRaisesRegex(ValueError, "batch_size"):
      self.build(batch_size=0)
    with self.assertRaisesRegex(ValueError, "skip_batches"):
      self.build(skip_batches=-1)


if __name__ == "__main__":
  tf.test.main()
