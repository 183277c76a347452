r"""What a pretraining run and a whole study cost, at the demo, middle and paper scales.

A network's throughput is the published ResNet-50 training throughput (`PUBLISHED`) scaled by
the ratio of counted multiply-adds (README.md, "Three scales"; batch norm, ReLU, pooling and
additions, under 1%, are left out). Runs are independent, so 8 GPUs train 8 at once; the
paper's runs use the published 8-GPU figure (data-parallel). The middle preset's network is
also timed on this CPU.

  python -m benchmarks.study_cost                      # the table, A100, CPU measurement
  python -m benchmarks.study_cost --gpu=v100 --measure_steps=0
"""

import math
import os
import time

from absl import flags
import keras
import numpy as np
import tensorflow as tf

from official import losses
from official.core import cli
from official.core import config as config_lib
from official.modeling import resnet

FLAGS = flags.FLAGS
flags.DEFINE_enum("gpu", "a100", ["a100", "v100"], "Which published throughput to scale.")
flags.DEFINE_string("measure_preset", "imagenet32_resnet18",
                    "Pretraining preset whose network is timed on this CPU.")
flags.DEFINE_integer("measure_batch_size", 64, "Images per timed CPU step.")
flags.DEFINE_integer("measure_steps", 5, "Timed CPU training steps (0: skip the measurement).")

# Published ResNet-50 v1.5 training throughput (images/s), NVIDIA DeepLearningExamples,
# TensorFlow/Classification/ConvNets/resnet50v1.5/README.md (TF 20.06, mixed precision + XLA,
# batch 256 per GPU).
PUBLISHED = {
    "a100": {"name": "A100 40GB", "one": 2375.0, "eight": 17400.0},
    "v100": {"name": "V100 16GB", "one": 1270.0, "eight": 9510.0},
}
IMAGENET_TRAIN = 1_281_167  # images of TFDS imagenet2012 / imagenet_resized "train"
IMAGENET_VALIDATION = 50_000
EVAL_COST = 1 / 3  # an evaluation image costs a third of a training image (forward only)


def multiply_adds(model: keras.Model) -> int:
  """Multiply-adds of one image through a functional `model`: per convolution output
  positions x prod(kernel shape), per other 2-D kernel (dense) its size; nested models too."""
  total = 0
  for layer in model.layers:
    if isinstance(layer, keras.Model):
      total += multiply_adds(layer)
      continue
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
      _, height, width, _ = layer.output.shape
      total += int(height) * int(width) * int(np.prod(layer.kernel.shape))
    else:
      total += sum(int(np.prod(w.shape)) for w in layer.weights
                   if w.path.endswith("kernel") and len(w.shape) == 2)
  return total


def network_multiply_adds(experiment: config_lib.ExperimentConfig, num_classes: int) -> int:
  """`multiply_adds` of the preset's network (softmax head) at its input size."""
  size = experiment.model.image_size
  model = resnet.build_model(experiment.model, num_classes, losses.get_objective("softmax"),
                             input_shape=(size, size, 3))
  count = multiply_adds(model)
  keras.backend.clear_session()
  return count


def train_images(experiment: config_lib.ExperimentConfig, examples: int) -> float:
  """Images a run processes, in training-image equivalents: epochs x examples, plus its
  evaluations (every `eval_every_epochs` and after the last) of the 50,000-image test set."""
  train = experiment.train
  evaluations = math.ceil(train.epochs / train.eval_every_epochs)
  return train.epochs * examples + evaluations * IMAGENET_VALIDATION * EVAL_COST


def finetune_images(finetune: config_lib.FinetuneConfig) -> float:
  """Images of one fine-tuning of one network on one dataset: every grid point and the
  refit of the best, `steps` x `batch_size` each (their evaluations are small)."""
  return (len(finetune.grid()) + 1) * finetune.steps * finetune.batch_size


def measure_cpu(preset: str, batch_size: int, steps: int) -> float:
  """Training images/s of `preset`'s network on this machine's CPU (float32, softmax, a
  synthetic batch, official.training.Trainer; after two untimed steps)."""
  from official.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  experiment = config_lib.get_experiment(preset)
  experiment = config_lib.override(experiment, {
      "model.num_classes": 1000, "train.batch_size": batch_size,
      "train.mixed_precision": False, "train.steps_per_loop": 1})
  size = experiment.model.image_size
  rng = np.random.default_rng(0)
  images = rng.standard_normal((batch_size, size, size, 3), dtype=np.float32)
  labels = rng.integers(0, 1000, size=batch_size)
  iterator = iter(tf.data.Dataset.from_tensors((images, labels)).repeat())
  trainer = trainer_lib.Trainer(experiment, tf.distribute.get_strategy(),
                                steps_per_epoch=1000)
  trainer.train_loop(iterator, 2)
  started = time.perf_counter()
  stats = trainer.train_loop(iterator, steps)
  elapsed = time.perf_counter() - started
  if not stats["finite"]:
    raise RuntimeError("the training loss is not finite")
  return steps * batch_size / elapsed


def cost_table(gpu: str = "a100") -> list[dict]:
  """One row per scale: multiply-adds, scaled throughput, hours per run and per study."""
  published = PUBLISHED[gpu]
  reference = network_multiply_adds(config_lib.get_experiment("imagenet_resnet50"), 1000)
  middle = config_lib.get_study("imagenet32")
  paper = config_lib.get_study("paper")
  finetune = config_lib.get_preset("finetune", "imagenet32")
  rows = []
  for preset, study in (("imagenet32_resnet18", middle), ("imagenet64_resnet18", middle),
                        ("imagenet32_resnet50", middle), ("imagenet_resnet50", paper)):
    experiment = config_lib.get_experiment(preset)
    count = network_multiply_adds(experiment, 1000)
    ratio = count / reference
    one = published["one"] / ratio
    run_hours = train_images(experiment, IMAGENET_TRAIN) / one / 3600
    runs = len(study.runs())
    if study is paper:
      eight_hours = runs * (train_images(experiment, IMAGENET_TRAIN) / published["eight"] / 3600)
      finetune_hours = None
    else:
      eight_hours = math.ceil(runs / 8) * run_hours
      networks = len(study.objectives) * len(study.finetune_seeds)
      finetune_hours = (networks * len(study.finetune_datasets) * finetune_images(finetune)
                        / one / 3600)
    rows.append({"preset": preset, "multiply_adds": count, "ratio": ratio,
                 "images_per_second": one, "run_hours": run_hours, "runs": runs,
                 "study_hours_1": runs * run_hours, "study_hours_8": eight_hours,
                 "finetune_hours_1": finetune_hours})
  return rows


def format_table(rows: list[dict], gpu: str) -> str:
  name = PUBLISHED[gpu]["name"]
  lines = [f"Scaled from the PUBLISHED ResNet-50 training throughput on {name} "
           f"({PUBLISHED[gpu]['one']:,.0f} images/s on one, {PUBLISHED[gpu]['eight']:,.0f} on "
           "eight; NVIDIA DeepLearningExamples, TF, mixed precision + XLA) by the counted "
           "multiply-adds.",
           "| preset | G mult-adds/image | x ResNet-50@224 | images/s (1 GPU) | h/run | runs "
           "| study h, 1 GPU | study h, 8 GPUs | fine-tuning h, 1 GPU |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    finetune = "-" if r["finetune_hours_1"] is None else f"{r['finetune_hours_1']:.1f}"
    lines.append(f"| {r['preset']} | {r['multiply_adds'] / 1e9:.2f} | {r['ratio']:.3f} | "
                 f"{r['images_per_second']:,.0f} | {r['run_hours']:.2f} | {r['runs']} | "
                 f"{r['study_hours_1']:.1f} | {r['study_hours_8']:.1f} | {finetune} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.measure_steps < 0 or FLAGS.measure_batch_size < 1:
    raise ValueError("--measure_steps must be >= 0 and --measure_batch_size >= 1")
  print(format_table(cost_table(FLAGS.gpu), FLAGS.gpu))
  if FLAGS.measure_steps:
    rate = measure_cpu(FLAGS.measure_preset, FLAGS.measure_batch_size, FLAGS.measure_steps)
    experiment = config_lib.get_experiment(FLAGS.measure_preset)
    hours = train_images(experiment, IMAGENET_TRAIN) / rate / 3600
    print(f"MEASURED here: {FLAGS.measure_preset} trains at {rate:,.1f} images/s on this "
          f"CPU ({os.cpu_count()} cores, shared with other processes; batch "
          f"{FLAGS.measure_batch_size}, float32, {FLAGS.measure_steps} steps): one run "
          f"would take {hours:,.0f} h here.")


if __name__ == "__main__":
  cli.run(main)
