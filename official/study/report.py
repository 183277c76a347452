"""The study's report, from its result files alone (no recomputation): `report/report.md`
with Tables 1-4 and Figures 1-6 of the paper as PNG files beside it, the study's TensorBoard
summaries, and the README's demo section written from it (`update_readme`). Its statistics
and conventions: docs/protocol.md §6 and §7 items 6, 7 and 16.
"""

import collections
import itertools
import math
import posixpath
import re
import warnings
from typing import Optional

import numpy as np

from official.analysis import class_separation
from official.analysis import plots
from official.core import config as config_lib
from official.core import io
from official.data import datasets as datasets_lib
from official.modeling import resnet
from official.study import paper_numbers
from official.study import statistics
from official.study import store as store_lib


class Results:
  """Everything under `results/`, indexed by objective variant and seed."""

  def __init__(self, workdir: str):
    self.workdir = io.absolute(workdir)
    self.study = store_lib.read_study(self.workdir)
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
      run = (parts[1], int(parts[2][len("seed"):]))
      if parts[0] in ("pretrain", "representations"):
        getattr(self, parts[0])[run] = result
      elif parts[0] in ("transfer", "finetune"):
        # Keys spell the dataset file-name safe; the result holds its spec.
        getattr(self, parts[0])[run][result.get("dataset", parts[3])] = result

  @property
  def objectives(self) -> list[str]:
    return [o for o in self.study["objectives"]
            if any(v == o for v, _ in self.pretrain)]

  def seeds_of(self, variant: str, table: dict) -> list[int]:
    return sorted(s for v, s in table if v == variant)

  def by_seed(self, variants, getter, table: Optional[dict] = None) -> dict:
    """variant -> seed -> value of the runs where `getter` gives a number."""
    table = self.pretrain if table is None else table
    out = collections.defaultdict(dict)
    for v in variants:
      for seed in self.seeds_of(v, table):
        try:
          value = getter(table[(v, seed)])
        except (KeyError, TypeError):
          continue
        if value is not None and not math.isnan(float(value)):
          out[v][seed] = float(value)
    return dict(out)

  def values(self, variant: str, getter, table: Optional[dict] = None) -> list[float]:
    return list(self.by_seed([variant], getter, table).get(variant, {}).values())


def short_label(spec: str) -> str:
  """A dataset's column label: an image folder by its folder name and class subset
  ("folder:/long/path/cifar@5-9" -> "cifar@5-9"), other specs as they are."""
  spec = spec.strip()
  if not spec.startswith(datasets_lib.FOLDER_PREFIX):
    return spec
  path = spec[len(datasets_lib.FOLDER_PREFIX):]
  base, at, classes = path.rpartition("@")
  if not at or not re.fullmatch(r"[0-9,\-]+", classes):
    base, classes = path, ""
  name = posixpath.basename(base.rstrip("/\\")) or base
  return name + (f"@{classes}" if classes else "")


def dataset_labels(specs) -> dict[str, str]:
  """spec -> distinct short label (short_label; a repeated label gets "#2", "#3", ...)."""
  labels, used = {}, collections.Counter()
  for spec in specs:
    label = short_label(spec)
    used[label] += 1
    labels[spec] = label if used[label] == 1 else f"{label}#{used[label]}"
  return labels


def _spec_list(labels: dict[str, str], listed: set) -> list[str]:
  """The line under a table that lists the full spec of every shortened dataset label not
  listed under an earlier table (`listed` is updated)."""
  long = [(label, spec) for spec, label in labels.items()
          if label != spec and spec not in listed]
  listed.update(spec for _, spec in long)
  return (["", "Datasets: " + "; ".join(f"`{label}` = `{spec}`" for label, spec in long) + "."]
          if long else [])


def _pretraining_data(study: dict, short: bool = False) -> str:
  """The pretraining dataset (with its class subset) the study names, else its preset's; by
  its short label if `short`."""
  dataset, classes = study.get("pretrain_dataset"), study.get("pretrain_classes")
  if not dataset:
    try:
      preset = config_lib.get_experiment(study["pretrain_experiment"])
      dataset, classes = preset.data.dataset, classes or preset.data.classes
    except (KeyError, ValueError):
      return "its preset's data"
  return (f"`{short_label(dataset) if short else dataset}`" +
          (f" (classes {classes})" if classes else ""))


def title(study: dict) -> str:
  """What the study ran: a study on one's own data by its data, a preset by its name."""
  preset = study.get("pretrain_experiment", "?")
  if study.get("pretrain_dataset"):
    return (f"Study report: pretraining on {_pretraining_data(study, short=True)} "
            f"(preset `{preset}`)")
  return (f"Study report: `{study.get('experiment', '?')}` study (preset `{preset}`, "
          f"pretraining on {_pretraining_data(study, short=True)})")


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _column(results: Results, variants, getter, table=None, scale=100.0, digits=1,
            mark_best=True) -> dict[str, str]:
  """Cells of one column: mean ± s.e., bold where not significantly worse than the best
  (nothing bold when no objective has two seeds: no test is possible)."""
  per_variant = {v: results.values(v, getter, table) for v in variants}
  testable = any(len(values) > 1 for values in per_variant.values())
  marked = statistics.not_worse_than_best(per_variant) if mark_best and testable else set()
  cells = {}
  for v, values in per_variant.items():
    text = statistics.summarize(values).format(digits, scale)
    cells[v] = f"**{text}**" if v in marked and text != "–" else text
  return cells


def _with_paper(cell: str, value) -> str:
  return cell if value is None else f"{cell} ({value})"


def _paper_cells(columns, variant: str, paper_key) -> list[str]:
  """A row's cells of [(cells, paper numbers)] columns, the paper's value of `paper_key`
  beside each (None: none)."""
  return [_with_paper(cells[variant], None if paper_key is None else ref.get(paper_key))
          for cells, ref in columns]


def _transfer_columns(results: Results, variants, datasets, probe: str, reference: dict):
  """Table 1/4 columns of transfer accuracy per dataset (and, for the linear probe, their
  mean), each with the paper's numbers of the dataset."""
  columns = [(_column(results, variants, lambda r, d=d: r[d][probe]["test"], results.transfer),
              reference.get(d, {})) for d in datasets]
  if probe == "linear":
    columns.append((_column(results, variants, lambda r: _mean_linear(r, datasets),
                            results.transfer), {}))
  return columns


_SWEEP_PREFIX = "cosine_softmax_tau"


def _tau(variant: str) -> str:
  """The temperature of a sweep variant as its name spells it ("cosine_softmax_tau0.01")."""
  return variant[len(_SWEEP_PREFIX):]


def _significance_note(table: dict) -> list[str]:
  return (["", "One seed: no significance test (nothing is bold)."]
          if max(collections.Counter(v for v, _ in table).values(), default=0) == 1 else [])


def _num_classes(results: Results) -> Optional[int]:
  """K of the pretraining task, as the runs record it (None when none does)."""
  return next((m["num_classes"] for m in results.pretrain.values()
               if isinstance(m.get("num_classes"), int)), None)


def _cosine_heads(results: Results) -> str:
  """Which cosine softmax head the runs used, from their hparams ("" when none ran)."""
  heads = {bool(m["hparams"]["normalize_features"]) for (v, _), m in results.pretrain.items()
           if v.startswith("cosine_softmax") and "normalize_features" in (m.get("hparams") or {})}
  names = {True: "paper eq. 7 (kernel columns and features L2-normalised)",
           False: "the released head (only the kernel columns L2-normalised)"}
  return ("Cosine softmax head: " + " and ".join(names[h] for h in sorted(heads)) + "."
          if heads else "")


def _sweep_scaling(results: Results, sweep: list[str]) -> str:
  """Whether the temperature sweep's runs scaled the loss by tau, from their hparams."""
  scaled = sorted({float(m["hparams"]["tau"]) for (v, _), m in results.pretrain.items()
                   if v in sweep and (m.get("hparams") or {}).get("scale_loss_by_tau")
                   and float(m["hparams"]["tau"]) < 0.05})
  if scaled:
    return ("Runs with tau < 0.05 (" + ", ".join(f"{t:g}" for t in scaled) + ") multiply the "
            "loss by tau, as the paper did (§3.4, footnote 1).")
  return "No run of the sweep scales the loss by tau (the paper did below 0.05, §3.4)."


def _r2(r):
  return r["class_separation"][resnet.PENULTIMATE]


def _r2_cells(results: Results, variants) -> tuple[dict, dict, list[str]]:
  """Table 3/4 cells of penultimate class separation, per-seed values, and the note on runs
  whose R² is undefined (collapsed features: class_separation.MIN_TOTAL_DISPERSION)."""
  cells = _column(results, variants, _r2, results.representations, scale=1.0, digits=3,
                  mark_best=False)
  values = {v: results.values(v, _r2, results.representations) for v in variants}
  undefined = [v for v in variants
               if any((results.representations[(v, s)].get("class_separation") or {}).get(
                   resnet.PENULTIMATE, 0.0) is None
                      for s in results.seeds_of(v, results.representations))]
  for v in undefined:
    missing = len(results.seeds_of(v, results.representations)) - len(values[v])
    cells[v] = f"{cells[v]} (undefined in {missing} run(s))" if values[v] else "undefined"
  note = ([] if not undefined else [
      "", "Undefined: the penultimate features collapse, total cosine dispersion d_total < "
      f"{class_separation.MIN_TOTAL_DISPERSION:g} (eq. 11's ratio then reads near 1 whatever "
      "the classes); such runs are left out of the means and rank correlations."])
  return cells, values, note


def _correlations(rows_in: list) -> tuple[list[list[str]], dict, dict]:
  """Rows of the rank-correlation table, (relation, runs) -> [(rho, p, n) per seed set] and
  (relation, runs) -> (rho, p, n) on all seeds.

  rows_in: (relation, runs, x, y, sets) with x, y variant -> seed -> value and sets the
  disjoint seed sets of those runs (statistics.seed_sets)."""
  rows, by_set, pooled = [], {}, {}
  for relation, runs, x, y, sets in rows_in:
    seeds = sorted({s for v in x for s in x[v]})
    if not seeds:
      continue
    groups = [("all", tuple(seeds))] + ([(", ".join(map(str, g)), g) for g in sets]
                                        if len(sets) > 1 else [])
    for label, group in groups:
      rho, p, n = statistics.spearman_over_seeds(x, y, group)
      if label == "all":
        pooled[(relation, runs)] = (rho, p, n)
      if label != "all" or len(groups) == 1:
        by_set.setdefault((relation, runs), []).append((rho, p, n))
      rows.append([relation, runs, label, str(n),
                   "–" if math.isnan(rho) else f"{rho:.2f}",
                   "–" if math.isnan(p) else f"{max(p, 1e-16):.3g}"])
  return rows, by_set, pooled


def _plateau_rows(results: Results, variants) -> list[list[str]]:
  """Per variant: epochs trained, final top-1 and its gain over the last quarter of training
  (statistics.plateau_gain of the run's per-epoch top-1), mean ± s.e. over seeds."""
  rows = []
  for v in variants:
    curves = [m.get("top1_curve") for (variant, _), m in sorted(results.pretrain.items())
              if variant == v and len(m.get("top1_curve") or []) > 1]
    if curves:
      gains = [statistics.plateau_gain(c) for c in curves]
      rows.append([v, f"{curves[0][-1][0]:g}",
                   statistics.summarize([c[-1][1] for c in curves]).format(1, 100),
                   statistics.summarize([g for g in gains if not math.isnan(g)]).format(1, 100)])
  return rows


def _robustness(results: Results, objectives, sweep, datasets, r2_values) -> list[str]:
  """The rank correlations with mean linear transfer on each disjoint seed set (class
  separation and pretraining top-1; across objectives and across temperatures), the premise of
  Table 3, and which of the paper's findings the study reproduces."""
  rows_in = []
  for runs, variants in (("objectives", objectives), ("temperatures", sweep)):
    if not variants:
      continue
    transfer = results.by_seed(variants, lambda r: _mean_linear(r, datasets), results.transfer)
    sets = statistics.seed_sets({s for v, s in results.pretrain if v in variants})
    rows_in += [("class separation R²", runs,
                 results.by_seed(variants, _r2, results.representations), transfer, sets),
                ("pretraining top-1", runs, results.by_seed(variants, lambda m: m["top1"]),
                 transfer, sets)]
  rows, by_set, pooled = _correlations(rows_in)
  if not rows:
    return []
  out = ["", "Spearman's rho with mean linear transfer accuracy, on the seed means of all "
         "seeds and of each of two disjoint seed sets (independent runs):", "",
         _table(["relation", "across", "seeds", "n", "rho", "p"], rows)]
  for relation, runs, *_ in rows_in:
    rho, p, _ = pooled.get((relation, runs), (math.nan, math.nan, 0))
    if not math.isnan(rho):
      out += ["", f"{relation[0].upper() + relation[1:]} vs transfer across {runs}: "
              f"rho = {rho:.2f}, p = {max(p, 1e-16):.3g} "
              f"({'negative' if rho < 0 else 'not negative'}; "
              f"{'significant' if p < 0.05 else 'not significant'} at p < 0.05)."]
  # Premise of Table 3: every alternative separates classes more than softmax.
  found, missed = [], []
  means = {o: float(np.mean(v)) for o, v in r2_values.items() if v}
  if "softmax" in means and len(means) > 1:
    above = [o for o in means if o != "softmax" and means[o] > means["softmax"]]
    premise = len(above) == len(means) - 1
    out += ["", f"Premise (Table 3): {len(above)} of {len(means) - 1} alternative objectives "
            f"separate classes more than softmax (R² {means['softmax']:.3f}); the premise "
            f"{'held' if premise else 'did not hold'}."]
    (found if premise else missed).append(
        "every alternative objective separating classes more than softmax")
  out += _above_chance(results, datasets)
  for runs, claim in (("objectives", "across objectives"),
                      ("temperatures", "across cosine softmax temperatures (Table 4)")):
    per_set = by_set.get(("class separation R²", runs))
    if per_set and not all(math.isnan(rho) for rho, _, _ in per_set):  # else: no test
      negative = all(rho < 0 and p < 0.05 for rho, p, _ in per_set)
      (found if negative else missed).append(
          f"a negative rank correlation between class separation and transfer {claim}, "
          "significant (p < 0.05) in " + ("each seed set" if len(per_set) > 1 else
                                          "its only seed set (one seed: not checked on a "
                                          "second)"))
  verdict = []
  if found:
    verdict.append("This study reproduces " + "; ".join(found) + ".")
  if missed:
    verdict.append(("It does not reproduce " if found else "This study does not reproduce ")
                   + "; ".join(missed) + ".")
  return out + ["", "**" + " ".join(verdict) + "**"] if verdict else out


def _above_chance(results: Results, datasets) -> list[str]:
  """Whether every network reads every transfer task above chance (1/K): per task, the lowest
  linear-probe test accuracy over all runs and a one-sided binomial test of it against 1/K
  (a task no network reads cannot tell objectives apart)."""
  cells, every = [], True
  for dataset in datasets:
    records = [by_dataset[dataset] for by_dataset in results.transfer.values()
               if dataset in by_dataset and by_dataset[dataset].get("class_names")]
    if not records:
      continue
    lowest = min(records, key=lambda r: r["linear"]["test"])
    accuracy, chance = lowest["linear"]["test"], 1.0 / len(lowest["class_names"])
    cell = f"{short_label(dataset)} {100 * accuracy:.1f}% (chance {100 * chance:.1f}%"
    if lowest.get("num_test"):
      p = statistics.above_chance_p_value(accuracy, lowest["num_test"],
                                          len(lowest["class_names"]))
      above = p < 0.05
      cell += f", p = {p:.2g})" if p >= 1e-16 else ", p < 1e-16)"
    else:  # a result written without its test-set size: no test
      above = accuracy > chance
      cell += ")"
    every &= above
    cells.append(cell)
  if not cells:
    return []
  return ["", f"Transfer tasks read above chance: the lowest linear-probe accuracy of any "
          f"network, {'; '.join(cells)} (one-sided binomial test against chance); "
          f"{'every' if every else 'not every'} task is read above chance (p < 0.05) by every "
          "network."]


def _separation_and_transfer(results: Results, variants, datasets) -> dict:
  """variant -> (mean penultimate R², mean linear transfer accuracy) over seeds, of the
  variants with both (Figure 5)."""
  r2 = {v: results.values(v, _r2, results.representations) for v in variants}
  transfer = {v: results.values(v, lambda r: _mean_linear(r, datasets), results.transfer)
              for v in variants}
  return {v: (np.mean(r2[v]), np.mean(transfer[v])) for v in variants if r2[v] and transfer[v]}


def _mean_linear(result_by_dataset: dict, datasets: list[str]) -> Optional[float]:
  scores = [result_by_dataset[d]["linear"]["test"] for d in datasets if d in result_by_dataset]
  return float(np.mean(scores)) if len(scores) == len(datasets) and scores else None


def write(workdir: str) -> str:
  """Writes `<workdir>/report/report.md` and its figures; returns the report's path."""
  results = Results(workdir)
  out_dir = io.join(results.workdir, "report")
  fig_dir = io.join(out_dir, "figures")
  study = results.study
  objectives = results.objectives
  datasets = list(study["transfer_datasets"])
  labels = dataset_labels(datasets)
  paper_setting = study["experiment"] == "paper"
  seeds = sorted({s for _, s in results.pretrain})
  num_classes = _num_classes(results)
  top5 = num_classes is None or num_classes > 5
  heads = _cosine_heads(results)
  listed = set()  # dataset specs whose short label has been explained
  sections = [
      f"# {title(study)}",
      "",
      "Reproduction of Kornblith, Chen, Lee & Norouzi, *Why Do Better Loss Functions Lead to "
      "Less Transferable Features?* (NeurIPS 2021). "
      f"Pretraining preset `{study['pretrain_experiment']}` on {_pretraining_data(study)}"
      + (f", {num_classes} classes" if num_classes else "") + "; objectives: "
      f"{', '.join(objectives)}; seeds: {', '.join(map(str, seeds))}; transfer datasets: "
      f"{', '.join(labels[d] for d in datasets) or 'none'}." + (f" {heads}" if heads else ""),
      "",
      "Cells are mean ± standard error over seeds. **Bold**: the best mean of the column and "
      "every objective not significantly different from it (Welch's t-test, p < 0.05); with "
      "one seed no test is possible and nothing is bold.",
  ]
  if paper_setting:
    sections.append("Numbers in parentheses are the paper's (means over 8 ResNet-50 runs; "
                    "Table 2: 3 runs).")

  # Table 1.
  top1_cells = _column(results, objectives, lambda m: m["top1"])
  for probe, name, reference in (
      ("linear", "Linear transfer", paper_numbers.LINEAR_TRANSFER),
      ("knn", "k-nearest neighbours", paper_numbers.KNN_TRANSFER)):
    header = (["objective", "top-1"] + (["top-5"] if top5 else []) +
              [labels[d] for d in datasets] + (["mean"] if probe == "linear" else []))
    columns = [(top1_cells, paper_numbers.IMAGENET_TOP1)]
    if top5:
      columns.append((_column(results, objectives, lambda m: m.get("top5")),
                      paper_numbers.IMAGENET_TOP5))
    columns += _transfer_columns(results, objectives, datasets, probe, reference)
    rows = [[o] + _paper_cells(columns, o, o if paper_setting else None) for o in objectives]
    sections += ["", f"## Table 1 ({name}): pretraining accuracy and transfer with fixed "
                 "features (%)", "", _table(header, rows)]
    sections += _spec_list(labels, listed) + _significance_note(results.pretrain)

  # Table 2.
  if results.finetune:
    ft_datasets = sorted({d for r in results.finetune.values() for d in r})
    ft_labels = dataset_labels(ft_datasets)
    header = ["objective"] + [ft_labels[d] for d in ft_datasets] + ["average"]
    columns = [(_column(results, objectives, lambda r, d=d: r[d]["test"], results.finetune),
                paper_numbers.FINETUNE.get(d, {})) for d in ft_datasets]
    rows = {o: [o] + _paper_cells(columns, o, o if paper_setting else None) for o in objectives}
    scores = {o: {d: results.values(o, lambda r, d=d: r[d]["test"], results.finetune)
                  for d in ft_datasets} for o in objectives}
    marked = statistics.not_worse_than_best_on_average(scores)
    with_data = [o for o in objectives if any(scores[o].values())]
    if len(with_data) < 2 or math.isnan(statistics.anova_p_value(scores[with_data[0]],
                                                                 scores[with_data[1]])):
      marked = set()  # No residual degrees of freedom (one dataset, one seed): no test.
    for o in objectives:
      means = [np.mean(v) for v in scores[o].values() if v]
      cell = f"{100 * np.mean(means):.1f}" if len(means) == len(ft_datasets) else "–"
      if o in marked and cell != "–":
        cell = f"**{cell}**"
      paper = [paper_numbers.FINETUNE.get(d, {}).get(o) for d in ft_datasets]
      if paper_setting and all(v is not None for v in paper):
        cell = _with_paper(cell, f"{np.mean(paper):.1f}")
      rows[o].append(cell)
    sections += ["", "## Table 2: fine-tuning (%)", "",
                 _table(header, [rows[o] for o in objectives]),
                 "", "Average: the mean over datasets; **bold** the best average and every "
                 "objective not significantly different from it by a two-way ANOVA (objective "
                 "x dataset, p < 0.05), as in the paper."]
    sections += _spec_list(ft_labels, listed) + _significance_note(results.finetune)

  # Table 3.
  r2_cells, r2_values, r2_note = _r2_cells(results, objectives)
  header = ["objective", "top-1 (%)", "class separation R²"] + (
      ["paper R²"] if paper_setting else [])
  rows = [[o, top1_cells[o], r2_cells[o]] + (
      [str(paper_numbers.CLASS_SEPARATION.get(o, "–"))] if paper_setting else [])
          for o in objectives]
  sections += ["", "## Table 3: class separation of the penultimate layer "
               f"(R², eq. 11, cosine distance; `{study['class_separation_split']}` split)",
               "", _table(header, rows)] + r2_note

  # Sparsity of the penultimate layer (§3.2, Figure 3).
  sparsity_cells = _column(
      results, objectives, lambda r: r["fraction_nonzero"][resnet.PENULTIMATE],
      results.representations, mark_best=False)
  if any(cell != "–" for cell in sparsity_cells.values()):
    rows = [[o, _with_paper(sparsity_cells[o],
                            paper_numbers.SOFTMAX_PENULTIMATE_NONZERO
                            if paper_setting and o == "softmax" else None)]
            for o in objectives]
    sections += ["", "## Sparsity of the penultimate layer (Figure 3)", "",
                 f"Non-zero activations of `{resnet.PENULTIMATE}` (%) on the "
                 f"`{study.get('analysis_split', 'test')}` split.", "",
                 _table(["objective", "non-zero (%)"], rows)]

  # Learning curves: end points are compared only if top-1 has stopped rising.
  sweep = sorted({v for v, _ in results.pretrain if v.startswith(_SWEEP_PREFIX)},
                 key=lambda v: float(_tau(v)))
  plateau = _plateau_rows(results, objectives + sweep)
  if plateau:
    sections += ["", "## Training curves: top-1 at the end of training", "",
                 "Top-1 (%) after the last epoch and its gain (points) over the last quarter of "
                 "training, from the evaluation after every epoch (TensorBoard: `eval/top1` of "
                 "each run); a gain near 0 means the run ended on its plateau.", "",
                 _table(["run", "epochs", "final top-1", "gain, last 25% of training"],
                        plateau)]

  # Class separation vs transfer (Figure 5a).
  separation = _separation_and_transfer(results, objectives, datasets)
  rho, p = statistics.spearman([r2 for r2, _ in separation.values()],
                               [transfer for _, transfer in separation.values()])
  sections += ["", "## Class separation vs. transfer", ""]
  if math.isnan(rho):
    sections.append("Too few objectives with both class separation and transfer results for "
                    "a rank correlation.")
  else:
    relation = "negative, as in the paper" if rho < 0 else "not negative, unlike the paper"
    significance = "significant" if p < 0.05 else "not significant"
    sections.append(
        f"Spearman's rank correlation between penultimate-layer class separation and mean "
        f"linear transfer accuracy across {len(separation)} objectives: **rho = {rho:.2f}, "
        f"p = {max(p, 1e-16):.2g}** ({relation}; {significance} at p < 0.05). The paper reports "
        f"rho = {paper_numbers.SPEARMAN_RHO}, p = {paper_numbers.SPEARMAN_P} on ImageNet.")
  sections += _robustness(results, objectives, sweep, datasets, r2_values)

  # Table 4.
  if sweep:
    sweep_r2 = _r2_cells(results, sweep)
    header = ["tau", "top-1", "R²"] + [labels[d] for d in datasets] + ["mean"]
    columns = [
        (_column(results, sweep, lambda m: m["top1"]), paper_numbers.TEMPERATURE_TOP1),
        (sweep_r2[0], paper_numbers.TEMPERATURE_R2)]
    columns += _transfer_columns(results, sweep, datasets, "linear",
                                 paper_numbers.TEMPERATURE_LINEAR)
    rows = [[_tau(v)] + _paper_cells(columns, v, float(_tau(v)) if paper_setting else None)
            for v in sweep]
    sections += ["", "## Table 4: cosine softmax temperature", "", _table(header, rows), "",
                 _sweep_scaling(results, sweep)] + sweep_r2[2]
    sections += _spec_list(labels, listed) + _significance_note(
        {k: v for k, v in results.pretrain.items() if k[0] in sweep})

  # Figure 6 as a table too.
  relearn = {o: tuple(results.values(o, lambda r, k=k: r["relearned_head"][k],
                                     results.representations) for k in ("original", "relearned"))
             for o in objectives}
  if any(a for a, _ in relearn.values()):
    rows = [[o, statistics.summarize(a).format(1, 100), statistics.summarize(b).format(1, 100),
             statistics.summarize(r2_values[o]).format(3)] for o, (a, b) in relearn.items()]
    held_out = {r["relearned_head"].get("test_per_class")
                for r in results.representations.values() if "relearned_head" in r}
    held_out.discard(None)
    cut = (f"{held_out.pop()} held-out examples of each class" if len(held_out) == 1
           else "examples held out per class")
    sections += ["", "## Relearning the pretraining head (Figure 6)", "",
                 f"Accuracy (%) on {cut} of the pretraining evaluation split, of the network's "
                 "own head and of a linear head relearned on the rest.", "",
                 _table(["objective", "original head", "relearned head", "R²"], rows)]

  figures = _figures(results, fig_dir, objectives, datasets, separation, (rho, p), sweep,
                     {o: (np.mean(r2_values[o]), np.mean(a), np.mean(b))
                      for o, (a, b) in relearn.items() if a and b and r2_values[o]})
  write_summaries(results, fig_dir, figures)
  sections += ["", "## Figures", ""]
  for name, caption in figures:
    sections += [f"**{caption}**", "", f"![{caption}](figures/{name})", ""]
  sections += ["", "Result files: `results/`; TensorBoard: `tensorboard --logdir "
               f"{io.join(results.workdir, 'runs')}` (each run's study results under "
               f"`{SUMMARY_DIR}`, declared as HParams metrics; CKA figures in `{STUDY_RUN}`)."]
  path = io.join(out_dir, "report.md")
  io.atomic_write_text(path, "\n".join(sections) + "\n")
  return path


# TensorBoard: <run dir>/SUMMARY_DIR holds a run's study results; <workdir>/runs/STUDY_RUN the
# HParams experiment that declares them as metrics, and the CKA figures.
SUMMARY_DIR = "study"
STUDY_RUN = "_study"


def run_scalars(results: Results, variant: str, seed: int) -> dict[str, float]:
  """tag -> value of one run's study results: linear and kNN transfer per dataset, fine-tuning
  per dataset, penultimate sparsity and class separation, the relearned head (fractions)."""
  out = {}
  for dataset, r in sorted(results.transfer.get((variant, seed), {}).items()):
    name = datasets_lib.result_name(short_label(dataset))
    for probe in ("linear", "knn"):
      if isinstance((r.get(probe) or {}).get("test"), (int, float)):
        out[f"transfer/{name}/{probe}"] = float(r[probe]["test"])
  for dataset, r in sorted(results.finetune.get((variant, seed), {}).items()):
    if isinstance(r.get("test"), (int, float)):
      out[f"finetune/{datasets_lib.result_name(short_label(dataset))}"] = float(r["test"])
  rep = results.representations.get((variant, seed)) or {}
  for key, tag in (("fraction_nonzero", "representations/penultimate_nonzero"),
                   ("class_separation", "representations/penultimate_class_separation")):
    value = (rep.get(key) or {}).get(resnet.PENULTIMATE)
    if value is not None:
      out[tag] = float(value)
  for key in ("original", "relearned"):
    value = (rep.get("relearned_head") or {}).get(key)
    if value is not None:
      out[f"relearned_head/{key}"] = float(value)
  return out


def _session_hparams(results: Results, run_dir: str, variant: str, seed: int) -> dict:
  """The hyperparameters the run's HParams session records (trainer.hparams of its config)."""
  if io.exists(io.join(run_dir, config_lib.CONFIG_FILE)):
    from official.training import trainer  # pylint: disable=g-import-not-at-top
    return trainer.hparams(config_lib.read_run_config(run_dir))
  metrics = results.pretrain[(variant, seed)]
  return {"objective": metrics.get("objective", variant.split("_tau")[0]), "seed": seed,
          **(metrics.get("hparams") or {})}


def write_summaries(results: Results, fig_dir: str, figures) -> None:
  """Rewrites the study's TensorBoard summaries: each run's `run_scalars` at step 0 in
  <run dir>/SUMMARY_DIR; in <workdir>/runs/STUDY_RUN the HParams experiment declaring them,
  with the pretraining top-1 and class separation, as metrics (transfer against R², as in the
  paper), and the CKA figures (Figure 2) as images."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.plugins.hparams import api as hp  # pylint: disable=g-import-not-at-top
  runs_dir = io.join(results.workdir, "runs")
  tags, names = set(), set()
  for (variant, seed) in sorted(results.pretrain):
    run_dir = io.join(runs_dir, variant, f"seed{seed}")
    if not io.isdir(run_dir):
      continue
    scalars = run_scalars(results, variant, seed)
    names.update(_session_hparams(results, run_dir, variant, seed))
    summary_dir = io.join(run_dir, SUMMARY_DIR)
    if io.exists(summary_dir):
      io.rmtree(summary_dir)
    writer = tf.summary.create_file_writer(summary_dir)
    with writer.as_default():
      for tag, value in scalars.items():
        tf.summary.scalar(tag, value, step=0)
    writer.close()
    tags.update(scalars)
  if not names:
    return
  study_dir = io.join(runs_dir, STUDY_RUN)
  if io.exists(study_dir):
    io.rmtree(study_dir)
  metrics = [hp.Metric("top1", group="eval", display_name="pretraining top-1"),
             hp.Metric("class_separation", group="eval", display_name="eval class separation")]
  metrics += [hp.Metric(tag, group=SUMMARY_DIR, display_name=tag) for tag in sorted(tags)]
  writer = tf.summary.create_file_writer(study_dir)
  with writer.as_default():
    hp.hparams_config(hparams=[hp.HParam(name) for name in sorted(names)], metrics=metrics)
    for name, _ in figures:
      if name.startswith("fig2"):
        png = io.read_bytes(io.join(fig_dir, name))
        tf.summary.image(f"cka/{name[:-len('.png')]}", tf.io.decode_png(png, channels=4)[None],
                         step=0)
  writer.close()


def readme_markers(experiment: str) -> tuple[str, str]:
  """The README's markers around the results of the study preset `experiment`."""
  return f"<!-- {experiment}-results:begin -->", f"<!-- {experiment}-results:end -->"


README_BEGIN, README_END = readme_markers("demo")
_LINEAR_TABLE = "## Table 1 (Linear transfer)"
_CORRELATION = "## Class separation vs. transfer"
_TABLE4 = "## Table 4: cosine softmax temperature"
_CURVES = "## Training curves"


def _section(report_text: str, heading: str) -> str:
  """The body of the report section whose heading starts with `heading` (to the next one)."""
  lines = report_text.splitlines()
  starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
  if not starts:
    raise ValueError(f"the report has no section {heading!r}; write it with "
                     "experiments/report first")
  body = itertools.takewhile(lambda line: not line.startswith("## "), lines[starts[0] + 1:])
  return "\n".join(body).strip()


def readme_section(report_text: str) -> str:
  """The README's demo results from a report, verbatim: its Table 1 (linear transfer, with
  the table's notes), the learning curves and Table 4 (the temperature sweep) when present,
  and the correlations with transfer on each seed set with what the study reproduces."""
  parts = [_LINEAR_TABLE] + [h for h in (_CURVES, _TABLE4) if h in report_text] + [
      _CORRELATION]
  return "\n\n".join(f"**{heading[3:]}**\n\n{_section(report_text, heading)}"
                       if heading != _LINEAR_TABLE else _section(report_text, heading)
                       for heading in parts)


def update_readme(readme_path: str, report_path: str, experiment: str = "demo") -> None:
  """Replaces the text between the `readme_markers(experiment)` in `readme_path` with
  readme_section of the report at `report_path` (atomically).

  Raises:
    ValueError: the README lacks the two markers (in order) or the report lacks a section.
  """
  text = io.read_text(readme_path)
  begin_marker, end_marker = readme_markers(experiment)
  begin, end = text.find(begin_marker), text.find(end_marker)
  if begin < 0 or end < begin:
    raise ValueError(f"{readme_path} has no {begin_marker} ... {end_marker} markers (in this "
                     f"order) around the {experiment} study's results")
  section = readme_section(io.read_text(report_path))
  io.atomic_write_text(readme_path, text[:begin + len(begin_marker)] + "\n" + section +
                       "\n" + text[end:])


def _figures(results, fig_dir, objectives, datasets, separation, spearman, sweep, heads):
  """Draws Figures 1-6 of the study (official.analysis.plots) into `fig_dir`; returns
  [(file name, caption)] of those with data. `separation`: Figure 5's points of the
  objectives, with their Spearman (rho, p); `heads`: Figure 6's points."""
  made = []

  def draw(name: str, caption: str, plot, *args, **kwargs) -> None:
    plot(*args, dpi=110, path=io.join(fig_dir, name), **kwargs)
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
      # Undefined values (None, as NaN: collapsed features) are left out of the mean.
      means = {o: np.array([[r[key][e] for e in ends] for r in rs], float)
               for o, rs in runs.items()}
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all seeds undefined: NaN
        means = {o: np.nanmean(m, axis=0) for o, m in means.items()}
      draw(name, caption, plot, means, ends, title=caption)

  rho, p = spearman
  sweep_points = {_tau(v): point
                  for v, point in _separation_and_transfer(results, sweep, datasets).items()}
  draw("fig5_separation_vs_transfer.png",
       "Figure 5: class separation vs mean linear transfer accuracy",
       plots.separation_vs_transfer_plot, separation,
       subtitle="" if math.isnan(rho) else f"Spearman rho = {rho:.2f}, p = {p:.3g}",
       sweep=sweep_points if sweep else None, sweep_title="cosine softmax temperatures",
       title="Figure 5: class separation vs transfer")
  if heads:
    draw("fig6_relearned_head.png", "Figure 6: original vs relearned head",
         plots.relearned_head_plot, heads, title="Figure 6: relearning the pretraining head")
  return made
