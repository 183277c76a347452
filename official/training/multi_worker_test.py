"""MultiWorkerMirroredStrategy with two worker processes trains like one device.

Two processes on loopback (TF_CONFIG, free ports), one CPU replica each with 8 examples of
every global batch of 16, run the four steps of distribute_test.run_steps; the chief's losses,
weights and EMA weights must equal those of one device within distribute_test.TOLERANCE
(absolute, 1e-5).
"""

import json
import os
import socket
import subprocess
import sys

import tensorflow as tf

if __name__ == "__main__" and "--worker" in sys.argv:
  # A worker process: the strategy must exist before TF runs any op.
  _WORKER_STRATEGY = tf.distribute.MultiWorkerMirroredStrategy()
else:
  _WORKER_STRATEGY = None

import numpy as np  # pylint: disable=g-import-not-at-top,g-bad-import-order

from official.training import distribute  # pylint: disable=g-import-not-at-top
from official.training import distribute_test  # pylint: disable=g-import-not-at-top


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


class MultiWorkerTest(tf.test.TestCase):

  def test_two_workers_match_one_device(self):
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    out = os.path.join(self.get_temp_dir(), "chief.npz")
    workers = []
    for index in range(2):
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
      workers.append(subprocess.Popen(
          [sys.executable, "-m", "official.training.multi_worker_test", "--worker", out],
          env=distribute_test.subprocess_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True))
    # The single-device reference runs while the workers start.
    single = distribute_test.run_steps(tf.distribute.get_strategy())
    for worker in workers:
      output, _ = worker.communicate(timeout=300)
      self.assertEqual(worker.returncode, 0, output[-3000:])
    with np.load(out) as saved:
      self.assertEqual(int(saved["replicas"]), 2)
      losses = list(saved["losses"])
      weights = [saved[f"w{i}"] for i in range(len(single["weights"]))]
      ema = [saved[f"e{i}"] for i in range(len(single["ema"]))]
    tolerance = distribute_test.TOLERANCE
    self.assertAllClose(losses, single["losses"], atol=tolerance, rtol=0)
    self.assertLess(distribute_test.max_difference(weights, single["weights"]), tolerance)
    self.assertLess(distribute_test.max_difference(ema, single["ema"]), tolerance)


def _worker_main(out):
  strategy = _WORKER_STRATEGY
  result = distribute_test.run_steps(strategy)
  if distribute.worker_info(strategy)[2]:
    arrays = {f"w{i}": w for i, w in enumerate(result["weights"])}
    arrays.update({f"e{i}": w for i, w in enumerate(result["ema"])})
    np.savez(out, losses=np.array(result["losses"]),
             replicas=strategy.num_replicas_in_sync, **arrays)


if __name__ == "__main__":
  if _WORKER_STRATEGY is not None:
    _worker_main(sys.argv[sys.argv.index("--worker") + 1])
  else:
    tf.test.main()
