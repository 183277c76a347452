"""Tests for the report: built from result files alone, with the right numbers and marks."""

import os
import re

from absl.testing import absltest
import numpy as np

from official.core import io
from official.study import report
from official.study import store as store_lib

OBJECTIVES = ("softmax", "cosine_softmax", "squared_error")
DATASETS = ("demo_texture", "demo_digits")


def _write_study(workdir, r2, transfer, top1):
  io.atomic_write_json(os.path.join(workdir, "study.json"), {
      "experiment": "demo", "objectives": list(OBJECTIVES), "pretrain_experiment": "demo",
      "transfer_datasets": list(DATASETS), "class_separation_split": "train"})
  store = store_lib.ResultStore(workdir)
  endpoints = ["block1", "block2", "final_avg_pool"]
  for i, o in enumerate(OBJECTIVES):
    for seed in (0, 1):
      jitter = 0.01 * seed
      store.put(f"pretrain/{o}/seed{seed}", "fp", {"top1": top1[i] + jitter, "top5": 0.99})
      store.put(f"representations/{o}/seed{seed}", "fp", {
          "endpoints": endpoints,
          "class_separation": {e: r2[i] * (j + 1) / 3 for j, e in enumerate(endpoints)},
          "fraction_nonzero": {e: 0.5 for e in endpoints},
          "relearned_head": {"original": top1[i], "relearned": top1[i] - 0.1}})
      for d in DATASETS:
        store.put(f"transfer/{o}/seed{seed}/{d}", "fp", {
            "linear": {"test": transfer[i] + jitter}, "knn": {"test": transfer[i] - 0.1}})
  cka = {f"{a}|{b}": np.eye(3).tolist() for a in OBJECTIVES for b in OBJECTIVES}
  store.put("cka", "fp", {"objectives": list(OBJECTIVES), "endpoints": endpoints,
                          "seeds": [0, 1], "cka": cka})


class ReportTest(absltest.TestCase):

  def test_tables_marks_and_correlation(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    path = report.write(workdir)
    text = open(path).read()
    # Table 1: softmax has the best mean linear transfer (80.5 ± 0.5); nothing ties with it.
    mean_row = [l for l in text.splitlines() if l.startswith("| softmax |")][0]
    self.assertIn("**80.5 ± 0.5**", mean_row)
    cosine_row = [l for l in text.splitlines() if l.startswith("| cosine_softmax |")][0]
    self.assertIn("70.5 ± 0.5", cosine_row)
    self.assertNotIn("**70.5", cosine_row)
    # Table 3 value of squared error: R² of the penultimate layer is 0.8 in both seeds.
    self.assertRegex(text, r"\| squared_error \| [^|]+ \| 0\.800 ± 0\.000 \|")
    # Perfectly anti-monotone: rho = -1.
    self.assertIn("rho = -1.00", text)
    self.assertIn("negative, as in the paper", text)
    for name in ("fig1_accuracy_vs_transfer.png", "fig2a_cka_all_blocks.png",
                 "fig2b_cka_across_objectives.png", "fig3_sparsity.png",
                 "fig4_class_separation.png", "fig5_separation_vs_transfer.png",
                 "fig6_relearned_head.png"):
      self.assertTrue(os.path.exists(os.path.join(workdir, "report", "figures", name)), name)
      self.assertIn(f"figures/{name}", text)

  def test_positive_relation_is_reported_as_such(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.50, 0.70, 0.80],
                 top1=[0.70, 0.72, 0.71])
    text = open(report.write(workdir)).read()
    self.assertIn("rho = 1.00", text)
    self.assertIn("not negative, unlike the paper", text)

  def test_report_is_deterministic(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    first = open(report.write(workdir)).read()
    self.assertEqual(open(report.write(workdir)).read(), first)

  def test_missing_study(self):
    with self.assertRaisesRegex(FileNotFoundError, "study.json is missing"):
      report.write(self.create_tempdir().full_path)


if __name__ == "__main__":
  absltest.main()
