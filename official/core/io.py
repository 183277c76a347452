"""Files on any TensorFlow filesystem: local paths, `gs://`, `ram://` and the rest alike.

Every file the project reads or writes goes through these helpers or `tf.io.gfile`, so a model
directory or study workdir on Cloud Storage behaves as one on local disk.

Atomic writes (`atomic_write_*`) write a temporary file in the destination's folder and rename
it over the destination, so a reader sees either the old file or the new one, whole:
  - local disks (POSIX): rename(2) within one filesystem replaces the destination atomically;
    the data is flushed before the rename.
  - `gs://` (Cloud Storage): an object becomes visible only when its upload completes, whole,
    and reads after a write are strongly consistent; rename is a server-side copy then a
    delete. Readers never see a partial file, but a crash between the copy and the delete (or
    during the upload) can leave the temporary object behind: its name starts with "." and
    ends with ".tmp" (see `is_temporary`), and `remove_temporaries` deletes such leftovers.
  - `ram://` (TensorFlow's in-process filesystem): a rename replaces the entry under a lock.
"""

import errno
import json
import os
import posixpath
import uuid
from typing import Any

import tensorflow as tf

_TMP_SUFFIX = ".tmp"


def is_remote(path: str) -> bool:
  """Whether `path` names a file through a scheme (`gs://b/x`, `ram://x`), not a local path."""
  return "://" in str(path)


def absolute(path: str) -> str:
  """`path` made absolute when it is local; URLs such as `gs://b/x` are returned unchanged."""
  path = str(path)
  return path if is_remote(path) else os.path.abspath(path)


def dirname(path: str) -> str:
  """The folder of `path`, for local paths and URLs (whose separator is always "/")."""
  return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def exists(path: str) -> bool:
  return tf.io.gfile.exists(path)


def isdir(path: str) -> bool:
  return tf.io.gfile.isdir(path)


def makedirs(path: str) -> None:
  """Creates `path` and its parents; a folder that exists already is fine."""
  tf.io.gfile.makedirs(path)


def listdir(path: str) -> list[str]:
  """The sorted names in folder `path` (subfolders without a trailing "/"); [] if missing."""
  if not tf.io.gfile.isdir(path):
    return []
  return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def glob(pattern: str) -> list[str]:
  return sorted(tf.io.gfile.glob(pattern))


def rmtree(path: str) -> None:
  """Deletes the folder `path` and everything under it; a missing folder is fine."""
  if tf.io.gfile.isdir(path):
    tf.io.gfile.rmtree(path)
  elif tf.io.gfile.exists(path):
    tf.io.gfile.remove(path)


def remove(path: str) -> None:
  """Deletes the file `path`; a missing file is fine."""
  try:
    tf.io.gfile.remove(path)
  except tf.errors.NotFoundError:
    pass


def mtime(path: str) -> float:
  """When `path` was last modified, in seconds since the epoch (0 where the filesystem does
  not record it, as `ram://`)."""
  return tf.io.gfile.stat(path).mtime_nsec / 1e9


def rename(source: str, target: str) -> None:
  """Moves `source` to `target`, replacing it (atomic where the filesystem's rename is)."""
  tf.io.gfile.rename(source, target, overwrite=True)


def walk_files(root: str) -> list[str]:
  """Every file below `root`, as a sorted list of paths relative to it with "/" separators.

  Lists folder by folder (no recursive glob), which works on every filesystem; on `ram://`
  folders are listed only when created with `makedirs` (as `atomic_write_bytes` does).
  """
  found = []
  pending = [""] if tf.io.gfile.isdir(root) else []
  while pending:
    relative = pending.pop()
    for name in tf.io.gfile.listdir(join(root, relative) if relative else root):
      child = f"{relative}/{name.rstrip('/')}" if relative else name.rstrip("/")
      if tf.io.gfile.isdir(join(root, child)):
        pending.append(child)
      else:
        found.append(child)
  return sorted(found)


def join(*parts: str) -> str:
  """os.path.join for local paths, "/"-joined for URLs."""
  return posixpath.join(*parts) if is_remote(parts[0]) else os.path.join(*parts)


def is_temporary(name: str) -> bool:
  """Whether a file name is one of `atomic_write_bytes`' temporary files."""
  base = posixpath.basename(name)
  return base.startswith(".") and base.endswith(_TMP_SUFFIX)


def remove_temporaries(folder: str) -> list[str]:
  """Deletes temporary files left in `folder` (not below it) by interrupted atomic writes.

  Only safe when no other process writes into `folder` at the same time (a live writer's
  temporary file would go too). Returns the paths deleted.
  """
  removed = []
  for name in listdir(folder):
    if is_temporary(name):
      path = join(folder, name)
      remove(path)
      removed.append(path)
  return removed


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file in the same folder and a rename."""
  path = absolute(path)
  directory = dirname(path)
  tf.io.gfile.makedirs(directory)
  tmp = join(directory, f".{posixpath.basename(path)}.{uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")
  try:
    if is_remote(path):
      with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    else:
      with open(tmp, "wb") as f:  # local: fsync before the rename, so a crash keeps old or new
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except BaseException:
    remove(tmp)
    raise


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented, key-sorted JSON atomically."""
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_to_builtin) + "\n")


def read_bytes(path: str) -> bytes:
  """The content of `path`; a missing or unreadable file raises OSError naming the path."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.OpError as e:
    raise as_os_error(e, path) from None


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


def read_json(path: str) -> Any:
  return json.loads(read_text(path))


def as_os_error(error: "tf.errors.OpError", path: str) -> OSError:
  """The OSError that a local file operation would raise for a gfile error on `path`."""
  kind, code = {
      tf.errors.NotFoundError: (FileNotFoundError, errno.ENOENT),
      tf.errors.PermissionDeniedError: (PermissionError, errno.EACCES),
      tf.errors.AlreadyExistsError: (FileExistsError, errno.EEXIST),
  }.get(type(error), (OSError, errno.EIO))
  message = (error.message or "").split(";")[-1].strip() or os.strerror(code)
  return kind(code, message, path)


def _to_builtin(value):
  """JSON fallback for NumPy scalars and arrays."""
  if hasattr(value, "tolist"):
    return value.tolist()
  if hasattr(value, "item"):
    return value.item()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")
