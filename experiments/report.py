r"""Writes a study's report from its result files alone (no recomputation).

  python -m experiments.report --workdir=workdir/demo
  python -m experiments.report --workdir=workdir/demo --readme=README.md

With --readme, the text between the README's `<!-- demo-results:begin -->` and
`<!-- demo-results:end -->` markers is replaced by the report's Table 1 (linear transfer)
and its Spearman sentence (official.study.report.update_readme), so the README's results
are the report's, never typed by hand.
"""

from official.core import native_logging  # pylint: disable=unused-import  (first: before TF)

from absl import flags

from official.core import cli

_WORKDIR = flags.DEFINE_string("workdir", "workdir/demo", "The study's workdir.")
_README = flags.DEFINE_string(
    "readme", None, "If set, a README whose demo-results markers receive the report's "
    "Table 1 and Spearman sentence.")


def main(argv):
  if len(argv) > 1:
    raise ValueError(f"unexpected arguments: {' '.join(argv[1:])}")
  from official.study import report  # pylint: disable=g-import-not-at-top
  path = report.write(_WORKDIR.value)
  print(path)
  if _README.value:
    report.update_readme(_README.value, path)
    print(f"{_README.value}: demo results replaced from {path}")


if __name__ == "__main__":
  cli.run(main)
