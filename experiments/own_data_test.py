"""End to end with your own data: an image folder through train, linear_probe, knn, analyze
and reproduce, class-disjoint pretraining and transfer, and every kind of bad folder.

The folder is built here: six colour classes (a square or a disc on a noisy background), 20
training and 8 test images each, 32-48 px in modes RGB, L, RGBA and P, saved as JPEG and PNG,
plus one truncated JPEG that must be skipped with a warning. Class ids follow the sorted
folder names: blue 0, cyan 1, green 2, magenta 3, red 4, yellow 5. Networks are pretrained on
classes 0-2 and transferred to classes 3-5.
"""

import io as io_lib
import json
import os
import shutil
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np
from PIL import Image

from official.data import datasets
from official.data import input_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Sorted names, so class id k is CLASS_NAMES[k]. Their luminances (29, 179, 135, 105, 69, 226)
# differ too, so grayscale images can be told apart by their centre as well.
COLOURS = {"blue": (0, 0, 255), "cyan": (0, 255, 255), "green": (0, 230, 0),
           "magenta": (255, 0, 255), "red": (230, 0, 0), "yellow": (255, 255, 0)}
CLASS_NAMES = sorted(COLOURS)
TRAIN_PER_CLASS, TEST_PER_CLASS = 20, 8
# (mode, PIL format, suffix) cycled over the images of a class.
FORMATS = (("RGB", "JPEG", ".jpg"), ("L", "PNG", ".png"), ("RGBA", "PNG", ".png"),
           ("P", "PNG", ".png"), ("L", "JPEG", ".jpeg"), ("RGB", "PNG", ".png"))
IMAGE_SIZE = 32  # the demo preset's model.image_size
TRAIN_FLAGS = ("--batch_size=16",
               "--params_override=train.epochs=1,train.warmup_epochs=0,"
               "model.block_counts=[1,1,1,1],model.width_multiplier=0.0625")
PROBE_FLAGS = ("--l2_grid=1e-2,1,100", "--max_iterations=100")


def _image(colour, square: bool, index: int, rng: np.random.Generator) -> Image.Image:
  """A square or a disc of `colour` on a dark noisy background, 32-48 px wide and high."""
  width, height = 32 + 8 * (index % 3), 32 + 8 * ((index + 1) % 3)
  pixels = rng.integers(0, 40, size=(height, width, 3)).astype(np.uint8)
  rows, cols = np.mgrid[:height, :width]
  if square:
    inside = (abs(rows - height / 2) < height / 4) & (abs(cols - width / 2) < width / 4)
  else:
    inside = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (min(height, width) / 3) ** 2
  pixels[inside] = colour
  return Image.fromarray(pixels)


def make_image_folder(root: str, class_names=CLASS_NAMES, train_per_class=TRAIN_PER_CLASS,
                      test_per_class=TEST_PER_CLASS, seed: int = 0) -> str:
  """root/{train,test}/<class>/<image> in mixed sizes, modes and formats (classes of even id
  squares, of odd id discs), plus one truncated JPEG in root/train/<first class>/; returns the
  truncated file's path."""
  rng = np.random.default_rng(seed)
  for split, count in (("train", train_per_class), ("test", test_per_class)):
    for name in class_names:
      folder = os.path.join(root, split, name)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        mode, image_format, suffix = FORMATS[i % len(FORMATS)]
        image = _image(COLOURS[name], class_names.index(name) % 2 == 0, i, rng)
        image = (image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16) if mode == "P"
                 else image.convert(mode))
        image.save(os.path.join(folder, f"{name}_{i:03d}{suffix}"), image_format)
  buffer = io_lib.BytesIO()
  _image(COLOURS[class_names[0]], True, 0, rng).save(buffer, "JPEG")
  truncated = os.path.join(root, "train", class_names[0], "truncated.jpg")
  with open(truncated, "wb") as f:
    f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  return truncated


def run_binary(module: str, *args: str) -> subprocess.CompletedProcess:
  """`python -m experiments.<module> <args>` from the repository root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600, check=False)


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _nearest_class(image: np.ndarray) -> str:
  """The class whose colour (or its grayscale version) is nearest the image's centre."""
  height, width = image.shape[:2]
  centre = image[height // 2 - 2:height // 2 + 3, width // 2 - 2:width // 2 + 3]
  centre = centre.reshape(-1, 3).mean(axis=0)
  best, best_distance = None, np.inf
  for name, colour in COLOURS.items():
    gray = (299 * colour[0] + 587 * colour[1] + 114 * colour[2]) / 1000
    for reference in (np.array(colour, float), np.full(3, gray)):
      distance = np.linalg.norm(centre - reference)
      if distance < best_distance:
        best, best_distance = name, distance
  return best


class OwnDataTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.makedirs(absltest.get_default_test_tmpdir(), exist_ok=True)
    cls.base = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.root = os.path.join(cls.base, "photos")
    cls.truncated = make_image_folder(cls.root)
    cls.spec = "folder:" + cls.root
    cls.model_dirs, cls.train_runs = [], []
    for seed in (0, 1):
      model_dir = os.path.join(cls.base, f"pretrained-seed{seed}")
      process = run_binary("train", f"--dataset={cls.spec}", "--classes=0-2",
                           f"--model_dir={model_dir}", f"--seed={seed}", *TRAIN_FLAGS)
      if process.returncode != 0:
        raise AssertionError(f"train failed:\n{process.stderr[-3000:]}")
      cls.model_dirs.append(model_dir)
      cls.train_runs.append(process)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.base, ignore_errors=True)
    super().tearDownClass()

  def _assert_bad_input(self, process, path: str, problem: str, not_written: str):
    """Status 2, one `error:` line naming `path` and `problem`, `not_written` absent."""
    self.assertEqual(process.returncode, 2, process.stderr[-3000:])
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    self.assertLen(errors, 1, process.stderr[-3000:])
    self.assertEqual(process.stderr.strip().splitlines()[-1], errors[0])
    self.assertIn(path, errors[0])
    self.assertIn(problem, errors[0])
    self.assertFalse(os.path.exists(not_written), not_written)

  def test_train_records_class_names_and_skips_the_truncated_file(self):
    config = read_json(os.path.join(self.model_dirs[0], "config.json"))
    metrics = read_json(os.path.join(self.model_dirs[0], "metrics.json"))
    self.assertEqual(config["data"]["dataset"], self.spec)
    self.assertEqual(config["data"]["classes"], "0-2")
    self.assertEqual(config["data"]["class_names"], CLASS_NAMES[:3])
    self.assertEqual(metrics["class_names"], CLASS_NAMES[:3])
    self.assertEqual(metrics["dataset"], self.spec + "@0-2")
    # The preset decides the resolution: every image, whatever its size, is fed at 32 px.
    self.assertEqual(config["model"]["image_size"], IMAGE_SIZE)
    self.assertEqual(config["model"]["num_classes"], 3)
    self.assertEqual(metrics["eval_examples"], 3 * TEST_PER_CLASS)
    # 3 classes x 20 readable images (the truncated one skipped) at batch 16: 3 steps.
    self.assertEqual(metrics["steps"], 3 * TRAIN_PER_CLASS // 16)
    self.assertTrue(os.path.isdir(os.path.join(self.model_dirs[0], "export", "saved_model")))
    warnings = [line for line in self.train_runs[0].stderr.splitlines()
                if "skipping" in line]
    self.assertLen(warnings, 1, self.train_runs[0].stderr[-3000:])
    self.assertIn("1 unreadable image(s)", warnings[0])
    self.assertIn(self.truncated, warnings[0])

  def test_class_splits_select_exactly_the_requested_classes(self):
    for classes, expected in (("3-5", CLASS_NAMES[3:]), ("0,2", [CLASS_NAMES[0],
                                                                 CLASS_NAMES[2]]),
                              ("5,1", [CLASS_NAMES[5], CLASS_NAMES[1]])):
      info = datasets.get(self.spec, classes=classes)
      self.assertEqual(list(info.class_names), expected)
      self.assertEqual(info.num_classes, len(expected))
      for split, per_class in (("test", TEST_PER_CLASS),
                               ("train_full", TRAIN_PER_CLASS)):
        examples = list(datasets.load(info, split).as_numpy_iterator())
        labels = [int(label) for _, label in examples]
        self.assertEqual(sorted(labels), sorted(list(range(len(expected))) * per_class))
        for image, label in examples:
          self.assertEqual(image.shape[-1], 3)
          self.assertEqual(_nearest_class(image), expected[label])
    # train + validation of the subset partition its training images.
    info = datasets.get(self.spec + "@3-5")
    self.assertEqual(datasets.num_examples(info, "train") +
                     datasets.num_examples(info, "validation"), 3 * TRAIN_PER_CLASS)
    # Mixed sizes come out of the shared pipeline at the requested resolution.
    batches = input_pipeline.build(info, "test", training=False, batch_size=8,
                                   image_size=IMAGE_SIZE, preprocess="transfer")
    shapes = {tuple(images.shape) for images, _ in batches}
    self.assertEqual(shapes, {(8, IMAGE_SIZE, IMAGE_SIZE, 3)})

  def test_linear_probe_and_knn_transfer_to_the_other_classes(self):
    output_dir = os.path.join(self.base, "transfer")
    for module, flags in (("linear_probe", PROBE_FLAGS), ("knn", ())):
      process = run_binary(module, f"--model={self.model_dirs[0]}", f"--datasets={self.spec}",
                           "--classes=3-5", f"--output_dir={output_dir}", *flags)
      self.assertEqual(process.returncode, 0, process.stderr[-3000:])
      name = datasets.result_name(datasets.get(self.spec, classes="3-5").name)
      result = read_json(os.path.join(output_dir, module, name + ".json"))
      self.assertEqual(result["class_names"], CLASS_NAMES[3:])
      self.assertEqual(result["classes"], [3, 4, 5])
      self.assertEqual(result["num_classes"], 3)
      self.assertEqual(result["num_test"], 3 * TEST_PER_CLASS)
      self.assertEqual(result["image_size"], [IMAGE_SIZE, IMAGE_SIZE])
      self.assertEqual(result["pretrained_on"]["class_names"], CLASS_NAMES[:3])
      # Colour classes are easy even for a barely trained network's features (chance: 1/3).
      self.assertBetween(result["test_score"], 0.6, 1.0)
      if module == "linear_probe":
        self.assertEqual(result["num_train"] + result["num_validation"], 3 * TRAIN_PER_CLASS)
      else:
        self.assertEqual(result["num_train"], 3 * TRAIN_PER_CLASS)

  def test_analyze_two_networks_on_the_pretraining_classes(self):
    output_dir = os.path.join(self.base, "analysis")
    process = run_binary("analyze", *self.model_dirs, self.spec, "--classes=0-2",
                         f"--output_dir={output_dir}", "--names=seed0,seed1")
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])
    result = read_json(os.path.join(output_dir, "analysis.json"))
    self.assertEqual(result["class_names"], CLASS_NAMES[:3])
    self.assertEqual(result["num_classes"], 3)
    self.assertEqual(result["examples"], 3 * TEST_PER_CLASS)
    endpoint = result["endpoints"][-1]
    for name in ("seed0", "seed1"):
      # R^2 of every endpoint, None where undefined (collapsed features of a barely trained
      # network); some endpoint is defined.
      separation = [v for v in result["class_separation"][name].values() if v is not None]
      self.assertNotEmpty(separation)
      for value in separation:
        self.assertBetween(value, -1.0, 1.0)
      self.assertBetween(result["sparsity"][name][endpoint], 0.0, 1.0)

  def test_relearned_head_refuses_classes_it_was_not_pretrained_on(self):
    output_dir = os.path.join(self.base, "relearn")
    process = run_binary("linear_probe", f"--model={self.model_dirs[0]}", "--relearn_head",
                         f"--pretrain_dataset={self.spec}", "--classes=3-5",
                         f"--output_dir={output_dir}", *PROBE_FLAGS)
    self._assert_bad_input(process, os.path.join(self.model_dirs[0], "config.json"),
                           "'magenta' vs 'blue'", output_dir)
    # Without flags the dataset and classes come from config.json and match.
    process = run_binary("linear_probe", f"--model={self.model_dirs[0]}", "--relearn_head",
                         f"--output_dir={output_dir}", *PROBE_FLAGS)
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])
    (result_file,) = os.listdir(os.path.join(output_dir, "relearn_head"))
    result = read_json(os.path.join(output_dir, "relearn_head", result_file))
    self.assertEqual(result["class_names"], CLASS_NAMES[:3])
    self.assertEqual(result["train_examples"] + result["test_examples"], 3 * TEST_PER_CLASS)

  def test_train_refuses_class_names_other_than_the_recorded_ones(self):
    # The run's folder now holds other classes (label 2 is "teal", not "green"): resuming
    # the model_dir is refused before anything is touched.
    renamed = os.path.join(self.base, "renamed")
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
      for name in ("blue", "cyan", "teal"):
        os.makedirs(os.path.join(renamed, split, name))
        for i in range(2):
          _image(COLOURS["blue"], True, i, rng).save(
              os.path.join(renamed, split, name, f"{i}.png"))
    model_dir = os.path.join(self.base, "renamed-run")
    os.makedirs(model_dir)
    config = read_json(os.path.join(self.model_dirs[0], "config.json"))
    config["data"]["dataset"] = "folder:" + renamed
    with open(os.path.join(model_dir, "config.json"), "w") as f:
      json.dump(config, f)
    process = run_binary("train", f"--dataset=folder:{renamed}", "--classes=0-2",
                         f"--model_dir={model_dir}", "--seed=0", *TRAIN_FLAGS)
    self._assert_bad_input(process, model_dir,
                           "data.class_names: ('blue', 'cyan', 'green') -> ('blue', 'cyan', "
                           "'teal')", os.path.join(model_dir, "checkpoints"))
    self.assertEqual(os.listdir(model_dir), ["config.json"])
    # Class names given with the config must be the dataset's.
    out = os.path.join(self.base, "named-run")
    process = run_binary("train", f"--dataset={self.spec}", "--classes=0-2",
                         f"--model_dir={out}", "--batch_size=16",
                         "--params_override=data.class_names=['blue','cyan','teal']")
    self._assert_bad_input(process, self.spec, "2: 'green'", out)

  def test_reproduce_pretrains_on_some_classes_and_transfers_to_the_others(self):
    workdir = os.path.join(self.base, "study")
    process = run_binary(
        "reproduce", f"--workdir={workdir}", "--quick", "--objectives=softmax", "--seeds=0",
        f"--pretrain_dataset={self.spec}", "--pretrain_classes=0-2",
        "--pretrain_params_override=train.batch_size=16,model.block_counts=[1,1,1,1],"
        "model.width_multiplier=0.0625", f"--transfer_datasets={self.spec}@3-5")
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])
    results = os.path.join(workdir, "results")
    pretrain = read_json(os.path.join(results, "pretrain", "softmax", "seed0.json"))
    self.assertEqual(pretrain["result"]["class_names"], CLASS_NAMES[:3])
    self.assertEqual(pretrain["settings"]["train_config"]["data"]["dataset"], self.spec)
    self.assertEqual(pretrain["settings"]["train_config"]["data"]["classes"], "0-2")
    (transfer_file,) = os.listdir(os.path.join(results, "transfer", "softmax", "seed0"))
    transfer = read_json(os.path.join(results, "transfer", "softmax", "seed0", transfer_file))
    self.assertEqual(transfer["result"]["dataset"], self.spec + "@3-5")
    self.assertEqual(transfer["result"]["class_names"], CLASS_NAMES[3:])
    self.assertBetween(transfer["result"]["linear"]["test"], 0.0, 1.0)
    with open(os.path.join(workdir, "report", "report.md")) as f:
      report = f.read()
    self.assertIn(f"on `{self.spec}` (classes 0-2)", report)
    self.assertIn(self.spec + "@3-5", report)

  def test_bad_folders_get_one_line_and_leave_nothing_written(self):
    base = os.path.join(self.base, "bad")

    def folder(name: str, classes=("a", "b"), test_classes=None) -> str:
      root = os.path.join(base, name)
      rng = np.random.default_rng(1)
      for split, names in (("train", classes), ("test", test_classes or classes)):
        for class_name in names:
          os.makedirs(os.path.join(root, split, class_name), exist_ok=True)
          for i in range(2):
            _image(COLOURS["red"], True, i, rng).save(
                os.path.join(root, split, class_name, f"{i}.png"))
      return root

    missing = os.path.join(base, "missing")
    empty = folder("empty_class")
    for name in os.listdir(os.path.join(empty, "train", "b")):
      os.remove(os.path.join(empty, "train", "b", name))
    mismatch = folder("mismatch", test_classes=("a", "c"))
    not_images = folder("not_images")
    for name in os.listdir(os.path.join(not_images, "train", "b")):
      os.remove(os.path.join(not_images, "train", "b", name))
    with open(os.path.join(not_images, "train", "b", "notes.txt"), "w") as f:
      f.write("not an image")
    unreadable = folder("unreadable")
    for name in os.listdir(os.path.join(unreadable, "test", "a")):
      with open(os.path.join(unreadable, "test", "a", name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n garbage")
    single = folder("single_class", classes=("a",))
    model = self.model_dirs[0]
    out = os.path.join(base, "out")
    cases = [
        ("train", [f"--dataset=folder:{missing}", f"--model_dir={out}", *TRAIN_FLAGS],
         missing, "not a directory"),
        ("linear_probe", [f"--model={model}", f"--datasets=folder:{empty}",
                          f"--output_dir={out}", *PROBE_FLAGS],
         os.path.join(empty, "train", "b"), "is empty"),
        ("knn", [f"--model={model}", f"--datasets=folder:{mismatch}", f"--output_dir={out}"],
         mismatch, "lacks classes ['b']"),
        ("analyze", [model, self.model_dirs[1], f"folder:{not_images}",
                     f"--output_dir={out}"],
         os.path.join(not_images, "train", "b"), "no readable image (no .jpg/.jpeg/.png"),
        ("finetune", [f"--model={model}", f"--datasets=folder:{unreadable}",
                      f"--output_dir={out}", "--steps=1"],
         os.path.join(unreadable, "test", "a"), "no readable image"),
        ("reproduce", [f"--workdir={out}", f"--pretrain_dataset=folder:{single}", "--quick"],
         single, "1 class folder(s)"),
        ("train", [f"--dataset={self.spec}", "--classes=4-9", f"--model_dir={out}",
                   *TRAIN_FLAGS], "classes", "out of range"),
    ]
    for module, args, path, problem in cases:
      with self.subTest(module=module, problem=problem):
        self._assert_bad_input(run_binary(module, *args), path, problem, out)


if __name__ == "__main__":
  absltest.main()
