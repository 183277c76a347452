"""Tests for the one-line error convention of the binaries."""

from absl.testing import absltest

from official.core import cli


class FormatErrorTest(absltest.TestCase):

  def test_only_first_line_is_kept(self):
    self.assertEqual(cli.format_error(ValueError("bad --loss 'x'\nmore")), "error: bad --loss 'x'")

  def test_file_not_found_names_the_path(self):
    error = FileNotFoundError(2, "No such file or directory", "/nope/model")
    self.assertEqual(cli.format_error(error), "error: [Errno 2] No such file or directory: '/nope/model'")


if __name__ == "__main__":
  absltest.main()
