"""Registry of the study's datasets (docs/protocol.md §3-§4) and their loading as tf.data.

`get(spec)` returns a DatasetInfo; `load(info, split_name)` a tf.data.Dataset of
(image uint8 [H, W, 3], label int64). Every dataset has four split names: train (what
hyperparameters are tuned with), validation (the dataset's own, else the last
HOLDOUT_PERCENT % of train in TFDS's stored order; ImageNet: 50,046 training images), test
(what results are reported on) and train_full (train + validation, for the final refit).

A spec is a registry name or alias (`_registry`; the demo's "<name>/small" selects its small
config), or "folder:/path", an image folder root/{train,test[,validation]}/<class>/<image>
read with tfds.folder_dataset.ImageFolder (class ids follow sorted folder names; images of
any size and mode decode to RGB; undecodable files are skipped with a warning, refused above
MAX_UNREADABLE_FRACTION of a split). A class subset "name@0-4" (or get(name,
classes="0,2,5")) keeps those classes and relabels them 0..K-1 in the given order.
"""

import dataclasses
import functools
import hashlib
import itertools
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf
import tensorflow_datasets as tfds

from official.core import io
from official.data import birdsnap
from official.data import demo

SPLIT_NAMES = ("train", "validation", "test", "train_full")
METRICS = ("top1", "mean_per_class")
HOLDOUT_PERCENT = 10
IMAGENET_HOLDOUT = 50_046
# Sides of TFDS imagenet_resized/<S>x<S> in the registry (imagenet32, imagenet64).
IMAGENET_RESIZED_SIZES = (32, 64)
FOLDER_PREFIX = "folder:"
FOLDER_SPLITS = ("train", "validation", "test")
# Above this fraction of unreadable files in a split, an image folder is refused.
MAX_UNREADABLE_FRACTION = 0.1
# What tf.io.decode_image reads (PIL format names).
_DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP")
# What tfds.folder_dataset.ImageFolder lists.
_FOLDER_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the study needs to know about one dataset.

  `name` has "@<classes>" for a class subset; `*_split` are TFDS split specs; `num_classes` is
  K after any subset, whose original class ids `classes` holds in new-label order;
  `content_hash` (of an image folder's file paths, sizes and modification times) lets caches
  notice a changed folder.
  """
  name: str
  tfds_name: Optional[str]
  train_split: str
  validation_split: str
  test_split: str
  num_classes: int
  metric: str = "top1"
  image_size: int = 224
  class_names: Optional[Tuple[str, ...]] = None
  train_full_split: str = ""
  classes: Optional[Tuple[int, ...]] = None
  folder: Optional[str] = None
  content_hash: Optional[str] = None

  def class_record(self) -> dict:
    """What identifies the classes in a result file: class names and subset ids (or None)."""
    return {"class_names": list(self.class_names) if self.class_names else None,
            "classes": list(self.classes) if self.classes is not None else None}

  def split(self, split_name: str) -> str:
    """The TFDS split spec of one of SPLIT_NAMES."""
    if split_name not in SPLIT_NAMES:
      raise ValueError(f"split_name: {split_name!r}; valid are {', '.join(SPLIT_NAMES)}")
    return getattr(self, f"{split_name}_split")


def _holdout(name: str, tfds_name: Optional[str], test_split: str, num_classes: int, *,
             metric: str = "top1", image_size: int = 224,
             class_names: Optional[Sequence[str]] = None) -> DatasetInfo:
  """A dataset without its own validation split: the last HOLDOUT_PERCENT % of train."""
  keep = 100 - HOLDOUT_PERCENT
  return DatasetInfo(name=name, tfds_name=tfds_name, train_split=f"train[:{keep}%]",
                     validation_split=f"train[{keep}%:]", test_split=test_split,
                     num_classes=num_classes, metric=metric, image_size=image_size,
                     class_names=tuple(class_names) if class_names else None,
                     train_full_split="train")


def _registry() -> Dict[str, DatasetInfo]:
  imagenets = [("imagenet2012", "imagenet2012", 224)] + [
      (f"imagenet{size}", f"imagenet_resized/{size}x{size}", size)
      for size in IMAGENET_RESIZED_SIZES]
  entries = [
      *(DatasetInfo(name=name, tfds_name=tfds_name, train_split=f"train[:-{IMAGENET_HOLDOUT}]",
                    validation_split=f"train[-{IMAGENET_HOLDOUT}:]", test_split="validation",
                    num_classes=1000, image_size=size, train_full_split="train")
        for name, tfds_name, size in imagenets),
      _holdout("food101", "food101", "validation", 101),
      _holdout("cifar10", "cifar10", "test", 10),
      _holdout("cifar100", "cifar100", "test", 100),
      _holdout("imagenette", "imagenette", "validation", 10),
      _holdout("birdsnap", "birdsnap", "test", birdsnap.NUM_CLASSES),
      _holdout("sun397", "sun397/standard-part1-120k", "test", 397),
      _holdout("cars196", "cars196", "test", 196),
      _holdout("pets", "oxford_iiit_pet", "test", 37, metric="mean_per_class"),
      DatasetInfo(name="flowers", tfds_name="oxford_flowers102", train_split="train",
                  validation_split="validation", test_split="test", num_classes=102,
                  metric="mean_per_class", train_full_split="train+validation"),
  ]
  for name, task in (("demo_pretrain", "pretrain"), ("demo_size", "size"),
                     ("demo_novel_shapes", "novel_shapes"), ("demo_digits", "digits")):
    names = demo.class_names(task)
    entries.append(_holdout(name, name, "test", len(names), image_size=demo.IMAGE_SIZE,
                            class_names=names))
  return {info.name: info for info in entries}


REGISTRY = _registry()
ALIASES = {"digits": "demo_digits", "oxford_iiit_pet": "pets",
           "oxford_flowers102": "flowers", "imagenet": "imagenet2012",
           "sun397/standard-part1-120k": "sun397",
           **{f"imagenet_resized/{size}x{size}": f"imagenet{size}"
              for size in IMAGENET_RESIZED_SIZES}}
# The datasets of Table 1 (the embedded demo's analogues: config.DEMO_TRANSFER).
TRANSFER_DATASETS = ("food101", "cifar10", "cifar100", "birdsnap", "sun397", "cars196",
                     "pets", "flowers")
# Builders whose data cannot be downloaded by TFDS.
_MANUAL = {
    "imagenet2012": ("download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
                     "https://image-net.org into {manual}, then run `tfds build imagenet2012 "
                     "--data_dir={data_dir}` (or load it again)"),
    "birdsnap": ("put the Birdsnap v1.1 release (test_images.txt, species.txt) and the images "
                 "fetched by its get_birdsnap.py (images/<Species>/<id>.jpg) into "
                 "{manual}/birdsnap, then load it again"),
}


def valid_names() -> List[str]:
  return sorted(REGISTRY) + sorted(ALIASES) + [FOLDER_PREFIX + "<path>"]


def result_name(spec: str) -> str:
  """File-name spelling of a dataset spec ("folder:/d/x@5-9" -> "folder__d_x_5-9")."""
  return re.sub(r"[^A-Za-z0-9_.\-]", "_", spec) or "_"


def class_name_difference(names: Sequence[str], recorded: Sequence[str]) -> Optional[str]:
  """None when two class-name lists agree label by label, else one line saying where not."""
  names, recorded = tuple(names), tuple(recorded)
  if names == recorded:
    return None
  k = next(k for k in range(max(len(names), len(recorded)))
           if names[k:k + 1] != recorded[k:k + 1])

  def shown(values: tuple) -> str:
    low, high = max(0, k - 1), min(len(values), k + 2)
    items = [f"{i}: {values[i]!r}" for i in range(low, high)]
    return "[" + ", ".join((["..."] if low else []) + items +
                           (["..."] if high < len(values) else [])) + "]"

  at = lambda values: values[k] if k < len(values) else None
  return (f"{len(names)} classes {shown(names)} vs {len(recorded)} recorded {shown(recorded)} "
          f"(label {k}: {at(names)!r} vs {at(recorded)!r})")


def parse_classes(classes: str, num_classes: int) -> Tuple[int, ...]:
  """Parses "0-4" (inclusive range), "0,2,5" or mixes like "0-3,7" into class ids."""
  if not isinstance(classes, str) or not classes.strip():
    raise ValueError(f"classes: {classes!r}; valid is e.g. '0-4' or '0,2,5'")
  ids = []
  for item in classes.split(","):
    item = item.strip()
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", item)
    if not match:
      raise ValueError(f"classes: item {item!r} of {classes!r} is not an id or a range a-b; "
                       "valid is e.g. '0-4' or '0,2,5'")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if high < low:
      raise ValueError(f"classes: range {item!r} is decreasing; valid is a-b with a <= b")
    ids.extend(range(low, high + 1))
  out_of_range = [i for i in ids if i >= num_classes]
  if out_of_range:
    raise ValueError(f"classes: ids {out_of_range[:5]} out of range; valid are 0..."
                     f"{num_classes - 1}")
  if len(set(ids)) != len(ids):
    raise ValueError(f"classes: {classes!r} repeats a class; valid lists each class once")
  if len(ids) < 2:
    raise ValueError(f"classes: {classes!r} selects {len(ids)} class; valid selects at least 2")
  return tuple(ids)


def _format_classes(ids: Sequence[int]) -> str:
  """Canonical text of a class list: runs of consecutive ids as ranges ("0-4,7")."""
  parts = []
  for _, run in itertools.groupby(enumerate(ids), lambda pair: pair[1] - pair[0]):
    run = [i for _, i in run]
    parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
  return ",".join(parts)


def _with_classes(info: DatasetInfo, classes: str) -> DatasetInfo:
  ids = parse_classes(classes, info.num_classes)
  names = tuple(info.class_names[i] for i in ids) if info.class_names else None
  return dataclasses.replace(info, name=f"{info.name}@{_format_classes(ids)}",
                             num_classes=len(ids), classes=ids, class_names=names)


def _split_subset(spec: str) -> Tuple[str, Optional[str]]:
  """"name@0-4" -> ("name", "0-4"); a spec without a class subset -> (spec, None)."""
  base, _, suffix = spec.rpartition("@")
  if base and re.fullmatch(r"[\d,\-\s]+", suffix):
    return base, suffix
  return spec, None


def canonical_spec(spec: str) -> str:
  """`spec` stripped, an image folder's path made absolute (the same from any directory)."""
  spec = spec.strip()
  base, classes = _split_subset(spec)
  if not base.startswith(FOLDER_PREFIX):
    return spec
  path = _folder_root(base[len(FOLDER_PREFIX):])
  return FOLDER_PREFIX + path + (f"@{classes}" if classes is not None else "")


def get(spec: str, *, data_dir: Optional[str] = None,
        classes: Optional[str] = None) -> DatasetInfo:
  """DatasetInfo of a spec (module docstring); `data_dir` is only read for label names."""
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"dataset: {spec!r}; valid are {', '.join(valid_names())}")
  spec = spec.strip()
  base, suffix = _split_subset(spec)
  if suffix is not None:
    if classes is not None:
      raise ValueError(f"dataset: {spec!r} has a class subset and classes={classes!r} too; "
                       "give one of them")
    spec, classes = base, suffix
  if spec.startswith(FOLDER_PREFIX):
    info = _folder_info(spec[len(FOLDER_PREFIX):])
  else:
    name, _, config = ALIASES.get(spec, spec).partition("/")
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
      raise ValueError(f"dataset: unknown {spec!r}; valid are {', '.join(valid_names())}")
    info = REGISTRY[name]
    if config:
      configs = ([c.name for c in tfds.builder_cls(name).BUILDER_CONFIGS]
                 if name in demo.DATASET_NAMES else [])
      if config not in configs:
        valid = ", ".join(f"{name}/{c}" for c in configs) or "none"
        raise ValueError(f"dataset: {spec!r} names an unknown config; valid configs: {valid}")
      info = dataclasses.replace(info, name=f"{name}/{config}", tfds_name=f"{name}/{config}")
    if info.class_names is None:
      label = tfds.builder(info.tfds_name, data_dir=data_dir).info.features["label"]
      names = getattr(label, "names", None)
      info = dataclasses.replace(info, class_names=tuple(names) if names else None)
  if classes is not None:
    info = _with_classes(info, classes)
  return info


def prepare(specs: Sequence[str], *, data_dir: Optional[str] = None) -> None:
  """Generates (embedded data) or checks (TFDS datasets) every dataset of `specs`."""
  for spec in specs:
    info = get(spec, data_dir=data_dir)
    if info.tfds_name is not None:
      _prepared_builder(info, data_dir)


def _prepared_builder(info: DatasetInfo, data_dir: Optional[str]):
  """The TFDS builder of `info`, generated/downloaded first if needed (as tfds.load does)."""
  builder = tfds.builder(info.tfds_name, data_dir=data_dir)
  base = info.tfds_name.split("/")[0]
  try:
    builder.download_and_prepare()
  except (AssertionError, FileNotFoundError, tf.errors.NotFoundError, ValueError) as e:
    if base not in _MANUAL:
      raise
    root = os.fspath(builder.data_dir_root)
    manual = os.path.join(root, "downloads", "manual")
    how = _MANUAL[base].format(manual=manual, data_dir=root)
    detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f"{info.name}: not prepared in {root} ({detail}); to prepare it, "
                     f"{how}") from e
  return builder


def _split_infos(builder) -> Dict[str, tfds.core.SplitInfo]:
  return dict(builder.info.splits.items())


def _check_splits(info: DatasetInfo, builder, spec: str) -> None:
  available = _split_infos(builder)
  if not available:  # Split sizes unknown (e.g. under tfds.testing.mock_data).
    return
  try:
    tfds.core.ReadInstruction.from_spec(spec).to_absolute(available)
  except (KeyError, ValueError, AssertionError) as e:
    raise ValueError(f"{info.name}: split {spec!r} is not in the prepared {info.tfds_name} "
                     f"(splits: {', '.join(sorted(available))})") from e


def _filter_classes(ds: tf.data.Dataset, info: DatasetInfo) -> tf.data.Dataset:
  """Keeps the examples of info.classes and relabels them 0..K-1 (given order)."""
  if info.classes is None:
    return ds
  size = max(info.classes) + 1
  lookup = [-1] * size
  for new, old in enumerate(info.classes):
    lookup[old] = new
  table = tf.constant(lookup, tf.int64)

  def new_label(label):
    inside = tf.logical_and(label >= 0, label < size)
    return tf.where(inside, tf.gather(table, tf.clip_by_value(label, 0, size - 1)), -1)

  ds = ds.filter(lambda image, label: new_label(label) >= 0)
  return ds.map(lambda image, label: (image, new_label(label)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def decode(image: tf.Tensor) -> tf.Tensor:
  """Encoded image bytes (JPEG/PNG/GIF/BMP/WebP, any mode) -> uint8 [H, W, 3]; an already
  decoded uint8 image passes through."""
  if image.dtype == tf.string:
    image = tf.io.decode_image(image, channels=3, dtype=tf.uint8, expand_animations=False)
    return tf.ensure_shape(image, [None, None, 3])
  return image


def load_encoded(info: DatasetInfo, split_name: str, *,
                 data_dir: Optional[str] = None) -> tf.data.Dataset:
  """`load` with images still encoded where stored so: decoding after shuffling
  (input_pipeline.build) keeps the shuffle buffer small."""
  spec = info.split(split_name)
  if info.folder is not None:
    ds = _load_folder(info, spec)
  else:
    builder = _prepared_builder(info, data_dir)
    _check_splits(info, builder, spec)
    skip = ({"image": tfds.decode.SkipDecoding()}
            if isinstance(builder.info.features["image"], tfds.features.Image) else {})
    # Parse only what the study uses (not bounding boxes, file names, masks ...).
    decoders = tfds.decode.PartialDecoding({"image": True, "label": True}, decoders=skip)
    ds = builder.as_dataset(split=spec, decoders=decoders, shuffle_files=False)
    ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return _filter_classes(ds, info)


def load(info: DatasetInfo, split_name: str, *,
         data_dir: Optional[str] = None) -> tf.data.Dataset:
  """(image uint8 [H, W, 3], label int64 0..K-1) of one of SPLIT_NAMES, in a fixed order.

  Prepares the data like tfds.load; a missing manual download is a ValueError saying how.
  """
  ds = load_encoded(info, split_name, data_dir=data_dir)
  return ds.map(lambda image, label: (decode(image), label),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def num_examples(info: DatasetInfo, split_name: str, *,
                 data_dir: Optional[str] = None) -> int:
  """Examples of a split: TFDS's recorded sizes (counted for a class subset)."""
  spec = info.split(split_name)
  if info.classes is not None:
    ds = load_encoded(info, split_name, data_dir=data_dir)
    return int(ds.map(lambda image, label: label).reduce(
        tf.constant(0, tf.int64), lambda count, _: count + 1).numpy())
  return _count(spec, split_infos(info, data_dir=data_dir))


def split_infos(info: DatasetInfo, *,
                data_dir: Optional[str] = None) -> Dict[str, tfds.core.SplitInfo]:
  """Stored split name -> tfds SplitInfo (before any class subset; a folder's readable
  images)."""
  if info.folder is not None:
    return _folder_split_infos(_scan_folder(info.folder))
  return _split_infos(_prepared_builder(info, data_dir))


def split_ranges(spec: str, infos: Dict[str, tfds.core.SplitInfo]) -> List[Tuple[str, int, int]]:
  """(stored split, start, end) of every part of a TFDS split spec, in absolute indices."""
  ranges = []
  for part in tfds.core.ReadInstruction.from_spec(spec).to_absolute(infos):
    end = infos[part.splitname].num_examples if part.to is None else part.to
    ranges.append((part.splitname, part.from_ or 0, end))
  return ranges


def _count(spec: str, infos: Dict[str, tfds.core.SplitInfo]) -> int:
  return sum(max(0, end - start) for _, start, end in split_ranges(spec, infos))


# ---------------------------------------------------------------------------------------------
# Image folders.


@dataclasses.dataclass(frozen=True)
class _FolderScan:
  root: str
  class_names: Tuple[str, ...]
  counts: Tuple[Tuple[str, int], ...]  # split -> readable images
  unreadable: Tuple[str, ...]  # paths of image files that will be skipped
  content_hash: str  # of every file's relative path, size and modification time


_FOLDER_SCANS: Dict[str, _FolderScan] = {}


def _image_problem(path: str) -> Optional[str]:
  """Why PIL cannot vouch for an image file (None if it can).

  Verified, then decoded, so a truncated file that would fail mid-run is caught here; JPEGs
  decode at 1/8 scale (draft mode), which still reads all their data.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with tf.io.gfile.GFile(path, "rb") as f, Image.open(f) as image:
      image_format = image.format
      image.verify()
    with tf.io.gfile.GFile(path, "rb") as f, Image.open(f) as image:
      if image_format == "JPEG":
        image.draft("RGB", (1, 1))
      image.load()
  except Exception as e:  # pylint: disable=broad-except
    # PIL signals corrupt files with many exception types (OSError, SyntaxError, ...).
    return f"unreadable ({type(e).__name__})"
  if image_format not in _DECODABLE_FORMATS:
    return f"format {image_format} cannot be decoded"
  return None


def _list_dirs(path: str) -> List[str]:
  return [e for e in io.listdir(path) if io.isdir(io.join(path, e))]


def _is_file(path: str) -> bool:
  return io.exists(path) and not io.isdir(path)  # (a dangling link is neither)


def _folder_root(path: str) -> str:
  """An image folder's path, absolute ("~" expanded) when local; a URL unchanged."""
  return io.absolute(path if io.is_remote(path) else os.path.expanduser(path))


def _scan_folder(path: str) -> _FolderScan:
  """Validates an image folder and lists its classes and unreadable files (cached)."""
  root = _folder_root(path)
  if root in _FOLDER_SCANS:
    return _FOLDER_SCANS[root]
  where = FOLDER_PREFIX + root
  layout = "root/train/<class>/<image> and root/test/<class>/<image>"
  if not io.isdir(root):
    raise ValueError(f"{where}: not a directory; expected {layout}")
  splits = _list_dirs(root)
  unexpected = [s for s in splits if s not in FOLDER_SPLITS]
  if unexpected:
    raise ValueError(f"{where}: unexpected folder {unexpected[0]!r}; valid split folders are "
                     f"{', '.join(FOLDER_SPLITS)}")
  for required in ("train", "test"):
    if required not in splits:
      raise ValueError(f"{where}: missing {os.path.join(root, required)}; expected {layout}")
  classes = {split: _list_dirs(os.path.join(root, split)) for split in splits}
  train_classes = classes["train"]
  if len(train_classes) < 2:
    raise ValueError(f"{where}: {len(train_classes)} class folder(s) in "
                     f"{os.path.join(root, 'train')}; valid has at least 2")
  for split, names in classes.items():
    if names != train_classes:
      missing = sorted(set(train_classes) - set(names))
      extra = sorted(set(names) - set(train_classes))
      problem = (f"lacks classes {missing[:5]}" if missing
                 else f"has classes {extra[:5]} that train lacks")
      raise ValueError(f"{where}: split {split!r} {problem}; every split needs the same "
                       "class folders")
  counts, unreadable, ignored = [], [], []
  content = hashlib.sha256()
  for split in splits:
    split_total, split_bad = 0, []
    for name in train_classes:
      class_dir = os.path.join(root, split, name)
      files = [f for f in io.listdir(class_dir) if _is_file(io.join(class_dir, f))]
      if not [f for f in files if not f.startswith(".")]:
        raise ValueError(f"{where}: class folder {class_dir} is empty; valid has at least "
                         "one image")
      readable, bad = 0, []
      for f in files:
        file_path = os.path.join(class_dir, f)
        stat = io.stat(file_path)
        content.update(f"{split}/{name}/{f}\0{stat.size}\0{stat.mtime_ns}\n".encode())
        if not f.lower().endswith(_FOLDER_SUFFIXES):
          if not f.startswith("."):
            ignored.append(file_path)
          continue
        problem = _image_problem(file_path)
        if problem is None:
          readable += 1
        else:
          bad.append((file_path, problem))
      if readable == 0:
        detail = f"{bad[0][0]} is {bad[0][1]}" if bad else "no .jpg/.jpeg/.png files"
        raise ValueError(f"{where}: class folder {class_dir} has no readable image ({detail})")
      split_total += readable + len(bad)
      split_bad.extend(bad)
    if len(split_bad) > MAX_UNREADABLE_FRACTION * split_total:
      raise ValueError(f"{where}: {len(split_bad)} of {split_total} images in split {split!r} "
                       f"are unreadable, e.g. {split_bad[0][0]} is {split_bad[0][1]}")
    counts.append((split, split_total - len(split_bad)))
    unreadable.extend(path for path, _ in split_bad)
  skipped = [f"{len(paths)} {kind} ({', '.join(paths[:20])}"
             f"{', ...' if len(paths) > 20 else ''})"
             for kind, paths in (("unreadable image(s)", unreadable),
                                 ("non-image file(s)", ignored)) if paths]
  if skipped:
    logging.warning("%s: skipping %s", where, " and ".join(skipped))
  scan = _FolderScan(root=root, class_names=tuple(train_classes), counts=tuple(counts),
                     unreadable=tuple(unreadable), content_hash=content.hexdigest()[:16])
  _FOLDER_SCANS[root] = scan
  return scan


def _folder_split_infos(scan: _FolderScan) -> Dict[str, tfds.core.SplitInfo]:
  return {split: tfds.core.SplitInfo(name=split, shard_lengths=[count], num_bytes=0)
          for split, count in scan.counts}


def _folder_info(path: str) -> DatasetInfo:
  scan = _scan_folder(path)
  info = _holdout(FOLDER_PREFIX + scan.root, None, "test", len(scan.class_names),
                  class_names=scan.class_names)
  if "validation" in dict(scan.counts):
    info = dataclasses.replace(info, train_split="train", validation_split="validation",
                               train_full_split="train+validation")
  return dataclasses.replace(info, folder=scan.root, content_hash=scan.content_hash)


def _load_folder(info: DatasetInfo, spec: str) -> tf.data.Dataset:
  """(encoded image, label) of a split spec of an image folder, unreadable files skipped."""
  scan = _scan_folder(info.folder)
  builder = tfds.folder_dataset.ImageFolder(scan.root)
  names = tuple(builder.info.features["label"].names)
  if names != scan.class_names:
    raise ValueError(f"{info.name}: ImageFolder found classes {names[:5]}, expected "
                     f"{scan.class_names[:5]}; the folder changed while loading")
  bad = tf.constant(list(scan.unreadable) or [""], tf.string)

  def split_dataset(split: str) -> tf.data.Dataset:
    ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()},
                            shuffle_files=False)
    if scan.unreadable:
      ds = ds.filter(
          lambda ex: tf.logical_not(tf.reduce_any(tf.equal(ex["image/filename"], bad))))
    return ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64)))

  pieces = []
  for instruction in tfds.core.ReadInstruction.from_spec(spec).to_absolute(
      _folder_split_infos(scan)):
    ds = split_dataset(instruction.splitname)
    if instruction.from_:
      ds = ds.skip(instruction.from_)
    if instruction.to is not None:
      ds = ds.take(instruction.to - (instruction.from_ or 0))
    pieces.append(ds)
  return functools.reduce(tf.data.Dataset.concatenate, pieces)
