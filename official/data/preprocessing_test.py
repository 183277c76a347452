"""Tests of the released preprocessing against NumPy references."""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from official.data import preprocessing

MEAN = np.array(preprocessing.MEAN_RGB, np.float32)
STD = np.array(preprocessing.STDDEV_RGB, np.float32)


def _normalise(image: np.ndarray) -> np.ndarray:
  return (image.astype(np.float32) / 255.0 - MEAN) / STD


def _ramp(height: int, width: int) -> np.ndarray:
  """An image whose every pixel is distinct (so crops can be located)."""
  rows = np.arange(height)[:, None, None]
  cols = np.arange(width)[None, :, None]
  channels = np.arange(3)[None, None, :]
  return ((rows * 7 + cols * 3 + channels * 50) % 256).astype(np.uint8)


class PreprocessingTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters("train", "eval", "transfer", "finetune_eval")
  def test_constant_image_gives_known_normalised_value(self, mode):
    image = np.full((37, 53, 3), [200, 100, 30], np.uint8)
    out = preprocessing.preprocess(image, 24, mode, seed=tf.constant([3, 4]))
    expected = (np.array([200, 100, 30]) / 255.0 - MEAN) / STD
    self.assertEqual(out.shape, (24, 24, 3))
    self.assertEqual(out.dtype, tf.float32)
    self.assertAllClose(out, np.broadcast_to(expected, (24, 24, 3)), atol=1e-4)

  @parameterized.product(mode=["train", "eval", "transfer", "finetune_eval"],
                         shape=[(32, 32), (50, 70), (301, 203)], size=[32, 64])
  def test_shape_and_range(self, mode, shape, size):
    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    out = preprocessing.preprocess(image, size, mode, seed=tf.constant([1, 2]))
    self.assertEqual(out.shape, (size, size, 3))
    low, high = (0.0 - MEAN) / STD, (1.0 - MEAN) / STD
    self.assertTrue(np.all(out.numpy() >= low - 1e-6))
    self.assertTrue(np.all(out.numpy() <= high + 1e-6))

  def test_eval_centre_crop_picks_centre_pixels(self):
    # 87.5% of 40 is 35: the crop keeps rows/cols 3..37 and the resize to 35 is identity.
    image = _ramp(40, 48)
    out = preprocessing.preprocess_for_eval(image, 35)
    self.assertAllClose(out, _normalise(image[3:38, 7:42]), atol=1e-5)

  def test_transfer_resizes_shorter_side_and_crops_centre(self):
    image = _ramp(48, 64)  # Shorter side already 48: no resize, centre crop of the width.
    out = preprocessing.preprocess_for_transfer(image, 48)
    self.assertAllClose(out, _normalise(image[:, 8:56]), atol=1e-5)

  def test_transfer_downscale_keeps_aspect(self):
    # A 64x128 image, black on the left and white on the right: after the shorter side goes
    # to 32 (32x64) and the centre crop, only the grey middle (and the bicubic taps around
    # it, source columns 31..96) is left.
    image = np.full((64, 128, 3), 128, np.uint8)
    image[:, :28] = 0
    image[:, 100:] = 255
    out = preprocessing.preprocess_for_transfer(image, 32).numpy()
    self.assertAllClose(out, np.broadcast_to(_normalise(np.full(3, 128)), (32, 32, 3)),
                        atol=1e-4)

  def test_finetune_eval_resizes_to_256_over_224(self):
    # S = 32 -> shorter side round(32 * 256 / 224) = 37; identity for a 37-pixel image.
    image = _ramp(37, 45)
    out = preprocessing.preprocess_for_finetune_eval(image, 32)
    self.assertAllClose(out, _normalise(image[3:35, 7:39]), atol=1e-5)

  def test_train_deterministic_under_seed(self):
    image = _ramp(64, 80)
    a = preprocessing.preprocess_for_train(image, 32, seed=tf.constant([5, 6]))
    b = preprocessing.preprocess_for_train(image, 32, seed=tf.constant([5, 6]))
    self.assertAllEqual(a, b)
    others = [preprocessing.preprocess_for_train(image, 32, seed=tf.constant([5, s]))
              for s in range(7, 12)]
    self.assertTrue(all(np.abs(a.numpy() - o.numpy()).max() > 0.1 for o in others))

  def test_flip_happens_for_some_seeds(self):
    image = _ramp(64, 80)
    flipped = 0
    for s in range(40):
      seed = tf.constant([s, 11])
      unflipped = preprocessing.preprocess_for_train(image, 32, seed=seed, flip=False)
      out = preprocessing.preprocess_for_train(image, 32, seed=seed)
      if np.allclose(out, unflipped[:, ::-1]):
        flipped += 1
      else:
        self.assertAllClose(out, unflipped)
    self.assertBetween(flipped, 8, 32)

  def test_crop_box_respects_area_and_aspect(self):
    shape = tf.constant([224, 160, 3])
    for s in range(60):
      begin, size = preprocessing.random_crop_box(shape, seed=tf.constant([s, 0]))
      begin, size = begin.numpy(), size.numpy()
      self.assertTrue(np.all(begin[:2] >= 0))
      self.assertTrue(np.all(begin[:2] + size[:2] <= [224, 160]))
      area = size[0] * size[1] / (224 * 160)
      aspect = size[1] / size[0]
      self.assertBetween(area, 0.08 - 0.01, 1.0)
      self.assertBetween(aspect, 3 / 4 - 0.05, 4 / 3 + 0.05)

  def test_failed_crop_falls_back_to_centre_crop(self):
    # A 2:1 image cannot hold a crop of its full area with aspect in [3/4, 4/3].
    begin, size = preprocessing.random_crop_box(tf.constant([50, 100, 3]),
                                                seed=tf.constant([0, 0]),
                                                area_range=(1.0, 1.0))
    self.assertAllEqual(size[:2], [43, 43])  # int(0.875 * 50)
    self.assertAllEqual(begin[:2], [4, 29])  # ((50 - 43 + 1) // 2, (100 - 43 + 1) // 2)

  @parameterized.parameters("train", "eval", "transfer")
  def test_grey_and_rgba_become_rgb(self, mode):
    grey = _ramp(30, 40)[:, :, :1]
    rgb = np.repeat(grey, 3, axis=-1)
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 7, np.uint8)], axis=-1)
    seed = tf.constant([1, 1])
    expected = preprocessing.preprocess(rgb, 16, mode, seed=seed)
    self.assertAllClose(preprocessing.preprocess(grey, 16, mode, seed=seed), expected)
    self.assertAllClose(preprocessing.preprocess(grey[:, :, 0], 16, mode, seed=seed),
                        expected)
    self.assertAllClose(preprocessing.preprocess(rgba, 16, mode, seed=seed), expected)

  def test_unknown_channel_count_in_graph(self):
    fn = tf.function(lambda x: preprocessing.preprocess_for_transfer(x, 8),
                     input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    grey = np.full((10, 12, 1), 51, np.uint8)
    self.assertAllClose(fn(grey), np.broadcast_to(_normalise(np.full(3, 51)), (8, 8, 3)),
                        atol=1e-5)

  def test_bad_arguments(self):
    image = np.zeros((8, 8, 3), np.uint8)
    with self.assertRaisesRegex(ValueError, "preprocess"):
      preprocessing.preprocess(image, 8, "random")
    with self.assertRaisesRegex(ValueError, "image_size"):
      preprocessing.preprocess_for_eval(image, 0)
    with self.assertRaisesRegex(ValueError, "channels"):
      preprocessing.preprocess_for_eval(np.zeros((8, 8, 5), np.uint8), 8)


if __name__ == "__main__":
  tf.test.main()
