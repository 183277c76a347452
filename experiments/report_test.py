"""Tests of experiments/report: the report, and the README's demo section written from it."""

import os

from absl.testing import absltest

from experiments import linear_probe_test
from experiments import report as report_main
from official.core import io
from official.study import report
from official.study import report_test


class ReportBinaryTest(absltest.TestCase):

  def test_writes_the_report_and_the_readme_section(self):
    workdir = self.create_tempdir().full_path
    report_test._write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                             top1=[0.70, 0.72, 0.71])
    readme = os.path.join(workdir, "README.md")
    io.atomic_write_text(readme, "intro\n<!-- demo-results:begin -->\nhand-typed table\n"
                         "<!-- demo-results:end -->\noutro\n")
    status, stdout, stderr = linear_probe_test.run_main(report_main.main, workdir=workdir,
                                                        readme=readme)
    self.assertEqual(status, 0, stderr)
    report_path = os.path.join(workdir, "report", "report.md")
    self.assertIn(report_path, stdout)
    expected = report.readme_section(io.read_text(report_path))
    self.assertEqual(io.read_text(readme),
                     "intro\n<!-- demo-results:begin -->\n" + expected +
                     "\n<!-- demo-results:end -->\noutro\n")
    self.assertIn("| softmax | **70.5 ± 0.5** |", expected)
    self.assertIn("Spearman's rank correlation", expected)

  def test_each_study_preset_fills_its_own_readme_section(self):
    workdir = self.create_tempdir().full_path
    report_test._write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                             top1=[0.70, 0.72, 0.71], experiment="demo_long")
    readme = os.path.join(workdir, "README.md")
    demo_block = "<!-- demo-results:begin -->\ndemo table\n<!-- demo-results:end -->\n"
    io.atomic_write_text(readme, demo_block + "<!-- demo_long-results:begin -->\nold\n"
                         "<!-- demo_long-results:end -->\n")
    status, stdout, stderr = linear_probe_test.run_main(report_main.main, workdir=workdir,
                                                        readme=readme)
    self.assertEqual(status, 0, stderr)
    self.assertIn("demo_long results replaced", stdout)
    expected = report.readme_section(
        io.read_text(os.path.join(workdir, "report", "report.md")))
    self.assertEqual(io.read_text(readme),
                     demo_block + "<!-- demo_long-results:begin -->\n" + expected +
                     "\n<!-- demo_long-results:end -->\n")

  def test_readme_without_markers_is_a_one_line_error(self):
    workdir = self.create_tempdir().full_path
    report_test._write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                             top1=[0.70, 0.72, 0.71])
    readme = os.path.join(workdir, "README.md")
    io.atomic_write_text(readme, "no markers here\n")
    status, _, stderr = linear_probe_test.run_main(report_main.main, workdir=workdir,
                                                   readme=readme)
    self.assertEqual(status, 2, stderr)
    errors = linear_probe_test.error_lines(stderr)
    self.assertLen(errors, 1, stderr)
    self.assertIn("has no <!-- demo-results:begin -->", errors[0])
    self.assertEqual(io.read_text(readme), "no markers here\n")


if __name__ == "__main__":
  absltest.main()
