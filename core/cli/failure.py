"""What a command line prints when it fails: one message and a hint, never a traceback (unless --debug).

Shared by ``python -m core`` and the training command lines. A :class:`~core.errors.CoreError` is
written for users already and is printed as it is (exit code 2). Anything else is a failure we did
not foresee: the user gets its one-line text, what to try, and how to see the details (exit code 1).
"""

from __future__ import annotations

import sys
import traceback
from typing import TextIO

from core.errors import CoreError

__all__ = ["report_failure", "DEBUG_HELP"]

DEBUG_HELP = "on an error, also print the Python traceback (for reporting a bug)"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().split("\n")[0]
    return text[:300] or type(err).__name__


def report_failure(err: BaseException, debug: bool = False, stream: TextIO | None = None) -> int:
    """Print ``err`` for a user (with its traceback when ``debug``); the exit code to return."""
    out = stream or sys.stderr
    if debug:
        traceback.print_exception(err, file=out)
    if isinstance(err, KeyboardInterrupt):
        print("cancelled", file=out)
        return 130
    if isinstance(err, CoreError):
        print(f"error: {err}", file=out)
        return 2
    if isinstance(err, MemoryError):
        print("error: out of memory. Close other programs, or use smaller settings "
              "(e.g. a smaller --batch-size or --size), and try again.", file=out)  # fmt: skip
    elif isinstance(err, OSError):
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"error: {err.strerror or _first_line(err)}{where}. Check the path, the free disk space "
              "and that you may read and write there.", file=out)  # fmt: skip
    else:
        print(f"error: unexpected {type(err).__name__}: {_first_line(err)}", file=out)
        print("This is a bug or an input HoechstScore does not handle yet. Run the same command with "
              "--debug to see the details, and report them.", file=out)  # fmt: skip
    return 1
