"""Tests for the figures of the paper (Figures 1-6)."""

import io as _io
import os

from absl.testing import absltest
from absl.testing import parameterized
from matplotlib import colormaps
import numpy as np
from PIL import Image

from official.analysis import plots

ENDPOINTS = [f"block{i}" for i in range(1, 9)] + ["final_avg_pool"]
# Matplotlib's first line colour (tab:blue).
FIRST_LINE_RGB = np.array([31, 119, 180])


def _image(png: bytes) -> np.ndarray:
  """RGB array [H, W, 3] of PNG bytes (checked to be a PNG)."""
  assert png[:8] == b"\x89PNG\r\n\x1a\n"
  return np.asarray(Image.open(_io.BytesIO(png)).convert("RGB")).astype(np.int64)


def _colour_mask(image: np.ndarray, rgb: np.ndarray, tolerance: int = 12) -> np.ndarray:
  return np.all(np.abs(image - rgb) <= tolerance, axis=-1)


def _rgb(colormap: str, value: float) -> np.ndarray:
  return np.round(255 * np.asarray(colormaps[colormap](value)[:3])).astype(np.int64)


class CkaHeatmapTest(parameterized.TestCase):

  @parameterized.parameters(((5.0, 4.5), 100), ((3.0, 2.0), 50))
  def test_png_of_the_requested_pixel_size(self, figsize, dpi):
    png = plots.cka_heatmap(np.random.RandomState(0).uniform(size=(4, 3)),
                            row_labels=["a", "b", "c", "d"], column_labels=["x", "y", "z"],
                            row_title="A", column_title="B", figsize=figsize, dpi=dpi)
    image = Image.open(_io.BytesIO(png))
    self.assertEqual(image.format, "PNG")
    self.assertEqual(image.size, (round(figsize[0] * dpi), round(figsize[1] * dpi)))

  def test_values_map_to_the_fixed_colour_scale(self):
    # All-ones CKA paints the heatmap in the top colour of the scale; all-zeros in the bottom
    # one. The colour bar shows both colours in either figure, in a small area.
    top, bottom = _rgb(plots.CKA_COLORMAP, 1.0), _rgb(plots.CKA_COLORMAP, 0.0)
    labels = ENDPOINTS[:5]
    ones = _image(plots.cka_heatmap(np.ones((5, 5)), row_labels=labels, column_labels=labels))
    zeros = _image(plots.cka_heatmap(np.zeros((5, 5)), row_labels=labels,
                                     column_labels=labels))
    pixels = ones.shape[0] * ones.shape[1]
    self.assertGreater(_colour_mask(ones, top).sum(), 0.2 * pixels)
    self.assertLess(_colour_mask(ones, bottom).sum(), 0.02 * pixels)
    self.assertGreater(_colour_mask(zeros, bottom).sum(), 0.2 * pixels)
    self.assertLess(_colour_mask(zeros, top).sum(), 0.02 * pixels)
    # Undefined CKA (None / NaN) is left blank rather than coloured.
    blank = _image(plots.cka_heatmap([[None] * 5] * 5, row_labels=labels, column_labels=labels))
    self.assertLess(_colour_mask(blank, top).sum(), 0.02 * pixels)
    self.assertLess(_colour_mask(blank, bottom).sum(), 0.02 * pixels)

  def test_writes_the_returned_bytes(self):
    path = os.path.join(self.create_tempdir().full_path, "figs", "fig2a.png")
    png = plots.cka_heatmap(np.eye(3), row_labels=list("abc"), column_labels=list("abc"),
                            path=path)
    with open(path, "rb") as f:
      self.assertEqual(f.read(), png)

  def test_label_count_must_match(self):
    with self.assertRaisesRegex(ValueError, r"^row_labels, column_labels: 2 and 3 labels"):
      plots.cka_heatmap(np.eye(3), row_labels=["a", "b"], column_labels=list("abc"))
    with self.assertRaisesRegex(ValueError, r"^cka: has shape \(3,\)"):
      plots.cka_heatmap(np.ones(3), row_labels=list("abc"), column_labels=list("abc"))


class CorrespondingCkaTest(absltest.TestCase):

  def test_one_panel_per_endpoint(self):
    matrices = {e: np.eye(3) for e in ENDPOINTS[-2:]}
    png = plots.corresponding_cka_heatmaps(matrices, ["a", "b", "c"], panel_size=(3.0, 2.5),
                                           dpi=80)
    self.assertEqual(Image.open(_io.BytesIO(png)).size,
                     (round((2 * 3.0 + 0.9) * 80), round(2.5 * 80)))
    # Identity matrices: a third of each panel is the top colour, two thirds the bottom one.
    image = _image(png)
    top = _colour_mask(image, _rgb(plots.CKA_COLORMAP, 1.0)).sum()
    bottom = _colour_mask(image, _rgb(plots.CKA_COLORMAP, 0.0)).sum()
    self.assertAlmostEqual(bottom / top, 2.0, delta=0.3)

  def test_matrix_shape_must_match_the_names(self):
    with self.assertRaisesRegex(ValueError, r"^matrices\['block1'\]: has shape \(2, 2\)"):
      plots.corresponding_cka_heatmaps({"block1": np.eye(2)}, ["a", "b", "c"])
    with self.assertRaisesRegex(ValueError, "^matrices: expected a non-empty mapping"):
      plots.corresponding_cka_heatmaps({}, ["a"])


class StageBoundariesTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("resnet50", (3, 4, 6, 3), (56, 256), [3, 7, 13, 16]),
      ("resnet18", (2, 2, 2, 2), (8, 16), [2, 4, 6, 8]))
  def test_resnet_stages(self, blocks, first, expected):
    size, channels = first
    shapes = []
    for group, count in enumerate(blocks):
      shapes += [(size >> group, size >> group, channels << group)] * count
    shapes.append((channels << (len(blocks) - 1),))
    self.assertEqual(plots.stage_boundaries(shapes), expected)


class EndpointCurvesTest(parameterized.TestCase):

  def _line_row(self, png: bytes) -> float:
    """Median pixel row of the first line colour (the line spans the plot; the legend's
    sample is a few pixels)."""
    rows, _ = np.nonzero(_colour_mask(_image(png), FIRST_LINE_RGB, tolerance=20))
    self.assertGreater(rows.size, 100)
    return float(np.median(rows))

  def test_sparsity_is_drawn_in_percent_on_a_linear_axis(self):
    rows = [self._line_row(plots.sparsity_plot({"softmax": {e: f for e in ENDPOINTS}},
                                               ENDPOINTS, figsize=(6.0, 4.0), dpi=100))
            for f in (0.2, 0.5, 0.8)]
    # Higher fractions are drawn higher (smaller row), equally spaced for equal steps.
    self.assertGreater(rows[0], rows[1])
    self.assertGreater(rows[1], rows[2])
    self.assertAlmostEqual(rows[0] - rows[1], rows[1] - rows[2], delta=2.0)

  def test_sizes_and_list_input(self):
    boundaries = plots.stage_boundaries([(8, 8, 4)] * 4 + [(4, 4, 8)] * 4 + [(8,)])
    self.assertEqual(boundaries, [4, 8])
    a = plots.sparsity_plot({"a": [0.5] * 9, "b": {e: 0.25 for e in ENDPOINTS}}, ENDPOINTS,
                            stage_boundaries=boundaries, figsize=(7.0, 4.0), dpi=60)
    b = plots.class_separation_plot({"a": [0.1 * i for i in range(9)], "b": [None] * 9},
                                    ENDPOINTS, stage_boundaries=boundaries,
                                    figsize=(5.0, 3.0), dpi=100)
    self.assertEqual(Image.open(_io.BytesIO(a)).size, (420, 240))
    self.assertEqual(Image.open(_io.BytesIO(b)).size, (500, 300))

  def test_class_separation_rows_follow_the_values(self):
    low = self._line_row(plots.class_separation_plot(
        {"m": [0.2] * 9, "n": [0.9] * 9}, ENDPOINTS))
    high = self._line_row(plots.class_separation_plot(
        {"m": [0.8] * 9, "n": [0.1] * 9}, ENDPOINTS))
    self.assertGreater(low, high)

  @parameterized.parameters(
      ({"a": {"block1": 0.5}}, r"^sparsity\['a'\]: has no value for endpoint 'block2'"),
      ({"a": [0.5, 0.5]}, r"^sparsity\['a'\]: has 2 values; expected one per endpoint \(9\)"),
      ({}, "^sparsity: expected a non-empty mapping"))
  def test_bad_values(self, values, message):
    with self.assertRaisesRegex(ValueError, message):
      plots.sparsity_plot(values, ENDPOINTS)

  def test_bad_boundary_and_figure_size(self):
    with self.assertRaisesRegex(ValueError, r"^stage_boundaries: 9 is not an endpoint index"):
      plots.sparsity_plot({"a": [0.5] * 9}, ENDPOINTS, stage_boundaries=[9])
    with self.assertRaisesRegex(ValueError, r"^figsize: got \(0, 3\)"):
      plots.class_separation_plot({"a": [0.5] * 9}, ENDPOINTS, figsize=(0, 3))


class StudyFiguresTest(absltest.TestCase):

  def test_cka_grid_has_one_panel_per_pair_in_the_top_colour(self):
    labels = ENDPOINTS[:3]
    top = _rgb(plots.CKA_COLORMAP, 1.0)
    single = _image(plots.cka_heatmap_grid({"a vs a": np.ones((3, 3))}, row_labels=labels,
                                           column_labels=labels, row_titles=["a"],
                                           column_titles=["a"], dpi=50))
    grid = _image(plots.cka_heatmap_grid(
        {f"a vs {b}": np.ones((3, 3)) for b in "abcd"}, row_labels=labels,
        column_labels=labels, row_titles=["a"] * 4, column_titles=list("abcd"), dpi=50))
    # 4 panels, 3 a row: 3 x 2 panels of (3.6, 3.4) inches at 50 dpi.
    self.assertEqual(grid.shape[:2], (2 * 170, 3 * 180))
    self.assertEqual(single.shape[:2], (170, 180))
    ratio = _colour_mask(grid, top).sum() / _colour_mask(single, top).sum()
    self.assertBetween(ratio, 3.6, 4.4)
    with self.assertRaisesRegex(ValueError, "expected \\[3, 3\\]"):
      plots.cka_heatmap_grid({"a vs b": np.ones((2, 3))}, row_labels=labels,
                             column_labels=labels, row_titles=["a"], column_titles=["b"])

  def test_scatter_figures_draw_one_marker_colour_per_objective(self):
    first = _image(plots.accuracy_vs_transfer_plot({"softmax": [(0.5, 0.6), (0.4, 0.7)]}))
    self.assertGreater(_colour_mask(first, FIRST_LINE_RGB).sum(), 30)
    self.assertEqual(first.shape[:2], (400, 500))
    fifth = plots.separation_vs_transfer_plot({"softmax": (0.4, 0.6)}, sweep={"0.05": (0.5, 0.5)},
                                              dpi=50)
    self.assertEqual(_image(fifth).shape[:2], (200, 500))
    sixth = _image(plots.relearned_head_plot({"softmax": (0.4, 0.3, 0.5)}))
    orange = np.round(255 * np.asarray(colormaps["tab10"](1)[:3])).astype(np.int64)
    self.assertGreater(_colour_mask(sixth, orange).sum(), 30)


if __name__ == "__main__":
  absltest.main()
