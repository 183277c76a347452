"""Running absl binaries: bad input becomes one line on stderr and exit status 2."""

import logging as _logging
import os
import sys
from typing import Callable, Sequence

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags  # pylint: disable=g-import-not-at-top
from absl import logging  # pylint: disable=g-import-not-at-top


class UsageError(ValueError):
  """A problem with what the user asked for (a flag, a path, a dataset)."""


# Bad input, and the environment refusing (missing or unwritable paths, a full disk).
USER_ERRORS = (ValueError, OSError)
# TensorFlow's filesystem errors that mean the same for a path given by the user (local or
# remote: a missing bucket, no permission, a file where a folder should be).
FILESYSTEM_ERRORS = ("NotFoundError", "PermissionDeniedError", "FailedPreconditionError",
                     "AlreadyExistsError")

# What TensorFlow's filesystem errors mean when they come without a message (as from ram://).
_WITHOUT_MESSAGE = {
    "NotFoundError": "a file or folder was not found (NotFoundError); check the paths given",
    "PermissionDeniedError": "permission denied (PermissionDeniedError); check the paths given",
    "FailedPreconditionError": "a path is not usable (FailedPreconditionError), e.g. a file "
                               "where a folder is expected",
    "AlreadyExistsError": "a file already exists (AlreadyExistsError)",
}


def is_user_error(error: BaseException) -> bool:
  """Whether `error` is bad input or a refusing filesystem, reported in one line."""
  if isinstance(error, USER_ERRORS):
    return True
  tf = sys.modules.get("tensorflow")  # only loaded binaries can raise its errors
  errors = getattr(tf, "errors", None)
  return errors is not None and isinstance(
      error, tuple(getattr(errors, name) for name in FILESYSTEM_ERRORS))


def format_error(error: BaseException) -> str:
  """One line: the first line of the message, prefixed with `error:`.

  A TensorFlow filesystem error keeps all its lines, joined: the path comes on a later line
  ("...Could not resolve host...\n\t when reading metadata of gs://bucket/x").
  """
  tf_message = getattr(error, "message", None)
  message = str(tf_message or error).strip().splitlines()
  if tf_message and message:
    message = [" ".join(line.strip() for line in message if line.strip())]
  text = message[0] if message else _WITHOUT_MESSAGE.get(
      type(error).__name__, type(error).__name__)
  if isinstance(error, OSError) and (
      error.filename and str(error.filename) not in text):
    text = f"{text}: {error.filename}"
  return f"error: {text}"


class _QuietLibraries(_logging.Filter):
  """Drops TFDS' and TensorFlow's informational and deprecation records on the console."""

  def filter(self, record: _logging.LogRecord) -> bool:
    path = record.pathname.replace(os.sep, "/")
    noisy = "/tensorflow_datasets/" in path or "/tensorflow/" in path or "/keras/" in path
    return not noisy or record.levelno >= _logging.ERROR


def run(main: Callable[[Sequence[str]], None]) -> None:
  """Runs `main` under absl; user errors exit 2 with a one-line message.

  The console shows the binary's own output and warnings (absl verbosity WARNING unless
  --verbosity is given); libraries' informational records are dropped.
  """
  flags.FLAGS.set_default("verbosity", logging.WARNING)

  def wrapped(argv):
    logging.get_absl_handler().addFilter(_QuietLibraries())
    _logging.getLogger("tensorflow").setLevel(_logging.ERROR)
    try:
      return main(argv)
    except Exception as e:  # pylint: disable=broad-except
      if not is_user_error(e):
        raise
      print(format_error(e), file=sys.stderr)
      sys.exit(2)

  app.run(wrapped)
