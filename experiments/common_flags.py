"""Flags every binary of experiments/ shares, defined once: --data_dir, --strategy, --tpu.

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


def parse_numbers(flag: str, values: Optional[Sequence[str]],
                  none: Optional[float] = None, kind: type = float) -> Optional[tuple]:
  """Comma-separated numbers (`kind`: float or int) of a list flag ("none" -> `none` where
  given); None if unset."""
  if values is None:
    return None
  parsed = []
  for value in values:
    text = value.strip().lower()
    try:
      parsed.append(none if (text == "none" and none is not None) else kind(text))
    except ValueError:
      noun, example = ("an integer", "0,1,2") if kind is int else ("a number", "1e-4,1e-2,1")
      raise cli.UsageError(f"--{flag}: {value!r} is not {noun}; expected comma-separated "
                           f"values, e.g. {example}") from None
  return tuple(parsed)
