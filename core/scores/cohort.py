"""The reference cohort that densities are ranked against.

SPEC: the vendor's reference is proprietary, so the cohort is the lab's own (cases flagged as
reference in the store, or an imported table), shown with its size; about 120+ cases are
recommended. Its name and size travel with every score.

CSV layout: one row per case, columns CD3_CT, CD3_IM, CD8_CT, CD8_IM, CD20_CT, CD20_IM in cells/mm²
(other columns, e.g. case_id, are kept; an empty cell = region missing for that case). Optional
leading comment lines ``# name: ...`` and ``# synthetic: true`` name the cohort and flag it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ScoreError

COHORT_PARAMETERS: tuple[str, ...] = ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM", "CD20_CT", "CD20_IM")
#: Below this many cases every score made with the cohort carries a warning.
MIN_COHORT_SIZE = 30
RECOMMENDED_COHORT_SIZE = 120


@dataclass(frozen=True, eq=False)
class ReferenceCohort:
    """A named table of reference densities (cells/mm²), one row per case.

    densities: DataFrame with at least :data:`COHORT_PARAMETERS` (NaN = region missing for that
    case). synthetic: True for made-up data (e.g. the demo cohort); shown on every score.
    """

    name: str
    densities: pd.DataFrame
    synthetic: bool = False

    def __post_init__(self) -> None:
        df = self.densities
        missing = [c for c in COHORT_PARAMETERS if c not in df.columns]
        if missing:
            raise ScoreError(
                f"Reference cohort {self.name!r} lacks column(s) {', '.join(missing)}. Required columns "
                f"(cells/mm²): {', '.join(COHORT_PARAMETERS)}; "
                f"found: {', '.join(map(str, df.columns)) or 'none'}."
            )
        df = df.copy()
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
        """Number of cases."""
        return len(self.densities)

    def values(self, parameter: str) -> np.ndarray:
        """The non-missing reference values of one parameter (cells/mm²)."""
        if parameter not in COHORT_PARAMETERS:
            known = ", ".join(COHORT_PARAMETERS)
            raise ScoreError(f"Unknown cohort parameter {parameter!r}; known: {known}.")
        v = self.densities[parameter].to_numpy(float)
        return v[~np.isnan(v)]

    def median(self, parameter: str) -> float:
        """Median of one parameter (mean of the two middle values for an even count)."""
        v = self.values(parameter)
        if v.size == 0:
            raise ScoreError(f"Reference cohort {self.name!r} has no values for {parameter}.")
        return float(np.median(v))

    @property
    def warnings(self) -> tuple[str, ...]:
        """Sentences every score made with this cohort must show."""
        out = []
        if self.n < MIN_COHORT_SIZE:
            out.append(
                f"Reference cohort {self.name!r} has only {self.n} cases (at least {MIN_COHORT_SIZE} needed, "
                f"{RECOMMENDED_COHORT_SIZE}+ recommended): percentiles and cut-offs are unreliable."
            )
        if self.synthetic:
            out.append(f"Reference cohort {self.name!r} is SYNTHETIC: scores are for demonstration only.")
        return tuple(out)

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "synthetic": self.synthetic}

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, float | None]], name: str, synthetic: bool = False
    ) -> ReferenceCohort:
        """A cohort from one mapping per case (e.g. stored cases flagged as reference); None = missing."""
        rows = list(records)
        df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=list(COHORT_PARAMETERS))
        return cls(name, df, synthetic)

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
            if key.strip().lower() in ("name", "synthetic") and value.strip():
                meta[key.strip().lower()] = value.strip()
        body = "\n".join(ln for ln in lines if not ln.startswith("#"))
        try:
            df = pd.read_csv(io.StringIO(body))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise ScoreError(f"Cannot read reference cohort {path.name}: {err}.") from err
        synthetic = str(meta.get("synthetic", "false")).strip().lower() in ("true", "1", "yes")
        return cls(name or str(meta.get("name") or path.stem), df, synthetic)

    def to_csv(self, path: str | Path) -> Path:
        """Write the cohort with its name and synthetic flag in the header comments."""
        path = Path(path)
        head = f"# name: {self.name}\n# synthetic: {str(self.synthetic).lower()}\n"
        path.write_text(head + self.densities.to_csv(index=False), encoding="utf-8")
        return path


def _companion(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ScoreError(f"Cannot read {side.name} (companion of the reference cohort): {err}.") from err
    return dict(data) if isinstance(data, dict) else {}
