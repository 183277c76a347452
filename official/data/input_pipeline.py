"""tf.data input pipelines: load -> shard -> shuffle -> decode + preprocess -> batch.

The stream is a pure function of (dataset, split, seed, epoch): epoch e is the split shuffled
with a seed derived from (seed, e, input pipeline id), and its i-th element is augmented with
the stateless seed fold_in((seed, e, pipeline id), i). A resumed run therefore reproduces the
stream exactly: `build(..., epoch=e, skip_batches=k)` equals `build(..., epoch=e).skip(k)`
without decoding or augmenting the skipped examples (with repeat=True the skip may cross epoch
boundaries). Images stay encoded until after the shuffle, so the shuffle buffer holds bytes.

The shuffle goes through tf.data.Dataset.shuffle, whose order also depends on TensorFlow's
global seed (tf.random.set_seed / keras.utils.set_random_seed): fix it too for
reproducibility across processes.
"""

from typing import Optional, Sequence

import tensorflow as tf

from official.data import datasets
from official.data import preprocessing

SHUFFLE_BUFFER = 16_384
_MAX_EPOCHS = 2 ** 62


def _epoch_seed(seed: int, epoch, pipeline_id: int) -> tf.Tensor:
  """Stateless seed [2] of one epoch of one input pipeline."""
  base = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
  return tf.random.experimental.stateless_fold_in(base, pipeline_id)


def _shuffle_seed(epoch_seed: tf.Tensor) -> tf.Tensor:
  return tf.random.stateless_uniform([], seed=epoch_seed, minval=None, maxval=None,
                                     dtype=tf.int64)


def per_replica_batch_size(batch_size: int,
                           input_context: Optional[tf.distribute.InputContext]) -> int:
  if input_context is None:
    return batch_size
  return input_context.get_per_replica_batch_size(batch_size)


def build(info: datasets.DatasetInfo, split_name: str, *, training: bool, batch_size: int,
          image_size: Optional[int] = None, seed: int = 0,
          input_context: Optional[tf.distribute.InputContext] = None,
          preprocess: Optional[str] = None, drop_remainder: Optional[bool] = None,
          repeat: bool = False, epoch: int = 0, skip_batches: int = 0,
          data_dir: Optional[str] = None, shuffle_buffer: int = SHUFFLE_BUFFER,
          area_range: Sequence[float] = preprocessing.AREA_RANGE) -> tf.data.Dataset:
  """Batches of (float32 images [B, S, S, 3] normalised, int64 labels [B]).

  Args:
    info: from datasets.get.
    split_name: one of datasets.SPLIT_NAMES.
    training: shuffle (per epoch, seeded) when True; keep the stored order otherwise.
    batch_size: global batch size; with input_context each pipeline yields batches of
      input_context.get_per_replica_batch_size(batch_size).
    image_size: S, default info.image_size.
    seed: seed of the shuffle and of the augmentation.
    input_context: from tf.distribute (distribute_datasets_from_function); the split is
      sharded by example over input_context.num_input_pipelines.
    preprocess: one of preprocessing.PREPROCESS_MODES; default "train" when training else
      "eval".
    drop_remainder: default `training`.
    repeat: an endless stream of epochs epoch, epoch + 1, ... (batches may straddle epochs).
    epoch: first epoch of the stream (re-seeds shuffle and augmentation).
    skip_batches: batches of the stream to skip (resumption), cheaply.
    data_dir: TFDS data directory.
    shuffle_buffer: shuffle buffer size (examples).
    area_range: area fraction of the training crop (released 8%-100%).
  """
  if preprocess is None:
    preprocess = "train" if training else "eval"
  if preprocess not in preprocessing.PREPROCESS_MODES:
    raise ValueError(f"preprocess: {preprocess!r}; valid are "
                     f"{', '.join(preprocessing.PREPROCESS_MODES)}")
  if int(batch_size) != batch_size or batch_size < 1:
    raise ValueError(f"batch_size: {batch_size!r}; valid is a positive integer")
  for name, value in (("epoch", epoch), ("skip_batches", skip_batches)):
    if int(value) != value or value < 0:
      raise ValueError(f"{name}: {value!r}; valid is a non-negative integer")
  if drop_remainder is None:
    drop_remainder = training
  image_size = int(image_size or info.image_size)
  local_batch = per_replica_batch_size(int(batch_size), input_context)

  ds = datasets.load_encoded(info, split_name, data_dir=data_dir)
  pipeline_id = 0
  if input_context is not None and input_context.num_input_pipelines > 1:
    pipeline_id = input_context.input_pipeline_id
    ds = ds.shard(input_context.num_input_pipelines, pipeline_id)

  local_examples = int(ds.cardinality().numpy())  # Negative when unknown (class subsets).
  offset = int(skip_batches) * local_batch
  first_epoch = int(epoch)
  if repeat and local_examples > 0:
    first_epoch += offset // local_examples
    offset %= local_examples
  last_epoch = _MAX_EPOCHS if repeat else int(epoch) + 1

  # The element functions below hold no Python control flow on tensors; skipping autograph's
  # source conversion saves seconds per pipeline built.
  @tf.autograph.experimental.do_not_convert
  def one_epoch(e):
    epoch_ds = ds
    if training:
      epoch_ds = epoch_ds.shuffle(shuffle_buffer, seed=_shuffle_seed(
          _epoch_seed(seed, e, pipeline_id)), reshuffle_each_iteration=False)
    return epoch_ds.enumerate().map(lambda i, example: (e, i, example[0], example[1]))

  stream = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(one_epoch)
  if offset:
    stream = stream.skip(offset)

  @tf.autograph.experimental.do_not_convert
  def process(e, i, image, label):
    image = datasets.decode(image)
    element_seed = tf.random.experimental.stateless_fold_in(
        _epoch_seed(seed, e, pipeline_id), i)
    image = preprocessing.preprocess(image, image_size, preprocess, seed=element_seed,
                                     area_range=area_range)
    return image, label

  stream = stream.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(local_batch, drop_remainder=drop_remainder,
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not repeat and local_examples >= 0:
    remaining = max(0, local_examples - offset)
    num_batches = (remaining // local_batch if drop_remainder
                   else -(-remaining // local_batch))
    stream = stream.apply(tf.data.experimental.assert_cardinality(num_batches))
  options = tf.data.Options()
  options.deterministic = True
  if input_context is not None:
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.OFF)
  stream = stream.with_options(options)
  return stream.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(info: datasets.DatasetInfo, split_name: str, batch_size: int, *,
                    drop_remainder: bool = True, data_dir: Optional[str] = None) -> int:
  """Global batches in one epoch of a split (floor with drop_remainder, else ceil)."""
  n = datasets.num_examples(info, split_name, data_dir=data_dir)
  return n // batch_size if drop_remainder else -(-n // batch_size)
