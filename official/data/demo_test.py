"""Tests of the embedded demo datasets: determinism, balance, factor structure, TFDS."""

import numpy as np
from scipy import stats
import tensorflow as tf
import tensorflow_datasets as tfds

from official.data import demo


def _counts(values: np.ndarray, num_values: int) -> np.ndarray:
  return np.bincount(values, minlength=num_values)


class GeneratorTest(tf.test.TestCase):

  def test_same_seed_same_bytes_other_seed_differs(self):
    a = demo.generate("pretrain", "train", 300, seed=3)
    b = demo.generate("pretrain", "train", 300, seed=3)
    c = demo.generate("pretrain", "train", 300, seed=4)
    d = demo.generate("pretrain", "test", 300, seed=3)
    self.assertEqual(a["image"].tobytes(), b["image"].tobytes())
    self.assertAllEqual(a["label"], b["label"])
    self.assertNotEqual(a["image"].tobytes(), c["image"].tobytes())
    self.assertNotEqual(a["image"].tobytes(), d["image"].tobytes())
    self.assertEqual(a["image"].shape, (300, 32, 32, 3))
    self.assertEqual(a["image"].dtype, np.uint8)

  def test_pretrain_labels_balanced_and_nuisances_independent(self):
    data = demo.generate("pretrain", "train", 2400, seed=0)
    counts = _counts(data["label"], 48)
    self.assertLessEqual(counts.max() - counts.min(), 1)
    self.assertAllEqual(data["label"], data["shape"] * 6 + data["colour"])
    self.assertLess(data["shape"].max(), len(demo.PRETRAIN_SHAPES))
    # The nuisance factors vary inside every pretraining class, independently of it.
    for factor in ("texture", "size"):
      table = np.zeros((48, 4))
      np.add.at(table, (data["label"], data[factor]), 1)
      self.assertTrue(np.all(table > 0), factor)
      _, p_value, _, _ = stats.chi2_contingency(table)
      self.assertGreater(p_value, 1e-3, factor)

  def test_size_class_is_the_quarter_of_the_radius_range(self):
    low, high = demo.RADIUS_RANGE
    edges = low + (high - low) * np.arange(5) / 4
    radius = np.array([edges[0], edges[1] - 1e-9, edges[1], edges[2] + 1e-9, edges[3],
                       edges[4]])
    self.assertAllEqual(demo.size_class(radius), [0, 0, 1, 2, 3, 3])

  def test_size_task_label_is_size_radius_distributed_as_pretraining(self):
    rng = np.random.default_rng(3)
    factors = demo.sample_factors("size", 4000, rng)
    self.assertAllEqual(factors["label"], factors["size"])
    self.assertAllEqual(demo.size_class(factors["radius"]), factors["label"])
    counts = _counts(factors["label"], 4)
    self.assertLessEqual(counts.max() - counts.min(), 1)
    # Within its quarter the radius is uniform, so overall it is uniform over the range, as
    # in pretraining.
    low, high = demo.RADIUS_RANGE
    self.assertGreater(stats.kstest(factors["radius"], "uniform",
                                    args=(low, high - low)).pvalue, 1e-3)
    pretrain = demo.sample_factors("pretrain", 4000, rng)
    self.assertGreater(stats.ks_2samp(factors["radius"], pretrain["radius"]).pvalue, 1e-3)
    # The label is independent of the object, which comes from the pretraining classes.
    table = np.zeros((4, 48))
    np.add.at(table, (factors["label"], factors["shape"] * 6 + factors["colour"]), 1)
    _, p_value, _, _ = stats.chi2_contingency(table)
    self.assertGreater(p_value, 1e-3)
    self.assertLess(factors["shape"].max(), len(demo.PRETRAIN_SHAPES))

  def test_rendered_area_grows_with_the_size_class(self):
    data = demo.generate("size", "test", 400, seed=0)
    images = data["image"].astype(np.float32) / 255.0
    # Shape pixels are saturated, the background grey.
    area = (images.max(axis=-1) - images.min(axis=-1) > 0.2).sum(axis=(1, 2))
    means = [area[data["label"] == k].mean() for k in range(4)]
    self.assertTrue(np.all(np.diff(means) > 0), means)

  def test_novel_shapes_are_never_pretraining_shapes(self):
    data = demo.generate("novel_shapes", "train", 480, seed=0)
    self.assertTrue(np.all(data["shape"] >= len(demo.PRETRAIN_SHAPES)))
    self.assertAllEqual(data["label"],
                        (data["shape"] - len(demo.PRETRAIN_SHAPES)) * 6 + data["colour"])
    counts = _counts(data["label"], 24)
    self.assertAllEqual(counts, np.full(24, 20))
    pretrain = demo.generate("pretrain", "train", 480, seed=0)
    self.assertEmpty(set(data["shape"]) & set(pretrain["shape"]))

  def test_images_contain_the_shape_in_its_colour(self):
    rng = np.random.default_rng(7)
    factors = demo.sample_factors("pretrain", 200, rng)
    images = demo.render(factors, rng).astype(np.float32)
    coverage = np.clip(0.5 - demo.shape_pixel_distance(factors), 0.0, 1.0)
    inside = coverage >= 1.0
    outside = coverage <= 0.0
    self.assertTrue(np.all(inside.sum(axis=(1, 2)) >= 20))
    for i in range(200):
      # Shape pixels: the shape's colour times its fill, up to the +-6% luminance noise.
      shape = np.clip(demo.fill(factors)[i][inside[i]][:, None] * factors["colour_rgb"][i],
                      0.0, 1.0)
      diff = np.abs(images[i][inside[i]] - shape * 255.0)
      self.assertLess(diff.max(), 0.06 * 255 + 1.5)
      # Background pixels are grey (noise is the same on the three channels).
      background = images[i][outside[i]]
      self.assertLessEqual(np.ptp(background, axis=1).max(), 1.0)
      self.assertLess(np.abs(background - factors["grey"][i] * 255.0).max(), 0.06 * 255 + 1.5)

  def test_colour_recoverable_from_pixels(self):
    data = demo.generate("pretrain", "test", 240, seed=1)
    images = data["image"].astype(np.float32) / 255.0
    saturated = images.max(axis=-1) - images.min(axis=-1) > 0.3
    self.assertTrue(np.all(saturated.sum(axis=(1, 2)) >= 15))
    for i in range(240):
      # The bright part of the fill (every pattern has one) carries the undarkened colour.
      pixels = images[i][saturated[i]]
      brightness = pixels.max(axis=-1)
      mean_colour = pixels[brightness >= np.quantile(brightness, 0.75)].mean(axis=0)
      nearest = np.argmin(np.linalg.norm(demo.COLOUR_RGB - mean_colour, axis=1))
      self.assertEqual(nearest, data["colour"][i])

  def test_fill_patterns(self):
    rng = np.random.default_rng(0)
    factors = demo.sample_factors("size", 96, rng)
    distance = demo.shape_pixel_distance(factors)
    fill = demo.fill(factors)
    dark = 1.0 - factors["contrast"]
    for i in range(96):
      pattern = demo.TEXTURES[factors["texture"][i]]
      self.assertBetween(fill[i].min(), dark[i] - 1e-6, 1.0)
      if pattern == "solid":
        np.testing.assert_allclose(fill[i], 1.0)
      elif pattern == "outline":
        rim = (distance[i] > -demo.OUTLINE_PX + 0.5) & (distance[i] < 0)
        interior = distance[i] < -demo.OUTLINE_PX - 0.5
        np.testing.assert_allclose(fill[i][rim], 1.0, atol=1e-6)
        np.testing.assert_allclose(fill[i][interior], dark[i], atol=1e-6)
      else:
        # Half bright, half dark; stripes: the spectrum peaks at the period and orientation.
        bright = (fill[i] - dark[i]) / factors["contrast"][i]
        self.assertBetween(bright.mean(), 0.35, 0.65)
        if pattern == "stripes":
          spectrum = np.abs(np.fft.fft2(bright - bright.mean()))
          fy, fx = np.unravel_index(np.argmax(spectrum), spectrum.shape)
          fy, fx = (fy - 32 if fy > 16 else fy), (fx - 32 if fx > 16 else fx)
          self.assertBetween(32.0 / np.hypot(fx, fy) / factors["period"][i], 0.75, 1.33)
          delta = abs((np.arctan2(fy, fx) - factors["orientation"][i] + np.pi / 2) % np.pi
                      - np.pi / 2)
          self.assertLess(np.rad2deg(delta), 20)

  def test_digits_split(self):
    data = demo.digits(seed=0)
    train, test = data["train"], data["test"]
    self.assertLen(train["label"], 1297)
    self.assertLen(test["label"], 500)
    self.assertAllEqual(_counts(test["label"], 10), np.full(10, 50))
    self.assertEmpty(set(train["index"]) & set(test["index"]))
    self.assertLen(set(train["index"]) | set(test["index"]), 1797)
    self.assertAllEqual(test["image"][..., 0], test["image"][..., 2])
    self.assertAllEqual(demo.digits(seed=0)["test"]["index"], test["index"])
    self.assertNotAllEqual(np.sort(demo.digits(seed=1)["test"]["index"]),
                           np.sort(test["index"]))
    # 4x4 block means of the upsampled image follow the 8x8 original.
    from sklearn import datasets as sklearn_datasets  # pylint: disable=g-import-not-at-top
    original = sklearn_datasets.load_digits().images[test["index"]] / 16.0 * 255.0
    blocks = test["image"][..., 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
    correlation = np.corrcoef(blocks.ravel(), original.ravel())[0, 1]
    self.assertGreater(correlation, 0.95)


class BuilderTest(tf.test.TestCase):

  def test_registered_names_and_configs(self):
    data_dir = self.create_tempdir().full_path

    def builder(name):
      return tfds.builder(name, data_dir=data_dir)

    for name in demo.DATASET_NAMES:
      self.assertEqual(builder(name).info.supervised_keys, ("image", "label"))
    self.assertEqual(builder("demo_pretrain").builder_config.num_train, 12_800)
    self.assertEqual(builder("demo_pretrain").builder_config.num_test, 2_560)
    self.assertEqual(builder("demo_size").builder_config.num_train, 2_000)
    self.assertEqual(builder("demo_novel_shapes").builder_config.num_test, 1_000)
    self.assertEqual(builder("demo_pretrain/small").builder_config.num_train, 2_560)
    self.assertEqual(builder("demo_pretrain").info.features["label"].num_classes, 48)
    self.assertEqual(builder("demo_size").info.features["label"].num_classes, 4)
    self.assertEqual(builder("demo_novel_shapes").info.features["label"].num_classes, 24)

  def _load_all(self, name, data_dir, **kwargs):
    ds = tfds.load(name, split="train", data_dir=data_dir, **kwargs)
    return list(ds.as_numpy_iterator())

  def test_tfds_load_serves_generated_data_deterministically(self):
    config = demo.DemoConfig(name="tiny", seed=0, num_train=96, num_test=48)
    first = self._load_all("demo_pretrain", self.create_tempdir().full_path,
                           builder_kwargs={"config": config})
    second = self._load_all("demo_pretrain", self.create_tempdir().full_path,
                            builder_kwargs={"config": config})
    self.assertLen(first, 96)
    self.assertEqual(b"".join(ex["image"].tobytes() for ex in first),
                     b"".join(ex["image"].tobytes() for ex in second))
    # The stored examples are exactly the generated ones (TFDS reorders them).
    generated = demo.generate("pretrain", "train", 96, seed=0)
    expected = sorted(zip((im.tobytes() for im in generated["image"]), generated["label"]))
    stored = sorted((ex["image"].tobytes(), ex["label"]) for ex in first)
    self.assertEqual(stored, expected)
    other = demo.DemoConfig(name="tiny_seed1", seed=1, num_train=96, num_test=48)
    third = self._load_all("demo_pretrain", self.create_tempdir().full_path,
                           builder_kwargs={"config": other})
    self.assertNotEqual(sorted(ex["image"].tobytes() for ex in first),
                        sorted(ex["image"].tobytes() for ex in third))

  def test_small_configs_and_digits_generate(self):
    data_dir = self.create_tempdir().full_path
    for name, splits in (("demo_size/small", {"train": 400, "test": 200}),
                         ("demo_novel_shapes/small", {"train": 400, "test": 200}),
                         ("demo_digits", {"train": 1297, "test": 500})):
      builder = tfds.builder(name, data_dir=data_dir)
      builder.download_and_prepare()
      self.assertEqual({k: v.num_examples for k, v in builder.info.splits.items()}, splits)
    digits = tfds.load("demo_digits", split="test", data_dir=data_dir, as_supervised=True)
    labels = np.array([label for _, label in digits.as_numpy_iterator()])
    self.assertAllEqual(_counts(labels, 10), np.full(10, 50))


if __name__ == "__main__":
  tf.test.main()
