"""Statistics of the study's tables: mean ± standard error over seeds, Welch's t-test
against the best objective of a column (paper: bold = not significantly different from the
best, p < 0.05), the two-way ANOVA behind the average column of Table 2 and Spearman's rank
correlation (paper §3.4)."""

import dataclasses
import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class Summary:
  """Mean and standard error of the mean over runs (seeds)."""
  mean: float
  stderr: float
  n: int

  def format(self, digits: int = 1, scale: float = 1.0) -> str:
    if self.n == 0 or math.isnan(self.mean):
      return "–"
    text = f"{self.mean * scale:.{digits}f}"
    if self.n > 1:
      text += f" ± {self.stderr * scale:.{digits}f}"
    return text


def summarize(values: Sequence[float]) -> Summary:
  values = np.asarray([v for v in values if v is not None], dtype=np.float64)
  if values.size == 0:
    return Summary(float("nan"), float("nan"), 0)
  stderr = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0
  return Summary(float(values.mean()), stderr, int(values.size))


def welch_p_value(a: Sequence[float], b: Sequence[float]) -> float:
  """Two-sided Welch t-test p-value; 1.0 when it is undefined and the means agree."""
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.size < 2 or b.size < 2:
    return float("nan")
  if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
    return 1.0 if a.mean() == b.mean() else 0.0
  with warnings.catch_warnings():
    # Near-identical values (e.g. two seeds at the same accuracy) make SciPy warn about
    # precision loss in the variance; the p-value it returns is still the test's.
    warnings.simplefilter("ignore", RuntimeWarning)
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _best_and_ties(rows: Mapping, best: str, p_value, alpha: float) -> set[str]:
  """`best` and every other row whose test against it, p_value(rows[best], rows[row]), gives
  p >= alpha (an undefined, NaN, p: not marked)."""
  return {best} | {name for name in rows if name != best
                   and p_value(rows[best], rows[name]) >= alpha}


def not_worse_than_best(columns: Mapping[str, Sequence[float]], *, higher_is_better: bool = True,
                        alpha: float = 0.05) -> set[str]:
  """The rows of one column (row name -> per-seed values) to mark: the best mean and every row
  Welch's t-test does not tell from it at `alpha`. With fewer than two runs per row no test is
  possible and only the best row is marked."""
  rows = {k: list(v) for k, v in columns.items() if len(v)}
  if not rows:
    return set()
  sign = 1.0 if higher_is_better else -1.0
  best = max(rows, key=lambda k: sign * float(np.mean(rows[k])))
  return _best_and_ties(rows, best, welch_p_value, alpha)


def anova_p_value(a: Mapping[str, Sequence[float]], b: Mapping[str, Sequence[float]]) -> float:
  """p-value of the objective factor in a two-way ANOVA (objective x dataset) of two
  objectives' scores (a, b: dataset -> per-seed scores): paper Table 2's average column.

  The additive model of docs/protocol.md §7 item 7 on the datasets both have; its residual
  pools the seed-to-seed and the dataset-to-dataset variation of the difference. NaN with no
  residual degree of freedom; 1.0 (0.0) when every residual is zero and the objective means
  agree (differ).
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top
  from statsmodels.formula import api as smf  # pylint: disable=g-import-not-at-top
  from statsmodels.stats import anova  # pylint: disable=g-import-not-at-top
  rows = []
  for dataset in sorted(set(a) & set(b)):
    for name, scores in (("a", a[dataset]), ("b", b[dataset])):
      rows += [(name, dataset, float(v)) for v in scores if v is not None]
  frame = pd.DataFrame(rows, columns=["objective", "dataset", "score"])
  if frame.empty or frame["objective"].nunique() < 2:
    return float("nan")
  datasets = frame["dataset"].nunique()
  residual_dof = len(frame) - 1 - 1 - (datasets - 1)
  if residual_dof < 1:
    return float("nan")
  formula = "score ~ C(objective)" + (" + C(dataset)" if datasets > 1 else "")
  fit = smf.ols(formula, data=frame).fit()
  if fit.ssr <= 1e-12 * max(1.0, float((frame["score"] ** 2).sum())):
    means = frame.groupby("objective")["score"].mean()
    return 1.0 if math.isclose(means["a"], means["b"]) else 0.0
  table = anova.anova_lm(fit, typ=2)
  return float(table.loc["C(objective)", "PR(>F)"])


def not_worse_than_best_on_average(
    scores: Mapping[str, Mapping[str, Sequence[float]]], *, alpha: float = 0.05) -> set[str]:
  """Rows of Table 2's average column to mark (scores: objective -> dataset -> per-seed
  scores, higher is better): the best mean over datasets and every objective whose two-way
  ANOVA against it (anova_p_value) gives p >= alpha; with no residual degrees of freedom no
  test is possible and only the best is marked."""
  rows = {o: {d: [v for v in vs if v is not None] for d, vs in by_dataset.items()}
          for o, by_dataset in scores.items()}
  rows = {o: {d: vs for d, vs in r.items() if vs} for o, r in rows.items()}
  rows = {o: r for o, r in rows.items() if r}
  if not rows:
    return set()

  def average(o):
    return float(np.mean([np.mean(vs) for vs in rows[o].values()]))

  return _best_and_ties(rows, max(rows, key=average), anova_p_value, alpha)


# Up to this many points Spearman's p is exact (all 9! permutations of the ranks): there the t
# approximation is far off (n = 5, rho = 1: 1e-24 for the exact 2 / 5! = 0.017).
SPEARMAN_EXACT_MAX = 9


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
  """Spearman's rank correlation rho and its two-sided p-value (exact up to
  SPEARMAN_EXACT_MAX points, else the t approximation)."""
  if len(x) != len(y):
    raise ValueError(f"spearman: x and y differ in length ({len(x)} vs {len(y)})")
  if len(x) < 3:
    return float("nan"), float("nan")
  result = stats.spearmanr(x, y)
  if len(x) > SPEARMAN_EXACT_MAX:
    return float(result.statistic), float(result.pvalue)
  rank_x = stats.rankdata(x) - (len(x) + 1) / 2

  def rho(rank_y, axis=-1):  # Pearson's r of the ranks, for a batch of permuted rank_y rows
    del axis
    centred = rank_y - rank_y.mean(axis=-1, keepdims=True)
    return centred @ rank_x / np.sqrt(np.sum(centred**2, axis=-1) * np.sum(rank_x**2))

  exact = stats.permutation_test((stats.rankdata(y),), rho, permutation_type="pairings",
                                 n_resamples=np.inf, vectorized=True)
  return float(result.statistic), float(exact.pvalue)


def seed_sets(seeds: Sequence[int]) -> list[tuple[int, ...]]:
  """Two disjoint halves of the sorted seeds ({0, 1} -> {0}, {1}; {0..3} -> {0, 1}, {2, 3}),
  for checking that a conclusion holds on independent runs; one set with a single seed."""
  seeds = sorted(set(seeds))
  if len(seeds) < 2:
    return [tuple(seeds)]
  half = len(seeds) // 2
  return [tuple(seeds[:half]), tuple(seeds[half:2 * half])]


def spearman_over_seeds(x: Mapping[str, Mapping[int, float]],
                        y: Mapping[str, Mapping[int, float]],
                        seeds: Sequence[int]) -> tuple[float, float, int]:
  """Spearman's rho and p across variants (objectives or temperatures) of their means over
  `seeds`: x[variant][seed], y[variant][seed]. A variant counts when both x and y have a value
  for every seed of `seeds`. Returns (rho, p, number of variants)."""
  usable = [v for v in x if v in y and all(s in x[v] and s in y[v] for s in seeds)]
  rho, p = spearman([float(np.mean([x[v][s] for s in seeds])) for v in usable],
                    [float(np.mean([y[v][s] for s in seeds])) for v in usable])
  return rho, p, len(usable)


def plateau_gain(curve: Sequence[Sequence[float]], last_fraction: float = 0.25) -> float:
  """How much a learning curve, (epoch, value) pairs in increasing epoch order, still rose at
  its end: the last value minus the value of the last evaluation at or before
  (1 - last_fraction) of the final epoch; NaN when no evaluation precedes that."""
  if not 0.0 < last_fraction < 1.0:
    raise ValueError(f"last_fraction: {last_fraction}; valid is a number in (0, 1)")
  if not curve:
    return float("nan")
  cut = (1.0 - last_fraction) * curve[-1][0]
  before = [value for epoch, value in curve if epoch <= cut + 1e-9]
  return float(curve[-1][1] - before[-1]) if before else float("nan")


def above_chance_p_value(accuracy: float, num_examples: int, num_classes: int) -> float:
  """One-sided exact binomial test that a classifier with `accuracy` on `num_examples` test
  examples of `num_classes` classes reads the task better than chance (1 / num_classes): the
  probability of at least round(accuracy * num_examples) correct answers by guessing."""
  if num_examples < 1 or num_classes < 2 or not 0.0 <= accuracy <= 1.0:
    raise ValueError(f"above_chance_p_value: accuracy {accuracy} on {num_examples} examples "
                     f"of {num_classes} classes; valid is an accuracy in [0, 1], at least one "
                     "example and two classes")
  correct = int(round(accuracy * num_examples))
  return float(stats.binomtest(correct, num_examples, 1.0 / num_classes,
                               alternative="greater").pvalue)
