"""argparse ``type=`` helpers shared by ``python -m core ...`` and the training command lines.

Why: a nonsense value must be refused when the command line is read, with a message that names
the option and the valid range, not minutes later as a traceback (``--batch-size 0``,
``--model-mpp 0`` → ZeroDivisionError) or, worse, accepted (``--epochs 0`` exported an untrained
model). argparse turns the :class:`argparse.ArgumentTypeError` raised here into
``error: argument --batch-size: ...`` and exit code 2. Paths are checked the same way before any
work starts: inputs must exist, outputs must be creatable (not under a file).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "int_range", "float_range", "positive_int", "non_negative_int", "positive_float", "non_negative_float",
    "finite_float",
    "existing_file", "existing_dir", "output_dir", "output_file", "image_file", "database_url",
    "fractions",
]  # fmt: skip

_POSTGRES_DRIVERS = {"psycopg2": "psycopg2", "psycopg": "psycopg", "pg8000": "pg8000", "asyncpg": "asyncpg"}


def prog_name(module_form: str) -> str:
    """The command name usage lines show: ``python -m core`` from source, but in the frozen bundle
    (where there is no ``python``) the name the program was started as, e.g. ``hoechstscore-core``."""
    if getattr(sys, "frozen", False):
        return os.path.basename(sys.argv[0]).removesuffix(".exe") or module_form
    return module_form


def _bounds_text(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"from {lo:g} to {hi:g}" if not lo_open else f"above {lo:g} and at most {hi:g}"
    if lo is not None:
        return f"{'above' if lo_open else 'at least'} {lo:g}"
    if hi is not None:
        return f"at most {hi:g}"
    return "any finite number"


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A whole number in [lo, hi] (either bound may be None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {_bounds_text(lo, hi, False)}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be a whole number {_bounds_text(lo, hi, False)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] ((lo, hi] with ``lo_open``); NaN and infinities are refused."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {_bounds_text(lo, hi, lo_open)}, got {text!r}") from None
        bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
        if not math.isfinite(value) or bad_lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be a number {_bounds_text(lo, hi, lo_open)}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
positive_float = float_range(0.0, lo_open=True)
non_negative_float = float_range(0.0)
finite_float = float_range()


def existing_file(text: str) -> Path:
    """An existing regular file (not a folder, pipe or device)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{path} does not exist; check the path")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{path} is not a file" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not an existing folder" if not path.exists() else f"{path} is a file, not a folder")
    return path


def _creatable(path: Path) -> None:
    """Refuse a path that can never be created: an ancestor is a file, or the nearest one is read-only."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{path} cannot be created: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise argparse.ArgumentTypeError(f"{path} cannot be created: you may not write in {parent}")
            return


def output_dir(text: str) -> Path:
    """A folder that exists or can be created (no file in the way)."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; give a folder")
    if not path.exists():
        _creatable(path)
    return path


def output_file(text: str) -> Path:
    """A file path that can be written: not a folder, and its folder exists or can be created."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file name")
    _creatable(path)
    return path


def image_file(text: str) -> Path:
    """An existing PNG or JPEG file (checked by its first bytes, not its name)."""
    path = existing_file(text)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{path} cannot be read ({err.strerror})") from None
    if not (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")):
        raise argparse.ArgumentTypeError(f"{path} is not a PNG or JPEG picture")
    return path


def database_url(text: str) -> str:
    """A SQLite or PostgreSQL SQLAlchemy URL whose driver is installed and, for SQLite, whose folder can exist."""
    from sqlalchemy.engine import make_url  # only when a --db is given

    example = "sqlite:////path/to/cases.db or postgresql://user@host/dbname"
    try:
        url = make_url(text)
        backend = url.get_backend_name()
    except Exception:  # ArgumentError, ValueError... for text that is not a URL
        raise argparse.ArgumentTypeError(f"{text!r} is not a database URL; use e.g. {example}") from None
    if backend == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if path.is_dir():
                raise argparse.ArgumentTypeError(f"{path} is a folder; give the database file, e.g. {path / 'cases.db'}")
            _creatable(path)
        return text
    if backend == "postgresql":
        driver = url.drivername.partition("+")[2] or "psycopg"  # SQLAlchemy 2.1's default driver
        module = _POSTGRES_DRIVERS.get(driver, driver)
        if importlib.util.find_spec(module) is None:
            raise argparse.ArgumentTypeError(
                f"PostgreSQL needs its driver ({module}), which is not installed. Install it with "
                "pip install 'hoechstscore[postgres]', or use a SQLite file: sqlite:////path/to/cases.db"
            )
        return text
    raise argparse.ArgumentTypeError(f"database type {backend!r} is not supported; use SQLite or PostgreSQL, e.g. {example}")


def fractions(count: int) -> Callable[[str], str]:
    """``count`` comma-separated fractions in [0, 1] adding up to 1, the first above 0 (``0.8,0.1,0.1``).

    Returns the text itself (checked), so that a command that stores its arguments stores it as given.
    """

    def parse(text: str) -> str:
        try:
            values = tuple(float(x) for x in text.split(","))
        except ValueError:
            values = ()
        in_range = all(math.isfinite(v) and 0 <= v <= 1 for v in values)
        if len(values) != count or not in_range or values[0] <= 0 or abs(sum(values) - 1) > 1e-6:
            raise argparse.ArgumentTypeError(f"give {count} fractions from 0 to 1 adding up to 1, such as "
                                             f"{','.join(['0.8', '0.1', '0.1'][:count])}; got {text!r}")  # fmt: skip
        return text

    parse.__name__ = "fractions"
    return parse
