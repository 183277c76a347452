"""End-to-end tests of experiments/finetune.py: demo data, SIGTERM and resumption, mocked
CIFAR-10, bad inputs."""

import contextlib
import io as io_lib
import os
import signal
import subprocess
import sys

from absl.testing import flagsaver
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from experiments import finetune as finetune_main
from official.core import cli
from official.core import io
from official.data import datasets
from official.evaluation import finetune
from official.evaluation import finetune_test

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tiny settings: one learning rate, two weight decays, a few steps (11 per epoch).
FAST = ("--steps=16", "--batch_size=32", "--learning_rates=0.1", "--weight_decays=none,1e-3")


def _env() -> dict:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
  return env


def run_binary(*flags: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.finetune", *flags], cwd=REPO,
                        env=_env(), capture_output=True, text=True, timeout=600, check=False)


def run_binary_until_sigterm(*flags: str, after: str) -> tuple[int, str]:
  """Runs the binary, sends SIGTERM once a line starts with `after`; (status, output)."""
  process = subprocess.Popen([sys.executable, "-m", "experiments.finetune", *flags], cwd=REPO,
                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
  lines = []
  try:
    for line in process.stdout:
      lines.append(line)
      if line.startswith(after):
        process.send_signal(signal.SIGTERM)
        break
    output = "".join(lines) + process.communicate(timeout=600)[0]
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  return process.returncode, output


def error_lines(stderr: str) -> list:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


class FinetuneBinaryTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    root = cls.get_temp_dir(cls())
    cls.model_dir = os.path.join(root, "pretrained")
    finetune_test.make_model_dir(cls.model_dir, num_classes=5, image_size=16)
    cls.data_dir = os.path.join(root, "tfds")
    datasets.num_examples(datasets.get("demo_size/small"), "train", data_dir=cls.data_dir)

  def test_demo_end_to_end_preempted_resumed_and_rerun(self):
    output_dir = os.path.join(self.create_tempdir().full_path, "ft")
    flags = (f"--model={self.model_dir}", "--datasets=demo_size/small",
             f"--data_dir={self.data_dir}", f"--output_dir={output_dir}", *FAST)
    settings = dict(model=self.model_dir, datasets=["demo_size/small"],
                    data_dir=self.data_dir, output_dir=output_dir, steps=16, batch_size=32,
                    learning_rates=["0.1"], weight_decays=["none", "1e-3"])
    # SIGTERM once fine-tuning has started (its first line): the first grid point saves a
    # checkpoint after its first loop (the 11 steps of epoch 0) and the binary exits 0 with
    # one line. (official/evaluation/finetune_test.py checks that a resumed grid point ends
    # exactly like an uninterrupted one.)
    status, output = run_binary_until_sigterm(*flags, after="fine-tuning ")
    self.assertEqual(status, 0, output[-3000:])
    preempted = [l for l in output.splitlines() if l.startswith("preempted: ")]
    self.assertLen(preempted, 1, output[-3000:])
    checkpoint_dir = os.path.join(output_dir, "demo_size_small", "grid", "lr0.1_wd0",
                                  "checkpoints")
    self.assertEqual(preempted[0], f"preempted: SIGTERM: checkpoint saved at step 11 in "
                     f"{checkpoint_dir}; rerun the same command to resume")
    self.assertEqual(tf.train.latest_checkpoint(checkpoint_dir),
                     os.path.join(checkpoint_dir, "ckpt-11"))
    self.assertFalse(os.path.exists(os.path.join(output_dir, "demo_size_small.json")))

    # The same command again resumes there and finishes.
    stdout = io_lib.StringIO()
    with contextlib.redirect_stdout(stdout):
      self._main(**settings)
    lines = stdout.getvalue().splitlines()
    self.assertEqual(lines[1].strip(), f"resuming from {checkpoint_dir}/ckpt-11 at step 11")
    self.assertEqual([l.split()[1] for l in lines if l.strip().startswith("step ")],
                     ["16/16"] * 3)
    self.assertLen([l for l in lines if l.startswith("grid ")], 2)
    result = io.read_json(os.path.join(output_dir, "demo_size_small.json"))
    self.assertEqual((result["dataset"], result["metric"], result["steps"],
                      result["batch_size"], result["num_classes"]),
                     ("demo_size/small", "top1", 16, 32, 4))
    self.assertEqual(result["model"], os.path.abspath(self.model_dir))
    scores = [s["score"] for s in result["validation_scores"]]
    self.assertEqual([s["weight_decay"] for s in result["validation_scores"]], [0.0, 1e-3])
    self.assertEqual(result["validation"], max(scores))
    self.assertEqual(result["weight_decay"], [0.0, 1e-3][int(np.argmax(scores))])
    # Scores are fractions of the 40 validation / 200 test images.
    for score, n in [(s, 40) for s in scores] + [(result["test"], 200)]:
      self.assertBetween(score, 0.0, 1.0)
      self.assertAllClose(score * n, round(score * n), atol=1e-6)
    self.assertGreater(result["timings"]["wall_seconds"], 0.0)
    run_dir = os.path.join(output_dir, "demo_size_small")
    for sub in ("grid/lr0.1_wd0", "grid/lr0.1_wd0.001", "final/" + finetune.grid_point_name(
        result["learning_rate"], result["weight_decay"])):
      self.assertTrue(os.path.exists(os.path.join(run_dir, sub, "result.json")), sub)
      self.assertNotEmpty(tf.io.gfile.glob(os.path.join(run_dir, sub, "train", "events.*")))
      self.assertNotEmpty(tf.io.gfile.glob(os.path.join(run_dir, sub, "eval", "events.*")))
      self.assertFalse(os.path.exists(os.path.join(run_dir, sub, "checkpoints")), sub)

    # Once more: every grid point is done, nothing is trained, the result is the same.
    stdout = io_lib.StringIO()
    with contextlib.redirect_stdout(stdout):
      self._main(**settings)
    lines = stdout.getvalue().splitlines()
    self.assertLen([l for l in lines if l.endswith("(done before)")], 2)
    self.assertFalse([l for l in lines if l.strip().startswith("step ")])
    again = io.read_json(os.path.join(output_dir, "demo_size_small.json"))
    again.pop("timings"), result.pop("timings")
    self.assertEqual(again, result)

  def test_bad_inputs_exit_2_with_one_line(self):
    output_dir = os.path.join(self.create_tempdir().full_path, "ft")
    missing = os.path.join(self.get_temp_dir(), "no_such_model")
    process = run_binary(f"--model={missing}", "--datasets=demo_size/small",
                         f"--output_dir={output_dir}")
    self.assertEqual(process.returncode, 2)
    self.assertLen(error_lines(process.stderr), 1)
    self.assertIn(missing, error_lines(process.stderr)[0])
    with self.assertRaises(ValueError) as raised:
      self._main(model=self.model_dir, datasets=["demo_size/small", "nope"],
                 output_dir=output_dir)
    self.assertStartsWith(cli.format_error(raised.exception), "error: dataset: unknown 'nope'")
    self.assertFalse(os.path.exists(output_dir))

  def _main(self, **flags):
    with flagsaver.flagsaver(**flags):
      finetune_main.main(["finetune"])

  def test_mock_cifar10(self):
    output_dir = self.create_tempdir().full_path
    with tfds.testing.mock_data(num_examples=80):
      self._main(model=self.model_dir, datasets=["cifar10"], output_dir=output_dir, steps=4,
                 batch_size=16, learning_rates=["0.05"], weight_decays=["1e-4"])
    result = io.read_json(os.path.join(output_dir, "cifar10.json"))
    self.assertEqual((result["num_classes"], result["metric"], result["learning_rate"],
                      result["weight_decay"], result["image_size"]),
                     (10, "top1", 0.05, 1e-4, 16))
    # mock_data yields num_examples examples for every split spec.
    self.assertEqual((result["num_train"], result["num_validation"], result["num_test"]),
                     (80, 80, 80))
    self.assertBetween(result["test"], 0.0, 1.0)

  def test_class_in_test_absent_from_train(self):
    def as_dataset(self, split, *args, **kwargs):
      del self, args, kwargs
      top = 10 if "test" in str(split) else 9  # class 9 only in test
      images = np.full([40, 32, 32, 3], 128, np.uint8)
      return tf.data.Dataset.from_tensor_slices(
          {"image": images, "label": np.arange(40, dtype=np.int64) % top})

    output_dir = self.create_tempdir().full_path
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
      with self.assertRaises(ValueError) as raised:
        self._main(model=self.model_dir, datasets=["cifar10"], output_dir=output_dir,
                   steps=4, batch_size=16)
    self.assertEqual(cli.format_error(raised.exception),
                     "error: dataset cifar10: class 9 occurs in test but not in train_full; "
                     "every evaluated class must be trained on")
    self.assertEmpty(os.listdir(output_dir))

  def test_model_without_penultimate_endpoint(self):
    saved = os.path.join(self.create_tempdir().full_path, "saved_model")
    module = tf.Module()
    module.w = tf.Variable(tf.ones([3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def serve(images):
      z = tf.matmul(tf.reduce_mean(images, axis=[1, 2]), module.w)
      return {"final_layer": z, "outputs": z}

    module.serve = serve
    tf.saved_model.save(module, saved, signatures={"serving_default": serve})
    with self.assertRaisesRegex(ValueError, "has no 'final_avg_pool' endpoint"):
      self._main(model=saved, datasets=["demo_size/small"], data_dir=self.data_dir)
    with self.assertRaisesRegex(cli.UsageError, "--datasets is required"):
      self._main(model=self.model_dir, datasets=[])
    with self.assertRaisesRegex(cli.UsageError, "--learning_rates: 'fast' is not a number"):
      self._main(model=self.model_dir, datasets=["demo_size/small"],
                 learning_rates=["fast"])


if __name__ == "__main__":
  tf.test.main()
