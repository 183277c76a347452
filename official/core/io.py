"""Atomic writes: a result file either exists whole or not at all."""

import json
import os
import tempfile
from typing import Any


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file in the same folder and a rename."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                             dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented, key-sorted JSON atomically."""
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_to_builtin) + "\n")


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _to_builtin(value):
  """JSON fallback for NumPy scalars and arrays."""
  if hasattr(value, "tolist"):
    return value.tolist()
  if hasattr(value, "item"):
    return value.item()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")
