"""Flags every binary of experiments/ shares, defined once: --data_dir, --strategy, --tpu.

  from experiments import common_flags
  info = datasets.get(spec, data_dir=common_flags.DATA_DIR.value)
  strategy = common_flags.strategy()

A binary that imports this module has the three flags (and lists them in --help with
`flags.adopt_module_key_flags(common_flags)`).
"""

from absl import flags
import tensorflow as tf

from official.training import distribute

DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
STRATEGY = flags.DEFINE_string(
    "strategy", "default", f"tf.distribute strategy: {', '.join(distribute.STRATEGIES)}.")
TPU = flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")


def strategy() -> tf.distribute.Strategy:
  """The tf.distribute strategy that --strategy and --tpu ask for."""
  return distribute.get_strategy(STRATEGY.value, TPU.value)
