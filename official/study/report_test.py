"""Tests for the report: built from result files alone, with the right numbers and marks."""

import os
import re

from absl.testing import absltest
import numpy as np

from official.core import io
from official.data import datasets as datasets_lib
from official.study import report
from official.study import statistics
from official.study import store as store_lib

OBJECTIVES = ("softmax", "cosine_softmax", "squared_error")
DATASETS = ("demo_size", "demo_digits")


def _write_study(workdir, r2, transfer, top1, *, experiment="demo", seeds=(0, 1),
                 datasets=DATASETS, num_classes=None, finetune=None, sweep=(), study=None):
  """A synthetic study: per objective i, top-1 top1[i] (+0.01 per seed), R² r2[i], linear
  transfer transfer[i] (+0.01 per seed) on every dataset; `finetune`: objective -> dataset ->
  per-seed scores; `sweep`: (tau, top1, r2, transfer, scale_loss_by_tau) cosine runs."""
  io.atomic_write_json(os.path.join(workdir, "study.json"), {
      "experiment": experiment, "objectives": list(OBJECTIVES), "pretrain_experiment": "demo",
      "transfer_datasets": list(datasets), "class_separation_split": "train",
      **(study or {})})
  store = store_lib.ResultStore(workdir)
  endpoints = ["block1", "block2", "final_avg_pool"]

  def put_run(variant, seed, top1_value, r2_value, transfer_value, hparams):
    metrics = {"top1": top1_value, "top5": 0.99, "hparams": hparams}
    if num_classes:
      metrics["num_classes"] = num_classes
    store.put(f"pretrain/{variant}/seed{seed}", "fp", metrics)
    store.put(f"representations/{variant}/seed{seed}", "fp", {
        "endpoints": endpoints,
        "class_separation": {e: r2_value * (j + 1) / 3 for j, e in enumerate(endpoints)},
        "fraction_nonzero": {e: 0.5 + 0.1 * j for j, e in enumerate(endpoints)},
        "relearned_head": {"original": top1_value, "relearned": top1_value - 0.1,
                           "test_per_class": 5}})
    for d in datasets:
      store.put(f"transfer/{variant}/seed{seed}/{datasets_lib.result_name(d)}", "fp", {
          "dataset": d, "linear": {"test": transfer_value}, "knn": {"test": transfer_value - 0.1}})

  for i, o in enumerate(OBJECTIVES):
    hparams = {"tau": 0.05, "normalize_features": False} if o == "cosine_softmax" else {}
    for seed in seeds:
      jitter = 0.01 * seed
      put_run(o, seed, top1[i] + jitter, r2[i], transfer[i] + jitter, hparams)
  for tau, top1_value, r2_value, transfer_value, scaled in sweep:
    put_run(f"cosine_softmax_tau{tau:g}", 0, top1_value, r2_value, transfer_value,
            {"tau": tau, "normalize_features": False, "scale_loss_by_tau": scaled})
  for o, by_dataset in (finetune or {}).items():
    for d, values in by_dataset.items():
      for seed, value in enumerate(values):
        store.put(f"finetune/{o}/seed{seed}/{d}", "fp", {"dataset": d, "test": value})
  cka = {f"{a}|{b}": np.eye(3).tolist() for a in OBJECTIVES for b in OBJECTIVES}
  store.put("cka", "fp", {"objectives": list(OBJECTIVES), "endpoints": endpoints,
                          "seeds": [0, 1], "cka": cka})


def _row(text, name, table_heading=None):
  """The cells of `name`'s row (of the table under `table_heading` if given)."""
  if table_heading is not None:
    text = text[text.index(table_heading):]
    text = text[:text.find("\n## ", 1)] if "\n## " in text[1:] else text
  line = [l for l in text.splitlines() if l.startswith(f"| {name} |")][0]
  return [c.strip() for c in line.strip("|").split("|")][1:]


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

  def test_undefined_r2_learning_curves_and_seed_sets(self):
    workdir = self.create_tempdir().full_path
    # Seed 1 of squared error reverses the ranking: negative in seed set {0}, not in {1}.
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    store = store_lib.ResultStore(workdir)
    for seed, curve in ((0, [[1, 0.5], [2, 0.6], [3, 0.68], [4, 0.70]]),
                        (1, [[1, 0.5], [2, 0.6], [3, 0.70], [4, 0.71]])):
      metrics = store.get(f"pretrain/softmax/seed{seed}") | {"top1_curve": curve}
      store.put(f"pretrain/softmax/seed{seed}", "fp", metrics)
    for d in DATASETS:
      store.put(f"transfer/squared_error/seed1/{datasets_lib.result_name(d)}", "fp",
                {"dataset": d, "linear": {"test": 0.95}, "knn": {"test": 0.9}})
    rep = store.get("representations/cosine_softmax/seed0")
    rep["class_separation"]["final_avg_pool"] = None  # collapsed features
    store.put("representations/cosine_softmax/seed0", "fp", rep)
    text = open(report.write(workdir)).read()
    # Table 3: cosine softmax keeps seed 1's 0.600 and says seed 0 is undefined.
    self.assertEqual(_row(text, "cosine_softmax", "## Table 3")[1],
                     "0.600 (undefined in 1 run(s))")
    self.assertIn("total cosine dispersion d_total < 0.01", text)
    # Learning curve of softmax: gain over the last quarter (epoch 3 -> 4) 2 and 1 points.
    self.assertEqual(_row(text, "softmax", "## Training curves"),
                     ["4", "70.5 ± 0.5", "1.5 ± 0.5"])
    # Seed set {0}: R² 0.3, 0.8 (cosine's seed 0 undefined) -> n = 2, no test; seed set {1}:
    # transfer 0.81, 0.71, 0.95 against R² 0.3, 0.6, 0.8 -> rho = 0.5, exact p = 1 (every
    # ordering of three points has |rho| >= 0.5).
    rows = [l for l in text.splitlines() if l.startswith("| class separation R² | objectives")]
    self.assertEqual(rows[1], "| class separation R² | objectives | 0 | 2 | – | – |")
    self.assertEqual(rows[2], "| class separation R² | objectives | 1 | 3 | 0.50 | 1 |")
    self.assertIn("It does not reproduce a negative rank correlation between class separation "
                  "and transfer across objectives", text)
    self.assertIn("the premise held", text)

  def test_transfer_tasks_above_chance(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    store = store_lib.ResultStore(workdir)

    def put(variant, seed, dataset, accuracy, num_classes, num_test):
      store.put(f"transfer/{variant}/seed{seed}/{datasets_lib.result_name(dataset)}", "fp",
                {"dataset": dataset, "class_names": [str(c) for c in range(num_classes)],
                 "num_test": num_test, "linear": {"test": accuracy},
                 "knn": {"test": accuracy}})

    for o in OBJECTIVES:
      for seed in (0, 1):
        put(o, seed, "demo_size", 0.60, 4, 1000)
        put(o, seed, "demo_digits", 0.90, 10, 500)
    # The lowest network on the size task: 270 of 1,000 right at chance 1/4.
    put("squared_error", 1, "demo_size", 0.27, 4, 1000)
    text = open(report.write(workdir)).read()
    p = statistics.above_chance_p_value(0.27, 1000, 4)
    self.assertBetween(p, 0.05, 0.1)
    self.assertIn(f"demo_size 27.0% (chance 25.0%, p = {p:.2g}); demo_digits 90.0% "
                  "(chance 10.0%, p < 1e-16)", text)
    self.assertIn("not every task is read above chance (p < 0.05) by every network", text)
    put("squared_error", 1, "demo_size", 0.29, 4, 1000)  # p = 0.0016
    text = open(report.write(workdir)).read()
    self.assertIn("; every task is read above chance (p < 0.05) by every network", text)

  def test_report_is_deterministic(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    first = open(report.write(workdir)).read()
    self.assertEqual(open(report.write(workdir)).read(), first)

  def test_table2_average_by_two_way_anova_and_per_dataset_welch(self):
    workdir = self.create_tempdir().full_path
    finetune = {  # 3 seeds on 3 datasets each
        "softmax": {"a": [0.90, 0.91, 0.92], "b": [0.80, 0.82, 0.81], "c": [0.70, 0.71, 0.69]},
        "cosine_softmax": {"a": [0.91, 0.90, 0.905], "b": [0.79, 0.80, 0.815],
                           "c": [0.69, 0.70, 0.71]},
        "squared_error": {"a": [0.80, 0.81, 0.79], "b": [0.70, 0.71, 0.69],
                          "c": [0.60, 0.61, 0.62]}}
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71], finetune=finetune)
    text = open(report.write(workdir)).read()
    heading = "## Table 2"
    self.assertIn("| objective | a | b | c | average |", text)
    averages = {o: 100 * np.mean([np.mean(v) for v in finetune[o].values()]) for o in finetune}
    # The ANOVA against the best average (softmax) by hand: cosine softmax not different,
    # squared error 10 points worse.
    self.assertGreater(statistics.anova_p_value(finetune["softmax"],
                                                finetune["cosine_softmax"]), 0.05)
    self.assertLess(statistics.anova_p_value(finetune["softmax"],
                                             finetune["squared_error"]), 0.05)
    self.assertEqual(_row(text, "softmax", heading)[-1], f"**{averages['softmax']:.1f}**")
    self.assertEqual(_row(text, "cosine_softmax", heading)[-1],
                     f"**{averages['cosine_softmax']:.1f}**")
    self.assertEqual(_row(text, "squared_error", heading)[-1],
                     f"{averages['squared_error']:.1f}")
    # Per dataset: Welch's t-test as in Table 1 (dataset a: softmax best, 91.0 ± 0.6).
    a_cells = {o: _row(text, o, heading)[0] for o in finetune}
    self.assertEqual(a_cells["softmax"], "**91.0 ± 0.6**")
    self.assertEqual(a_cells["cosine_softmax"], "**90.5 ± 0.3**")
    self.assertEqual(a_cells["squared_error"], "80.0 ± 0.6")
    self.assertIn("two-way ANOVA (objective x dataset", text)
    # One dataset, one seed: the ANOVA has no residual, so no average is bold either.
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71],
                 finetune={o: {"a": [v]} for o, v in zip(OBJECTIVES, (0.9, 0.8, 0.7))})
    text = open(report.write(workdir)).read()
    self.assertEqual(_row(text, "softmax", heading), ["90.0", "90.0"])
    self.assertIn("One seed: no significance test", text.split(heading)[1].split("\n## ")[0])
    self.assertNotIn("(96.9)", text)  # not the paper preset: no paper numbers

  def test_one_seed_small_k_short_labels_and_title(self):
    workdir = self.create_tempdir().full_path
    folder = "folder:/home/someone/long/path/to/cifar@5-9"
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71], seeds=(0,), num_classes=5, datasets=(folder,),
                 study={"pretrain_dataset": "folder:/home/someone/long/path/to/cifar",
                        "pretrain_classes": "0-4"})
    text = open(report.write(workdir)).read()
    self.assertStartsWith(text, "# Study report: pretraining on `cifar` (classes 0-4) "
                          "(preset `demo`)\n")
    self.assertNotIn("**", text.split("## Class separation vs. transfer")[0].split(
        "Cells are")[1].split("\n", 1)[1])
    self.assertIn("One seed: no significance test (nothing is bold).", text)
    # K = 5: top-5 would be 100% for everything; the column is left out.
    self.assertIn("| objective | top-1 | cifar@5-9 | mean |", text)
    self.assertNotIn("top-5", text)
    self.assertEqual(text.count(f"`cifar@5-9` = `{folder}`"), 1)
    self.assertEqual(_row(text, "softmax", "## Table 1 (Linear")[:2], ["70.0", "80.0"])
    self.assertIn("the released head (only the kernel columns L2-normalised)", text)

  def test_paper_numbers_beside_tables_2_and_4_and_sparsity(self):
    workdir = self.create_tempdir().full_path
    finetune = {o: {"cifar10": [0.9, 0.91], "pets": [0.8, 0.81]} for o in OBJECTIVES}
    sweep = [(0.01, 0.70, 0.30, 0.80, True), (0.05, 0.72, 0.60, 0.70, True)]
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71], experiment="paper", num_classes=1000,
                 datasets=("cifar10",), finetune=finetune, sweep=sweep)
    text = open(report.write(workdir)).read()
    # Table 2: softmax cifar10 96.9 and pets 93.1 in the paper, their mean 95.0.
    self.assertEqual(_row(text, "softmax", "## Table 2"),
                     ["**90.5 ± 0.5** (96.9)", "**80.5 ± 0.5** (93.1)", "**85.5** (95.0)"])
    # Table 4: tau 0.01 -> top-1 74.9, R² 0.236, CIFAR-10 91.9 in the paper.
    self.assertEqual(_row(text, "0.01", "## Table 4")[:3],
                     ["70.0 (74.9)", "0.300 (0.236)", "80.0 (91.9)"])
    self.assertIn("Runs with tau < 0.05 (0.01) multiply the loss by tau", text)
    # Sparsity of the penultimate layer: 70% measured, 92.8% for softmax in the paper.
    self.assertEqual(_row(text, "softmax", "## Sparsity"), ["70.0 ± 0.0 (92.8)"])
    self.assertEqual(_row(text, "cosine_softmax", "## Sparsity"), ["70.0 ± 0.0"])
    self.assertEqual(_row(text, "softmax", "## Table 1 (Linear")[:3],
                     ["**70.5 ± 0.5** (77.0)", "**99.0 ± 0.0** (93.4)", "**80.5 ± 0.5** (92.4)"])

  def test_short_labels(self):
    self.assertEqual(report.short_label("folder:/a/b/cifar@5-9"), "cifar@5-9")
    self.assertEqual(report.short_label("folder:/a/b/cifar/"), "cifar")
    self.assertEqual(report.short_label("cifar100"), "cifar100")
    self.assertEqual(report.dataset_labels(["folder:/x/d", "folder:/y/d", "pets"]),
                     {"folder:/x/d": "d", "folder:/y/d": "d#2", "pets": "pets"})

  def test_readme_section_comes_from_the_report(self):
    workdir = self.create_tempdir().full_path
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71])
    report_path = report.write(workdir)
    readme = os.path.join(workdir, "README.md")
    io.atomic_write_text(readme, f"# T\n\nbefore\n{report.README_BEGIN}\nold table\n"
                         f"{report.README_END}\nafter\n")
    report.update_readme(readme, report_path)
    text = open(readme).read()
    body = text.split(report.README_BEGIN + "\n")[1].split("\n" + report.README_END)[0]
    self.assertTrue(text.startswith("# T\n\nbefore\n") and text.endswith("after\n"))
    self.assertNotIn("old table", text)
    linear = open(report_path).read().split("## Table 1 (Linear")[1].split("\n## ")[0]
    table = [l for l in linear.splitlines() if l.startswith("|")]
    self.assertEqual([l for l in body.splitlines() if l.startswith("|")][:len(table)], table)
    # Then the correlations on each seed set and the verdict, verbatim from the report.
    # rho = -1 over 3 points: exact p = 2 / 3! (the two orderings with |rho| = 1).
    self.assertIn("| class separation R² | objectives | 1 | 3 | -1.00 | 0.333 |", body)
    self.assertIn("**This study reproduces", body)
    self.assertIn("| softmax | **70.5 ± 0.5** | **99.0 ± 0.0** | **80.5 ± 0.5** |", body)
    self.assertIn("**rho = -1.00", body)
    self.assertEqual(body.count("Spearman's rank correlation"), 1)
    # Run twice: the same README.
    report.update_readme(readme, report_path)
    self.assertEqual(open(readme).read(), text)
    io.atomic_write_text(readme, "no markers\n")
    with self.assertRaisesRegex(ValueError, "has no <!-- demo-results:begin --> ..."):
      report.update_readme(readme, report_path)

  def test_tensorboard_summaries_and_hparams_metrics(self):
    from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    workdir = self.create_tempdir().full_path
    for o in OBJECTIVES:
      for seed in (0, 1):
        os.makedirs(os.path.join(workdir, "runs", o, f"seed{seed}"))
    _write_study(workdir, r2=[0.3, 0.6, 0.8], transfer=[0.80, 0.70, 0.50],
                 top1=[0.70, 0.72, 0.71],
                 finetune={"softmax": {"demo_size": [0.6, 0.62]}})

    def events(folder):
      paths = tf.io.gfile.glob(os.path.join(folder, "events.*"))
      self.assertLen(paths, 1, folder)  # rewritten, not appended to, by every report
      return list(tf.compat.v1.train.summary_iterator(paths[0]))

    for _ in range(2):
      report.write(workdir)
    scalars = {v.tag: float(tf.make_ndarray(v.tensor))
               for e in events(os.path.join(workdir, "runs", "softmax", "seed1", "study"))
               for v in e.summary.value}
    # Seed 1 of softmax: transfer 0.81 (kNN 0.71), fine-tuning 0.62, top-1 0.71 (relearned
    # 0.61), R² 0.3, 70% non-zero penultimate activations.
    expected = {
        "transfer/demo_size/linear": 0.81, "transfer/demo_size/knn": 0.71,
        "transfer/demo_digits/linear": 0.81, "transfer/demo_digits/knn": 0.71,
        "finetune/demo_size": 0.62,
        "representations/penultimate_nonzero": 0.7,
        "representations/penultimate_class_separation": 0.3,
        "relearned_head/original": 0.71, "relearned_head/relearned": 0.61}
    self.assertEqual(set(scalars), set(expected))
    for tag, value in expected.items():
      self.assertAlmostEqual(scalars[tag], value, places=6, msg=tag)
    experiment, images = None, []
    for e in events(os.path.join(workdir, "runs", "_study")):
      for v in e.summary.value:
        if v.tag == "_hparams_/experiment":
          experiment = plugin_data_pb2.HParamsPluginData.FromString(
              v.metadata.plugin_data.content).experiment
        elif v.tag.startswith("cka/"):
          images.append(v.tag)
    metrics = {(m.name.group, m.name.tag) for m in experiment.metric_infos}
    self.assertIn(("study", "transfer/demo_digits/linear"), metrics)
    self.assertIn(("study", "representations/penultimate_class_separation"), metrics)
    self.assertIn(("eval", "top1"), metrics)
    self.assertEqual({h.name for h in experiment.hparam_infos},
                     {"objective", "seed", "tau", "normalize_features"})
    self.assertEqual(sorted(images), ["cka/fig2a_cka_all_blocks",
                                      "cka/fig2b_cka_across_objectives"])

  def test_missing_study(self):
    with self.assertRaisesRegex(FileNotFoundError, "study.json is missing"):
      report.write(self.create_tempdir().full_path)


if __name__ == "__main__":
  absltest.main()
