"""End-to-end tests of experiments/linear_probe.py: demo data, mocked Pets, Figure 6, bad input."""

import contextlib
import io as io_lib
import os
import subprocess
import sys
from unittest import mock

from absl.testing import flagsaver
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from official.evaluation import transfer
from experiments import linear_probe as linear_probe_main
from official.core import cli
from official.core import io
from official.data import datasets
from official.data import input_pipeline
from official.evaluation import features
from official.evaluation import linear_probe
from official.evaluation import relearn_head_test
from official.modeling import pretrained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = relearn_head_test.DATASET  # demo_size/small: 4 classes, 360 / 40 / 200 examples
L2_GRID = ("1e-2", "1", "100")
MAX_ITERATIONS = 100
FAST = (f"--l2_grid={','.join(L2_GRID)}", f"--max_iterations={MAX_ITERATIONS}")
BATCH_SIZE = 256  # the binaries' default: recomputations use the same batches


def run_binary(module: str, *flag_args: str) -> subprocess.CompletedProcess:
  """`python -m experiments.<module> <flags>` from the repository root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *flag_args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600, check=False)


def run_main(main, **flag_values) -> tuple:
  """Runs a binary's main in this process as official.core.cli runs it: (status, stdout,
  stderr)."""
  stdout, stderr = io_lib.StringIO(), io_lib.StringIO()
  with flagsaver.flagsaver(**flag_values), mock.patch.object(sys, "argv", ["binary"]), \
      contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
    try:
      cli.run(main)
      status = 0
    except SystemExit as e:
      status = e.code or 0
  return status, stdout.getvalue(), stderr.getvalue()


def error_lines(stderr: str) -> list:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def read_scalars(logdir: str) -> dict:
  """tag -> {step: value} of every TensorBoard scalar under logdir."""
  out = {}
  for path in tf.io.gfile.glob(os.path.join(logdir, "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        out.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  return out


def split_features(model, info, splits, data_dir=None) -> dict:
  """split -> (penultimate features, labels), extracted here without any cache."""
  out = {}
  for split in splits:
    arrays, labels = features.extract(model, info, split, batch_size=BATCH_SIZE,
                                      data_dir=data_dir, preprocess="transfer", progress=False)
    out[split] = (arrays["final_avg_pool"], labels)
  return out


def cache_state(cache_dir: str) -> dict:
  return {name: os.stat(os.path.join(cache_dir, name)).st_mtime_ns
          for name in sorted(os.listdir(cache_dir))}


def absent_class_dataset(self, split, *args, **kwargs):
  """Mocked TFDS data: train/validation hold classes 0-2, test also class 3."""
  del self, args, kwargs
  labels = [0, 1, 2, 3, 0, 1] if split == "test" else [0, 1, 2, 0, 1, 2]
  images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
  return tf.data.Dataset.from_tensor_slices({"image": images,
                                             "label": np.array(labels, np.int64)})


class LinearProbeBinaryTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.get_temp_dir(cls())
    cls.data_dir = os.path.join(root, "tfds")
    cls.info = datasets.get(DATASET, data_dir=cls.data_dir)
    datasets.num_examples(cls.info, "train", data_dir=cls.data_dir)  # generates the data
    cls.model_dir = relearn_head_test.make_model_dir(os.path.join(root, "model"))
    cls.model = pretrained.load(cls.model_dir)

  def _expected(self, info, data, metric):
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = (
        data[s] for s in ("train", "validation", "test"))
    probe = linear_probe.fit(train_x, train_y, val_x, val_y, metric=metric,
                             l2_grid=[float(v) for v in L2_GRID], max_iterations=MAX_ITERATIONS)
    return {"l2": probe.l2, "validation_score": probe.validation_score,
            "validation_scores": dict(probe.validation_scores),
            "test_score": probe.score(test_x, test_y, metric)}

  def test_demo_end_to_end_then_cached(self):
    process = run_binary("linear_probe", f"--model={self.model_dir}", f"--datasets={DATASET}",
                         f"--data_dir={self.data_dir}", *FAST)
    self.assertEqual(process.returncode, 0, process.stderr[-3000:])
    output_dir = os.path.join(self.model_dir, "transfer")  # the default
    path = os.path.join(output_dir, "linear_probe", "demo_size_small.json")
    result = io.read_json(path)
    lines = [l for l in process.stdout.splitlines() if l.startswith(DATASET)]
    self.assertLen(lines, 1)
    self.assertStartsWith(lines[0], f"{DATASET}: test top1 {result['test_score']:.4f} (l2 ")

    self.assertEqual((result["dataset"], result["metric"], result["num_classes"],
                      result["method"], result["endpoint"], result["preprocess"]),
                     (DATASET, "top1", 4, "linear_probe", "final_avg_pool", "transfer"))
    self.assertEqual(result["class_names"], list(self.info.class_names))
    self.assertEqual(result["model"], self.model_dir)
    self.assertEqual((result["num_train"], result["num_validation"], result["num_test"],
                      result["feature_dim"]), (360, 40, 200, 32))
    self.assertEqual(result["l2_grid"], [0.01, 1.0, 100.0])

    # Independently: features extracted here, the probe run here.
    data = split_features(self.model, self.info, ("train", "validation", "test"),
                          self.data_dir)
    expected = self._expected(self.info, data, "top1")
    self.assertEqual(result["test_score"], expected["test_score"])
    self.assertEqual(result["l2"], expected["l2"])
    self.assertEqual(result["validation_score"], expected["validation_score"])
    self.assertAllClose(result["test_score"] * 200, round(result["test_score"] * 200),
                        atol=1e-9)
    self.assertEqual({p["l2"]: p["score"] for p in result["validation_scores"]},
                     expected["validation_scores"])
    # The features are the network's penultimate layer under the transfer preprocessing.
    images, labels = next(iter(input_pipeline.build(
        self.info, "test", training=False, batch_size=16, image_size=32,
        preprocess="transfer", data_dir=self.data_dir)))
    self.assertAllClose(self.model(images)["final_avg_pool"], data["test"][0][:16],
                        atol=1e-4)
    self.assertAllEqual(labels, data["test"][1][:16])

    scalars = read_scalars(os.path.join(output_dir, "tensorboard", "linear_probe"))
    self.assertEqual(scalars["demo_size_small/test_top1"], {0: result["test_score"]})
    self.assertAllClose(scalars["demo_size_small/log10_l2"][0], np.log10(result["l2"]))
    curve = scalars["demo_size_small/validation_top1"]
    self.assertEqual(curve, {round(1000 * np.log10(p["l2"])): p["score"]
                             for p in result["validation_scores"]})
    self.assertContainsSubset({-2000, 0, 2000}, set(curve))

    # Second run: every feature comes from the cache, the network is never called.
    cache_dir = os.path.join(output_dir, "features")
    before = cache_state(cache_dir)
    self.assertLen(before, 3)
    with mock.patch.object(features, "iterate", side_effect=AssertionError("recomputed")):
      status, stdout, stderr = run_main(
          linear_probe_main.main, model=self.model_dir, datasets=[DATASET],
          data_dir=self.data_dir, l2_grid=list(L2_GRID), max_iterations=MAX_ITERATIONS)
    self.assertEqual(status, 0, stderr)
    self.assertIn(lines[0], stdout)
    self.assertEqual(cache_state(cache_dir), before)
    again = io.read_json(path)
    again.pop("timings"), result.pop("timings")
    self.assertEqual(again, result)

  def test_mock_pets_mean_per_class(self):
    output_dir = self.create_tempdir().full_path
    with tfds.testing.mock_data(num_examples=30):
      status, _, stderr = run_main(linear_probe_main.main, model=self.model_dir,
                                   datasets=["pets"], output_dir=output_dir,
                                   l2_grid=list(L2_GRID), max_iterations=MAX_ITERATIONS)
      self.assertEqual(status, 0, stderr)
      info = datasets.get("pets")
      data = split_features(self.model, info, ("train", "validation", "test"))
    result = io.read_json(os.path.join(output_dir, "linear_probe", "pets.json"))
    self.assertEqual((result["metric"], result["num_classes"], len(result["class_names"])),
                     ("mean_per_class", 37, 37))
    self.assertEqual(result["class_names"], list(info.class_names))
    expected = self._expected(info, data, "mean_per_class")
    self.assertEqual(result["test_score"], expected["test_score"])
    self.assertEqual(result["l2"], expected["l2"])
    self.assertEqual(result["feature_cache"], os.path.join(output_dir, "features"))

  def test_relearn_head(self):
    output_dir = self.create_tempdir().full_path
    status, stdout, stderr = run_main(
        linear_probe_main.main, model=self.model_dir, relearn_head=True, max_examples=100,
        relearn_test_per_class=2, data_dir=self.data_dir, output_dir=output_dir,
        l2_grid=list(L2_GRID), max_iterations=MAX_ITERATIONS)
    self.assertEqual(status, 0, stderr)
    result = io.read_json(os.path.join(output_dir, "relearn_head", "demo_size_small.json"))
    # The pretraining dataset and split come from the model_dir's config.json.
    expected = relearn_head_test.relearn(
        self.model, self.info, "test", max_examples=100, test_per_class=2, batch_size=BATCH_SIZE,
        data_dir=self.data_dir, progress=False, l2_grid=[float(v) for v in L2_GRID],
        max_iterations=MAX_ITERATIONS)
    for key in ("original", "relearned", "l2", "train_examples", "test_examples"):
      self.assertEqual(result[key], expected[key], key)
    # 2 held out of each of the 4 classes.
    self.assertEqual((result["train_examples"], result["test_examples"]), (92, 8))
    self.assertEqual((result["dataset"], result["split"], result["class_names"]),
                     (DATASET, "test", list(self.info.class_names)))
    self.assertIn(f"{DATASET}:test: original head top1 {expected['original']:.4f}, relearned "
                  f"head top1 {expected['relearned']:.4f}", stdout)
    scalars = read_scalars(os.path.join(output_dir, "tensorboard", "relearn_head"))
    self.assertEqual(scalars["demo_size_small/original_top1"], {0: expected["original"]})
    self.assertEqual(scalars["demo_size_small/relearned_top1"], {0: expected["relearned"]})

  def _assert_fails(self, expected_error: str, output_dir: str, **flag_values):
    flag_values = {"l2_grid": list(L2_GRID), "max_iterations": MAX_ITERATIONS, **flag_values}
    status, _, stderr = run_main(linear_probe_main.main, output_dir=output_dir, **flag_values)
    self.assertEqual(status, 2, stderr)
    self.assertLen(error_lines(stderr), 1, stderr)
    self.assertStartsWith(error_lines(stderr)[0], expected_error)
    self.assertFalse(os.path.exists(output_dir), expected_error)

  def test_bad_inputs_exit_2_with_one_line_and_write_nothing(self):
    root = self.create_tempdir().full_path
    output_dir = os.path.join(root, "out")
    missing = os.path.join(root, "no_such_model")
    self._assert_fails(f"error: --model: {missing} does not exist", output_dir,
                       model=missing, datasets=[DATASET])
    self._assert_fails("error: dataset: unknown 'nope'", output_dir, model=self.model_dir,
                       datasets=[DATASET, "nope"], data_dir=self.data_dir)
    no_pool = relearn_head_test.export_without(os.path.join(root, "sm"), ("final_avg_pool",))
    self._assert_fails(f"error: model {no_pool} has no 'final_avg_pool' endpoint", output_dir,
                       model=no_pool, datasets=[DATASET], data_dir=self.data_dir)
    with tfds.testing.mock_data(as_dataset_fn=absent_class_dataset):
      name = datasets.get("cifar10").class_names[3]
      self._assert_fails(f"error: cifar10: class 3 ({name!r}) occurs in test (1 of its 6 "
                         "examples) but not in train", output_dir, model=self.model_dir,
                         datasets=["cifar10"])

    def mismatched(*args, **kwargs):
      arrays, labels = extract(*args, **kwargs)
      return arrays, labels[:-1]

    extract = features.extract
    with mock.patch.object(features, "extract", side_effect=mismatched):
      self._assert_fails(f"error: {DATASET}:train labels has 359 labels but {DATASET}:train "
                         "features has 360 examples", output_dir, model=self.model_dir,
                         datasets=[DATASET], data_dir=self.data_dir)
    self._assert_fails("error: --l2_grid: 'x' is not a number", output_dir,
                       model=self.model_dir, datasets=[DATASET], l2_grid=["x"])
    self._assert_fails("error: --max_examples applies only with --relearn_head", output_dir,
                       model=self.model_dir, max_examples=10)
    self._assert_fails("error: --datasets does not apply with --relearn_head", output_dir,
                       model=self.model_dir, datasets=[DATASET], relearn_head=True)
    self._assert_fails("error: --pretrain_dataset is required", output_dir, model=no_pool,
                       relearn_head=True)

  def test_default_output_dirs(self):
    self.assertEqual(transfer.default_output_dir(self.model_dir),
                     os.path.join(self.model_dir, "transfer"))
    self.assertEqual(transfer.default_output_dir(
        os.path.join(self.model_dir, "export", "saved_model")),
                     os.path.join(self.model_dir, "transfer"))
    self.assertEqual(transfer.default_output_dir("/models/released/softmax_seed0/"),
                     os.path.join("transfer", "softmax_seed0"))


if __name__ == "__main__":
  tf.test.main()
