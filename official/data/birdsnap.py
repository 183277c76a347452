"""Birdsnap (Berg et al., CVPR 2014) as a TFDS dataset built from a manual download.

Birdsnap is not in TFDS and its images are Flickr links, many of them dead, so the dataset
is built from what the official release's `get_birdsnap.py` downloaded (the paper's splits
have 47,386 train / 2,443 test images; a fresh download has fewer). Expected layout:

  <data_dir>/downloads/manual/birdsnap/
    test_images.txt                  header line "path", then one <Species_dir>/<id>.jpg a line
    species.txt                      optional: tab-separated id, common, scientific, dir
    images/<Species_dir>/<id>.jpg    the downloaded images

Labels: species id - 1 when species.txt is present (ids 1..500), otherwise the index of the
species folder in sorted order. The test split holds the images listed in test_images.txt,
the train split every other image.
"""

import os
from typing import Dict, Iterator

from etils import epath
import tensorflow_datasets as tfds

NUM_CLASSES = 500
MANUAL_SUBDIR = "birdsnap"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Download birdsnap.tgz (v1.1) from the Birdsnap website, extract it, run "
    "`python get_birdsnap.py` to fetch the images, and place the result as "
    "<manual_dir>/birdsnap/{test_images.txt,species.txt,images/<Species>/<id>.jpg}.")


def _read_species(path: epath.Path) -> Dict[str, int]:
  """Maps species folder name -> label (species id - 1) from species.txt."""
  rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
  header, rows = rows[0], rows[1:]
  if "id" not in header or "dir" not in header:
    raise ValueError(f"{path}: header {header}; expected tab-separated columns including "
                     "'id' and 'dir'")
  id_column, dir_column = header.index("id"), header.index("dir")
  return {row[dir_column]: int(row[id_column]) - 1 for row in rows}


class Birdsnap(tfds.core.GeneratorBasedBuilder):
  """Birdsnap: 500 North American bird species, from a manual download."""

  name = "birdsnap"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.1.0": "Birdsnap v1.1 with test_images.txt."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description="Birdsnap v1.1 species identification (Berg et al., CVPR 2014).",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
            "file_name": tfds.features.Text(),
        }),
        supervised_keys=("image", "label"),
        homepage="https://thomasberg.org/",
    )

  def _split_generators(self, dl_manager):
    root = epath.Path(dl_manager.manual_dir) / MANUAL_SUBDIR
    images_dir = root / "images"
    test_list = root / "test_images.txt"
    for required in (images_dir, test_list):
      if not required.exists():
        raise ValueError(f"{required}: missing; {MANUAL_DOWNLOAD_INSTRUCTIONS}")
    species_file = root / "species.txt"
    folders = sorted(p.name for p in images_dir.iterdir() if p.is_dir())
    if species_file.exists():
      labels = _read_species(species_file)
      unknown = sorted(set(folders) - set(labels))
      if unknown:
        raise ValueError(f"{images_dir}: species folders {unknown[:3]} are not in "
                         f"{species_file}")
    else:
      labels = {name: i for i, name in enumerate(folders)}
    if not folders:
      raise ValueError(f"{images_dir}: no species folders; {MANUAL_DOWNLOAD_INSTRUCTIONS}")
    # (The header line "path" never names an image: those are <folder>/<file>.)
    test_paths = {line.strip() for line in test_list.read_text().splitlines()}
    train, test = [], []
    for folder in folders:
      for image in sorted((images_dir / folder).iterdir()):
        if image.suffix.lower() not in _IMAGE_SUFFIXES:
          continue
        relative = f"{folder}/{image.name}"
        (test if relative in test_paths else train).append((relative, labels[folder]))
    return {
        "train": self._generate_examples(images_dir, train),
        "test": self._generate_examples(images_dir, test),
    }

  def _generate_examples(self, images_dir: epath.Path, examples) -> Iterator:
    for relative, label in examples:
      yield relative, {"image": os.fspath(images_dir / relative), "label": label,
                       "file_name": relative}
