"""Runs each binary's test module in its own pytest process.

The binaries of experiments/ each define their absl flags at import (Model Garden's
convention), and several share names (--data_dir, --batch_size, --output_dir, ...), so two of
them cannot be imported into one process. Bazel already runs every test file alone; under
pytest this hook does the same: each `experiments/*_test.py` becomes one item that runs
`pytest <file>` in a subprocess and fails with that run's output.
"""

import os
import subprocess
import sys

import pytest

_CHILD = "LOSS_TRANSFER_ISOLATED_TEST"


class _IsolatedFailure(Exception):
  pass


class IsolatedModule(pytest.File):

  def collect(self):
    yield IsolatedRun.from_parent(self, name=self.path.name)


class IsolatedRun(pytest.Item):

  def runtest(self):
    env = dict(os.environ, **{_CHILD: "1"})
    root = str(self.config.rootpath)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(self.path)],
        cwd=root, env=env, capture_output=True, text=True)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    self.add_report_section("call", "isolated run", summary)
    if result.returncode != 0:
      raise _IsolatedFailure(result.stdout[-20000:] + "\n" + result.stderr[-5000:])

  def repr_failure(self, excinfo, style=None):
    if isinstance(excinfo.value, _IsolatedFailure):
      return str(excinfo.value)
    return super().repr_failure(excinfo, style)

  def reportinfo(self):
    return self.path, 0, f"isolated: {self.path.name}"


def pytest_pycollect_makemodule(module_path, parent):
  if os.environ.get(_CHILD) or not module_path.name.endswith("_test.py"):
    return None
  return IsolatedModule.from_parent(parent, path=module_path)
