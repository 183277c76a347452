"""Tests for the study driver: interrupted runs end where uninterrupted ones do; bad input
gets one line and leaves nothing half-written."""

import errno
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest

from official.core import io
from official.study import store as store_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A one-objective, two-seed quick study: every kind of step (pretraining, representations,
# transfer, CKA across the two seeds, report) runs, in well under a minute.
STUDY_FLAGS = ["--quick", "--objectives=softmax", "--seeds=0,1",
               "--transfer_datasets=demo_digits"]


def _command(workdir, data_dir, *extra):
  return [sys.executable, "-m", "experiments.reproduce", f"--workdir={workdir}",
          f"--data_dir={data_dir}", *STUDY_FLAGS, *extra]


def _env():
  env = dict(os.environ)
  env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  return env


def _results_without_timings(workdir):
  """Every result file's content, minus wall-clock timings (which differ run to run)."""
  store = store_lib.ResultStore(workdir)
  contents = {}
  for key in store.keys():
    record = io.read_json(store.path(key))
    contents[key] = _drop_timings(record["result"])
  return contents


def _drop_timings(value):
  if isinstance(value, dict):
    return {k: _drop_timings(v) for k, v in value.items() if k != "timings"}
  if isinstance(value, list):
    return [_drop_timings(v) for v in value]
  return value


class ReproduceKillTest(absltest.TestCase):
  """Kills the driver at random points and reruns it (paper-scale runs get preempted)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.makedirs(absltest.get_default_test_tmpdir(), exist_ok=True)
    cls.base = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.data_dir = os.path.join(cls.base, "tfds")
    cls.reference = os.path.join(cls.base, "uninterrupted")
    started = time.time()
    subprocess.run(_command(cls.reference, cls.data_dir), cwd=ROOT, env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cls.duration = time.time() - started

  def test_report_and_results_exist(self):
    report = open(os.path.join(self.reference, "report", "report.md")).read()
    self.assertIn("## Table 1 (Linear transfer)", report)
    self.assertIn("## Table 3", report)
    self.assertRegex(report, r"rho = -?\d\.\d\d|Too few objectives")
    keys = set(store_lib.ResultStore(self.reference).keys())
    for objective in ("softmax",):
      for seed in (0, 1):
        self.assertIn(f"pretrain/{objective}/seed{seed}", keys)
        self.assertIn(f"representations/{objective}/seed{seed}", keys)
        self.assertIn(f"transfer/{objective}/seed{seed}/demo_digits", keys)
    self.assertIn("cka", keys)
    # Transfer features are cached where experiments/linear_probe and knn look for them.
    cache = os.path.join(self.reference, "runs", "softmax", "seed0", "transfer", "features")
    cached = sorted(name.split("-")[1] for name in os.listdir(cache))
    self.assertEqual(cached, ["test", "train", "validation"])

  def test_killed_and_rerun_equals_uninterrupted(self):
    rng = random.Random(1234)
    expected_results = _results_without_timings(self.reference)
    expected_report = open(os.path.join(self.reference, "report", "report.md")).read()
    for trial in range(2):
      workdir = os.path.join(self.base, f"killed{trial}")
      process = subprocess.Popen(_command(workdir, self.data_dir), cwd=ROOT, env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
      time.sleep(rng.uniform(0.2, 0.8) * self.duration)
      process.send_signal(signal.SIGKILL)
      process.wait()
      subprocess.run(_command(workdir, self.data_dir), cwd=ROOT, env=_env(), check=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
      self.assertEqual(_results_without_timings(workdir), expected_results, f"trial {trial}")
      report = open(os.path.join(workdir, "report", "report.md")).read()
      self.assertEqual(report.replace(workdir, "<workdir>"),
                       expected_report.replace(self.reference, "<workdir>"), f"trial {trial}")
      leftovers = [f for _, _, files in os.walk(os.path.join(workdir, "results"))
                   for f in files if f.endswith(".tmp")]
      self.assertEqual(leftovers, [])

  def test_rerun_skips_everything(self):
    result = subprocess.run(_command(self.reference, self.data_dir), cwd=ROOT, env=_env(),
                            check=True, capture_output=True, text=True)
    self.assertRegex(result.stdout, r"(\d+) steps, \1 done, 0 to run")

  def test_changed_setting_marks_stale(self):
    workdir = os.path.join(self.base, "stale")
    subprocess.run(["cp", "-r", self.reference, workdir], check=True)
    # A smaller k_max for kNN changes the two transfer steps, and nothing else.
    result = subprocess.run(_command(workdir, self.data_dir, "--knn_k_max=3"), cwd=ROOT,
                            env=_env(), check=True, capture_output=True, text=True)
    self.assertRegex(result.stdout, r"(\d+) steps, \d+ done, 2 to run")
    self.assertEqual(result.stdout.count("stale: transfer/"), 2)
    moved = [f for _, _, files in os.walk(os.path.join(workdir, "stale")) for f in files]
    self.assertLen(moved, 2)
    for seed in (0, 1):
      record = io.read_json(store_lib.ResultStore(workdir).path(
          f"transfer/softmax/seed{seed}/demo_digits"))
      self.assertEqual(record["settings"]["knn_k_max"], 3)
      self.assertLessEqual(record["result"]["knn"]["k"], 3)


class ReproduceBadInputTest(absltest.TestCase):

  def _run(self, *flags):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *flags], cwd=ROOT,
                          env=_env(), capture_output=True, text=True)

  def test_unknown_objective(self):
    workdir = os.path.join(self.create_tempdir().full_path, "w")
    result = self._run(f"--workdir={workdir}", "--objectives=softmax,nope")
    self.assertEqual(result.returncode, 2)
    self.assertRegex(result.stderr.strip().splitlines()[-1], r"^error: .*'nope'.*softmax")
    self.assertFalse(os.path.exists(workdir))

  def test_unknown_dataset(self):
    workdir = os.path.join(self.create_tempdir().full_path, "w")
    result = self._run(f"--workdir={workdir}", "--transfer_datasets=imagenet3000")
    self.assertEqual(result.returncode, 2)
    self.assertRegex(result.stderr.strip().splitlines()[-1], r"^error: .*imagenet3000")
    self.assertFalse(os.path.exists(workdir))

  def test_unwritable_workdir(self):
    blocker = os.path.join(self.create_tempdir().full_path, "file")
    open(blocker, "w").close()
    result = self._run(f"--workdir={blocker}/study", "--quick")
    self.assertEqual(result.returncode, 2)
    last = result.stderr.strip().splitlines()[-1]
    self.assertRegex(last, r"^error: --workdir .* is not writable")

  def test_full_disk_leaves_nothing_partial(self):
    from official.core import config  # pylint: disable=g-import-not-at-top
    from official.study import driver  # pylint: disable=g-import-not-at-top
    workdir = self.create_tempdir().full_path
    study = config.study_demo(quick=True)
    real_write = io.atomic_write_bytes

    def failing_write(path, data):
      if "/results/" in path:
        raise OSError(errno.ENOSPC, "No space left on device", path)
      return real_write(path, data)

    with mock.patch.object(io, "atomic_write_bytes", side_effect=failing_write), \
        mock.patch.object(driver, "prepare_data"), \
        mock.patch.object(driver.steps, "pretrain", return_value={"top1": 0.5}):
      with self.assertRaisesRegex(OSError, "No space left on device"):
        driver.run(study, workdir, log=lambda line: None)
    self.assertEqual(list(store_lib.ResultStore(workdir).keys()), [])
    leftovers = [f for _, _, files in os.walk(workdir) for f in files if f.endswith(".tmp")]
    self.assertEqual(leftovers, [])


if __name__ == "__main__":
  absltest.main()
