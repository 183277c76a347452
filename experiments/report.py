r"""Writes a study's report from its result files alone (no recomputation).

  python -m experiments.report --workdir=workdir/demo
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

from absl import flags

from official.core import cli

_WORKDIR = flags.DEFINE_string("workdir", "workdir/demo", "The study's workdir.")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  from official.study import report  # pylint: disable=g-import-not-at-top
  print(report.write(_WORKDIR.value))


if __name__ == "__main__":
  cli.run(main)
