"""The cohort manifest: one CSV row per case, read and checked before any work starts.

Columns: ``case_id`` and ``slide`` (required); ``regions`` (QuPath GeoJSON with the tumour
outline, or CT and IM), ``mpp`` (µm per pixel, one number or "X Y", for slides that do not
record it) and ``reference`` (true/false: the case joins the reference cohort) are optional.
Relative paths are relative to the manifest's folder, so a manifest can travel with its slides.
Every problem in the file is found at once and reported together, by row, so that a 300-row
manifest is not fixed one error per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.errors import ConfigError

REQUIRED_COLUMNS = ("case_id", "slide")
OPTIONAL_COLUMNS = ("regions", "mpp", "reference")
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}
#: A case id becomes a folder name: letters, digits and ._- only.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class CohortCase:
    """One row of the manifest. Paths are absolute; mpp (x, y) µm per level-0 pixel or None."""

    case_id: str
    slide: Path
    regions: Path | None = None
    mpp: tuple[float, float] | None = None
    reference: bool = False


def _mpp(text: str) -> tuple[float, float] | None:
    parts = text.replace(",", " ").split()
    if not parts:
        return None
    values = [float(p) for p in parts]  # ValueError reported by the caller
    if len(values) > 2 or min(values) <= 0:
        raise ValueError(text)
    return (values[0], values[-1])


def _path(base: Path, text: str) -> Path:
    p = Path(text).expanduser()
    return (p if p.is_absolute() else base / p).resolve()


def read_manifest(path: str | Path) -> list[CohortCase]:
    """The cases of a manifest CSV, in file order. ConfigError listing every bad row otherwise."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read the cohort manifest {path}: {err}.") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(
            f"The cohort manifest {path.name} lacks column(s) {', '.join(missing)}; it has "
            f"{', '.join(table.columns) or 'none'}. Columns: case_id,slide[,regions,mpp,reference]."
        )
    base = path.resolve().parent
    cases: list[CohortCase] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(table.to_dict("records"), start=2):  # row 1 is the header
        case_id = row["case_id"].strip()
        where = f"row {i} ({case_id or 'no case_id'})"
        if not _SAFE_ID.match(case_id):
            problems.append(f"{where}: case_id {case_id!r} must be letters, digits, '.', '_' or '-'")
            continue
        if case_id in seen:
            problems.append(f"{where}: case_id {case_id} repeats row {seen[case_id]}")
            continue
        seen[case_id] = i
        if not row["slide"].strip():
            problems.append(f"{where}: no slide")
            continue
        regions = row.get("regions", "").strip()
        try:
            mpp = _mpp(row.get("mpp", ""))
        except ValueError:
            problems.append(f"{where}: mpp {row['mpp']!r} is not one or two positive numbers (µm per pixel)")
            continue
        flag = row.get("reference", "").strip().lower()
        if flag not in _TRUE | _FALSE:
            problems.append(f"{where}: reference {row['reference']!r} is not true or false")
            continue
        cases.append(CohortCase(case_id, _path(base, row["slide"].strip()),
                                _path(base, regions) if regions else None, mpp, flag in _TRUE))
    if problems:
        raise ConfigError(f"The cohort manifest {path.name} has {len(problems)} problem(s): " + "; ".join(problems) + ".")
    if not cases:
        raise ConfigError(f"The cohort manifest {path.name} lists no case.")
    return cases
