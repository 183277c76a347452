"""Flags every binary of experiments/ shares, defined once: --data_dir, --strategy, --tpu.

  from experiments import common_flags
  info = datasets.get(spec, data_dir=common_flags.DATA_DIR.value)
  strategy = common_flags.strategy()

A binary that imports this module has the three flags (and lists them in --help with
`flags.adopt_module_key_flags(common_flags)`).
"""

from typing import Optional, Sequence

from absl import flags
import tensorflow as tf

from official.core import cli
from official.training import distribute

DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
STRATEGY = flags.DEFINE_string(
    "strategy", "default", f"tf.distribute strategy: {', '.join(distribute.STRATEGIES)}.")
TPU = flags.DEFINE_string("tpu", None, "TPU name or address for --strategy=tpu.")


def strategy() -> tf.distribute.Strategy:
  """The tf.distribute strategy that --strategy and --tpu ask for."""
  return distribute.get_strategy(STRATEGY.value, TPU.value)


def parse_floats(flag: str, values: Optional[Sequence[str]],
                 none: Optional[float] = None) -> Optional[tuple]:
  """Comma-separated numbers of a list flag ("none" -> `none` where given); None if unset."""
  if values is None:
    return None
  parsed = []
  for value in values:
    text = value.strip().lower()
    try:
      parsed.append(none if (text == "none" and none is not None) else float(text))
    except ValueError:
      raise cli.UsageError(f"--{flag}: {value!r} is not a number; expected comma-separated "
                           "numbers, e.g. 1e-4,1e-2,1") from None
  return tuple(parsed)
