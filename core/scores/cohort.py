"""The reference cohort that densities are ranked against.

SPEC: the vendor's reference is proprietary, so the cohort is the lab's own (cases flagged as
reference in the store, or an imported table), shown with its size; about 120+ cases are
recommended. Its name and size travel with every score.

CSV layout: one row per case, columns CD3_CT, CD3_IM, CD8_CT, CD8_IM, CD20_CT, CD20_IM in cells/mm²
(other columns, e.g. case_id, are kept; an empty cell = region missing for that case; a missing
column = no values for that parameter, so the scores needing it are "not evaluable"). Optional
leading comment lines ``# name: ...``, ``# synthetic: true`` and ``# date: YYYY-MM-DD`` name the
cohort, flag it and date it (default date: the file's modification day).

Every score records the cohort it used: name, source, n (cases), n per parameter (values present),
version (a hash of the values: two cohorts with the same version gave the same numbers) and date.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.errors import ScoreError
from core.jsontypes import JSONDict

if TYPE_CHECKING:
    from core.scores.base import Provenance

COHORT_PARAMETERS: tuple[str, ...] = ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM", "CD20_CT", "CD20_IM")
#: Below this many values percentiles and cut-offs are called unreliable.
MIN_COHORT_SIZE = 30
#: Below this many values per parameter every score made with the cohort warns, with the number.
RECOMMENDED_COHORT_SIZE = 120


@dataclass(frozen=True, eq=False)
class ReferenceCohort:
    """A named table of reference densities (cells/mm²), one row per case.

    densities: DataFrame with columns among :data:`COHORT_PARAMETERS` (NaN = region missing for
    that case; an absent column is added, all missing). synthetic: True for made-up data (e.g. the
    demo cohort); shown on every score. source: where it came from ("file demo_cohort.csv",
    "store: cases flagged as reference"); date: ISO date it was made (file day, newest stored score).
    """

    name: str
    densities: pd.DataFrame
    synthetic: bool = False
    source: str = ""
    date: str | None = None

    def __post_init__(self) -> None:
        df = self.densities
        if len(df) and not any(c in df.columns for c in COHORT_PARAMETERS):
            raise ScoreError(
                f"Reference cohort {self.name!r} has none of the columns (cells/mm²) "
                f"{', '.join(COHORT_PARAMETERS)}; found: {', '.join(map(str, df.columns)) or 'none'}."
            )
        near = {str(c): p for c in df.columns for p in COHORT_PARAMETERS if str(c) != p and str(c).upper() == p}
        if near:
            raise ScoreError(
                f"Reference cohort {self.name!r}: column(s) {', '.join(near)} must be spelt "
                f"{', '.join(near.values())} (parameters are case-sensitive: {', '.join(COHORT_PARAMETERS)})."
            )
        df = df.copy()
        for col in COHORT_PARAMETERS:
            if col not in df.columns:
                df[col] = np.nan
        for col in COHORT_PARAMETERS:
            values = pd.to_numeric(df[col], errors="coerce")
            bad = values.isna() & df[col].notna() & (df[col].astype(str).str.strip() != "")
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise ScoreError(
                    f"Reference cohort {self.name!r}: column {col} row {row + 1} is not a number "
                    f"({df[col].iloc[row]!r}); densities must be cells/mm²."
                )
            if (values < 0).any():
                raise ScoreError(f"Reference cohort {self.name!r}: column {col} has negative densities.")
            df[col] = values.astype(float)
        if len(df) == 0:
            raise ScoreError(f"Reference cohort {self.name!r} has no cases.")
        object.__setattr__(self, "densities", df.reset_index(drop=True))

    @property
    def n(self) -> int:
        """Number of cases (rows); a parameter may have fewer values, see :attr:`n_per_parameter`."""
        return len(self.densities)

    @property
    def n_per_parameter(self) -> dict[str, int]:
        """Values present per parameter (what a percentile or median of that parameter rests on)."""
        return {p: int(self.densities[p].notna().sum()) for p in COHORT_PARAMETERS}

    @property
    def version(self) -> str:
        """First 12 hex digits of the sha256 of the parameter values (to 0.01 cells/mm², in order)."""
        table = self.densities[list(COHORT_PARAMETERS)].round(2)
        text = table.to_csv(index=False, float_format="%.2f", na_rep="")
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]

    def values(self, parameter: str) -> np.ndarray:
        """The non-missing reference values of one parameter (cells/mm²)."""
        if parameter not in COHORT_PARAMETERS:
            known = ", ".join(COHORT_PARAMETERS)
            raise ScoreError(f"Unknown cohort parameter {parameter!r}; known: {known}.")
        v: np.ndarray = self.densities[parameter].to_numpy(float)
        present: np.ndarray = v[~np.isnan(v)]
        return present

    def median(self, parameter: str) -> float:
        """Median of one parameter (mean of the two middle values for an even count)."""
        v = self.values(parameter)
        if v.size == 0:
            raise ScoreError(f"Reference cohort {self.name!r} has no values for {parameter}.")
        return float(np.median(v))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Sentences every score made with this cohort must show (counts per parameter included)."""
        counts = self.n_per_parameter
        present = {p: n for p, n in counts.items() if n > 0}
        short = [n for n in present.values() if n < RECOMMENDED_COHORT_SIZE]
        out = []
        if short:
            fewest = min(short)
            size = f"has only {self.n} cases" if self.n < RECOMMENDED_COHORT_SIZE else f"has {self.n} cases"
            detail = "" if all(n == self.n for n in present.values()) else " (values per parameter: " + ", ".join(
                f"{p} {n}" for p, n in counts.items()) + ")"
            strength = "unreliable" if fewest < MIN_COHORT_SIZE else "less precise than recommended"
            out.append(
                f"Reference cohort {self.name!r} {size}{detail}; {RECOMMENDED_COHORT_SIZE}+ are recommended "
                f"(at least {MIN_COHORT_SIZE}): percentiles and cut-offs resting on {fewest} values are {strength}."
            )
        empty = [p for p, n in counts.items() if n == 0]
        if empty:
            out.append(f"Reference cohort {self.name!r} has no values for {', '.join(empty)}: scores that need "
                       "them are not evaluable.")
        if self.synthetic:
            out.append(f"Reference cohort {self.name!r} is SYNTHETIC: scores are for demonstration only.")
        return tuple(out)

    def summary(self) -> JSONDict:
        """What every score records about the cohort (JSON-ready)."""
        return {"name": self.name, "n": self.n, "n_per_parameter": {**self.n_per_parameter},
                "synthetic": self.synthetic, "version": self.version, "date": self.date, "source": self.source}

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, str | float | None]], name: str, synthetic: bool = False,
        source: str = "", date: str | None = None,
    ) -> ReferenceCohort:
        """A cohort from one mapping per case (e.g. stored cases flagged as reference); None = missing.

        Values are densities (cells/mm²) by parameter, plus any labelling columns such as a case id."""
        rows = list(records)
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(COHORT_PARAMETERS))
        return cls(name, df, synthetic, source, date)

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> ReferenceCohort:
        """Read a cohort CSV (see module docstring). Name: ``name``, else ``# name:``, else the file stem.

        A companion ``<stem>.json`` with {"name", "synthetic"} is read too, if present.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ScoreError(f"Cannot read reference cohort {path.name}: {err}.") from err
        meta = _companion(path)
        lines = text.splitlines()
        header = [ln for ln in lines if ln.startswith("#")]
        for line in header:
            key, _, value = line.lstrip("# ").partition(":")
            if key.strip().lower() in ("name", "synthetic", "date") and value.strip():
                meta[key.strip().lower()] = value.strip()
        body = "\n".join(ln for ln in lines if not ln.startswith("#"))
        try:
            df = pd.read_csv(io.StringIO(body))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ScoreError(f"Cannot read reference cohort {path.name}: {err}.") from err
        synthetic = str(meta.get("synthetic", "false")).strip().lower() in ("true", "1", "yes")
        date = str(meta.get("date") or datetime.fromtimestamp(path.stat().st_mtime, UTC).date().isoformat())
        return cls(name or str(meta.get("name") or path.stem), df, synthetic, f"file {path.name}", date)

    def to_csv(self, path: str | Path) -> Path:
        """Write the cohort with its name and synthetic flag in the header comments."""
        path = Path(path)
        head = f"# name: {self.name}\n# synthetic: {str(self.synthetic).lower()}\n"
        if self.date:
            head += f"# date: {self.date}\n"
        path.write_text(head + self.densities.to_csv(index=False), encoding="utf-8")
        return path


#: Why a score is not evaluable when no reference cohort is in use.
NO_COHORT = ("no reference cohort: flag cases as reference in the case list, or import a cohort table "
             "(a CSV of CD3_CT, CD3_IM, CD8_CT, CD8_IM, CD20_CT, CD20_IM in cells/mm²)")


@dataclass(frozen=True)
class CohortFields:
    """The cohort fields of a score result: name, n (the fewest values among its parameters), counts
    per parameter, and the cohort's warnings; all empty without a cohort."""

    cohort_name: str | None = None
    cohort_n: int | None = None
    cohort_n_per_parameter: Mapping[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def cohort_fields(cohort: ReferenceCohort | None, parameters: Iterable[str]) -> CohortFields:
    """The :class:`CohortFields` of a score computed on ``parameters`` against ``cohort``."""
    if cohort is None:
        return CohortFields()
    counts = {p: cohort.n_per_parameter[p] for p in parameters}
    return CohortFields(cohort.name, min(counts.values()), counts, cohort.warnings)


def cohort_dict(name: str | None, n: int | None, counts: Mapping[str, int], provenance: Provenance) -> JSONDict:
    """The ``cohort`` entry of a result's JSON: name, n, values per parameter, version and date."""
    return {"name": name, "n": n, "n_per_parameter": dict(counts),
            "version": provenance.cohort_version, "date": provenance.cohort_date}


def _companion(path: Path) -> JSONDict:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ScoreError(f"Cannot read {side.name} (companion of the reference cohort): {err}.") from err
    return dict(data) if isinstance(data, dict) else {}
