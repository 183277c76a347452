"""Image preprocessing of pretraining, fixed features and fine-tuning (docs/protocol.md §3-§5).

Every function maps one image with pixel values in [0, 255] (any real dtype), [H, W] or
[H, W, C] with C in {1, 2, 3, 4} (grey replicated, alpha dropped), to a float32
[image_size, image_size, 3] tensor normalised per channel with MEAN_RGB / STDDEV_RGB. Random
operations are stateless when `seed` (shape [2] integers) is given, so a pipeline reproduces
the same augmentation for the same seed whatever its parallelism.
"""

from typing import Optional, Sequence, Tuple

import tensorflow as tf

MEAN_RGB = (0.485, 0.456, 0.406)
STDDEV_RGB = (0.229, 0.224, 0.225)

# Released ImageNet constants (docs/protocol.md §3).
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
MIN_OBJECT_COVERED = 0.1
MAX_ATTEMPTS = 100
EVAL_CROP_FRACTION = 0.875
# Fine-tuning test images: resize to 256, centre crop 224 (docs/protocol.md §5).
FINETUNE_EVAL_RESIZE_RATIO = 256.0 / 224.0

PREPROCESS_MODES = ("train", "eval", "transfer", "finetune_eval")


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Maps [H, W], [H, W, 1|2|3|4] images to [H, W, 3]: grey replicated, alpha dropped."""
  image = tf.convert_to_tensor(image)
  if image.shape.rank == 2:
    image = image[:, :, tf.newaxis]
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels in (1, 2):
    return tf.tile(image[:, :, :1], [1, 1, 3])
  if channels == 4:
    return image[:, :, :3]
  if channels is not None:
    raise ValueError(f"image: {channels} channels; valid are 1 (grey), 2 (grey+alpha), "
                     "3 (RGB) or 4 (RGBA)")
  num_channels = tf.shape(image)[-1]
  image = tf.cond(num_channels >= 3, lambda: image[:, :, :3],
                  lambda: tf.tile(image[:, :, :1], [1, 1, 3]))
  return tf.ensure_shape(image, [None, None, 3])


def normalize(image: tf.Tensor) -> tf.Tensor:
  """Maps pixel values in [0, 255] to (x / 255 - MEAN_RGB) / STDDEV_RGB, clipping x to range."""
  image = tf.clip_by_value(tf.cast(image, tf.float32) / 255.0, 0.0, 1.0)
  mean = tf.constant(MEAN_RGB, tf.float32)
  stddev = tf.constant(STDDEV_RGB, tf.float32)
  return (image - mean) / stddev


def _prepare(image: tf.Tensor) -> tf.Tensor:
  image = to_rgb(image)
  if not image.dtype.is_integer and not image.dtype.is_floating:
    raise ValueError(f"image: dtype {image.dtype.name}; valid are integer or float pixels "
                     "in [0, 255]")
  return tf.cast(image, tf.float32)


def _resize_bicubic(image: tf.Tensor, height, width) -> tf.Tensor:
  """Bicubic resize (half-pixel centres, no antialiasing), identity at the same size."""
  return tf.image.resize(image, tf.stack([height, width]), method="bicubic")


def _centre_crop(image: tf.Tensor, crop_height, crop_width) -> tf.Tensor:
  shape = tf.shape(image)
  offset_height = (shape[0] - crop_height + 1) // 2
  offset_width = (shape[1] - crop_width + 1) // 2
  return tf.image.crop_to_bounding_box(image, offset_height, offset_width, crop_height,
                                       crop_width)


def _centre_crop_side(shape: tf.Tensor, fraction: float) -> tf.Tensor:
  """The side of a centre crop of `fraction` of the shorter side (at least 1)."""
  side = tf.cast(fraction * tf.cast(tf.minimum(shape[0], shape[1]), tf.float32), tf.int32)
  return tf.maximum(side, 1)


def _finish(image: tf.Tensor, image_size: int) -> tf.Tensor:
  return normalize(tf.ensure_shape(image, [image_size, image_size, 3]))


def _check_size(image_size: int) -> int:
  if int(image_size) != image_size or image_size < 1:
    raise ValueError(f"image_size: {image_size!r}; valid is a positive integer")
  return int(image_size)


def _resize_shorter_side(image: tf.Tensor, size) -> tf.Tensor:
  """Bicubic resize so that the shorter side equals `size`, keeping the aspect ratio."""
  height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float32))
  scale = tf.cast(size, tf.float32) / tf.minimum(height, width)
  new_height = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), size)
  new_width = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), size)
  return _resize_bicubic(image, new_height, new_width)


def random_crop_box(image_shape: tf.Tensor, *, seed: Optional[tf.Tensor] = None,
                    area_range: Sequence[float] = AREA_RANGE) -> Tuple[tf.Tensor, tf.Tensor]:
  """Samples the inception crop of an image of `image_shape` [H, W, C]: (begin, size).

  When every attempt fails the sampler returns the whole image; as in the reference TPU
  ResNet preprocessing, that case falls back to the evaluation centre crop (87.5% of the
  shorter side).
  """
  bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])
  kwargs = dict(bounding_boxes=bbox, min_object_covered=MIN_OBJECT_COVERED,
                aspect_ratio_range=list(ASPECT_RATIO_RANGE), area_range=list(area_range),
                max_attempts=MAX_ATTEMPTS, use_image_if_no_bounding_boxes=True)
  if seed is None:
    begin, size, _ = tf.image.sample_distorted_bounding_box(image_shape, **kwargs)
  else:
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, seed=seed, **kwargs)
  height, width = image_shape[0], image_shape[1]
  whole_image = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
  crop = _centre_crop_side(image_shape, EVAL_CROP_FRACTION)
  centre_begin = tf.stack([(height - crop + 1) // 2, (width - crop + 1) // 2, 0])
  centre_size = tf.stack([crop, crop, -1])
  begin = tf.where(whole_image, centre_begin, begin)
  size = tf.where(whole_image, centre_size, size)
  return begin, size


def preprocess_for_train(image: tf.Tensor, image_size: int, *,
                         seed: Optional[tf.Tensor] = None,
                         area_range: Sequence[float] = AREA_RANGE,
                         flip: bool = True) -> tf.Tensor:
  """Released ImageNet training augmentation (docs/protocol.md §3): inception crop of
  `area_range` of the area, bicubic resize to S = `image_size`, random flip if `flip`."""
  image_size = _check_size(image_size)
  image = _prepare(image)
  if seed is not None:
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2))
  else:
    crop_seed = flip_seed = None
  begin, size = random_crop_box(tf.shape(image), seed=crop_seed, area_range=area_range)
  image = tf.slice(image, begin, size)
  image = _resize_bicubic(image, image_size, image_size)
  if flip:
    if flip_seed is None:
      image = tf.image.random_flip_left_right(image)
    else:
      image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
  return _finish(image, image_size)


def preprocess_for_eval(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """Released ImageNet evaluation (docs/protocol.md §3): centre crop of EVAL_CROP_FRACTION of the
  shorter side, bicubic resize to [S, S]; float32 [S, S, 3] normalised."""
  image_size = _check_size(image_size)
  image = _prepare(image)
  crop = _centre_crop_side(tf.shape(image), EVAL_CROP_FRACTION)
  image = _centre_crop(image, crop, crop)
  return _finish(_resize_bicubic(image, image_size, image_size), image_size)


def preprocess_for_transfer(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """Fixed-feature transfer (docs/protocol.md §4): shorter side -> S (bicubic), centre crop [S, S];
  float32 [S, S, 3] normalised, no augmentation."""
  return _resize_and_centre_crop(image, image_size, 1.0)


def preprocess_for_finetune_eval(image: tf.Tensor, image_size: int) -> tf.Tensor:
  """Fine-tuning test images (docs/protocol.md §5): shorter side -> round(S * 256 / 224) (bicubic),
  centre crop [S, S]; float32 [S, S, 3] normalised."""
  return _resize_and_centre_crop(image, image_size, FINETUNE_EVAL_RESIZE_RATIO)


def _resize_and_centre_crop(image: tf.Tensor, image_size: int, ratio: float) -> tf.Tensor:
  """Shorter side -> round(S * ratio) (bicubic), then the centre [S, S]."""
  image_size = _check_size(image_size)
  resize = max(image_size, int(round(image_size * ratio)))
  image = _resize_shorter_side(_prepare(image), resize)
  return _finish(_centre_crop(image, image_size, image_size), image_size)


def preprocess(image: tf.Tensor, image_size: int, mode: str, *,
               seed: Optional[tf.Tensor] = None,
               area_range: Sequence[float] = AREA_RANGE) -> tf.Tensor:
  """Dispatches to the preprocessing of `mode` (one of PREPROCESS_MODES)."""
  if mode == "train":
    return preprocess_for_train(image, image_size, seed=seed, area_range=area_range)
  if mode == "eval":
    return preprocess_for_eval(image, image_size)
  if mode == "transfer":
    return preprocess_for_transfer(image, image_size)
  if mode == "finetune_eval":
    return preprocess_for_finetune_eval(image, image_size)
  raise ValueError(f"preprocess: {mode!r}; valid are {', '.join(PREPROCESS_MODES)}")
