"""A whole trainer.train() under MultiWorkerMirroredStrategy: two processes, preempted, resumed.

Two worker processes on loopback (TF_CONFIG, free ports), one CPU replica each with 16
examples of every global batch of 32, train trainer_test's tiny config through the public
`trainer.train(config, model_dir, strategy)` on one shared model directory. The chief receives
SIGTERM after step 2: both workers save a checkpoint and stop (trainer.Preempted); the same call
again resumes and finishes. The chief's metrics, last checkpoint and export must equal those of
an uninterrupted single-process run with the same global batch up to float reduction order
(TOLERANCE), and the model directory must hold exactly the files of that run plus the
preemption's checkpoint: the non-chief worker leaves nothing behind (no `.worker1` copies, no
summaries), nor anything in its working folder.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile

import tensorflow as tf

if __name__ == "__main__" and "--worker" in sys.argv:
  # A worker process: the strategy must exist before TF runs any op.
  _WORKER_STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
  _WORKER_STRATEGY = None

import numpy as np  # pylint: disable=g-import-not-at-top,g-bad-import-order

from official.core import config as config_lib  # pylint: disable=g-import-not-at-top
from official.core import io  # pylint: disable=g-import-not-at-top
from official.modeling import pretrained  # pylint: disable=g-import-not-at-top
from official.training import distribute  # pylint: disable=g-import-not-at-top
from official.training import distribute_test  # pylint: disable=g-import-not-at-top
from official.training import trainer  # pylint: disable=g-import-not-at-top
from official.training import trainer_test  # pylint: disable=g-import-not-at-top

PREEMPT_AT_STEP = 2  # mid-epoch: 4 steps per epoch (128 examples, batch 32)
# The workers see the single device's global batches (official.data.input_pipeline), so only
# the float32 reduction order differs: two replicas sum the gradients, losses and batch
# statistics of their halves, one device sums the whole batch. That moves weights by ~1 ulp
# per step (observed on CPU after 8 steps: <= 5e-7 in weights, optimiser slots, exported
# endpoints and metrics); 1e-5 leaves a margin for other kernels while a different data order
# or initialisation moves them by 1e-3 and more.
TOLERANCE = 1e-5
METRICS = ("top1", "top5", "loss", "class_separation")


def _config(data_dir):
  """trainer_test's tiny run, batch normalisation over the global batch (as one device)."""
  return trainer_test.tiny_config(data_dir, **{"train.sync_batch_norm": True})


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _env(**extra):
  """A child process's environment: this checkout importable from any working folder."""
  env = distribute_test.subprocess_env(**extra)
  env["PYTHONPATH"] = os.pathsep.join(
      [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
       env.get("PYTHONPATH", "")])
  return env


def _files(model_dir):
  """The model directory's files, event files named by their folder only (their names hold
  a time stamp and host)."""
  names = set()
  for relative in io.walk_files(model_dir):
    folder, name = os.path.split(relative)
    names.add(os.path.join(folder, "<events>") if name.startswith("events.out.") else relative)
  return names


def _checkpoint_values(model_dir):
  reader = tf.train.load_checkpoint(os.path.join(model_dir, config_lib.CHECKPOINT_DIR))
  values = {}
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
      values[name] = value
  return values


class MultiWorkerTrainTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
    cls.data_dir = os.path.join(cls.root, "tfds")
    # Generated in a child process, as a study does (official.study.driver.prepare_data):
    # generating TFDS data inside train() would change the random state the single run
    # initialises its network from, and the workers find the data prepared.
    config = _config(cls.data_dir)
    subprocess.run(
        [sys.executable, "-c", "import sys; from official.data import datasets; "
         "datasets.prepare(sys.argv[1:2], data_dir=sys.argv[2])", config.data.dataset,
         cls.data_dir], env=_env(), check=True, capture_output=True, timeout=600)
    cls.single_dir = os.path.join(cls.root, "single")
    cls.single = trainer.train(config, cls.single_dir)  # the uninterrupted reference

    cls.multi_dir = os.path.join(cls.root, "multi")
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    cls.cwds = [os.path.join(cls.root, f"cwd{i}") for i in range(2)]
    workers = []
    for index in range(2):
      os.makedirs(cls.cwds[index])
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
      workers.append(subprocess.Popen(
          [sys.executable, "-m", "official.training.multi_worker_train_test", "--worker",
           cls.multi_dir, cls.data_dir], cwd=cls.cwds[index], env=_env(TF_CONFIG=tf_config),
          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    cls.outputs = []
    for worker in workers:
      output, _ = worker.communicate(timeout=600)
      cls.outputs.append((worker.returncode, output))

  def test_workers_were_preempted_and_resumed(self):
    for returncode, output in self.outputs:
      self.assertEqual(returncode, 0, output[-4000:])
      self.assertIn(f"preempted at step {PREEMPT_AT_STEP}", output)
      self.assertIn(f"resuming at step {PREEMPT_AT_STEP}", output)

  def test_chief_metrics_equal_single_process(self):
    multi = io.read_json(os.path.join(self.multi_dir, trainer.METRICS_FILE))
    self.assertEqual(multi["steps"], self.single["steps"])
    self.assertEqual(multi["eval_examples"], self.single["eval_examples"])
    for key in METRICS:
      self.assertAllClose(multi[key], self.single[key], atol=TOLERANCE, rtol=0, msg=key)

  def test_last_checkpoint_equals_single_process(self):
    multi = _checkpoint_values(self.multi_dir)
    single = _checkpoint_values(self.single_dir)
    self.assertEqual(sorted(multi), sorted(single))
    self.assertGreater(len(multi), 20)
    for name in single:
      self.assertAllClose(multi[name], single[name], atol=TOLERANCE, rtol=0, msg=name)

  def test_export_equals_single_process(self):
    images = np.random.default_rng(0).uniform(0, 1, size=(8, 32, 32, 3)).astype(np.float32)
    multi = pretrained.load(self.multi_dir)(images)
    single = pretrained.load(self.single_dir)(images)
    self.assertEqual(sorted(multi), sorted(single))
    for name in single:
      self.assertAllClose(multi[name], single[name], atol=TOLERANCE, rtol=0, msg=name)

  def test_model_dir_holds_only_the_chiefs_files(self):
    expected = _files(self.single_dir) | {
        os.path.join(config_lib.CHECKPOINT_DIR, f"ckpt-{PREEMPT_AT_STEP}{suffix}")
        for suffix in (".index", ".data-00000-of-00001")}
    self.assertEqual(_files(self.multi_dir), expected)
    self.assertFalse(any(".worker" in name for name in _files(self.multi_dir)))
    for cwd in self.cwds:
      self.assertEqual(os.listdir(cwd), [])


def _worker_main(model_dir, data_dir):
  strategy = _WORKER_STRATEGY
  is_chief = distribute.worker_info(strategy)[2]
  config = _config(data_dir)
  train_loop = trainer.Trainer.train_loop

  def preempting_train_loop(self, iterator, num_steps):
    stats = train_loop(self, iterator, num_steps)
    if is_chief and int(self.step.numpy()) == PREEMPT_AT_STEP:
      os.kill(os.getpid(), signal.SIGTERM)  # as a cluster scheduler's preemption notice
    return stats

  trainer.Trainer.train_loop = preempting_train_loop
  try:
    trainer.train(config, model_dir, strategy, log=print)
  except trainer.Preempted:
    print(f"preempted at step {PREEMPT_AT_STEP}", flush=True)
  else:
    raise AssertionError("the SIGTERM after step 2 did not stop training")
  finally:
    trainer.Trainer.train_loop = train_loop
  trainer.train(config, model_dir, strategy, log=print)


if __name__ == "__main__":
  if _WORKER_STRATEGY is not None:
    _worker_main(*sys.argv[sys.argv.index("--worker") + 1:][:2])
  else:
    tf.test.main()
