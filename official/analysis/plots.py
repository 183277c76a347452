"""Every figure of the project (paper Figures 1-6), rendered with matplotlib's Agg.

Every function takes arrays or {name: values} mappings, draws on a figure of `figsize` inches
(or `panel_size` inches per panel) at `dpi` (a PNG of exactly that many pixels) with the
figure title `title`, and returns the PNG bytes; with `path` it also writes them atomically
(official.core.io). No global pyplot state is used, so figures can be drawn from threads.
"""

import io as _io
from typing import Any, Mapping, Optional, Sequence

from matplotlib.backends import backend_agg
from matplotlib import figure as figure_lib
import numpy as np

from official.core import io

CKA_COLORMAP = "magma"


def _check_figure_args(figsize: Sequence[float], dpi: int) -> None:
  if len(figsize) != 2 or not all(float(s) > 0 for s in figsize):
    raise ValueError(f"figsize: got {figsize!r}; expected (width, height) in inches, both > 0")
  if int(dpi) != dpi or dpi < 1:
    raise ValueError(f"dpi: got {dpi!r}; expected a positive integer")


def _new_figure(figsize: Sequence[float], dpi: int) -> figure_lib.Figure:
  _check_figure_args(figsize, dpi)
  fig = figure_lib.Figure(figsize=tuple(float(s) for s in figsize), dpi=int(dpi),
                          layout="constrained")
  backend_agg.FigureCanvasAgg(fig)
  return fig


def _png(fig: figure_lib.Figure, dpi: int, path: Optional[str]) -> bytes:
  """PNG bytes of `fig` at its full canvas size (no tight cropping), written to `path`."""
  buffer = _io.BytesIO()
  fig.savefig(buffer, format="png", dpi=int(dpi))
  data = buffer.getvalue()
  if path:
    io.atomic_write_bytes(path, data)
  return data


def _matrix(values: Any, name: str) -> np.ndarray:
  """`values` as a float64 matrix; NumPy reads None entries as NaN."""
  try:
    matrix = np.asarray(values, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{name}: cannot be read as a matrix of numbers; expected a 2-D array "
                     "(None entries become NaN)") from None
  if matrix.ndim != 2 or 0 in matrix.shape:
    raise ValueError(f"{name}: has shape {matrix.shape}; expected a non-empty 2-D array")
  return matrix


def _cka_panels(panels: Mapping[str, Any], shape: tuple[int, int], name: str,
                what: str) -> dict[str, np.ndarray]:
  """Each panel's CKA matrix (None -> NaN), checked to be `shape`: one row and column per
  `what`."""
  checked = {}
  for key, values in panels.items():
    matrix = _matrix(values, f"{name}[{key!r}]")
    if matrix.shape != shape:
      raise ValueError(f"{name}[{key!r}]: has shape {matrix.shape}; expected "
                       f"[{shape[0]}, {shape[1]}], one row and column per {what}")
    checked[key] = matrix
  return checked


def _tick_labels(ax, labels: Sequence[str], axis: str) -> None:
  positions = np.arange(len(labels))
  small = 7 if len(labels) > 10 else 8
  if axis == "x":
    ax.set_xticks(positions, labels=list(labels), rotation=90, fontsize=small)
  else:
    ax.set_yticks(positions, labels=list(labels), fontsize=small)


def cka_heatmap(cka: Any, *, row_labels: Sequence[str], column_labels: Sequence[str],
                row_title: str = "", column_title: str = "", title: str = "",
                figsize: Sequence[float] = (5.0, 4.5), dpi: int = 100,
                path: Optional[str] = None) -> bytes:
  """Figure 2a: heatmap of CKA [L1, L2] between the endpoints of networks A (rows, bottom to
  top) and B (columns), on a fixed [0, 1] colour scale; NaN or None (undefined) is blank."""
  matrix = _matrix(cka, "cka")
  if len(row_labels) != matrix.shape[0] or len(column_labels) != matrix.shape[1]:
    raise ValueError(f"row_labels, column_labels: {len(row_labels)} and {len(column_labels)} "
                     f"labels for a CKA matrix of shape {matrix.shape}; expected one per row "
                     "and column")
  fig = _new_figure(figsize, dpi)
  _draw_cka(fig, fig.add_subplot(), matrix, row_labels, column_labels, row_title, column_title,
            title)
  return _png(fig, dpi, path)


def _draw_cka(fig, ax, matrix: np.ndarray, row_labels: Sequence[str],
              column_labels: Sequence[str], row_title: str, column_title: str, title: str,
              fontsize: int = 10) -> None:
  image = ax.imshow(np.ma.masked_invalid(matrix), origin="lower", cmap=CKA_COLORMAP,
                    vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
  _tick_labels(ax, column_labels, "x")
  _tick_labels(ax, row_labels, "y")
  ax.set_xlabel(column_title, fontsize=fontsize - 2)
  ax.set_ylabel(row_title, fontsize=fontsize - 2)
  if title:
    ax.set_title(title, fontsize=fontsize)
  fig.colorbar(image, ax=ax, label="CKA")


def cka_heatmap_grid(blocks: Mapping[str, Any], *, row_labels: Sequence[str],
                     column_labels: Sequence[str], row_titles: Sequence[str],
                     column_titles: Sequence[str], title: str = "", columns: int = 3,
                     panel_size: Sequence[float] = (3.6, 3.4), dpi: int = 100,
                     path: Optional[str] = None) -> bytes:
  """Figure 2a for several pairs: `blocks` (panel title -> [L1, L2] CKA) as `cka_heatmap`
  panels, `columns` a row, with per-panel axis titles."""
  if not isinstance(blocks, Mapping) or not blocks:
    raise ValueError("blocks: expected a non-empty mapping panel title -> CKA matrix")
  if len(row_titles) != len(blocks) or len(column_titles) != len(blocks):
    raise ValueError(f"row_titles, column_titles: {len(row_titles)} and {len(column_titles)} "
                     f"titles for {len(blocks)} panels; expected one per panel")
  matrices = list(_cka_panels(blocks, (len(row_labels), len(column_labels)), "blocks",
                              "label").values())
  _check_figure_args(panel_size, dpi)
  columns = max(1, min(int(columns), len(matrices)))
  rows = -(-len(matrices) // columns)
  fig = _new_figure((columns * float(panel_size[0]), rows * float(panel_size[1])), dpi)
  axes = list(fig.subplots(rows, columns, squeeze=False).flat)
  for ax, matrix, name, row_title, column_title in zip(axes, matrices, blocks, row_titles,
                                                        column_titles):
    _draw_cka(fig, ax, matrix, row_labels, column_labels, row_title, column_title, name, 9)
  for ax in axes[len(matrices):]:
    ax.axis("off")
  if title:
    fig.suptitle(title, fontsize=10)
  return _png(fig, dpi, path)


def corresponding_cka_heatmaps(matrices: Mapping[str, Any], model_names: Sequence[str], *,
                               title: str = "", panel_size: Sequence[float] = (3.4, 3.2),
                               dpi: int = 100, path: Optional[str] = None) -> bytes:
  """Figure 2b: `matrices`, endpoint e -> [M, M] CKA(network a's e, network b's e), one panel
  each; the figure is 0.9 inch wider than its panels, for the colour bar."""
  if not isinstance(matrices, Mapping) or not matrices:
    raise ValueError("matrices: expected a non-empty mapping endpoint -> [M, M] CKA matrix")
  checked = _cka_panels(matrices, (len(model_names), len(model_names)), "matrices",
                        "model name")
  _check_figure_args(panel_size, dpi)
  width, height = float(panel_size[0]), float(panel_size[1])
  fig = _new_figure((len(checked) * width + 0.9, height), dpi)
  axes = fig.subplots(1, len(checked), squeeze=False)[0]
  image = None
  for i, (ax, (endpoint, matrix)) in enumerate(zip(axes, checked.items())):
    image = ax.imshow(np.ma.masked_invalid(matrix), origin="upper", cmap=CKA_COLORMAP,
                      vmin=0.0, vmax=1.0, interpolation="nearest")
    _tick_labels(ax, model_names, "x")
    if i == 0:
      _tick_labels(ax, model_names, "y")
    else:
      ax.set_yticks(np.arange(len(model_names)), labels=[])
    ax.set_title(endpoint, fontsize=10)
  fig.colorbar(image, ax=list(axes), label="CKA")
  if title:
    fig.suptitle(title, fontsize=10)
  return _png(fig, dpi, path)


def stage_boundaries(shapes: Sequence[Sequence[int]]) -> list[int]:
  """Indices i where endpoint i starts a new stage: its per-example shape differs from i-1's
  (ResNet-50's block1..block16, final_avg_pool: [3, 7, 13, 16])."""
  shapes = [tuple(int(d) for d in s) for s in shapes]
  return [i for i in range(1, len(shapes)) if shapes[i] != shapes[i - 1]]


def _per_endpoint_lines(values: Mapping[str, Any], endpoints: Sequence[str],
                        name: str) -> dict[str, np.ndarray]:
  """{model: [len(endpoints)] float array} from {model: {endpoint: v}} or {model: [v...]}."""
  if not isinstance(values, Mapping) or not values:
    raise ValueError(f"{name}: expected a non-empty mapping model -> {{endpoint: value}}")
  if not endpoints:
    raise ValueError("endpoints: expected at least one endpoint name")
  lines = {}
  for model, per_endpoint in values.items():
    if isinstance(per_endpoint, Mapping):
      missing = [e for e in endpoints if e not in per_endpoint]
      if missing:
        raise ValueError(f"{name}[{model!r}]: has no value for endpoint {missing[0]!r}; "
                         f"expected one for each of {', '.join(endpoints)}")
      row = [per_endpoint[e] for e in endpoints]
    else:
      row = list(per_endpoint)
      if len(row) != len(endpoints):
        raise ValueError(f"{name}[{model!r}]: has {len(row)} values; expected one per "
                         f"endpoint ({len(endpoints)})")
    lines[model] = np.asarray(row, dtype=np.float64)
  return lines


def _endpoint_curves(lines: Mapping[str, np.ndarray], endpoints: Sequence[str], *,
                     ylabel: str, title: str, ylim: Optional[tuple[float, float]],
                     boundaries: Sequence[int], figsize: Sequence[float], dpi: int,
                     path: Optional[str]) -> bytes:
  fig = _new_figure(figsize, dpi)
  ax = fig.add_subplot()
  x = np.arange(len(endpoints))
  for model, row in lines.items():
    ax.plot(x, row, marker="o", markersize=3, linewidth=1.2, label=model)
  for boundary in boundaries:
    if not 0 < int(boundary) < len(endpoints):
      raise ValueError(f"stage_boundaries: {boundary!r} is not an endpoint index in "
                       f"[1, {len(endpoints) - 1}]")
    ax.axvline(int(boundary) - 0.5, color="0.5", linestyle="--", linewidth=0.8)
  _tick_labels(ax, endpoints, "x")
  ax.set_xlim(-0.5, len(endpoints) - 0.5)
  if ylim is not None:
    ax.set_ylim(*ylim)
  ax.set_ylabel(ylabel)
  if title:
    ax.set_title(title, fontsize=10)
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=7, loc="best", ncol=2 if len(lines) > 6 else 1)
  return _png(fig, dpi, path)


def sparsity_plot(sparsity: Mapping[str, Any], endpoints: Sequence[str], *,
                  stage_boundaries: Sequence[int] = (), title: str = "",  # pylint: disable=redefined-outer-name
                  figsize: Sequence[float] = (7.0, 4.0), dpi: int = 100,
                  path: Optional[str] = None) -> bytes:
  """Figure 3: % non-zero activations per endpoint, one line per network; `sparsity`: model ->
  {endpoint: fraction} (or a list); a dashed line before each of `stage_boundaries`."""
  lines = _per_endpoint_lines(sparsity, endpoints, "sparsity")
  return _endpoint_curves({m: 100.0 * v for m, v in lines.items()}, endpoints,
                          ylabel="% non-zero activations", title=title, ylim=(0.0, 100.0),
                          boundaries=stage_boundaries, figsize=figsize, dpi=dpi, path=path)


def class_separation_plot(class_separation: Mapping[str, Any], endpoints: Sequence[str], *,
                          stage_boundaries: Sequence[int] = (), title: str = "",  # pylint: disable=redefined-outer-name
                          figsize: Sequence[float] = (7.0, 4.0), dpi: int = 100,
                          path: Optional[str] = None) -> bytes:
  """Figure 4: class separation R^2 (eq. 11) per endpoint, as `sparsity_plot`."""
  lines = _per_endpoint_lines(class_separation, endpoints, "class_separation")
  return _endpoint_curves(lines, endpoints, ylabel="class separation $R^2$", title=title,
                          ylim=None, boundaries=stage_boundaries, figsize=figsize, dpi=dpi,
                          path=path)


def _legend_once(ax) -> None:
  handles, labels = ax.get_legend_handles_labels()
  unique = dict(zip(labels, handles))
  if unique:
    ax.legend(unique.values(), unique.keys(), fontsize=6)


def accuracy_vs_transfer_plot(points: Mapping[str, Sequence[tuple[float, float]]], *,
                              title: str = "", figsize: Sequence[float] = (5.0, 4.0),
                              dpi: int = 100, path: Optional[str] = None) -> bytes:
  """Figure 1: `points`, objective -> [(top-1, mean linear transfer)] fractions per run."""
  fig = _new_figure(figsize, dpi)
  ax = fig.add_subplot()
  for i, (objective, runs) in enumerate(points.items()):
    for top1, transfer in runs:
      ax.scatter(100 * top1, 100 * transfer, color=f"C{i % 10}", label=objective, s=25)
  _legend_once(ax)
  ax.set_xlabel("pretraining top-1 (%)")
  ax.set_ylabel("mean linear transfer (%)")
  if title:
    ax.set_title(title, fontsize=10)
  return _png(fig, dpi, path)


def separation_vs_transfer_plot(points: Mapping[str, tuple[float, float]], *,
                                subtitle: str = "",
                                sweep: Optional[Mapping[str, tuple[float, float]]] = None,
                                sweep_title: str = "", title: str = "",
                                panel_size: Sequence[float] = (5.0, 4.0), dpi: int = 100,
                                path: Optional[str] = None) -> bytes:
  """Figure 5: `points`, objective -> (R^2, mean linear transfer fraction); with `sweep`
  (label -> the same) a second panel of labelled points (the temperatures)."""
  _check_figure_args(panel_size, dpi)
  panels = 2 if sweep else 1
  fig = _new_figure((panels * float(panel_size[0]), float(panel_size[1])), dpi)
  axes = fig.subplots(1, panels, squeeze=False)[0]
  for i, (objective, (r2, transfer)) in enumerate(points.items()):
    axes[0].scatter(r2, 100 * transfer, color=f"C{i % 10}", label=objective)
  _legend_once(axes[0])
  axes[0].set_ylabel("mean linear transfer (%)")
  if subtitle:
    axes[0].set_title(subtitle, fontsize=9)
  if sweep:
    for label, (r2, transfer) in sweep.items():
      axes[1].scatter(r2, 100 * transfer)
      axes[1].annotate(label, (r2, 100 * transfer), fontsize=7)
    axes[1].set_title(sweep_title, fontsize=9)
  for ax in axes:
    ax.set_xlabel("class separation $R^2$")
  if title:
    fig.suptitle(title, fontsize=10)
  return _png(fig, dpi, path)


def relearned_head_plot(points: Mapping[str, tuple[float, float, float]], *, title: str = "",
                        figsize: Sequence[float] = (5.0, 4.0), dpi: int = 100,
                        path: Optional[str] = None) -> bytes:
  """Figure 6: `points`, objective -> (R^2, own head's and relearned head's accuracy)."""
  fig = _new_figure(figsize, dpi)
  ax = fig.add_subplot()
  for r2, original, relearned in points.values():
    ax.plot([r2, r2], [100 * original, 100 * relearned], color="grey", lw=0.8)
    ax.scatter(r2, 100 * original, color="tab:blue")
    ax.scatter(r2, 100 * relearned, color="tab:orange")
  ax.scatter([], [], color="tab:blue", label="original head")
  ax.scatter([], [], color="tab:orange", label="relearned head")
  ax.legend(fontsize=7)
  ax.set_xlabel("class separation $R^2$")
  ax.set_ylabel("accuracy (%)")
  if title:
    ax.set_title(title, fontsize=10)
  return _png(fig, dpi, path)
