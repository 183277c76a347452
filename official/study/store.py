"""Result files of a study: one JSON per finished step, written atomically.

Every result records the fingerprint of everything that determines it (the step's settings and
the fingerprints of the steps it reads). A rerun skips a step whose file exists with the same
fingerprint, recomputes a step whose file is missing, and when the fingerprint differs moves
the old file to `stale/` (never mixing results of different settings) before recomputing.
"""

import hashlib
import json
import os
import time
from typing import Any, Iterator, Optional

from official.core import io


def fingerprint(obj: Any) -> str:
  """A short stable hash of a JSON-serialisable description of a step."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ResultStore:
  """The `results/` folder of a study's workdir."""

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    self.root = os.path.join(self.workdir, "results")
    self.stale_root = os.path.join(self.workdir, "stale")

  def path(self, key: str) -> str:
    return os.path.join(self.root, key + ".json")

  def load(self, key: str) -> Optional[dict]:
    path = self.path(key)
    if not os.path.exists(path):
      return None
    try:
      return io.read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
      # Not produced by atomic_write_json (a foreign or damaged file): treat as not done.
      self.mark_stale(key, reason="unreadable")
      return None

  def status(self, key: str, fp: str) -> str:
    """'done', 'missing' or 'stale' (a result exists for other settings)."""
    record = self.load(key)
    if record is None:
      return "missing"
    return "done" if record.get("fingerprint") == fp else "stale"

  def get(self, key: str, fp: Optional[str] = None) -> Optional[dict]:
    """The result of a finished step (only if its fingerprint matches, when given)."""
    record = self.load(key)
    if record is None or (fp is not None and record.get("fingerprint") != fp):
      return None
    return record["result"]

  def put(self, key: str, fp: str, result: dict, settings: Optional[dict] = None) -> None:
    io.atomic_write_json(self.path(key), {
        "key": key, "fingerprint": fp, "settings": settings or {}, "result": result})

  def mark_stale(self, key: str, reason: str = "settings changed") -> Optional[str]:
    """Moves the result of `key` out of `results/`; returns where it went."""
    path = self.path(key)
    if not os.path.exists(path):
      return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = os.path.join(self.stale_root, f"{key}.{stamp}.json")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(path, target)
    return target

  def keys(self, prefix: str = "") -> Iterator[str]:
    base = os.path.join(self.root, prefix)
    if not os.path.isdir(base):
      return
    for directory, _, files in sorted(os.walk(base)):
      for name in sorted(files):
        if name.endswith(".json") and not name.startswith("."):
          full = os.path.join(directory, name)
          yield os.path.relpath(full, self.root)[:-len(".json")]
