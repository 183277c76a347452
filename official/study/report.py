"""The study's report, from its result files alone (no recomputation): `report/report.md`
with Tables 1-4 and Figures 1-6 of the paper as PNG files beside it."""

import collections
import math
import os
from typing import Optional

import numpy as np

from official.analysis import plots
from official.core import io
from official.study import paper_numbers
from official.study import statistics
from official.study import store as store_lib

class Results:
  """Everything under `results/`, indexed by objective variant and seed."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    study_path = os.path.join(self.workdir, "study.json")
    if not os.path.exists(study_path):
      raise FileNotFoundError(f"no study in {self.workdir!r}: study.json is missing "
                              "(run experiments/reproduce first)")
    self.study = io.read_json(study_path)
    store = store_lib.ResultStore(self.workdir)
    self.pretrain = {}        # (variant, seed) -> metrics
    self.transfer = collections.defaultdict(dict)   # (variant, seed) -> dataset -> result
    self.finetune = collections.defaultdict(dict)
    self.representations = {}
    self.cka = None
    for key in store.keys():
      result = store.get(key)
      parts = key.split("/")
      if parts[0] == "cka":
        self.cka = result
        continue
      variant, seed = parts[1], int(parts[2][len("seed"):])
      if parts[0] == "pretrain":
        self.pretrain[(variant, seed)] = result
      elif parts[0] == "representations":
        self.representations[(variant, seed)] = result
      elif parts[0] == "transfer":
        # Keys spell the dataset file-name safe; the result holds its spec.
        self.transfer[(variant, seed)][result.get("dataset", parts[3])] = result
      elif parts[0] == "finetune":
        self.finetune[(variant, seed)][result.get("dataset", parts[3])] = result

  @property
  def objectives(self) -> list[str]:
    return [o for o in self.study["objectives"]
            if any(v == o for v, _ in self.pretrain)]

  def seeds_of(self, variant: str, table: dict) -> list[int]:
    return sorted(s for v, s in table if v == variant)

  def values(self, variant: str, getter, table: Optional[dict] = None) -> list[float]:
    table = self.pretrain if table is None else table
    out = []
    for seed in self.seeds_of(variant, table):
      try:
        value = getter(table[(variant, seed)])
      except (KeyError, TypeError):
        continue
      if value is not None and not (isinstance(value, float) and math.isnan(value)):
        out.append(float(value))
    return out


def _pretraining_data(study: dict) -> str:
  """" on `folder:/d` (classes 0-4)" when the study names its pretraining data, else ""."""
  dataset, classes = study.get("pretrain_dataset"), study.get("pretrain_classes")
  text = f" on `{dataset}`" if dataset else ""
  return text + (f" (classes {classes})" if classes else "")


def _pct(x):
  return 100.0 * x


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _column(results: Results, variants, getter, table=None, scale=100.0, digits=1,
            higher_is_better=True, mark_best=True):
  """Cells of one column: mean ± s.e., bold where not significantly worse than the best."""
  per_variant = {v: results.values(v, getter, table) for v in variants}
  marked = (statistics.not_worse_than_best(per_variant, higher_is_better=higher_is_better)
            if mark_best else set())
  cells = {}
  for v, values in per_variant.items():
    text = statistics.summarize(values).format(digits, scale)
    cells[v] = f"**{text}**" if v in marked and text != "–" else text
  return cells, per_variant


def _mean_linear(result_by_dataset: dict, datasets: list[str]) -> Optional[float]:
  scores = [result_by_dataset[d]["linear"]["test"] for d in datasets if d in result_by_dataset]
  return float(np.mean(scores)) if len(scores) == len(datasets) and scores else None


def write(workdir: str) -> str:
  """Writes `<workdir>/report/report.md` and its figures; returns the report's path."""
  results = Results(workdir)
  out_dir = os.path.join(results.workdir, "report")
  fig_dir = os.path.join(out_dir, "figures")
  study = results.study
  objectives = results.objectives
  datasets = list(study["transfer_datasets"])
  paper_setting = study["experiment"] == "paper"
  seeds = sorted({s for _, s in results.pretrain})
  sections = [
      f"# Study report: {study['experiment']}",
      "",
      "Reproduction of Kornblith, Chen, Lee & Norouzi, *Why Do Better Loss Functions Lead to "
      "Less Transferable Features?* (NeurIPS 2021). "
      f"Pretraining preset `{study['pretrain_experiment']}`{_pretraining_data(study)}, "
      "objectives: "
      f"{', '.join(objectives)}; seeds: {', '.join(map(str, seeds))}; transfer datasets: "
      f"{', '.join(datasets) or 'none'}.",
      "",
      "Cells are mean ± standard error over seeds. **Bold**: the best mean of the column and "
      "every objective not significantly different from it (Welch's t-test, p < 0.05).",
  ]
  if paper_setting:
    sections.append("Numbers in parentheses are the paper's (means over 8 ResNet-50 runs).")

  # Table 1.
  for probe, title in (("linear", "Linear transfer"), ("knn", "k-nearest neighbours")):
    header = ["objective", "top-1", "top-5"] + datasets + (["mean"] if probe == "linear" else [])
    columns = [
        _column(results, objectives, lambda m: m["top1"])[0],
        _column(results, objectives, lambda m: m.get("top5"))[0]]
    for d in datasets:
      columns.append(_column(results, objectives,
                             lambda r, d=d, p=probe: r[d][p]["test"], results.transfer)[0])
    if probe == "linear":
      columns.append(_column(results, objectives,
                             lambda r: _mean_linear(r, datasets), results.transfer)[0])
    rows = []
    for o in objectives:
      row = [o] + [c[o] for c in columns]
      if paper_setting:
        ref = [paper_numbers.IMAGENET_TOP1.get(o), paper_numbers.IMAGENET_TOP5.get(o)]
        table = (paper_numbers.LINEAR_TRANSFER if probe == "linear"
                 else paper_numbers.KNN_TRANSFER)
        ref += [table.get(d, {}).get(o) for d in datasets]
        for i, value in enumerate(ref):
          if value is not None:
            row[i + 1] += f" ({value})"
      rows.append(row)
    sections += ["", f"## Table 1 ({title}): pretraining accuracy and transfer with fixed "
                 "features (%)", "", _table(header, rows)]

  # Table 2.
  if results.finetune:
    ft_datasets = sorted({d for r in results.finetune.values() for d in r})
    header = ["objective"] + ft_datasets
    columns = [_column(results, objectives, lambda r, d=d: r[d]["test"], results.finetune)[0]
               for d in ft_datasets]
    rows = [[o] + [c[o] for c in columns] for o in objectives]
    sections += ["", "## Table 2: fine-tuning (%)", "", _table(header, rows)]

  # Table 3.
  r2_cells, r2_values = _column(
      results, objectives,
      lambda r: r["class_separation"]["final_avg_pool"], results.representations,
      scale=1.0, digits=3, mark_best=False)
  top1_cells, top1_values = _column(results, objectives, lambda m: m["top1"])
  header = ["objective", "top-1 (%)", "class separation R²"] + (
      ["paper R²"] if paper_setting else [])
  rows = [[o, top1_cells[o], r2_cells[o]] + (
      [str(paper_numbers.CLASS_SEPARATION.get(o, "–"))] if paper_setting else [])
          for o in objectives]
  sections += ["", "## Table 3: class separation of the penultimate layer "
               f"(R², eq. 11, cosine distance; `{study['class_separation_split']}` split)",
               "", _table(header, rows)]

  # Class separation vs transfer (Figure 5a).
  mean_transfer = {o: results.values(o, lambda r: _mean_linear(r, datasets), results.transfer)
                   for o in objectives}
  usable = [o for o in objectives if r2_values[o] and mean_transfer[o]]
  rho, p = statistics.spearman([np.mean(r2_values[o]) for o in usable],
                               [np.mean(mean_transfer[o]) for o in usable])
  sections += ["", "## Class separation vs. transfer", ""]
  if math.isnan(rho):
    sections.append("Too few objectives with both class separation and transfer results for "
                    "a rank correlation.")
  else:
    relation = ("negative, as in the paper" if rho < 0 else
                "not negative, unlike the paper")
    significance = "significant" if p < 0.05 else "not significant"
    sections.append(
        f"Spearman's rank correlation between penultimate-layer class separation and mean "
        f"linear transfer accuracy across {len(usable)} objectives: **rho = {rho:.2f}, "
        f"p = {max(p, 1e-16):.2g}** ({relation}; {significance} at p < 0.05). The paper reports "
        f"rho = {paper_numbers.SPEARMAN_RHO}, p = {paper_numbers.SPEARMAN_P} on ImageNet.")

  # Table 4.
  sweep = sorted({v for v, _ in results.pretrain if v.startswith("cosine_softmax_tau")},
                 key=lambda v: float(v[len("cosine_softmax_tau"):]))
  if sweep:
    header = ["tau", "top-1", "R²"] + datasets + ["mean"]
    columns = [
        _column(results, sweep, lambda m: m["top1"])[0],
        _column(results, sweep, lambda r: r["class_separation"]["final_avg_pool"],
                results.representations, scale=1.0, digits=3, mark_best=False)[0]]
    for d in datasets:
      columns.append(_column(results, sweep, lambda r, d=d: r[d]["linear"]["test"],
                             results.transfer)[0])
    columns.append(_column(results, sweep, lambda r: _mean_linear(r, datasets),
                           results.transfer)[0])
    rows = [[v[len("cosine_softmax_tau"):]] + [c[v] for c in columns] for v in sweep]
    sections += ["", "## Table 4: cosine softmax temperature", "", _table(header, rows)]

  # Figure 6 as a table too.
  relearn = {o: (results.values(o, lambda r: r["relearned_head"]["original"],
                                results.representations),
                 results.values(o, lambda r: r["relearned_head"]["relearned"],
                                results.representations)) for o in objectives}
  if any(a for a, _ in relearn.values()):
    rows = [[o, statistics.summarize(a).format(1, 100), statistics.summarize(b).format(1, 100),
             statistics.summarize(r2_values[o]).format(3)] for o, (a, b) in relearn.items()]
    sections += ["", "## Relearning the pretraining head (Figure 6)", "",
                 "Accuracy (%) on a held-out part of the pretraining evaluation split, of the "
                 "network's own head and of a linear head relearned on the rest.", "",
                 _table(["objective", "original head", "relearned head", "R²"], rows)]

  figures = _figures(results, fig_dir, objectives, datasets, r2_values, mean_transfer, rho, p,
                     sweep)
  sections += ["", "## Figures", ""]
  for name, caption in figures:
    sections += [f"**{caption}**", "", f"![{caption}](figures/{name})", ""]
  sections += ["", "Result files: `results/`; TensorBoard: `tensorboard --logdir "
               f"{os.path.join(results.workdir, 'runs')}`."]
  path = os.path.join(out_dir, "report.md")
  io.atomic_write_text(path, "\n".join(sections) + "\n")
  return path


def _figures(results, fig_dir, objectives, datasets, r2_values, mean_transfer, rho, p, sweep):
  """Draws Figures 1-6 of the study (official.analysis.plots) into `fig_dir`; returns
  [(file name, caption)] of those with data."""
  made = []

  def draw(name: str, caption: str, plot, *args, **kwargs) -> None:
    plot(*args, dpi=110, path=os.path.join(fig_dir, name), **kwargs)
    made.append((name, caption))

  points = {o: [(results.pretrain[(o, seed)]["top1"], transfer)
                for seed in results.seeds_of(o, results.pretrain)
                for transfer in [_mean_linear(results.transfer.get((o, seed), {}), datasets)]
                if results.pretrain[(o, seed)].get("top1") is not None and transfer is not None]
            for o in objectives}
  draw("fig1_accuracy_vs_transfer.png", "Figure 1: pretraining accuracy vs mean linear "
       "transfer accuracy (points are runs)", plots.accuracy_vs_transfer_plot, points,
       title="Figure 1: pretraining vs transfer accuracy")

  cka = results.cka
  if cka:
    ends, objs, (seed_a, seed_b) = cka["endpoints"], cka["objectives"], cka["seeds"]
    base = objs[0]
    draw("fig2a_cka_all_blocks.png", "Figure 2a: linear CKA between all pairs of endpoints, "
         "first objective vs each objective (other seed)", plots.cka_heatmap_grid,
         {f"{base} vs {o}": cka["cka"][f"{base}|{o}"] for o in objs}, row_labels=ends,
         column_labels=ends, row_titles=[f"{base} (seed {seed_a})"] * len(objs),
         column_titles=[f"{o} (seed {seed_b})" for o in objs],
         title="Figure 2a: CKA between all endpoint pairs")
    draw("fig2b_cka_across_objectives.png", "Figure 2b: CKA of corresponding endpoints across "
         "objectives (diagonal: two seeds of one objective)", plots.corresponding_cka_heatmaps,
         {end: [[cka["cka"][f"{a}|{b}"][ends.index(end)][ends.index(end)] for b in objs]
                for a in objs] for end in ends[-4:]},
         objs, title="Figure 2b: CKA of corresponding endpoints across objectives",
         panel_size=(3.6, 3.6))

  # Figures 3 and 4: per endpoint, the mean over seeds of each objective.
  runs = {o: [results.representations[(o, s)]
              for s in results.seeds_of(o, results.representations)] for o in objectives}
  runs = {o: r for o, r in runs.items() if r}
  if runs:
    ends = next(iter(runs.values()))[0]["endpoints"]
    for key, name, caption, plot in (
        ("fraction_nonzero", "fig3_sparsity.png", "Figure 3: non-zero activations per endpoint",
         plots.sparsity_plot),
        ("class_separation", "fig4_class_separation.png",
         "Figure 4: class separation per endpoint", plots.class_separation_plot)):
      draw(name, caption, plot, {o: np.mean([[r[key][e] for e in ends] for r in rs], axis=0)
                                 for o, rs in runs.items()}, ends, title=caption)

  sweep_points = {}
  for v in sweep or ():
    r2 = results.values(v, lambda r: r["class_separation"]["final_avg_pool"],
                        results.representations)
    tr = results.values(v, lambda r: _mean_linear(r, datasets), results.transfer)
    if r2 and tr:
      sweep_points[v[len("cosine_softmax_tau"):]] = (np.mean(r2), np.mean(tr))
  draw("fig5_separation_vs_transfer.png",
       "Figure 5: class separation vs mean linear transfer accuracy",
       plots.separation_vs_transfer_plot,
       {o: (np.mean(r2_values[o]), np.mean(mean_transfer[o])) for o in objectives
        if r2_values[o] and mean_transfer[o]},
       subtitle="" if math.isnan(rho) else f"Spearman rho = {rho:.2f}, p = {p:.3g}",
       sweep=sweep_points if sweep else None, sweep_title="cosine softmax temperatures",
       title="Figure 5: class separation vs transfer")

  heads = {}
  for o in objectives:
    original = results.values(o, lambda r: r["relearned_head"]["original"],
                              results.representations)
    relearned = results.values(o, lambda r: r["relearned_head"]["relearned"],
                               results.representations)
    if original and relearned and r2_values[o]:
      heads[o] = (np.mean(r2_values[o]), np.mean(original), np.mean(relearned))
  if heads:
    draw("fig6_relearned_head.png", "Figure 6: original vs relearned head",
         plots.relearned_head_plot, heads, title="Figure 6: relearning the pretraining head")
  return made
