"""A study sharded across cooperating workers on one workdir ends where one process does.

Three `reproduce --num_workers=3 --worker_index=i` processes run one quick study concurrently
on one workdir; worker 1 is SIGKILLed while it trains and then restarted. The result files and
the report must equal those of a single-process study, every step must be completed exactly
once across the workers' logs, and a second plain driver on a busy workdir must cooperate
(take only steps no one holds) rather than repeat them.
"""

import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest

from experiments import reproduce_test

ROOT = reproduce_test.ROOT
# Two objectives x two seeds: four pretraining runs (worker 0 gets runs 0 and 3, workers 1 and
# 2 one each), their representations and transfer, and CKA across the two seeds.
STUDY_FLAGS = ["--quick", "--objectives=softmax,squared_error", "--seeds=0,1",
               "--transfer_datasets=demo_digits"]
NUM_STEPS = 4 * 3 + 1


def _command(workdir, data_dir, *extra):
  return [sys.executable, "-m", "experiments.reproduce", f"--workdir={workdir}",
          f"--data_dir={data_dir}", *STUDY_FLAGS, *extra]


def _read(path):
  with open(path) as f:
    return f.read()


def _finished(log_text):
  return re.findall(r"^\[worker \d/\d\]   finished (\S+) in ", log_text, flags=re.M)


def _started(log_text):
  return re.findall(r"^\[worker \d/\d\] \[\d+/\d+\] (.+?) \(elapsed", log_text, flags=re.M)


class ShardedStudyTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    os.makedirs(absltest.get_default_test_tmpdir(), exist_ok=True)
    cls.base = tempfile.mkdtemp(dir=absltest.get_default_test_tmpdir())
    cls.data_dir = os.path.join(cls.base, "tfds")
    cls.reference = os.path.join(cls.base, "single")
    subprocess.run(_command(cls.reference, cls.data_dir), cwd=ROOT, env=reproduce_test._env(),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

  def _start(self, workdir, log_path, *extra):
    log = open(log_path, "a")
    process = subprocess.Popen(_command(workdir, self.data_dir, *extra), cwd=ROOT,
                               env=reproduce_test._env(), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process

  def _assert_same_as_single_process(self, workdir):
    self.assertEqual(reproduce_test._results_without_timings(workdir),
                     reproduce_test._results_without_timings(self.reference))
    report = _read(os.path.join(workdir, "report", "report.md"))
    expected = _read(os.path.join(self.reference, "report", "report.md"))
    self.assertEqual(report.replace(workdir, "<workdir>"),
                     expected.replace(self.reference, "<workdir>"))

  def test_three_workers_one_killed_and_restarted(self):
    workdir = os.path.join(self.base, "sharded")
    logs = [os.path.join(self.base, f"worker{i}.log") for i in range(3)]
    flags = lambda i: ("--num_workers=3", f"--worker_index={i}", "--lease_timeout=30",
                       "--wait=600")
    workers = {i: self._start(workdir, logs[i], *flags(i)) for i in range(3)}
    # Kill worker 1 while it trains its run (pretrain softmax/seed1), after it has started.
    deadline = time.time() + 300
    while "pretrain softmax/seed1" not in _read(logs[1]):
      self.assertLess(time.time(), deadline, _read(logs[1])[-3000:])
      self.assertIsNone(workers[1].poll(), _read(logs[1])[-3000:])
      time.sleep(0.2)
    time.sleep(3.0)
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait()
    killed_log = _read(logs[1])
    self.assertNotIn("finished pretrain/softmax/seed1", killed_log)
    workers[1] = self._start(workdir, logs[1], *flags(1))
    for i, process in workers.items():
      self.assertEqual(process.wait(timeout=900), 0, _read(logs[i])[-3000:])

    self._assert_same_as_single_process(workdir)
    texts = [_read(path) for path in logs]
    finished = collections.Counter(key for text in texts for key in _finished(text))
    self.assertLen(finished, NUM_STEPS)
    self.assertEqual(set(finished.values()), {1}, finished)
    # Runs stay in their worker's share: run i of the grid goes to worker i % 3.
    for index, run in enumerate(["softmax/seed0", "softmax/seed1", "squared_error/seed0",
                                 "squared_error/seed1"]):
      self.assertIn(f"finished pretrain/{run} ", texts[index % 3])
      self.assertIn(f"finished transfer/{run}/demo_digits ", texts[index % 3])
    # Only the killed step was started twice (once by the killed process, once by its
    # restart); every other step was started once.
    started = collections.Counter(label for text in texts for label in _started(text))
    self.assertEqual({label: n for label, n in started.items() if n > 1},
                     {"pretrain softmax/seed1": 2})
    # One worker wrote the report; any other that got that far found it written.
    self.assertEqual(sum(text.count("; report: ") for text in texts), 1)
    leftovers = [f for _, _, files in os.walk(os.path.join(workdir, "leases")) for f in files
                 if f != "report-written.json"]
    self.assertEqual(leftovers, [])

  def test_second_plain_driver_cooperates(self):
    """The same command started twice on one workdir: the second driver never repeats a step
    the first is computing, and one of them writes the report."""
    workdir = os.path.join(self.base, "twice")
    logs = [os.path.join(self.base, f"twice{i}.log") for i in range(2)]
    first = self._start(workdir, logs[0])
    deadline = time.time() + 300
    while "[1/" not in _read(logs[0]):
      self.assertLess(time.time(), deadline, _read(logs[0])[-3000:])
      time.sleep(0.2)
    second = self._start(workdir, logs[1])
    for i, process in enumerate((first, second)):
      self.assertEqual(process.wait(timeout=900), 0, _read(logs[i])[-3000:])
    texts = [_read(path) for path in logs]
    started = [re.findall(r"^\[\d+/\d+\] (.+?) \(elapsed", text, flags=re.M) for text in texts]
    self.assertEmpty(set(started[0]) & set(started[1]))
    self.assertLen(started[0] + started[1], NUM_STEPS)
    self.assertNotEmpty(started[1])  # the second driver took part
    self._assert_same_as_single_process(workdir)


class WorkerFlagsTest(absltest.TestCase):
  """Bad worker flags and unusable remote workdirs get one line and exit 2."""

  def _last_line(self, *flags):
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--quick", *flags],
                            cwd=ROOT, env=reproduce_test._env(), capture_output=True,
                            text=True)
    self.assertEqual(result.returncode, 2, result.stderr[-2000:])
    return result.stderr.strip().splitlines()[-1]

  def test_index_outside_the_workers(self):
    workdir = os.path.join(self.create_tempdir().full_path, "w")
    self.assertEqual(self._last_line(f"--workdir={workdir}", "--num_workers=3",
                                     "--worker_index=3"),
                     "error: --worker_index=3 is outside [0, 2] for --num_workers=3")
    self.assertFalse(os.path.exists(workdir))

  def test_index_from_a_job_array(self):
    workdir = os.path.join(self.create_tempdir().full_path, "w")
    env = dict(reproduce_test._env(), SLURM_ARRAY_TASK_ID="4")
    result = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--quick",
                             f"--workdir={workdir}", "--num_workers=4"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    self.assertEqual(result.returncode, 2)
    self.assertEqual(result.stderr.strip().splitlines()[-1],
                     "error: $SLURM_ARRAY_TASK_ID=4 is outside [0, 3] for --num_workers=4")

  def test_bad_lease_timeout(self):
    self.assertEqual(self._last_line("--lease_timeout=0"),
                     "error: --lease_timeout must be > 0 seconds, got 0.0")

  def test_unusable_remote_workdir(self):
    line = self._last_line("--workdir=nosuchfs://bucket/study")
    self.assertRegex(line, r"^error: --workdir 'nosuchfs://bucket/study' is not writable \(.+\)$")


if __name__ == "__main__":
  absltest.main()
