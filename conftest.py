"""pytest runs the absltest / tf.test modules; absl flags must count as parsed for them."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top

flags.FLAGS.mark_as_parsed()
