"""Leases on shared storage: at most one live process computes a study step at a time.

A lease is a JSON file `<workdir>/leases/<step key>.json` naming its holder (a random token,
host, pid, worker) and a heartbeat time that a background thread refreshes. It is stale, and
may be taken over, when its heartbeat is older than the timeout or its holder ran on this host
and is gone. Claiming a free lease:
  - local disk (POSIX, also NFS): hard-link a private file to the lease's name; link(2) fails
    atomically if the name exists, so exactly one claimant creates it, whole;
  - `gs://` and other remote filesystems (no exclusive create): write the lease, wait a settle
    delay, read it back, and hold it only if the token read back is ours. Claimants that both
    saw it free write within one request of their check, so the later write lands before the
    earlier reads back; the delay (2 s) must exceed that gap (tens of ms on GCS);
  - `ram://` (one process): the same read-back, without delay.
A stale lease is replaced the same way as a remote one. Heartbeats compare wall clocks of
different machines: keep them synchronised (NTP) to well under the timeout. A holder whose
lease was taken over while it stalled marks it lost, and the driver discards that step's
result.
"""

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Optional

from official.core import io

DEFAULT_TIMEOUT_SECONDS = 300.0
REMOTE_SETTLE_SECONDS = 2.0
LOCAL_SETTLE_SECONDS = 0.2  # confirms a takeover of a stale local lease


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class Lease(contextlib.AbstractContextManager):
  """The claim of one process on one step; use `LeaseTable.try_acquire` to get one."""

  def __init__(self, table: "LeaseTable", key: str, path: str, record: dict):
    self.table = table
    self.key = key
    self.path = path
    self.record = record
    self.lost = False
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._beat, name=f"lease {key}", daemon=True)
    self._thread.start()

  def _beat(self):
    while not self._stop.wait(self.table.heartbeat_seconds):
      current = self.table.read(self.path)
      if current is None or current.get("token") != self.record["token"]:
        self.lost = True
        return
      self.record = dict(self.record, heartbeat=time.time())
      try:
        io.atomic_write_json(self.path, self.record)
      except OSError:
        pass  # a missed beat; the next one retries

  def release(self) -> None:
    """Stops the heartbeat and deletes the lease file if it is still ours."""
    self._stop.set()
    self._thread.join()
    current = self.table.read(self.path)
    if current is not None and current.get("token") == self.record["token"]:
      io.remove(self.path)

  def __exit__(self, *exc):
    self.release()


class LeaseTable:
  """The `leases/` folder of a workdir, as seen by one process (one study worker)."""

  def __init__(self, workdir: str, owner: str = "",
               timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
               settle_seconds: Optional[float] = None):
    if timeout_seconds <= 0:
      raise ValueError(f"--lease_timeout must be > 0 seconds, got {timeout_seconds}")
    self.root = io.join(io.absolute(workdir), "leases")
    self.owner = owner
    self.timeout_seconds = float(timeout_seconds)
    self.heartbeat_seconds = min(30.0, self.timeout_seconds / 4)
    self.host = socket.gethostname()
    # Local disks create leases exclusively with link(2); other filesystems by read-back.
    self.exclusive_create = not io.is_remote(self.root)
    self.settle_seconds = settle_seconds if settle_seconds is not None else (
        0.0 if self.root.startswith("ram://") else
        LOCAL_SETTLE_SECONDS if self.exclusive_create else REMOTE_SETTLE_SECONDS)

  def path(self, key: str) -> str:
    return io.join(self.root, key + ".json")

  @staticmethod
  def read(path: str) -> Optional[dict]:
    try:
      return json.loads(io.read_text(path))
    except FileNotFoundError:
      return None
    except (json.JSONDecodeError, UnicodeDecodeError):
      return {}  # a torn local write of a dead holder: no token, no heartbeat: stale

  def holder(self, key: str) -> Optional[dict]:
    """The live holder's record of `key`'s lease, or None when free or stale."""
    record = self.read(self.path(key))
    return None if record is None or self.is_stale(record) else record

  def is_stale(self, record: dict) -> bool:
    if time.time() - float(record.get("heartbeat", 0)) > self.timeout_seconds:
      return True
    return record.get("host") == self.host and not _pid_alive(int(record.get("pid", -1)))

  def try_acquire(self, key: str) -> Optional[Lease]:
    """A lease on `key` if no live process holds one, else None."""
    path = self.path(key)
    io.makedirs(io.dirname(path))
    record = {"key": key, "token": uuid.uuid4().hex, "owner": self.owner, "host": self.host,
              "pid": os.getpid(), "acquired": time.time(), "heartbeat": time.time()}
    data = json.dumps(record, sort_keys=True).encode("utf-8")
    if self.exclusive_create and _create_exclusive(path, data):
      return Lease(self, key, path, record)
    current = self.read(path)
    if current is not None and not self.is_stale(current):
      return None
    # Free (remote) or stale: write ours whole, let concurrent claimants' writes land, and keep
    # the lease only if ours is what is there.
    io.atomic_write_bytes(path, data)
    if self.settle_seconds:
      time.sleep(self.settle_seconds)
    current = self.read(path)
    if current is None or current.get("token") != record["token"]:
      return None
    return Lease(self, key, path, record)

  def describe(self, record: dict) -> str:
    """Who holds a lease, in words: 'worker 1/3 (pid 123 on host-a)'."""
    who = record.get("owner") or "a driver"
    return f"{who} (pid {record.get('pid')} on {record.get('host')})"


def _create_exclusive(path: str, data: bytes) -> bool:
  """Creates local file `path` holding `data`, whole, unless it exists (by link(2), module
  docstring); whether it was created."""
  tmp = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
  with open(tmp, "wb") as f:
    f.write(data)
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  finally:
    os.remove(tmp)


class _NullLease(contextlib.nullcontext):
  """A Lockstep step's lease: nothing claimed, never lost."""
  lost = False


class Lockstep(LeaseTable):
  """No leases: for the hosts of one multi-worker training cluster (TF_CONFIG), which run
  every step together, in the same order, as one study worker; a lease claimed by one host
  would leave the others waiting in a collective."""

  def try_acquire(self, key: str) -> _NullLease:
    return _NullLease()

  def holder(self, key: str) -> None:
    return None
