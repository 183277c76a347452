"""Tests of the dataset registry, split resolution, class subsets, Birdsnap and folders."""

import os
import shutil

from absl.testing import parameterized
import numpy as np
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from official.data import datasets

# testdata/image_folder: train/ and test/ with 5 images (RGB JPEG, L, RGBA and P PNG, PNG named
# .jpeg) per class, plus a corrupt train/dog/broken.jpg and train/cat/notes.txt. The red
# channel of every image encodes its class. Found relative to this file (pytest and Bazel).
_IMAGE_FOLDER = os.path.normpath(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "image_folder"))
_IMAGE_FOLDER_RED = {"cat": 10, "dog": 120, "zebra": 240}

# Split sizes of the real datasets (TFDS catalogue; Birdsnap as in the paper), written as
# metadata so that tfds.testing.mock_data reports them.
_REAL_SPLITS = {
    "imagenet2012": {"train": 1_281_167, "validation": 50_000},
    "food101": {"train": 75_750, "validation": 25_250},
    "cifar10": {"train": 50_000, "test": 10_000},
    "cifar100": {"train": 50_000, "test": 10_000},
    "birdsnap": {"train": 47_386, "test": 2_443},
    "sun397/standard-part1-120k": {"train": 19_850, "test": 19_850},
    "cars196": {"train": 8_144, "test": 8_041},
    "oxford_iiit_pet": {"train": 3_680, "test": 3_669},
    "oxford_flowers102": {"train": 1_020, "validation": 1_020, "test": 6_149},
}

# name: sizes of train, validation, test, train_full (holdout = last 10% of train).
_EXPECTED_SIZES = {
    "imagenet2012": (1_231_121, 50_046, 50_000, 1_281_167),
    "food101": (68_175, 7_575, 25_250, 75_750),
    "cifar10": (45_000, 5_000, 10_000, 50_000),
    "cifar100": (45_000, 5_000, 10_000, 50_000),
    "birdsnap": (42_647, 4_739, 2_443, 47_386),
    "sun397": (17_865, 1_985, 19_850, 19_850),
    "cars196": (7_330, 814, 8_041, 8_144),
    "pets": (3_312, 368, 3_669, 3_680),
    "flowers": (1_020, 1_020, 6_149, 2_040),
}

_EXPECTED = {
    # name: (tfds_name, test split, metric, num_classes)
    "imagenet2012": ("imagenet2012", "validation", "top1", 1000),
    "food101": ("food101", "validation", "top1", 101),
    "cifar10": ("cifar10", "test", "top1", 10),
    "cifar100": ("cifar100", "test", "top1", 100),
    "birdsnap": ("birdsnap", "test", "top1", 500),
    "sun397": ("sun397/standard-part1-120k", "test", "top1", 397),
    "cars196": ("cars196", "test", "top1", 196),
    "pets": ("oxford_iiit_pet", "test", "mean_per_class", 37),
    "flowers": ("oxford_flowers102", "test", "mean_per_class", 102),
    "demo_pretrain": ("demo_pretrain", "test", "top1", 48),
    "demo_size": ("demo_size", "test", "top1", 4),
    "demo_novel_shapes": ("demo_novel_shapes", "test", "top1", 24),
    "demo_digits": ("demo_digits", "test", "top1", 10),
}


def _write_metadata(data_dir: str, name: str, splits) -> None:
  builder = tfds.builder(name, data_dir=data_dir)
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0)
      for split, n in splits.items()]))
  builder.data_path.mkdir(parents=True, exist_ok=True)
  builder.info.write_to_directory(builder.data_path)


def _save(path: str, image: Image.Image, image_format: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path, format=image_format)


class RegistryTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.data_dir = self.create_tempdir().full_path

  @parameterized.parameters(sorted(_EXPECTED))
  def test_registry_entries(self, name):
    info = datasets.get(name, data_dir=self.data_dir)
    tfds_name, test_split, metric, num_classes = _EXPECTED[name]
    self.assertEqual(info.tfds_name, tfds_name)
    self.assertEqual(info.test_split, test_split)
    self.assertEqual(info.metric, metric)
    self.assertEqual(info.num_classes, num_classes)
    self.assertIn(info.metric, datasets.METRICS)
    if name == "flowers":
      self.assertEqual((info.train_split, info.validation_split, info.train_full_split),
                       ("train", "validation", "train+validation"))
    elif name == "imagenet2012":
      self.assertEqual((info.train_split, info.validation_split, info.train_full_split),
                       ("train[:-50046]", "train[-50046:]", "train"))
    else:
      self.assertEqual((info.train_split, info.validation_split, info.train_full_split),
                       ("train[:90%]", "train[90%:]", "train"))
    self.assertEqual(info.image_size, 32 if name.startswith("demo_") else 224)

  def test_aliases_configs_and_unknown_names(self):
    self.assertEqual(datasets.get("digits").name, "demo_digits")
    self.assertEqual(datasets.get("oxford_iiit_pet", data_dir=self.data_dir).name, "pets")
    small = datasets.get("demo_size/small")
    self.assertEqual(small.tfds_name, "demo_size/small")
    with self.assertRaisesRegex(ValueError, r"^dataset: unknown 'mnist'; valid are .*food101"):
      datasets.get("mnist")
    with self.assertRaisesRegex(ValueError, "valid configs: demo_size/default"):
      datasets.get("demo_size/huge")
    with self.assertRaisesRegex(ValueError, "split_name"):
      datasets.get("demo_size").split("holdout")

  def test_mock_data_loads_every_transfer_dataset_and_imagenet(self):
    with tfds.testing.mock_data(num_examples=3):
      for name in datasets.TRANSFER_DATASETS + ("imagenet2012",):
        info = datasets.get(name, data_dir=self.data_dir)
        examples = list(datasets.load(info, "train", data_dir=self.data_dir))
        self.assertLen(examples, 3, msg=name)
        for image, label in examples:
          self.assertEqual(image.dtype, tf.uint8)
          self.assertEqual(image.shape[-1], 3)
          self.assertEqual(label.dtype, tf.int64)
          self.assertBetween(int(label), 0, info.num_classes - 1)

  def test_split_names_resolve_to_sizes_from_split_info(self):
    metadata = self.create_tempdir().full_path
    for name, splits in _REAL_SPLITS.items():
      _write_metadata(metadata, name, splits)
    with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=metadata):
      for name, sizes in _EXPECTED_SIZES.items():
        info = datasets.get(name, data_dir=self.data_dir)
        got = tuple(datasets.num_examples(info, s, data_dir=self.data_dir)
                    for s in datasets.SPLIT_NAMES)
        self.assertEqual(got, sizes, msg=name)
        self.assertLen(list(datasets.load(info, "validation", data_dir=self.data_dir)), 2)

  def test_imagenet_without_manual_download_says_how_to_prepare(self):
    info = datasets.get("imagenet2012", data_dir=self.data_dir)
    with self.assertRaises(ValueError) as raised:
      datasets.load(info, "train", data_dir=self.data_dir)
    message = str(raised.exception)
    self.assertNotIn("\n", message)
    self.assertIn(os.path.join(self.data_dir, "downloads", "manual"), message)
    self.assertIn("ILSVRC2012_img_train.tar", message)
    self.assertIn("tfds build imagenet2012", message)


class ClassSubsetTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(("0-4", (0, 1, 2, 3, 4)), ("0,2,5", (0, 2, 5)),
                            ("7, 1-3", (7, 1, 2, 3)), ("9", None), ("3-1", None),
                            ("0,0", None), ("0-10", None), ("a", None), ("", None))
  def test_parse_classes(self, text, expected):
    if expected is None:
      with self.assertRaisesRegex(ValueError, "^classes: "):
        datasets.parse_classes(text, 10)
    else:
      self.assertEqual(datasets.parse_classes(text, 10), expected)

  def test_subset_selects_and_remaps(self):
    data_dir = self.create_tempdir().full_path
    full = datasets.get("digits")
    subset = datasets.get("digits", classes="7,2")
    self.assertEqual(subset, datasets.get("demo_digits@7,2"))
    self.assertEqual(subset.name, "demo_digits@7,2")
    self.assertEqual(subset.num_classes, 2)
    self.assertEqual(subset.class_names, ("7", "2"))
    self.assertEqual(subset.classes, (7, 2))
    with self.assertRaisesRegex(ValueError, "give one of them"):
      datasets.get("digits@1,2", classes="3,4")
    by_label = {}
    for image, label in datasets.load(full, "test", data_dir=data_dir).as_numpy_iterator():
      by_label.setdefault(int(label), set()).add(image.tobytes())
    images = {0: set(), 1: set()}
    for image, label in datasets.load(subset, "test", data_dir=data_dir).as_numpy_iterator():
      images[int(label)].add(image.tobytes())
    self.assertEqual(images[0], by_label[7])
    self.assertEqual(images[1], by_label[2])
    self.assertEqual(datasets.num_examples(subset, "test", data_dir=data_dir), 100)
    self.assertEqual(datasets.num_examples(full, "test", data_dir=data_dir), 500)


class BirdsnapTest(tf.test.TestCase):

  def test_builds_from_manual_directory(self):
    data_dir = self.create_tempdir().full_path
    root = os.path.join(data_dir, "downloads", "manual", "birdsnap")
    species = ["Blue_Jay", "Acadian_Flycatcher", "Zone_tailed_Hawk"]
    test_paths = []
    for i, name in enumerate(species):
      for j in range(4):
        relative = f"{name}/{100 * i + j}.jpg"
        _save(os.path.join(root, "images", relative),
              Image.new("RGB", (20 + j, 16), (40 * (i + 1), 0, 0)), "JPEG")
        if j == 0:
          test_paths.append(relative)
    with open(os.path.join(root, "test_images.txt"), "w") as f:
      f.write("path\n" + "\n".join(test_paths) + "\n")
    with open(os.path.join(root, "species.txt"), "w") as f:
      f.write("id\tcommon\tscientific\tdir\n")
      for i, name in enumerate(["Acadian_Flycatcher", "Blue_Jay", "Zone_tailed_Hawk"]):
        f.write(f"{i + 1}\t{name}\tX y\t{name}\n")
    info = datasets.get("birdsnap", data_dir=data_dir)
    test = list(datasets.load(info, "test", data_dir=data_dir).as_numpy_iterator())
    train = list(datasets.load(info, "train_full", data_dir=data_dir).as_numpy_iterator())
    self.assertLen(test, 3)
    self.assertLen(train, 9)
    # species.txt ids: Acadian_Flycatcher -> 0, Blue_Jay -> 1, Zone_tailed_Hawk -> 2; the
    # red channel encodes the folder (Blue_Jay 40, Acadian_Flycatcher 80, Zone_tailed 120).
    red_to_label = {40: 1, 80: 0, 120: 2}
    for image, label in test + train:
      red = int(round(float(image[..., 0].mean()) / 40.0)) * 40
      self.assertEqual(red_to_label[red], label)
    self.assertEqual(datasets.num_examples(info, "test", data_dir=data_dir), 3)

  def test_missing_manual_directory(self):
    data_dir = self.create_tempdir().full_path
    info = datasets.get("birdsnap", data_dir=data_dir)
    with self.assertRaises(ValueError) as raised:
      datasets.load(info, "train", data_dir=data_dir)
    message = str(raised.exception)
    self.assertNotIn("\n", message)
    self.assertIn(os.path.join(data_dir, "downloads", "manual"), message)
    self.assertIn("birdsnap", message)


class FolderTest(tf.test.TestCase):

  def _make_folder(self, with_validation=False):
    """The committed fixture testdata/image_folder (README.md there), read in place.

    With `with_validation` a copy in a temporary directory gains a validation split (a copy of
    test), so the fixture itself is never written.
    """
    if not with_validation:
      return _IMAGE_FOLDER, _IMAGE_FOLDER_RED
    root = os.path.join(self.create_tempdir().full_path, "image_folder")
    shutil.copytree(_IMAGE_FOLDER, root)
    shutil.copytree(os.path.join(root, "test"), os.path.join(root, "validation"))
    return root, _IMAGE_FOLDER_RED

  def test_fixture_holds_every_image_mode(self):
    # What the loader is tested against: four modes, two formats, one corrupt file.
    modes = {}
    for split in ("train", "test"):
      for name, value in _IMAGE_FOLDER_RED.items():
        for file_name in sorted(os.listdir(os.path.join(_IMAGE_FOLDER, split, name))):
          path = os.path.join(_IMAGE_FOLDER, split, name, file_name)
          if file_name in ("broken.jpg", "notes.txt"):
            with self.assertRaises(OSError):
              Image.open(path).load()
            continue
          with Image.open(path) as image:
            modes.setdefault(image.mode, set()).add(image.format)
            # JPEG is lossy: within a few levels.
            self.assertAlmostEqual(image.convert("RGB").getpixel((0, 0))[0], value, delta=3,
                                   msg=path)
    self.assertEqual(modes, {"RGB": {"JPEG", "PNG"}, "L": {"PNG"}, "RGBA": {"PNG"},
                             "P": {"PNG"}})

  def _snapshot(self, root):
    return sorted((d, tuple(sorted(f))) for d, _, f in os.walk(root))

  def test_loads_with_labels_and_skips_corrupt_file(self):
    root, red = self._make_folder()
    before = self._snapshot(root)
    with self.assertLogs(level="WARNING") as logs:
      info = datasets.get("folder:" + root)
    self.assertIn("1 unreadable", "\n".join(logs.output))
    self.assertIn("broken.jpg", "\n".join(logs.output))
    self.assertEqual(info.class_names, ("cat", "dog", "zebra"))
    self.assertEqual(info.num_classes, 3)
    self.assertEqual((info.train_split, info.validation_split), ("train[:90%]", "train[90%:]"))
    train_full = list(datasets.load(info, "train_full").as_numpy_iterator())
    self.assertLen(train_full, 15)
    reds = np.array([red[name] for name in info.class_names])
    for image, label in train_full:
      self.assertEqual(image.shape[-1], 3)
      self.assertEqual(np.argmin(np.abs(reds - image[..., 0].mean())), label)
    self.assertEqual(datasets.num_examples(info, "train"), 14)  # round(0.9 * 15)
    self.assertEqual(datasets.num_examples(info, "validation"), 1)
    self.assertLen(list(datasets.load(info, "train")), 14)
    test = list(datasets.load(info, "test").as_numpy_iterator())
    self.assertEqual(sorted(int(label) for _, label in test), [0] * 5 + [1] * 5 + [2] * 5)
    subset = datasets.get("folder:" + root, classes="2,0")
    labels = sorted(int(label) for _, label in datasets.load(subset, "test"))
    self.assertEqual(labels, [0] * 5 + [1] * 5)
    self.assertEqual(self._snapshot(root), before)

  def test_validation_folder_is_used(self):
    root, _ = self._make_folder(with_validation=True)
    info = datasets.get("folder:" + root)
    self.assertEqual((info.train_split, info.validation_split, info.train_full_split),
                     ("train", "validation", "train+validation"))
    self.assertEqual(datasets.num_examples(info, "train_full"), 30)
    self.assertLen(list(datasets.load(info, "train_full")), 30)

  def _assert_one_line_error(self, root, pattern):
    with self.assertRaisesRegex(ValueError, pattern) as raised:
      datasets.get("folder:" + root)
    self.assertNotIn("\n", str(raised.exception))
    self.assertIn(root, str(raised.exception))

  def test_bad_folders(self):
    base = self.create_tempdir().full_path
    self._assert_one_line_error(os.path.join(base, "missing"), "not a directory")

    def folder(name, layout):
      root = os.path.join(base, name)
      for relative, content in layout.items():
        path = os.path.join(root, relative)
        if content is None:
          os.makedirs(path, exist_ok=True)
        elif isinstance(content, bytes):
          os.makedirs(os.path.dirname(path), exist_ok=True)
          with open(path, "wb") as f:
            f.write(content)
        else:
          _save(path, content, "PNG")
      return root

    good = Image.new("RGB", (8, 8))
    self._assert_one_line_error(folder("no_test", {"train/a/x.png": good,
                                                   "train/b/x.png": good}), "missing")
    self._assert_one_line_error(folder("one_class", {"train/a/x.png": good,
                                                     "test/a/x.png": good}),
                                "at least 2")
    self._assert_one_line_error(folder("empty_class", {"train/a/x.png": good, "train/b": None,
                                                       "test/a/x.png": good,
                                                       "test/b/x.png": good}), "is empty")
    self._assert_one_line_error(folder("mismatch", {"train/a/x.png": good,
                                                    "train/b/x.png": good,
                                                    "test/a/x.png": good,
                                                    "test/c/x.png": good}),
                                "split 'test' lacks classes \\['b'\\]")
    self._assert_one_line_error(folder("unreadable", {"train/a/x.png": good,
                                                      "train/b/x.png": b"garbage",
                                                      "test/a/x.png": good,
                                                      "test/b/x.png": good}),
                                "no readable image")
    self._assert_one_line_error(folder("not_images", {"train/a/x.png": good,
                                                      "train/b/x.txt": b"text",
                                                      "test/a/x.png": good,
                                                      "test/b/x.png": good}),
                                "no readable image")
    self._assert_one_line_error(folder("extra", {"train/a/x.png": good,
                                                 "train/b/x.png": good,
                                                 "test/a/x.png": good, "test/b/x.png": good,
                                                 "val/a/x.png": good}),
                                "unexpected folder 'val'")
    many_bad = {"test/a/x.png": good, "test/b/x.png": good}
    for i in range(4):
      many_bad[f"train/a/{i}.png"] = good
      many_bad[f"train/b/{i}.png"] = good if i < 2 else b"garbage"
    self._assert_one_line_error(folder("many_bad", many_bad), "2 of 8 images")


if __name__ == "__main__":
  tf.test.main()
