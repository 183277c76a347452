"""Result files of a study: one JSON per finished step, written atomically.

Every result records the fingerprint of everything that determines it (the step's settings and
the fingerprints of the steps it reads). A rerun skips a step whose file has that fingerprint,
and moves a file of another fingerprint to `stale/` before recomputing the step.
"""

import hashlib
import json
import time
from typing import Any, Iterator, Optional

import tensorflow as tf

from official.core import io


# The StudyConfig a study's driver ran with, at the top of its workdir.
STUDY_FILE = "study.json"


def read_study(workdir: str) -> dict:
  """The study settings (STUDY_FILE) of a workdir; FileNotFoundError naming it if missing."""
  path = io.join(io.absolute(workdir), STUDY_FILE)
  if not io.exists(path):
    raise FileNotFoundError(f"no study in {io.absolute(workdir)!r}: {STUDY_FILE} is missing "
                            "(run experiments/reproduce first)")
  return io.read_json(path)


def fingerprint(obj: Any) -> str:
  """A short stable hash of a JSON-serialisable description of a step."""
  text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
  return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ResultStore:
  """The `results/` folder of a study's workdir."""

  def __init__(self, workdir: str):
    self.workdir = io.absolute(workdir)
    self.root = io.join(self.workdir, "results")
    self.stale_root = io.join(self.workdir, "stale")

  def path(self, key: str) -> str:
    return io.join(self.root, key + ".json")

  def load(self, key: str) -> Optional[dict]:
    path = self.path(key)
    try:
      return io.read_json(path)
    except FileNotFoundError:
      return None
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
    if not io.exists(path):
      return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = io.join(self.stale_root, f"{key}.{stamp}.json")
    io.makedirs(io.dirname(target))
    try:
      io.rename(path, target)
    except tf.errors.NotFoundError:
      return None  # another worker moved it first
    return target

  def keys(self, prefix: str = "") -> Iterator[str]:
    """The keys of every result file under `prefix` (e.g. "transfer/"), sorted."""
    base = io.join(self.root, prefix) if prefix else self.root
    for relative in io.walk_files(base):
      name = relative.rsplit("/", 1)[-1]
      if name.endswith(".json") and not name.startswith("."):
        yield (prefix.rstrip("/") + "/" + relative if prefix else relative)[:-len(".json")]
