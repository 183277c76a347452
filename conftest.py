"""pytest runs the project's absltest / tf.test modules.

- absl flags must count as parsed.
- The CPU is split into two logical devices before TensorFlow starts, as tests of
  tf.distribute strategies need.
- Some modules must run in a process of their own, as Bazel runs every test file: the
  binaries of experiments/ define their absl flags at import and share names (--data_dir,
  --batch_size, ...), and tests that build MirroredStrategy collectives can collide with
  another module's collective instances in one process. Each such module becomes one item
  that runs `pytest <file>` in a subprocess and fails with that run's output.
"""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

flags.FLAGS.mark_as_parsed()

_CHILD = "LOSS_TRANSFER_ISOLATED_TEST"


def _split_cpu_in_two():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpus = tf.config.list_physical_devices("CPU")
  try:
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
  except RuntimeError:
    pass  # TensorFlow already initialised its devices.


_split_cpu_in_two()


def _needs_own_process(path) -> bool:
  if path.parent.name == "experiments":
    return True
  text = path.read_text(encoding="utf-8", errors="ignore")
  return "Strategy(" in text


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
    self.add_report_section("call", "own process", summary)
    if result.returncode != 0:
      raise _IsolatedFailure(result.stdout[-20000:] + "\n" + result.stderr[-5000:])

  def repr_failure(self, excinfo, style=None):
    if isinstance(excinfo.value, _IsolatedFailure):
      return str(excinfo.value)
    return super().repr_failure(excinfo, style)

  def reportinfo(self):
    return self.path, 0, f"own process: {self.path.name}"


def pytest_pycollect_makemodule(module_path, parent):
  if os.environ.get(_CHILD) or not module_path.name.endswith("_test.py"):
    return None
  if not _needs_own_process(module_path):
    return None
  return IsolatedModule.from_parent(parent, path=module_path)
