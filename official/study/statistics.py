"""Statistics of the study's tables: mean ± standard error over seeds, Welch's t-test
against the best objective of a column (paper: bold = not significantly different from the
best, p < 0.05) and Spearman's rank correlation (paper §3.4)."""

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


def not_worse_than_best(columns: Mapping[str, Sequence[float]], *, higher_is_better: bool = True,
                        alpha: float = 0.05) -> set[str]:
  """Rows whose values are the best mean or not significantly different from it.

  Args:
    columns: row name -> per-seed values of one table column.
    higher_is_better: whether the best row has the largest mean.
    alpha: significance level of Welch's t-test.

  Returns:
    The set of row names to mark (the best row is always in it). With fewer than two runs per
    row no test is possible and only the best row is marked.
  """
  rows = {k: list(v) for k, v in columns.items() if len(v)}
  if not rows:
    return set()
  sign = 1.0 if higher_is_better else -1.0
  best = max(rows, key=lambda k: sign * float(np.mean(rows[k])))
  marked = {best}
  for name, values in rows.items():
    if name == best:
      continue
    p = welch_p_value(rows[best], values)
    if not math.isnan(p) and p >= alpha:
      marked.add(name)
  return marked


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
  """Spearman's rank correlation rho and its two-sided p-value."""
  if len(x) != len(y):
    raise ValueError(f"spearman: x and y differ in length ({len(x)} vs {len(y)})")
  if len(x) < 3:
    return float("nan"), float("nan")
  result = stats.spearmanr(x, y)
  return float(result.statistic), float(result.pvalue)
