"""Training streams: splits cut to their first N examples (`first_examples`), resumable
distributed epochs (`distributed_epoch`) and an ExperimentConfig's data (`PretrainingData`).
"""

import dataclasses
from typing import Any, Optional

import tensorflow as tf

from official.data import datasets
from official.data import input_pipeline


def first_examples(info, split_name: str, num: Optional[int], data_dir: Optional[str] = None):
  """`info` whose split `split_name` keeps only its first `num` stored examples (before any
  class filter), as absolute slices ("train[:90%]" -> "train[0:2048]") read alone."""
  if num is None:
    return info
  splits = datasets.split_infos(info, data_dir=data_dir)  # prepares a TFDS dataset
  parts, left = [], num
  for split, start, end in datasets.split_ranges(info.split(split_name), splits):
    take = min(left, end - start)
    if take > 0:
      parts.append(f"{split}[{start}:{start + take}]")
      left -= take
  return dataclasses.replace(info, **{f"{split_name}_split": "+".join(parts)})


def distributed_epoch(strategy: tf.distribute.Strategy, info, split: str, *, batch_size: int,
                      image_size: int, seed: int, epoch: int, skip_steps: int,
                      steps_per_epoch: int, preprocess: str, data_dir: Optional[str],
                      **build_args) -> tf.distribute.DistributedDataset:
  """Epoch `epoch` of `split` (input_pipeline's training stream) without its first
  `skip_steps` global batches, distributed: the same batches whatever the replicas."""

  def dataset_fn(context: tf.distribute.InputContext):
    # Each pipeline yields its slots of every global batch as per-replica batches, one for each
    # of the replicas it serves per step.
    replicas = context.num_replicas_in_sync // context.num_input_pipelines
    ds = input_pipeline.build(
        info, split, training=True, batch_size=batch_size, image_size=image_size, seed=seed,
        input_context=context, preprocess=preprocess, drop_remainder=True, repeat=False,
        epoch=epoch, skip_batches=skip_steps * replicas, data_dir=data_dir, **build_args)
    return ds.take((steps_per_epoch - skip_steps) * replicas)

  return strategy.distribute_datasets_from_function(dataset_fn)


@dataclasses.dataclass
class PretrainingData:
  """The training and evaluation streams of an ExperimentConfig; `info`'s splits are cut to
  `data.train_examples` / `data.eval_examples`; the remainder of an epoch is dropped."""
  config: Any
  info: Any
  num_train_examples: int
  steps_per_epoch: int

  @classmethod
  def create(cls, config) -> "PretrainingData":
    """The streams of `config` (an official.core.config.ExperimentConfig, resolved)."""
    data = config.data
    info = datasets.get(data.dataset, data_dir=data.data_dir, classes=data.classes)
    info = first_examples(info, data.train_split, data.train_examples, data.data_dir)
    info = first_examples(info, data.eval_split, data.eval_examples, data.data_dir)
    num = datasets.num_examples(info, data.train_split, data_dir=data.data_dir)
    steps = num // config.train.batch_size
    if steps < 1:
      raise ValueError(f"train.batch_size={config.train.batch_size} is larger than the "
                       f"{num} training examples of {data.dataset}:{data.train_split}")
    return cls(config, info, num, steps)

  def train_dataset(self, strategy: tf.distribute.Strategy, epoch: int, skip_steps: int = 0):
    """Epoch `epoch`, distributed, without its first `skip_steps` global batches."""
    data, train = self.config.data, self.config.train
    return distributed_epoch(
        strategy, self.info, data.train_split, batch_size=train.batch_size,
        image_size=self.config.model.image_size, seed=train.seed, epoch=epoch,
        skip_steps=skip_steps, steps_per_epoch=self.steps_per_epoch,
        preprocess=data.train_preprocess, data_dir=data.data_dir,
        area_range=data.crop_area_range)

  def eval_dataset(self, strategy: tf.distribute.Strategy):
    """The evaluation split in its stored order (the same examples at every evaluation)."""
    data = self.config.data
    # TPUs need static shapes: the last partial batch is dropped there.
    drop_remainder = isinstance(strategy, tf.distribute.TPUStrategy)

    def dataset_fn(context: tf.distribute.InputContext):
      return input_pipeline.build(
          self.info, data.eval_split, training=False,
          batch_size=self.config.train.eval_batch_size,
          image_size=self.config.model.image_size, seed=self.config.train.seed,
          input_context=context, preprocess=data.eval_preprocess,
          drop_remainder=drop_remainder, repeat=False, data_dir=data.data_dir)

    return strategy.distribute_datasets_from_function(dataset_fn)
