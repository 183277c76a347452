"""tf.data input pipelines: load -> shuffle -> select slots -> decode + preprocess -> batch.

The stream of global batches is a pure function of (dataset, split, seed, epoch), whatever the
number of input pipelines, workers and replicas: epoch e is the whole split shuffled with a
seed derived from (seed, e), its i-th example is augmented with the stateless seed
fold_in(seed(seed, e), i), and global batch g holds examples g*B .. g*B + B - 1 of the stream.
Input pipeline p of P keeps the slots [p*B/P, (p+1)*B/P) of every global batch, in per-replica
batches; tf.distribute hands them to its local replicas in order, so the replicas together see
exactly one device's global batches. Evaluation pipelines split the stored order the same way.

`build(..., epoch=e, skip_batches=k)` equals `build(..., epoch=e).skip(k)` without decoding the
skipped examples, for resumption. Images are decoded after the shuffle and the slot selection
(the shuffle buffer holds bytes), so every pipeline reads the whole split each epoch. tf.data's
shuffle order also depends on TensorFlow's global seed: fix it too across processes.
"""

from typing import Optional, Sequence

import tensorflow as tf

from official.data import datasets
from official.data import preprocessing

SHUFFLE_BUFFER = 16_384
_MAX_EPOCHS = 2 ** 62


def _epoch_seed(seed: int, epoch) -> tf.Tensor:
  """Stateless seed [2] of one epoch, the same in every input pipeline."""
  base = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
  # The fold_in with 0 is part of the seed derivation: without it every run's data changes.
  return tf.random.experimental.stateless_fold_in(base, 0)


def build(info: datasets.DatasetInfo, split_name: str, *, training: bool, batch_size: int,
          image_size: Optional[int] = None, seed: int = 0,
          input_context: Optional[tf.distribute.InputContext] = None,
          preprocess: Optional[str] = None, drop_remainder: Optional[bool] = None,
          repeat: bool = False, epoch: int = 0, skip_batches: int = 0,
          data_dir: Optional[str] = None, shuffle_buffer: int = SHUFFLE_BUFFER,
          area_range: Sequence[float] = preprocessing.AREA_RANGE) -> tf.data.Dataset:
  """Batches of (float32 images [B, S, S, 3] normalised, int64 labels [B]).

  `training` shuffles per epoch; `batch_size` is the global B; `preprocess` defaults to "train"
  if training else "eval", `drop_remainder` (of the last global batch) to `training`; `repeat`
  is an endless stream of epochs from `epoch` (batches may straddle epochs); `skip_batches` of
  this pipeline's stream are skipped cheaply.
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
  batch_size = int(batch_size)
  local_batch = (batch_size if input_context is None
                 else input_context.get_per_replica_batch_size(batch_size))

  ds = datasets.load_encoded(info, split_name, data_dir=data_dir)
  num_pipelines, pipeline_id = 1, 0
  if input_context is not None:
    num_pipelines = input_context.num_input_pipelines
    pipeline_id = input_context.input_pipeline_id
  # This pipeline's slots [first_slot, first_slot + slots) of every global batch.
  slots = batch_size // num_pipelines
  if slots * num_pipelines != batch_size or slots % local_batch:
    raise ValueError(f"batch_size: {batch_size} over {num_pipelines} input pipelines of "
                     f"per-replica batches of {local_batch}; valid is a multiple of "
                     "num_replicas_in_sync, the replicas spread evenly over the pipelines")
  first_slot = pipeline_id * slots

  num_examples = int(ds.cardinality().numpy())  # Negative when unknown (class subsets).
  # Whole global batches only: a per-replica batch as large as the global one drops the
  # partial one itself; smaller ones need the split's size.
  whole_batches = drop_remainder and local_batch < batch_size
  if whole_batches and num_examples < 0:
    num_examples = datasets.num_examples(info, split_name, data_dir=data_dir)
  # The skipped batches of this pipeline end in global batch `skipped // slots`, `within`
  # of this pipeline's examples into it: skip whole global batches before the slots are
  # selected, the rest after.
  skipped = int(skip_batches) * local_batch
  offset = skipped // slots * batch_size
  within = skipped % slots
  first_epoch = int(epoch)
  if repeat and num_examples > 0:
    first_epoch += offset // num_examples
    offset %= num_examples
  last_epoch = _MAX_EPOCHS if repeat else int(epoch) + 1

  # No Python control flow on tensors below: autograph's conversion is skipped (faster).
  @tf.autograph.experimental.do_not_convert
  def one_epoch(e):
    epoch_ds = ds
    if training:
      shuffle_seed = tf.random.stateless_uniform(
          [], seed=_epoch_seed(seed, e), minval=None, maxval=None, dtype=tf.int64)
      epoch_ds = epoch_ds.shuffle(shuffle_buffer, seed=shuffle_seed,
                                  reshuffle_each_iteration=False)
    return epoch_ds.enumerate().map(lambda i, example: (e, i, example[0], example[1]))

  stream = tf.data.Dataset.range(first_epoch, last_epoch).flat_map(one_epoch)
  if offset:
    stream = stream.skip(offset)
  remaining = max(0, num_examples - offset)  # global examples left (without repeat)
  if whole_batches and not repeat:
    remaining -= remaining % batch_size
    stream = stream.take(remaining)
  if num_pipelines > 1:
    # Position in the stream after the skip (a whole number of global batches) -> slot.
    @tf.autograph.experimental.do_not_convert
    def in_slots(position, _):
      slot = position % batch_size
      return (slot >= first_slot) & (slot < first_slot + slots)

    stream = stream.enumerate().filter(in_slots).map(lambda _, element: element)
  if within:
    stream = stream.skip(within)

  @tf.autograph.experimental.do_not_convert
  def process(e, i, image, label):
    image = datasets.decode(image)
    element_seed = tf.random.experimental.stateless_fold_in(_epoch_seed(seed, e), i)
    image = preprocessing.preprocess(image, image_size, preprocess, seed=element_seed,
                                     area_range=area_range)
    return image, label

  stream = stream.map(process, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  stream = stream.batch(local_batch, drop_remainder=drop_remainder,
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not repeat and num_examples >= 0:
    kept = (remaining // batch_size * slots
            + min(max(remaining % batch_size - first_slot, 0), slots))
    kept = max(0, kept - within)
    num_batches = kept // local_batch if drop_remainder else -(-kept // local_batch)
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
