r"""Writes a study's report from its result files alone (no recomputation).

  python -m experiments.report --workdir=workdir/demo
  python -m experiments.report --workdir=workdir/demo --readme=README.md

With --readme, the text between the README's `<!-- <experiment>-results:begin -->` and
`<!-- <experiment>-results:end -->` markers (the study preset's name: `demo`, `demo_long`)
is replaced by the report's Table 1 (linear transfer), learning curves, Table 4 and rank
correlations (official.study.report.update_readme), so the README's results are the
report's, never typed by hand.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

from absl import flags

from official.core import cli

_WORKDIR = flags.DEFINE_string("workdir", "workdir/demo", "The study's workdir.")
_README = flags.DEFINE_string(
    "readme", None, "If set, a README whose <experiment>-results markers receive the "
    "report's tables and rank correlations.")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  from official.study import report  # pylint: disable=g-import-not-at-top
  from official.study import store  # pylint: disable=g-import-not-at-top
  path = report.write(_WORKDIR.value)
  print(path)
  if _README.value:
    experiment = store.read_study(_WORKDIR.value)["experiment"]
    report.update_readme(_README.value, path, experiment)
    print(f"{_README.value}: {experiment} results replaced from {path}")


if __name__ == "__main__":
  cli.run(main)
