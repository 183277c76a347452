"""The embedded demo datasets: procedurally generated shapes, and digits.

The images carry information that varies within the pretraining classes and that the transfer
tasks need (paper §3.3-3.4): an objective that collapses within-class variation (high R^2,
eq. 11) discards it. The nuisance task asks for the shape's size, which varies inside every
pretraining class and which the pretraining labels never need; a background texture and then
the shape's fill pattern, the earlier nuisances, were read at chance by every network, trained
or not, so they could not tell objectives apart (docs/protocol.md §7.3).

Every image is 32x32 RGB and composed of independent factors, drawn from a seed:

  shape       one of 12 shapes (SHAPES); the first 8 appear in pretraining, the last 4
              (NOVEL_SHAPES) only in `demo_novel_shapes`. The held-out shapes come in similar
              pairs (tee/ell, hexagon/ellipse), so telling them apart is fine-grained.
  colour      one of 6 saturated colours (COLOURS), brightness and hue jittered.
  texture     the shape's fill pattern, 4 classes (TEXTURES): solid, outline (a bright rim
              2.5 px wide around a dark interior), stripes, checker; dark parts are the
              colour at (1 - contrast), contrast 55-70%; stripes and checker squares have a
              random period (6-9 px), orientation and phase.
  size        the shape's radius, uniform in RADIUS_RANGE (6.5-10 px), and its quarter of that
              range, 4 classes (SIZES): the label of `demo_size`, whose images are drawn as
              the pretraining images are.
  position, rotation (full circle) of the shape, a flat grey background of random level,
  and uniform luminance pixel noise.

The TFDS datasets (registered on `import official.data`, generated on first use in seconds)
are the builders below, with features "image" uint8 [32, 32, 3], "label" and, for the shape
datasets, the factors "shape", "colour", "texture", "size". Each shape dataset has configs
"default" and "small" (a fifth of its size); labels are balanced (class counts differ by at
most one) and the nuisance factors are drawn independently of the label.
"""

import dataclasses
import functools
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds

IMAGE_SIZE = 32

SHAPES = ("disk", "square", "triangle", "plus", "ring", "star", "crescent", "heart",
          "tee", "ell", "hexagon", "ellipse")
PRETRAIN_SHAPES = SHAPES[:8]
NOVEL_SHAPES = SHAPES[8:]

COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLOUR_RGB = np.array([
    [0.86, 0.14, 0.14],
    [0.16, 0.74, 0.20],
    [0.16, 0.30, 0.92],
    [0.95, 0.85, 0.10],
    [0.84, 0.18, 0.80],
    [0.10, 0.80, 0.86],
], np.float32)

TEXTURES = ("solid", "outline", "stripes", "checker")
OUTLINE_PX = 2.5

# The shape's radius in pixels, uniform in this range; its four equal quarters are the size
# classes, smallest first.
RADIUS_RANGE = (6.5, 10.0)
SIZES = ("smallest", "small", "large", "largest")

TASKS = ("pretrain", "size", "novel_shapes")
_TASK_IDS = {"pretrain": 1, "size": 2, "novel_shapes": 3, "digits": 4}
# The categorical factors a shape dataset stores with each image.
FACTORS = ("label", "shape", "colour", "texture", "size")
_SPLIT_IDS = {"train": 1, "test": 2}

# Rendering chunk size: bounds memory to a few [2048, 32, 32, 3] float32 arrays.
_CHUNK = 2048


_CLASS_NAMES = {"pretrain": tuple(f"{c}_{s}" for s in PRETRAIN_SHAPES for c in COLOURS),
                "size": SIZES,
                "novel_shapes": tuple(f"{c}_{s}" for s in NOVEL_SHAPES for c in COLOURS),
                "digits": tuple(str(d) for d in range(10))}


def class_names(task: str) -> Tuple[str, ...]:
  """Label names of a task: '<colour>_<shape>' for shape tasks, size classes, digits."""
  if task not in _CLASS_NAMES:
    raise ValueError(f"task: {task!r}; valid are {', '.join(_CLASS_NAMES)}")
  return _CLASS_NAMES[task]


def _balanced(rng: np.random.Generator, num_examples: int, num_values: int) -> np.ndarray:
  """A random permutation of 0..num_values-1 repeated: counts differ by at most one."""
  return rng.permutation(np.arange(num_examples) % num_values).astype(np.int64)


def size_class(radius: np.ndarray) -> np.ndarray:
  """The quarter of RADIUS_RANGE that each radius falls in: int64 index into SIZES."""
  low, high = RADIUS_RANGE
  quarter = np.floor((np.asarray(radius) - low) / (high - low) * len(SIZES))
  return np.clip(quarter, 0, len(SIZES) - 1).astype(np.int64)


def sample_factors(task: str, num_examples: int,
                   rng: np.random.Generator) -> Dict[str, np.ndarray]:
  """Draws the factors of `num_examples` images of `task`; arrays of length N.

  Categorical factors: label, shape (index into SHAPES), colour, texture, size (index into
  SIZES, the quarter of RADIUS_RANGE the radius falls in). Continuous:
  centre_x/centre_y (pixels), radius (pixels), rotation (radians), grey, contrast, phase,
  orientation (radians), period (pixels), colour_rgb [N, 3].
  """
  if task not in TASKS:
    raise ValueError(f"task: {task!r}; valid are {', '.join(TASKS)}")
  n = num_examples
  num_colours = len(COLOURS)
  if task != "size":
    shapes, first_shape = ((PRETRAIN_SHAPES, 0) if task == "pretrain"
                           else (NOVEL_SHAPES, len(PRETRAIN_SHAPES)))
    label = _balanced(rng, n, len(shapes) * num_colours)
    shape, colour = first_shape + label // num_colours, label % num_colours
  else:
    label = _balanced(rng, n, len(SIZES))
    combo = _balanced(rng, n, len(PRETRAIN_SHAPES) * num_colours)
    shape, colour = combo // num_colours, combo % num_colours
  texture = _balanced(rng, n, len(TEXTURES))
  brightness = rng.uniform(0.85, 1.05, n)[:, None]
  colour_rgb = np.clip(COLOUR_RGB[colour] * brightness + rng.normal(0.0, 0.035, (n, 3)),
                       0.0, 1.0)
  factors = {
      "label": label,
      "shape": shape.astype(np.int64),
      "colour": colour.astype(np.int64),
      "texture": texture.astype(np.int64),
      "centre_x": rng.uniform(11.0, 21.0, n),
      "centre_y": rng.uniform(11.0, 21.0, n),
      "radius": rng.uniform(*RADIUS_RANGE, n),
      "rotation": rng.uniform(0.0, 2.0 * np.pi, n),
      "grey": rng.uniform(0.30, 0.62, n),
      "contrast": rng.uniform(0.55, 0.70, n),
      "phase": rng.uniform(0.0, 2.0 * np.pi, n),
      "orientation": rng.uniform(0.0, np.pi, n),
      "period": rng.uniform(6.0, 9.0, n),
      "colour_rgb": colour_rgb.astype(np.float32),
  }
  if task == "size":
    # The radius moves into the label's quarter of the range, uniform there, so the task's
    # radii are distributed as pretraining's.
    low, high = RADIUS_RANGE
    fraction = (factors["radius"] - low) / (high - low)
    factors["radius"] = low + (label + fraction) * (high - low) / len(SIZES)
    factors["size"] = label.astype(np.int64)
  else:
    factors["size"] = size_class(factors["radius"])
  return factors


def _box(u, v, centre_u, centre_v, half_u, half_v):
  return np.maximum(np.abs(u - centre_u) - half_u, np.abs(v - centre_v) - half_v)


def _circle(u, v, centre_u, centre_v, radius):
  return np.sqrt((u - centre_u) ** 2 + (v - centre_v) ** 2) - radius


def _polygon(u, v, sides: int, inradius: float, first_normal: float):
  """Regular polygon: the largest distance along its edge normals, minus the inradius."""
  angles = (first_normal + 2 * np.pi * k / sides for k in range(sides))
  along = (u * np.float32(np.cos(a)) + v * np.float32(np.sin(a)) for a in angles)
  return functools.reduce(np.maximum, along) - inradius  # one edge's distances at a time


def shape_distance(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Signed distance to the outline of `name` (negative inside), in the shape's own unit
  coordinates (the shape fits radius ~1); unions are minima, intersections maxima."""
  if name == "disk":
    return _circle(u, v, 0.0, 0.0, 0.85)
  if name == "square":
    return _box(u, v, 0.0, 0.0, 0.72, 0.72)
  if name == "triangle":
    return _polygon(u, v, 3, 0.5, np.pi / 2)
  if name == "plus":
    return np.minimum(_box(u, v, 0.0, 0.0, 0.3, 0.95), _box(u, v, 0.0, 0.0, 0.95, 0.3))
  if name == "ring":
    return np.abs(np.sqrt(u * u + v * v) - 0.71) - 0.21
  if name == "star":
    phi = np.arctan2(v, u)
    outline = 0.38 + 0.6 * ((1.0 + np.cos(5.0 * phi)) / 2.0) ** 1.5
    return np.sqrt(u * u + v * v) - outline
  if name == "crescent":
    return np.maximum(_circle(u, v, 0.0, 0.0, 0.9), -_circle(u, v, 0.45, 0.0, 0.7))
  if name == "heart":
    # Two lobes over a downward wedge.
    wedge = np.maximum(np.abs(u) - 0.75 * (v + 0.85), v - 0.2) * 0.8
    lobes = np.minimum(_circle(u, v, 0.36, 0.2, 0.44), _circle(u, v, -0.36, 0.2, 0.44))
    return np.minimum(lobes, wedge)
  if name == "tee":
    return np.minimum(_box(u, v, 0.0, 0.625, 0.9, 0.225), _box(u, v, 0.0, -0.25, 0.22, 0.65))
  if name == "ell":
    return np.minimum(_box(u, v, -0.45, 0.0, 0.22, 0.9), _box(u, v, 0.05, -0.68, 0.7, 0.22))
  if name == "hexagon":
    return _polygon(u, v, 6, 0.78, np.pi / 6)
  if name == "ellipse":
    # Scaled implicit distance: exact on the minor axis, an underestimate elsewhere.
    return (np.sqrt((u / 0.95) ** 2 + (v / 0.55) ** 2) - 1.0) * 0.55
  raise ValueError(f"shape: {name!r}; valid are {', '.join(SHAPES)}")


def _f32(values: np.ndarray) -> np.ndarray:
  return np.asarray(values, np.float32)


def _plane(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
  """a_n * x + b_n * y + c_n at every pixel centre (x, y): float32 [N, 32, 32]."""
  xs = (np.arange(IMAGE_SIZE) + 0.5).astype(np.float32)
  rows = xs[None, :] * _f32(b)[:, None] + _f32(c)[:, None]  # [N, 32] over y
  return xs[None, None, :] * _f32(a)[:, None, None] + rows[:, :, None]


def shape_pixel_distance(factors: Dict[str, np.ndarray]) -> np.ndarray:
  """Signed distance of every pixel centre to the shape's outline in pixels (negative
  inside), float32 [N, 32, 32].

  Pixel (x, y) maps to the shape's unit coordinates u = R(-rotation) (p - centre) / radius.
  """
  cos, sin = np.cos(factors["rotation"]), np.sin(factors["rotation"])
  radius = factors["radius"]
  cx, cy = factors["centre_x"], factors["centre_y"]
  u = _plane(cos / radius, sin / radius, -(cx * cos + cy * sin) / radius)
  v = _plane(-sin / radius, cos / radius, (cx * sin - cy * cos) / radius)
  distance = np.empty(u.shape, np.float32)
  for shape_index in np.unique(factors["shape"]):
    rows = factors["shape"] == shape_index
    distance[rows] = shape_distance(SHAPES[shape_index], u[rows], v[rows])
  return distance * _f32(radius)[:, None, None]


def fill(factors: Dict[str, np.ndarray],
         distance: Optional[np.ndarray] = None) -> np.ndarray:
  """The brightness factor of each image's shape fill, float32 [N, 32, 32] in
  [1 - contrast, 1]: 1 for "solid"; for "outline" 1 within OUTLINE_PX of the outline (from
  `distance`, shape_pixel_distance, computed if None) and dark inside; soft-edged stripes or
  checker squares of the given period, orientation and phase.

  Antialiased: each pattern's bright mask m in [0, 1] gives 1 - contrast (1 - m).
  """
  distance = shape_pixel_distance(factors) if distance is None else distance
  frequency = 2 * np.pi / factors["period"]
  cos, sin = np.cos(factors["orientation"]), np.sin(factors["orientation"])
  along = np.sin(_plane(cos * frequency, sin * frequency, factors["phase"]))
  across = np.sin(_plane(-sin * frequency, cos * frequency, factors["phase"]))
  patterns = (np.ones_like(distance), np.clip(distance + OUTLINE_PX + 0.5, 0.0, 1.0),
              along, along * across)
  texture = factors["texture"][:, None, None]
  mask = np.select([texture == k for k in range(len(TEXTURES))], patterns)
  mask = np.where(texture >= 2, 0.5 + 0.5 * np.tanh(3.0 * mask) / np.tanh(3.0), mask)
  return 1.0 - _f32(factors["contrast"])[:, None, None] * (1.0 - mask.astype(np.float32))


def render(factors: Dict[str, np.ndarray], rng: np.random.Generator,
           noise_amplitude: float = 0.06) -> np.ndarray:
  """Composes the striped shape over its flat grey background plus uniform luminance noise
  in [-noise_amplitude, noise_amplitude]: uint8 [N, 32, 32, 3]."""
  n = len(factors["shape"])
  images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  for start in range(0, n, _CHUNK):
    chunk = {k: v[start:start + _CHUNK] for k, v in factors.items()}
    distance = shape_pixel_distance(chunk)
    # Antialiased fraction of each pixel covered by the shape.
    coverage = np.clip(0.5 - distance, 0.0, 1.0)[..., None]
    grey = _f32(chunk["grey"])[:, None, None, None]
    noise = rng.random(coverage.shape, dtype=np.float32)
    noise = (2.0 * noise_amplitude * 255.0) * (noise - 0.5) + 0.5  # + 0.5 rounds below.
    shape = fill(chunk, distance)[..., None] * chunk["colour_rgb"][:, None, None, :]
    image = grey + coverage * (shape - grey)
    image = np.clip(image * 255.0 + noise, 0.0, 255.0)
    images[start:start + _CHUNK] = image.astype(np.uint8)
  return images


def generate(task: str, split: str, num_examples: int, seed: int = 0) -> Dict[str, np.ndarray]:
  """All examples of one split of a shape task: {"image": uint8 [N, 32, 32, 3], "label",
  "shape", "colour", "texture", "size": int64 [N]}; a pure function of (task, split, N, seed)."""
  if split not in _SPLIT_IDS:
    raise ValueError(f"split: {split!r}; valid are {', '.join(_SPLIT_IDS)}")
  if num_examples < 1:
    raise ValueError(f"num_examples: {num_examples}; valid is a positive integer")
  rng = np.random.default_rng([int(seed), _TASK_IDS.get(task, 0), _SPLIT_IDS[split]])
  factors = sample_factors(task, num_examples, rng)
  images = render(factors, rng)
  return {"image": images, **{k: factors[k] for k in FACTORS}}


def _upsample_matrix(source: int, target: int) -> np.ndarray:
  """Bilinear interpolation matrix [target, source] with half-pixel centres."""
  position = np.clip((np.arange(target) + 0.5) * source / target - 0.5, 0, source - 1)
  low = np.floor(position).astype(int)
  high = np.minimum(low + 1, source - 1)
  weight = position - low
  matrix = np.zeros((target, source))
  matrix[np.arange(target), low] += 1.0 - weight
  matrix[np.arange(target), high] += weight
  return matrix


DIGITS_TEST_PER_CLASS = 50


def digits(seed: int = 0) -> Dict[str, Dict[str, np.ndarray]]:
  """scikit-learn's digits as {"train"|"test": {"image" uint8 [N, 32, 32, 3], "label",
  "index" (row in load_digits)}}, split per class with DIGITS_TEST_PER_CLASS test images."""
  from sklearn import datasets as sklearn_datasets  # pylint: disable=g-import-not-at-top
  bunch = sklearn_datasets.load_digits()
  grey = bunch.images.astype(np.float64) / 16.0  # [N, 8, 8], ink = 1
  matrix = _upsample_matrix(grey.shape[1], IMAGE_SIZE)
  large = np.einsum("ij,njk,lk->nil", matrix, grey, matrix)
  large = np.clip(np.round(large * 255.0), 0, 255).astype(np.uint8)
  images = np.repeat(large[..., None], 3, axis=-1)
  labels = bunch.target.astype(np.int64)
  rng = np.random.default_rng([int(seed), _TASK_IDS["digits"]])
  test = np.zeros(len(labels), bool)
  for digit in range(10):
    rows = np.flatnonzero(labels == digit)
    test[rng.permutation(rows)[:DIGITS_TEST_PER_CLASS]] = True
  splits = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}
  return {split: {"image": images[rows], "label": labels[rows], "index": rows.astype(np.int64)}
          for split, rows in splits.items()}


def _image_feature() -> tfds.features.Tensor:
  # Raw uint8 bytes, not PNG: faster to generate, and noisy 32x32 images barely compress.
  return tfds.features.Tensor(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


@dataclasses.dataclass(eq=False)
class DemoConfig(tfds.core.BuilderConfig):
  """A demo dataset configuration: generation seed and split sizes."""
  seed: int = 0
  num_train: int = 0
  num_test: int = 0


def _configs(num_train: int, num_test: int):
  """"default" and "small" (a fifth of the images)."""
  return [DemoConfig(name=name, seed=0, num_train=num_train // part, num_test=num_test // part,
                     description=f"{num_train // part} train / {num_test // part} test images, "
                                 "seed 0.") for name, part in (("default", 1), ("small", 5))]


class _ShapesBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared builder of the procedurally generated shape datasets."""

  VERSION = tfds.core.Version("3.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "2.0.0": "The texture is the shape's fill pattern (4 classes: solid, "
                            "outline, stripes, checker) over a flat grey background, instead of "
                            "faint background stripes (8 classes).",
                   "3.0.0": "Every image records its size class (the quarter of the radius "
                            "range); the size task demo_size replaces the fill-pattern task "
                            "demo_texture. Pretraining and novel-shape images are unchanged."}
  TASK = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": _image_feature(),
            "label": tfds.features.ClassLabel(names=class_names(self.TASK)),
            "shape": tfds.features.ClassLabel(names=SHAPES),
            "colour": tfds.features.ClassLabel(names=COLOURS),
            "texture": tfds.features.ClassLabel(names=TEXTURES),
            "size": tfds.features.ClassLabel(names=SIZES),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated locally, nothing to download.
    config = self.builder_config
    return {
        "train": self._generate_examples("train", config.num_train),
        "test": self._generate_examples("test", config.num_test),
    }

  def _generate_examples(self, split: str, num_examples: int) -> Iterator:
    data = generate(self.TASK, split, num_examples, seed=self.builder_config.seed)
    for i in range(num_examples):
      yield i, {k: data[k][i] for k in ("image", *FACTORS)}


class DemoPretrain(_ShapesBuilder):
  """Pretraining task: label = shape x colour (48 classes)."""
  name = "demo_pretrain"
  TASK = "pretrain"
  BUILDER_CONFIGS = _configs(12_800, 2_560)


class DemoSize(_ShapesBuilder):
  """Transfer task: label = the shape's size class, a pretraining nuisance (4 classes)."""
  name = "demo_size"
  TASK = "size"
  BUILDER_CONFIGS = _configs(2_000, 1_000)


class DemoNovelShapes(_ShapesBuilder):
  """Transfer task: label = held-out shape x colour (24 classes never seen in pretraining)."""
  name = "demo_novel_shapes"
  TASK = "novel_shapes"
  BUILDER_CONFIGS = _configs(2_000, 1_000)


class DemoDigits(tfds.core.GeneratorBasedBuilder):
  """Transfer task: scikit-learn's handwritten digits upsampled to 32x32 RGB (10 classes)."""

  name = "demo_digits"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [DemoConfig(name="default", seed=0,
                                description="Stratified split, 50 test images per digit.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=("scikit-learn's bundled handwritten digits (UCI optical recognition, "
                     "8x8 grey), bilinearly upsampled to 32x32 RGB."),
        features=tfds.features.FeaturesDict({
            "image": _image_feature(),
            "label": tfds.features.ClassLabel(names=class_names("digits")),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Bundled with scikit-learn.
    data = digits(self.builder_config.seed)
    return {split: self._generate_examples(data[split]) for split in ("train", "test")}

  def _generate_examples(self, data: Dict[str, np.ndarray]) -> Iterator:
    for image, label, index in zip(data["image"], data["label"], data["index"]):
      yield int(index), {"image": image, "label": int(label)}


DATASET_NAMES = ("demo_pretrain", "demo_size", "demo_novel_shapes", "demo_digits")
