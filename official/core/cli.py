"""Running absl binaries: bad input becomes one line on stderr and exit status 2."""

import sys
from typing import Callable, Sequence

from absl import app


class UsageError(ValueError):
  """A problem with what the user asked for (a flag, a path, a dataset)."""


USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)


def format_error(error: BaseException) -> str:
  """One line: the first line of the message, prefixed with `error:`."""
  message = str(error).strip().splitlines()
  text = message[0] if message else type(error).__name__
  if isinstance(error, (FileNotFoundError, NotADirectoryError, PermissionError)) and (
      error.filename and str(error.filename) not in text):
    text = f"{text}: {error.filename}"
  return f"error: {text}"


def run(main: Callable[[Sequence[str]], None]) -> None:
  """Runs `main` under absl; user errors exit 2 with a one-line message."""

  def wrapped(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      print(format_error(e), file=sys.stderr)
      sys.exit(2)

  app.run(wrapped)
