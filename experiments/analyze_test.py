"""End-to-end tests of the representation-analysis binary on the embedded demo data."""

import contextlib
import glob
import io as _io
import json
import os
import shutil
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import flagsaver
import keras
import numpy as np
from PIL import Image
import tensorflow as tf

from experiments import analyze
from official import losses
from official.core import cli
from official.data import datasets
from official.evaluation import representations
from official.modeling import pretrained
from official.modeling import resnet

IMAGE_SIZE = 32
TINY = resnet.ResNetConfig(depth=18, width_multiplier=0.125, small_input_stem=True,
                           block_counts=(1, 1, 1, 1))
ENDPOINTS = ["block1", "block2", "block3", "block4", "final_avg_pool"]


def _tiny_model(objective: str, seed: int):
  keras.utils.set_random_seed(seed)
  return resnet.build_model(TINY, 10, losses.get_objective(objective),
                            input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))


def _export_other_network(export_dir: str, image_size: int, endpoint: str) -> str:
  """A SavedModel with one named endpoint `endpoint` and a 10-class final_layer."""
  module = tf.Module()
  module.head = tf.Variable(np.random.RandomState(0).normal(size=(3, 10)).astype(np.float32))

  @tf.function(input_signature=[
      tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")])
  def serve(images):
    logits = tf.reduce_mean(images, axis=(1, 2)) @ module.head
    return {endpoint: tf.nn.relu(images), "final_layer": logits, "outputs": logits}

  tf.saved_model.save(module, export_dir, signatures={"serving_default": serve})
  return export_dir


def _run(args):
  """Runs the binary as `python -m experiments.analyze ARGS`: (exit code, stdout, stderr)."""
  stdout, stderr = _io.StringIO(), _io.StringIO()
  code = 0
  with flagsaver.flagsaver(), contextlib.redirect_stdout(stdout), \
      contextlib.redirect_stderr(stderr), mock.patch.object(
          sys, "argv", ["analyze"] + list(args)):
    try:
      cli.run(analyze.main)
    except SystemExit as e:
      code = e.code or 0
  return code, stdout.getvalue(), stderr.getvalue()


class AnalyzeTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = root = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.data_dir = os.path.join(root, "tfds")
    datasets.num_examples(datasets.get("demo_digits"), "test", data_dir=cls.data_dir)
    # A training model_dir (config.json + export/saved_model) and a bare SavedModel.
    cls.run_dir = os.path.join(root, "runs", "softmax-seed0")
    os.makedirs(cls.run_dir)
    with open(os.path.join(cls.run_dir, "config.json"), "w") as f:
      json.dump({"model": {**TINY.to_dict(), "num_classes": 10, "image_size": IMAGE_SIZE},
                 "objective": {"name": "softmax", "hparams": {}},
                 "train": {"seed": 0}}, f)
    pretrained.export_saved_model(_tiny_model("softmax", 0),
                                  os.path.join(cls.run_dir, "export", "saved_model"),
                                  IMAGE_SIZE)
    cls.saved_model = pretrained.export_saved_model(
        _tiny_model("squared_error", 1), os.path.join(root, "mse_net"), IMAGE_SIZE)
    cls.disjoint = _export_other_network(os.path.join(root, "disjoint"), IMAGE_SIZE,
                                         "mystery")
    cls.small = _export_other_network(os.path.join(root, "small"), 16, "block1")

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def test_end_to_end(self):
    workdir = self.create_tempdir().full_path
    self.addCleanup(os.chdir, os.getcwd())  # Under `bazel run` the binary moves there.
    with mock.patch.dict(os.environ, {"BUILD_WORKING_DIRECTORY": workdir}):
      code, stdout, stderr = _run([self.run_dir, self.saved_model, "demo_digits",
                                   "--max_examples=40", "--batch_size=16",
                                   f"--data_dir={self.data_dir}"])
    self.assertEqual(code, 0, stderr)
    lines = stdout.splitlines()
    self.assertTrue(lines[0].startswith("output_dir: analysis/demo_digits-"), stdout)
    output_dir = os.path.join(workdir, lines[0].split(": ", 1)[1])

    with open(os.path.join(output_dir, "analysis.json")) as f:
      result = json.load(f)
    names = ["softmax-seed0", "mse_net"]
    self.assertEqual(result["models"], names)
    self.assertEqual(result["endpoints"], ENDPOINTS)
    self.assertEqual((result["dataset"], result["split"]), ("demo_digits", "test"))
    self.assertEqual((result["examples"], result["minibatches"]), (40, 3))
    self.assertIn("softmax-seed0  non-zero", stdout)

    # The same numbers as the library on the same models and batches.
    models = {n: pretrained.load(p) for n, p in zip(names, [self.run_dir, self.saved_model])}
    expected = representations.analyze(
        models, datasets.get("demo_digits"), "test", batch_size=16, max_examples=40,
        data_dir=self.data_dir, progress=False)
    for key in ("sparsity", "class_separation"):
      for name in names:
        # None: undefined (collapsed features), the same in both.
        self.assertEqual([result[key][name][e] is None for e in ENDPOINTS],
                         [expected[key][name][e] is None for e in ENDPOINTS])
        np.testing.assert_allclose(
            [result[key][name][e] for e in ENDPOINTS if result[key][name][e] is not None],
            [expected[key][name][e] for e in ENDPOINTS if expected[key][name][e] is not None],
            atol=1e-9)
    for pair in ("softmax-seed0|mse_net", "mse_net|mse_net"):
      np.testing.assert_allclose(result["cka"][pair], expected["cka"][pair], atol=1e-9)
    np.testing.assert_allclose(np.diag(result["cka"]["mse_net|mse_net"]), 1.0, atol=1e-9)

    figures = {"fig2a_cka_softmax-seed0_vs_mse_net.png", "fig2b_cka_corresponding.png",
               "fig3_sparsity.png", "fig4_class_separation.png"}
    self.assertEqual({os.path.basename(p) for p in glob.glob(f"{output_dir}/*.png")}, figures)
    self.assertEqual(Image.open(os.path.join(output_dir, "fig3_sparsity.png")).size,
                     (700, 400))
    events = glob.glob(os.path.join(output_dir, "tensorboard", "events.out.tfevents.*"))
    self.assertLen(events, 1)
    tags = set()
    for record in tf.data.TFRecordDataset(events[0]):
      tags.update(v.tag for v in tf.compat.v1.Event.FromString(record.numpy()).summary.value)
    self.assertContainsSubset({"sparsity/softmax-seed0", "class_separation/mse_net",
                               "figures/fig2a_cka_softmax-seed0_vs_mse_net"}, tags)

  def test_names_flag_and_explicit_output_dir(self):
    output_dir = os.path.join(self.create_tempdir().full_path, "out")
    code, stdout, stderr = _run([self.saved_model, self.run_dir, "digits", "--names=b,a",
                                 "--max_examples=8", "--batch_size=8", "--split=validation",
                                 "--endpoints=block4,final_avg_pool",
                                 "--distance=squared_euclidean",
                                 f"--data_dir={self.data_dir}", f"--output_dir={output_dir}"])
    self.assertEqual(code, 0, stderr)
    self.assertEqual(stdout.splitlines()[0], f"output_dir: {output_dir}")
    with open(os.path.join(output_dir, "analysis.json")) as f:
      result = json.load(f)
    self.assertEqual(result["models"], ["b", "a"])
    self.assertEqual(result["endpoints"], ["block4", "final_avg_pool"])
    self.assertEqual((result["split"], result["distance"], result["examples"]),
                     ("validation", "squared_euclidean", 8))
    self.assertEqual(np.asarray(result["cka"]["b|a"]).shape, (2, 2))

  def test_bad_input_exits_2_with_one_line_and_writes_nothing(self):
    digits = ["demo_digits", f"--data_dir={self.data_dir}"]
    cases = [
        ([self.run_dir] + digits, "error: got 2 positional argument(s); expected two or more"),
        ([self.run_dir, os.path.join(self.root, "missing")] + digits,
         f"error: model path {os.path.join(self.root, 'missing')} does not exist"),
        ([self.run_dir, self.saved_model, "no_such_dataset"], "error: dataset: unknown "
         "'no_such_dataset'; valid are "),
        ([self.run_dir, self.disjoint] + digits,
         "error: models: have no endpoint in common besides final_layer/outputs"),
        ([self.run_dir, self.small] + digits, "error: models: take different input sizes"),
        ([self.run_dir, self.saved_model, "--classes=3"] + digits,
         "error: classes: '3' selects 1 class"),
        ([self.run_dir, self.saved_model, "--names=a"] + digits,
         "error: --names: 1 names for 2 models"),
        ([self.run_dir, self.saved_model, "--split=dev"] + digits,
         "error: --split: 'dev'; valid are train, validation, test, train_full"),
        ([self.run_dir, self.saved_model, "--fig2b_endpoints=block9"] + digits,
         "error: --fig2b_endpoints: 'block9' is not analysed"),
    ]
    for args, message in cases:
      with self.subTest(message):
        output_dir = os.path.join(self.create_tempdir().full_path, "out")
        code, stdout, stderr = _run(args + [f"--output_dir={output_dir}"])
        self.assertEqual(code, 2)
        self.assertEqual(stdout, "")
        self.assertLen(stderr.splitlines(), 1)
        self.assertTrue(stderr.startswith(message), stderr)
        self.assertFalse(os.path.exists(output_dir))


if __name__ == "__main__":
  absltest.main()
