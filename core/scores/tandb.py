"""T-and-B score: CD8+ and CD20+ densities in CT and IM, each Hi or Lo against a cut-off.

SPEC: cut-off per parameter = the reference cohort's median by default, or a value the lab sets.
Convention: a density strictly above its cut-off is Hi; equal to or below it is Lo. The score is
the number of Hi (0-4): 0-2 Low, 3-4 High. A missing CT or IM, or a parameter with neither a
lab cut-off nor cohort values (no cohort, or a cohort without that column), makes it "not
evaluable" with the reason; it never raises for missing data. Its ``category`` (Low/High) is
called category everywhere (store, report, app), like the Immunoscore-like one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.errors import ScoreError
from core.scores.base import Provenance, Score
from core.scores.cohort import NO_COHORT, ReferenceCohort, cohort_dict, cohort_fields
from core.scores.near_cut import CategoryRange

TB_PARAMETERS: tuple[str, ...] = ("CD8_CT", "CD8_IM", "CD20_CT", "CD20_IM")
CUTOFF_CONVENTION = "Hi when density > cut-off (strictly); equal to the cut-off is Lo"


@dataclass(frozen=True)
class TAndBResult:
    """One T-and-B result. values and cutoffs in cells/mm²; calls "Hi"/"Lo" per parameter.

    cohort_n: the fewest cohort values among the parameters whose cut-off is a cohort median.
    """

    evaluable: bool
    reason: str | None
    values: Mapping[str, float | None]
    cutoffs: Mapping[str, float]
    cutoff_sources: Mapping[str, str]  # "cohort median (n=...)" or "set by the lab"
    calls: Mapping[str, str]
    score: int | None
    category: str | None  # "Low" (0-2) or "High" (3-4)
    cohort_name: str | None
    cohort_n: int | None
    warnings: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)
    cutoff_convention: str = CUTOFF_CONVENTION
    cohort_n_per_parameter: Mapping[str, int] = field(default_factory=dict)
    #: The categories within the counting error (core.scores.near_cut); None when not evaluable or not computed.
    category_range: CategoryRange | None = None

    @property
    def label(self) -> str:
        """E.g. "3 (High)", or "not evaluable"."""
        return f"{self.score} ({self.category})" if self.score is not None else "not evaluable"

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": TAndBScore.key, "name": TAndBScore.name, "evaluable": self.evaluable,
            "reason": self.reason, "label": self.label, "value": self.score, "category": self.category,
            "calls": dict(self.calls), "values": dict(self.values), "cutoffs": dict(self.cutoffs),
            "cutoff_sources": dict(self.cutoff_sources),
            "unit": "cells/mm²", "cutoff_convention": self.cutoff_convention,
            "cohort": cohort_dict(self.cohort_name, self.cohort_n, self.cohort_n_per_parameter, self.provenance),
            "warnings": list(self.warnings), "provenance": self.provenance.to_dict(),
            "category_range": None if self.category_range is None else self.category_range.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TAndBResult:
        """Inverse of :meth:`to_dict` (a stored result); older results lack the per-parameter counts."""
        cohort = d.get("cohort") or {}
        return cls(
            evaluable=bool(d.get("evaluable")), reason=d.get("reason"), values=dict(d.get("values") or {}),
            cutoffs={k: float(v) for k, v in (d.get("cutoffs") or {}).items()},
            cutoff_sources=dict(d.get("cutoff_sources") or {}), calls=dict(d.get("calls") or {}),
            score=d.get("value"), category=d.get("category"), cohort_name=cohort.get("name"),
            cohort_n=cohort.get("n"), warnings=tuple(d.get("warnings") or ()),
            provenance=Provenance.from_dict(d.get("provenance")),
            cutoff_convention=d.get("cutoff_convention", CUTOFF_CONVENTION),
            cohort_n_per_parameter=dict(cohort.get("n_per_parameter") or {}),
            category_range=CategoryRange.from_dict(d.get("category_range")),
        )


class TAndBScore(Score):
    """T-and-B score: how many of CD8+ and CD20+ in CT and IM are above their cut-off."""

    key: ClassVar[str] = "t_and_b"
    name: ClassVar[str] = "T-and-B score"
    help: ClassVar[str] = (
        "CD8+ (T cell) and CD20+ (B cell) densities in the tumour centre (CT) and invasive margin (IM) "
        "are each called Hi when above the cut-off (default: the reference cohort's median) and Lo "
        "otherwise. The score is the number of Hi (0-4): 0-2 Low, 3-4 High. Not evaluable without "
        "both CT and IM."
    )

    @staticmethod
    def cutoffs(
        cohort: ReferenceCohort | None, explicit: Mapping[str, float] | None = None
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Cut-off (cells/mm²) and its source per parameter: ``explicit`` values, else the cohort median.

        A parameter with neither (no cohort, or no cohort values) is left out; an unknown explicit
        name raises ScoreError (a typing error of the lab, not missing data).
        """
        explicit = dict(explicit or {})
        unknown = sorted(set(explicit) - set(TB_PARAMETERS))
        if unknown:
            raise ScoreError(
                f"Unknown T-and-B cut-off(s) {', '.join(unknown)}; valid: {', '.join(TB_PARAMETERS)}."
            )
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        for p in TB_PARAMETERS:
            if p in explicit:
                values[p], sources[p] = float(explicit[p]), "set by the lab"
            elif cohort is not None and cohort.values(p).size:
                values[p] = cohort.median(p)
                sources[p] = f"median of {cohort.name!r} (n={cohort.values(p).size})"
        return values, sources

    @staticmethod
    def compute(
        values: Mapping[str, float | None],
        cohort: ReferenceCohort | None,
        cutoffs: Mapping[str, float] | None = None,
        provenance: Provenance | None = None,
    ) -> TAndBResult:
        """Score densities ``values`` (cells/mm², keys CD8_CT, CD8_IM, CD20_CT, CD20_IM)."""
        wanted = {p: values.get(p) for p in TB_PARAMETERS}
        cut, sources = TAndBScore.cutoffs(cohort, cutoffs)
        from_cohort = [p for p in TB_PARAMETERS if p in cut and sources[p] != "set by the lab"]
        base = dict(values=wanted, cutoffs=cut, cutoff_sources=sources, provenance=provenance or Provenance(),
                    **cohort_fields(cohort, from_cohort or TB_PARAMETERS))
        missing = [p for p, v in wanted.items() if v is None]
        if missing:
            regions = sorted({p.split("_")[1] for p in missing})
            return TAndBResult(False, f"no {' and no '.join(regions)} region (missing {', '.join(missing)})",
                               calls={}, score=None, category=None, **base)
        uncut = [p for p in TB_PARAMETERS if p not in cut]
        if uncut:
            why = NO_COHORT if cohort is None else f"reference cohort {cohort.name!r} has no values for them"
            return TAndBResult(False, f"no cut-off for {', '.join(uncut)}: {why}", calls={}, score=None,
                               category=None, **base)
        calls = {p: "Hi" if float(v) > cut[p] else "Lo" for p, v in wanted.items() if v is not None}
        score = sum(c == "Hi" for c in calls.values())
        category = "High" if score >= 3 else "Low"
        return TAndBResult(True, None, calls=calls, score=score, category=category, **base)
