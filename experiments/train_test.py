"""experiments/train as a program: bad flags, SIGTERM, and exact resumption after SIGKILL.

Every case runs `python -m experiments.train` in a subprocess on a tiny config (ResNet-10 at
1/8 width, 256 demo images, 2 epochs of 8 steps, deterministic ops):

  - bad flags (unknown loss, experiment or strategy, an invalid hyperparameter) exit with
    status 2 and one line on stderr;
  - a run killed with SIGKILL in the middle of an epoch, resumed, stopped with SIGTERM (which
    saves a checkpoint and exits 0) and resumed again ends with exactly the metrics of an
    uninterrupted run.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import tensorflow as tf

from official.core import io
from official.data import datasets

STEPS_PER_EPOCH = 8
TOTAL_STEPS = 16
OVERRIDES = ",".join([
    "data.train_split=train", "data.eval_split=test", "data.train_examples=256",
    "data.eval_examples=64", "model.block_counts=[1,1,1,1]", "model.width_multiplier=0.125",
    "train.batch_size=32", "train.epochs=2", "train.warmup_epochs=0.5",
    "train.steps_per_loop=1", "train.log_every_steps=4", "train.checkpoint_every_steps=3",
    "train.keep_checkpoints=50", "train.eval_batch_size=32",
    "train.class_separation_examples=64", "train.ema_decay=0.9"])


_NATIVE_LOG = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl::InitializeLog)")


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
  env.pop("TF_CONFIG", None)
  return env


def _command(*flags):
  return [sys.executable, "-m", "experiments.train", *flags]


def _checkpoint_steps(model_dir):
  """Steps of the complete checkpoints: those the manager recorded in its state file (files of
  a checkpoint still being written, or cut short by SIGKILL, are visible before that)."""
  state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
  paths = state.all_model_checkpoint_paths if state else []
  return sorted(int(re.search(r"ckpt-(\d+)$", p).group(1)) for p in paths)


class BadFlagsTest(absltest.TestCase):

  def test_bad_flags_exit_2_with_one_line(self):
    cases = {
        "objective='nope' is unknown": ["--loss=nope"],
        "unknown experiment 'nope'": ["--experiment=nope"],
        "unknown strategy 'nope'": ["--strategy=nope"],
        "keep_prob": ["--loss=dropout", "--keep_prob=1.5"],
    }
    processes = {message: subprocess.Popen(
        _command(*flags, "--model_dir", tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))),
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for message, flags in cases.items()}
    for message, process in processes.items():
      stdout, stderr = process.communicate(timeout=300)
      self.assertEqual(process.returncode, 2, stderr)
      # TensorFlow's native start-up log lines are not the program's output.
      lines = [line for line in stderr.strip().splitlines()
               if not _NATIVE_LOG.match(line)]
      self.assertLen(lines, 1, stderr)
      self.assertTrue(lines[0].startswith("error: "), lines[0])
      self.assertIn(message, lines[0])
      self.assertEqual(stdout, "")


class ResumeTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    self.data_dir = os.path.join(root, "tfds")
    self.root = root
    # Generated once here, not by two training processes at the same time.
    datasets.num_examples(datasets.get("demo_pretrain/small", data_dir=self.data_dir), "train",
                          data_dir=self.data_dir)

  def _flags(self, model_dir):
    return ["--loss=cosine_softmax", "--seed=3", "--deterministic",
            "--dataset=demo_pretrain/small", f"--data_dir={self.data_dir}",
            f"--model_dir={model_dir}", f"--params_override={OVERRIDES}"]

  def _start(self, model_dir):
    return subprocess.Popen(_command(*self._flags(model_dir)), env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

  def _wait_for_checkpoint(self, process, model_dir, condition):
    deadline = time.time() + 240
    while time.time() < deadline:
      steps = [s for s in _checkpoint_steps(model_dir) if condition(s)]
      if steps:
        return steps[-1]
      if process.poll() is not None:
        self.fail(f"training ended before the checkpoint: {process.stdout.read()[-3000:]}")
      time.sleep(0.02)
    self.fail("no checkpoint within 240 s")

  def test_killed_and_preempted_run_ends_like_an_uninterrupted_run(self):
    reference_dir = os.path.join(self.root, "reference")
    model_dir = os.path.join(self.root, "interrupted")
    reference = self._start(reference_dir)

    # 1. SIGKILL once a checkpoint in the middle of an epoch exists.
    first = self._start(model_dir)
    self._wait_for_checkpoint(first, model_dir, lambda s: s % STEPS_PER_EPOCH)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    self.assertEqual(first.returncode, -signal.SIGKILL)
    # The disk now looks as if the kill came right after the last mid-epoch checkpoint.
    killed_at = max(s for s in _checkpoint_steps(model_dir) if s % STEPS_PER_EPOCH)
    tf.compat.v1.train.update_checkpoint_state(os.path.join(model_dir, "checkpoints"),
                                     f"ckpt-{killed_at}")
    self.assertLess(killed_at, TOTAL_STEPS)

    # 2. Resume, then SIGTERM after the next checkpoint: saves and exits 0.
    second = self._start(model_dir)
    self._wait_for_checkpoint(second, model_dir, lambda s: s > killed_at)
    second.send_signal(signal.SIGTERM)
    output, _ = second.communicate(timeout=120)
    self.assertEqual(second.returncode, 0, output[-3000:])
    self.assertIn(f"resuming at step {killed_at}", output)
    self.assertIn("preempted: SIGTERM: checkpoint saved at step", output)
    self.assertFalse(os.path.exists(os.path.join(model_dir, "metrics.json")))
    preempted_at = int(re.search(r"checkpoint saved at step (\d+)", output).group(1))
    self.assertIn(preempted_at, _checkpoint_steps(model_dir))

    # 3. Resume to the end.
    third = subprocess.run(_command(*self._flags(model_dir)), env=_env(), capture_output=True,
                           text=True, timeout=300)
    self.assertEqual(third.returncode, 0, third.stderr[-3000:])
    self.assertIn(f"resuming at step {preempted_at}", third.stdout)

    output, _ = reference.communicate(timeout=300)
    self.assertEqual(reference.returncode, 0, output[-3000:])
    expected = io.read_json(os.path.join(reference_dir, "metrics.json"))
    resumed = io.read_json(os.path.join(model_dir, "metrics.json"))
    self.assertEqual(resumed["steps"], TOTAL_STEPS)
    for key in ("top1", "top5", "loss", "class_separation"):
      self.assertEqual(resumed[key], expected[key], key)


if __name__ == "__main__":
  absltest.main()
