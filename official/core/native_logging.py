"""TensorFlow's C++ start-up lines, kept off the console unless asked for.

`install()`, run when `official` is imported, defaults `TF_CPP_MIN_LOG_LEVEL` to 3 and, as
the lines written while `tensorflow` itself loads ignore it, captures file descriptor 2 during
that one import and writes back all but the native lines below the level (everything after a
failed import). A level set by the user wins (0: nothing is filtered).
"""

import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

ENV_VAR = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "3"
# A native log line: severity letter, MMDD, a space (absl / glog format).
NATIVE_LINE = re.compile(rb"^([IWEF])\d{4} ")
# Printed by every absl copy in TensorFlow's shared libraries before logging is initialised.
ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called"
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def min_log_level() -> int:
  """The native log level in force: TF_CPP_MIN_LOG_LEVEL as an integer (0 if unparsable)."""
  try:
    return int(os.environ.get(ENV_VAR, "0"))
  except ValueError:
    return 0


def filter_native_lines(text: bytes, level: int) -> bytes:
  """`text` without the native log lines of severity below `level` (and their continuations).

  A line that does not start like a native log line continues the native line before it (the
  cpu_feature_guard message spans two lines) and shares its fate; any other line is kept.
  """
  if level <= 0:
    return text
  kept = []
  dropping = False
  for line in text.splitlines(keepends=True):
    match = NATIVE_LINE.match(line)
    if match:
      dropping = _SEVERITY[match.group(1)] < level
    elif line.startswith(ABSL_BANNER):
      dropping = True
    elif not dropping or not line.strip():
      dropping = False
    if not dropping:
      kept.append(line)
  return b"".join(kept)


class _QuietLoader(importlib.abc.Loader):
  """Runs the real loader of `tensorflow` with file descriptor 2 captured and filtered."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    uninstall()
    try:
      saved = os.dup(2)
    except OSError:
      saved = None
    if saved is None:
      self._loader.exec_module(module)
      return
    failed = True
    with tempfile.TemporaryFile() as captured:
      sys.stderr.flush()
      os.dup2(captured.fileno(), 2)
      try:
        self._loader.exec_module(module)
        failed = False
      finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        text = captured.read()
        if not failed:
          text = filter_native_lines(text, min_log_level())
        if text:
          os.write(2, text)
    # Nothing keeps the wrapper once TensorFlow is loaded.
    module.__loader__ = self._loader
    if getattr(module, "__spec__", None) is not None:
      module.__spec__.loader = self._loader


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
  """Finds `tensorflow` with the other finders and wraps its loader in `_QuietLoader`, which
  removes this hook when TensorFlow is actually loaded."""

  def find_spec(self, fullname, path, target=None):
    if fullname != "tensorflow":
      return None
    for finder in sys.meta_path:
      if finder is self or not hasattr(finder, "find_spec"):
        continue
      spec = finder.find_spec(fullname, path, target)
      if spec is not None:
        break
    else:
      return None
    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
      spec.loader = _QuietLoader(spec.loader)
    return spec


def uninstall() -> None:
  """Removes the import hook (TensorFlow's next first import prints as usual)."""
  sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietTensorFlowFinder)]


def install() -> None:
  """Defaults TF_CPP_MIN_LOG_LEVEL to 3 and filters the lines of TensorFlow's first import
  (idempotent; nothing to filter when TensorFlow is loaded already or the level is 0)."""
  os.environ.setdefault(ENV_VAR, DEFAULT_LEVEL)
  if "tensorflow" in sys.modules or min_log_level() <= 0:
    return
  if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowFinder())
