"""TensorFlow's C++ start-up lines stay off stderr unless TF_CPP_MIN_LOG_LEVEL asks for them."""

import os
import subprocess
import sys

from absl.testing import absltest

from official.core import native_logging

# What a binary does: its first import, then TensorFlow, then an op (which probes CUDA).
_BINARY = ("from official.core import native_logging\n"
           "import tensorflow as tf\n"
           "print(int(tf.constant(1) + 1))\n")


def _run(level=None, script=_BINARY):
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
  env.pop(native_logging.ENV_VAR, None)
  if level is not None:
    env[native_logging.ENV_VAR] = level
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          check=True, timeout=300)
  return result.stdout.decode(), result.stderr.decode()


def _native(stderr):
  return [line for line in stderr.splitlines()
          if native_logging.NATIVE_LINE.match(line.encode()) or
          line.encode().startswith(native_logging.ABSL_BANNER)]


class FilterTest(absltest.TestCase):

  TEXT = (b"WARNING: All log messages before absl::InitializeLog() is called are written to "
          b"STDERR\n"
          b"I0000 00:00:1.0  1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
          b"To enable the following instructions: AVX2, rebuild TensorFlow.\n"
          b"W0000 00:00:1.0  1 x.cc:1] a warning\n"
          b"E0000 00:00:1.0  1 cuda_platform.cc:52] failed call to cuInit\n"
          b"\n"
          b"/x.py:3: DeprecationWarning: python text\n")

  def test_levels(self):
    python = b"\n/x.py:3: DeprecationWarning: python text\n"
    self.assertEqual(native_logging.filter_native_lines(self.TEXT, 0), self.TEXT)
    self.assertEqual(native_logging.filter_native_lines(self.TEXT, 1),
                     b"W0000 00:00:1.0  1 x.cc:1] a warning\n"
                     b"E0000 00:00:1.0  1 cuda_platform.cc:52] failed call to cuInit\n" + python)
    self.assertEqual(native_logging.filter_native_lines(self.TEXT, 2),
                     b"E0000 00:00:1.0  1 cuda_platform.cc:52] failed call to cuInit\n" + python)
    self.assertEqual(native_logging.filter_native_lines(self.TEXT, 3), python)

  def test_text_without_native_lines_is_kept(self):
    text = b"Traceback (most recent call last):\n  File x\nImportError: no\n"
    self.assertEqual(native_logging.filter_native_lines(text, 3), text)


class SubprocessTest(absltest.TestCase):

  def test_quiet_by_default_and_visible_on_request(self):
    stdout, visible = _run(level="0")
    self.assertEqual(stdout.strip(), "2")
    if not _native(visible):
      self.skipTest("TensorFlow printed no native start-up lines on this machine")
    stdout, quiet = _run()
    self.assertEqual(stdout.strip(), "2")
    self.assertEqual(_native(quiet), [], quiet)
    self.assertEqual(quiet.strip(), "", quiet)

  def test_a_look_up_before_the_import_keeps_it_quiet(self):
    # Libraries probe for TensorFlow with importlib.util.find_spec before importing it.
    _, visible = _run(level="0")
    if not _native(visible):
      self.skipTest("TensorFlow printed no native start-up lines on this machine")
    script = "import importlib.util\n" + _BINARY.replace(
        "import tensorflow as tf\n",
        "assert importlib.util.find_spec('tensorflow') is not None\nimport tensorflow as tf\n")
    stdout, quiet = _run(script=script)
    self.assertEqual(stdout.strip(), "2")
    self.assertEqual(_native(quiet), [], quiet)

  def test_user_level_wins(self):
    # Level 1 hides the informational lines but keeps warnings and errors.
    _, stderr = _run(level="1")
    self.assertEqual([line for line in _native(stderr) if line.startswith("I")], [], stderr)
    self.assertFalse(any(line.startswith("WARNING: All log") for line in _native(stderr)))


if __name__ == "__main__":
  absltest.main()
