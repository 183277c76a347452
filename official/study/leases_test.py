"""Tests for step leases: one holder at a time, stale leases taken over, lost leases noticed."""

import json
import multiprocessing
import os
import time
import uuid

from absl.testing import absltest
from absl.testing import parameterized

from official.core import io
from official.study import leases


def _race(root, exclusive_create, settle, barrier, wins):
  """One claimant of a race: waits for all, claims "step", reports whether it won."""
  table = leases.LeaseTable(root, owner=f"pid {os.getpid()}", timeout_seconds=60,
                            settle_seconds=settle)
  table.exclusive_create = exclusive_create
  barrier.wait()
  lease = table.try_acquire("pretrain/softmax/seed0")
  wins.put(lease is not None)
  if lease is not None:
    time.sleep(1.0)  # hold it while the others finish trying
    lease.release()


class LeaseTest(parameterized.TestCase):

  def _root(self, filesystem):
    if filesystem == "local":
      return self.create_tempdir().full_path
    return f"ram://leases_test/{uuid.uuid4().hex}"

  @parameterized.parameters("local", "ram")
  def test_one_holder_until_released(self, filesystem):
    root = self._root(filesystem)
    first = leases.LeaseTable(root, owner="worker 0/2")
    second = leases.LeaseTable(root, owner="worker 1/2")
    lease = first.try_acquire("cka")
    self.assertIsNotNone(lease)
    self.assertIsNone(second.try_acquire("cka"))
    self.assertEqual(second.holder("cka")["owner"], "worker 0/2")
    self.assertIsNotNone(second.try_acquire("report"))  # other keys are independent
    lease.release()
    self.assertFalse(io.exists(first.path("cka")))
    self.assertIsNone(second.holder("cka"))
    again = second.try_acquire("cka")
    self.assertIsNotNone(again)
    again.release()

  @parameterized.parameters("local", "ram")
  def test_stale_heartbeat_is_taken_over(self, filesystem):
    root = self._root(filesystem)
    table = leases.LeaseTable(root, timeout_seconds=5)
    io.atomic_write_json(table.path("cka"), {
        "token": "dead", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 6})
    self.assertIsNone(table.holder("cka"))
    lease = table.try_acquire("cka")
    self.assertIsNotNone(lease)
    self.assertEqual(io.read_json(table.path("cka"))["token"], lease.record["token"])
    lease.release()

  def test_fresh_lease_of_another_host_is_respected(self):
    table = leases.LeaseTable(self._root("local"), timeout_seconds=5)
    io.atomic_write_json(table.path("cka"), {
        "token": "live", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 1})
    self.assertIsNone(table.try_acquire("cka"))

  def test_dead_process_on_this_host_is_taken_over_at_once(self):
    table = leases.LeaseTable(self._root("local"), timeout_seconds=600)
    child = multiprocessing.get_context("fork").Process(target=lambda: None)
    child.start()
    child.join()  # a pid that existed and is gone
    io.atomic_write_json(table.path("cka"), {
        "token": "dead", "host": table.host, "pid": child.pid, "heartbeat": time.time()})
    lease = table.try_acquire("cka")
    self.assertIsNotNone(lease)
    lease.release()

  @parameterized.parameters("local", "ram")
  def test_heartbeat_keeps_a_long_step_and_notices_a_takeover(self, filesystem):
    root = self._root(filesystem)
    holder = leases.LeaseTable(root, timeout_seconds=0.4)
    other = leases.LeaseTable(root, timeout_seconds=0.4)
    lease = holder.try_acquire("pretrain/a/seed0")
    first_beat = lease.record["heartbeat"]
    time.sleep(1.0)  # 2.5 timeouts: only the heartbeats keep the lease live
    self.assertIsNone(other.try_acquire("pretrain/a/seed0"))
    self.assertGreater(io.read_json(holder.path("pretrain/a/seed0"))["heartbeat"], first_beat)
    self.assertFalse(lease.lost)
    # Another process overwrites it (as after a stall longer than the timeout).
    io.atomic_write_json(holder.path("pretrain/a/seed0"), {
        "token": "thief", "host": "elsewhere", "pid": 1, "heartbeat": time.time() + 60})
    time.sleep(0.4)
    self.assertTrue(lease.lost)
    lease.release()  # leaves the other's lease in place
    self.assertEqual(io.read_json(holder.path("pretrain/a/seed0"))["token"], "thief")

  @parameterized.parameters((True, 0.0), (False, 0.5))
  def test_concurrent_claimants_one_wins(self, exclusive_create, settle):
    """Eight processes claim one step at once; through link(2), and through the write,
    settle and read-back protocol used on Cloud Storage (on local disk, which is as
    read-after-write consistent)."""
    root = self._root("local")
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    wins = context.Queue()
    workers = [context.Process(target=_race, args=(root, exclusive_create, settle, barrier, wins))
               for _ in range(8)]
    for worker in workers:
      worker.start()
    for worker in workers:
      worker.join(60)
      self.assertEqual(worker.exitcode, 0)
    results = [wins.get(timeout=5) for _ in workers]
    self.assertEqual(sum(results), 1, results)
    self.assertEqual(os.listdir(os.path.join(root, "leases", "pretrain", "softmax")), [])

  def test_bad_timeout(self):
    with self.assertRaisesRegex(ValueError, "lease_timeout must be > 0"):
      leases.LeaseTable(self._root("local"), timeout_seconds=0)


if __name__ == "__main__":
  absltest.main()
