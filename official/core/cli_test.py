"""Tests for the one-line error convention of the binaries."""

import contextlib
import io as std_io
import os
import sys
from unittest import mock

from absl.testing import absltest
import tensorflow as tf

from official.core import cli


class FormatErrorTest(absltest.TestCase):

  def test_only_first_line_is_kept(self):
    self.assertEqual(cli.format_error(ValueError("bad --loss 'x'\nmore")), "error: bad --loss 'x'")

  def test_file_not_found_names_the_path(self):
    error = FileNotFoundError(2, "No such file or directory", "/nope/model")
    self.assertEqual(cli.format_error(error), "error: [Errno 2] No such file or directory: '/nope/model'")


class RunTest(absltest.TestCase):
  """Binaries run through cli.run: bad paths, local or remote, exit 2 with one line."""

  def _run(self, main):
    stderr = std_io.StringIO()
    with mock.patch.object(sys, "argv", ["binary"]), contextlib.redirect_stderr(stderr):
      with self.assertRaises(SystemExit) as exited:
        cli.run(main)
    return exited.exception.code, stderr.getvalue().strip().splitlines()

  def test_missing_remote_file_is_one_line(self):
    def main(argv):
      del argv
      with tf.io.gfile.GFile("ram://cli_test/missing/config.json") as f:
        f.read()

    code, lines = self._run(main)
    self.assertEqual(code, 2)
    self.assertEqual(lines, ["error: a file or folder was not found (NotFoundError); check the "
                             "paths given"])

  def test_missing_local_file_through_gfile_names_the_path(self):
    path = os.path.join(self.create_tempdir().full_path, "nope", "x.json")

    def main(argv):
      del argv
      tf.io.gfile.GFile(path).read()

    code, lines = self._run(main)
    self.assertEqual(code, 2)
    self.assertEqual(lines, [f"error: {path}; No such file or directory"])

  def test_folder_where_a_file_is_is_one_line(self):
    blocker = os.path.join(self.create_tempdir().full_path, "file")
    with open(blocker, "w") as f:
      f.write("x")

    def main(argv):
      del argv
      tf.io.gfile.makedirs(os.path.join(blocker, "sub"))

    code, lines = self._run(main)
    self.assertEqual(code, 2)
    self.assertLen(lines, 1)
    self.assertRegex(lines[0], r"^error: .*file")

  def test_unreachable_remote_path_is_one_line_naming_it(self):
    def main(argv):
      del argv
      raise tf.errors.FailedPreconditionError(
          None, None, "Error executing an HTTP request: libcurl code 6 meaning 'Could not "
          "resolve hostname'\n\t when reading metadata of gs://no-such-bucket/run")

    code, lines = self._run(main)
    self.assertEqual(code, 2)
    self.assertEqual(lines, ["error: Error executing an HTTP request: libcurl code 6 meaning "
                             "'Could not resolve hostname' when reading metadata of "
                             "gs://no-such-bucket/run"])

  def test_other_errors_keep_their_traceback(self):
    def main(argv):
      del argv
      raise tf.errors.InternalError(None, None, "a bug, not bad input")

    with mock.patch.object(sys, "argv", ["binary"]):
      with self.assertRaises(tf.errors.InternalError):
        cli.run(main)


if __name__ == "__main__":
  absltest.main()
