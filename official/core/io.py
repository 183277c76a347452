"""Files on any TensorFlow filesystem: local paths, `gs://`, `ram://` and the rest alike.

Atomic writes (`atomic_write_*`) rename a temporary file of the destination's folder over the
destination, so a reader sees the old file or the new one, whole (`is_temporary` names what a
crash on `gs://` can leave behind).

`ram://` answers `exists`, `isdir` and `listdir` by name prefix ("x/a" seems to exist while only
"x/a.tmp/f" does), renames only the one entry named and fails to delete folders it never
created; the functions here answer exactly there too (a folder counts when created with
`makedirs`) and move and delete folders file by file.
"""

import errno
import json
import os
import posixpath
import uuid
from typing import Any, NamedTuple

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


def _is_ram(path: str) -> bool:
  return str(path).startswith("ram://")


def _glob_literal(path: str) -> str:
  """`path` as a glob pattern that matches only itself."""
  return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def exists(path: str) -> bool:
  """Whether the file or folder `path` exists."""
  if not _is_ram(path):
    return tf.io.gfile.exists(path)
  # An entry of exactly this name, or one directly below "path/" (folders that ram:// holds
  # only implicitly, through files written into a folder never created, are not seen).
  pattern = _glob_literal(str(path).rstrip("/"))
  if pattern == "ram:":
    return True  # the filesystem's root
  return bool(tf.io.gfile.glob(pattern) or tf.io.gfile.glob(pattern + "/*"))


def isdir(path: str) -> bool:
  """Whether `path` is a folder."""
  if not _is_ram(path):
    return tf.io.gfile.isdir(path)
  return exists(path) and tf.io.gfile.isdir(path)


def makedirs(path: str) -> None:
  """Creates `path` and its parents; a folder that exists already is fine."""
  tf.io.gfile.makedirs(path)


def listdir(path: str) -> list[str]:
  """The sorted names in folder `path` (subfolders without a trailing "/"); [] if missing."""
  if not isdir(path):
    return []
  if _is_ram(path):  # the entries one level below "path/" exactly, not those by prefix
    pattern = _glob_literal(str(path).rstrip("/")) + "/*"
    return sorted(posixpath.basename(name) for name in tf.io.gfile.glob(pattern))
  return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))


def rmtree(path: str) -> None:
  """Deletes the folder `path` and everything under it; a missing folder is fine."""
  if not isdir(path):
    if exists(path):
      tf.io.gfile.remove(path)
    return
  if not _is_ram(path):
    tf.io.gfile.rmtree(path)
    return
  for relative in walk_files(path):
    tf.io.gfile.remove(join(path, relative))
  folders = [path] + [join(path, relative) for relative in _walk(path)[1]]
  for folder in sorted(folders, key=len, reverse=True):  # deepest first
    try:
      tf.io.gfile.remove(folder)  # ram:// deletes a folder entry like a file
    except tf.errors.NotFoundError:
      pass  # a folder ram:// holds only implicitly, through the files below it


def remove(path: str) -> None:
  """Deletes the file `path`; a missing file is fine."""
  try:
    tf.io.gfile.remove(path)
  except tf.errors.NotFoundError:
    pass


class FileStat(NamedTuple):
  size: int  # bytes
  mtime_ns: int  # last modification, nanoseconds since the epoch (0 where not recorded)


def stat(path: str) -> FileStat:
  """Size and modification time of the file `path`: local files through os.stat (gfile's
  rounds mtime to seconds), others through gfile (`ram://` records no mtime: 0)."""
  if not is_remote(path):
    result = os.stat(path)
    return FileStat(result.st_size, result.st_mtime_ns)
  try:
    result = tf.io.gfile.stat(path)
  except tf.errors.OpError as e:
    raise as_os_error(e, path) from None
  return FileStat(result.length, result.mtime_nsec)


def mtime(path: str) -> float:
  """When `path` was last modified, in seconds since the epoch (0 where not recorded)."""
  return stat(path).mtime_ns / 1e9


def rename(source: str, target: str) -> None:
  """Moves the file or folder `source` to `target`, replacing a file there (atomic where the
  filesystem's rename is; on `ram://` a folder moves file by file)."""
  if _is_ram(source) and isdir(source):
    if exists(target):
      raise FileExistsError(errno.EEXIST, "cannot move a folder onto an existing path", target)
    makedirs(target)
    files, folders = _walk(source)
    for relative in folders:
      makedirs(join(target, relative))
    for relative in files:
      tf.io.gfile.rename(join(source, relative), join(target, relative), overwrite=True)
    rmtree(source)
    return
  tf.io.gfile.rename(source, target, overwrite=True)


def _walk(root: str) -> tuple[list[str], list[str]]:
  """(files, folders) below `root`, sorted, as paths relative to it with "/" separators."""
  files, folders = [], []
  pending = [""] if isdir(root) else []
  while pending:
    relative = pending.pop()
    for name in listdir(join(root, relative) if relative else root):
      child = f"{relative}/{name}" if relative else name
      if isdir(join(root, child)):
        folders.append(child)
        pending.append(child)
      else:
        files.append(child)
  return sorted(files), sorted(folders)


def walk_files(root: str) -> list[str]:
  """Every file below `root`, sorted, relative to it with "/" separators (listed folder by
  folder, which works on every filesystem; module docstring for `ram://`)."""
  return _walk(root)[0]


def join(*parts: str) -> str:
  """os.path.join for local paths, "/"-joined for URLs."""
  return posixpath.join(*parts) if is_remote(parts[0]) else os.path.join(*parts)


def is_temporary(name: str) -> bool:
  """Whether a file name is one of `atomic_write_bytes`' temporary files."""
  base = posixpath.basename(name)
  return base.startswith(".") and base.endswith(_TMP_SUFFIX)


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` through a temporary file in the same folder and a rename."""
  path = absolute(path)
  directory = dirname(path)
  makedirs(directory)
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
