"""pytest runs the absltest / tf.test modules of the project in one process.

absl flags must count as parsed, and the CPU is split into two logical devices before
TensorFlow starts, as tests of tf.distribute strategies need (Bazel runs every test file in
its own process, where those tests configure the devices themselves).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

flags.FLAGS.mark_as_parsed()


def _split_cpu_in_two():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass  # TensorFlow already initialised its devices.


_split_cpu_in_two()
