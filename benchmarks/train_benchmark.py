r"""Training throughput: this project's train step against Keras' ResNet-50 and model.fit.

Each side trains a ResNet-50 v1 with softmax cross-entropy and SGD + Nesterov momentum on one
synthetic float32 batch: "baseline" keras.applications.ResNet50 + model.fit, "recipe" the same
with Keras' weight decay and EMA, "project" official.training.trainer.Trainer (its network has
a few percent more multiply-adds: stride on the 3x3 convolution; its step adds weight decay
and EMA). The sides alternate in rounds; each side's throughput is its median round, per wall-
and per CPU-second. Exit status 1 when the median of the rounds' project / baseline ratios is
below --min_ratio, 2 for bad flags.

  python -m benchmarks.train_benchmark
  python -m benchmarks.train_benchmark --image_size=96 --batch_size=32 --steps=6
"""

import statistics
import time

from absl import flags
import keras
import numpy as np
import tensorflow as tf

from official.core import cli
from official.core import config as config_lib
from official.training import trainer as trainer_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 64, "Side of the square input images.")
flags.DEFINE_integer("batch_size", 16, "Images per step.")
flags.DEFINE_integer("num_classes", 100, "Classes of the head.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (tracing) before the rounds.")
flags.DEFINE_integer("steps", 4, "Timed steps per round.")
flags.DEFINE_integer("rounds", 6, "Rounds per side (alternating).")
flags.DEFINE_float("min_ratio", 0.95, "Required project / baseline throughput ratio.")


def synthetic_batch(image_size: int, batch_size: int, num_classes: int):
  rng = np.random.default_rng(0)
  images = rng.standard_normal((batch_size, image_size, image_size, 3), dtype=np.float32)
  labels = rng.integers(0, num_classes, size=batch_size)
  return tf.data.Dataset.from_tensors((images, labels)).repeat()


def keras_baseline(dataset, image_size: int, num_classes: int, recipe: bool):
  """(name, run(steps)) of keras.applications.ResNet50 + model.fit, with or without Keras'
  weight decay and EMA."""
  model = keras.applications.ResNet50(
      weights=None, input_shape=(image_size, image_size, 3), classes=num_classes,
      classifier_activation=None)
  extra = {"weight_decay": 8e-5, "use_ema": True, "ema_momentum": 0.99} if recipe else {}
  model.compile(
      optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True, **extra),
      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  name = ("keras ResNet50 + fit, SGD weight_decay + use_ema" if recipe
          else "keras ResNet50 + fit, plain SGD")
  return name, lambda steps: model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)


def project_trainer(dataset, image_size: int, num_classes: int, batch_size: int):
  """(name, run(steps)) of official.training.trainer.Trainer with the softmax objective."""
  config = config_lib.ExperimentConfig(
      model=config_lib.ModelConfig(depth=50, num_classes=num_classes, image_size=image_size),
      objective=config_lib.ObjectiveConfig("softmax"),
      train=config_lib.TrainConfig(batch_size=batch_size, epochs=2, warmup_epochs=0,
                                   learning_rate=0.01, ema_decay=0.99))
  trainer = trainer_lib.Trainer(config, tf.distribute.get_strategy(), steps_per_epoch=1000)
  iterator = iter(dataset)

  def run(steps: int) -> None:
    if not trainer.train_loop(iterator, steps)["finite"]:
      raise RuntimeError("the project's training loss is not finite")

  return "official.training Trainer (ResNet-50, softmax)", run


def main(argv):
  if len(argv) > 1:
    raise cli.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  for name in ("image_size", "batch_size", "num_classes", "steps", "rounds"):
    if getattr(FLAGS, name) < 1:
      raise ValueError(f"--{name}={getattr(FLAGS, name)} must be a positive integer")
  if FLAGS.image_size < 32:
    raise ValueError(f"--image_size={FLAGS.image_size}: ResNet-50 needs at least 32 pixels")
  keras.utils.set_random_seed(0)
  dataset = synthetic_batch(FLAGS.image_size, FLAGS.batch_size, FLAGS.num_classes)
  sides = {  # key -> (name, run(steps))
      "baseline": keras_baseline(dataset, FLAGS.image_size, FLAGS.num_classes, recipe=False),
      "recipe": keras_baseline(dataset, FLAGS.image_size, FLAGS.num_classes, recipe=True),
      "project": project_trainer(dataset, FLAGS.image_size, FLAGS.num_classes,
                                 FLAGS.batch_size)}
  for _, run in sides.values():
    run(FLAGS.warmup_steps)
  wall, cpu = {key: [] for key in sides}, {key: [] for key in sides}
  for _ in range(FLAGS.rounds):
    for key, (_, run) in sides.items():
      start_wall, start_cpu = time.perf_counter(), time.process_time()
      run(FLAGS.steps)
      images = FLAGS.steps * FLAGS.batch_size
      wall[key].append(images / (time.perf_counter() - start_wall))
      cpu[key].append(images / (time.process_time() - start_cpu))
  wall_median = {key: statistics.median(v) for key, v in wall.items()}
  cpu_median = {key: statistics.median(v) for key, v in cpu.items()}
  # Adjacent rounds see the same load from other processes: compare them pairwise.
  ratio = statistics.median(p / b for p, b in zip(wall["project"], wall["baseline"]))
  passed = ratio >= FLAGS.min_ratio

  print(f"ResNet-50 training throughput, {FLAGS.image_size}x{FLAGS.image_size} float32 "
        f"images, batch {FLAGS.batch_size}, {FLAGS.num_classes} classes, "
        f"{FLAGS.rounds} alternating rounds of {FLAGS.steps} steps after "
        f"{FLAGS.warmup_steps} warm-up steps")
  print(f"{'side':<50}{'images/s':>10}{'images/CPU-s':>14}   wall rounds")
  print("-" * 100)
  for key, (name, _) in sides.items():
    print(f"{name:<50}{wall_median[key]:>10.1f}{cpu_median[key]:>14.1f}   "
          f"{' '.join(f'{r:.1f}' for r in wall[key])}")
  print("-" * 100)
  for key in ("baseline", "recipe"):
    print(f"project / {sides[key][0]}: {wall_median['project'] / wall_median[key]:.3f} "
          f"(wall), {cpu_median['project'] / cpu_median[key]:.3f} (CPU time)")
  print(f"ratio project / baseline (images/s, median of the rounds' ratios): {ratio:.3f}   "
        f"required >= {FLAGS.min_ratio:g}   {'PASS' if passed else 'FAIL'}")
  if not passed:
    raise SystemExit(1)


if __name__ == "__main__":
  cli.run(main)
