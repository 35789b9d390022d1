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
from typing import ClassVar

from core.errors import ScoreError
from core.jsontypes import (
    JSONDict,
    JSONMapping,
    as_float,
    as_int,
    as_list,
    as_mapping,
    as_str,
    opt_float,
    opt_int,
    opt_str,
)
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

    def to_dict(self) -> JSONDict:
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
    def from_dict(cls, d: JSONMapping) -> TAndBResult:
        """Inverse of :meth:`to_dict` (a stored result); older results lack the per-parameter counts."""
        cohort = as_mapping(d.get("cohort"))
        return cls(
            evaluable=bool(d.get("evaluable")), reason=opt_str(d.get("reason")),
            values={k: opt_float(v) for k, v in as_mapping(d.get("values")).items()},
            cutoffs={k: as_float(v) for k, v in as_mapping(d.get("cutoffs")).items()},
            cutoff_sources={k: as_str(v) for k, v in as_mapping(d.get("cutoff_sources")).items()},
            calls={k: as_str(v) for k, v in as_mapping(d.get("calls")).items()},
            score=opt_int(d.get("value")), category=opt_str(d.get("category")),
            cohort_name=opt_str(cohort.get("name")), cohort_n=opt_int(cohort.get("n")),
            warnings=tuple(as_str(w) for w in as_list(d.get("warnings"))),
            provenance=Provenance.from_dict(as_mapping(d.get("provenance"))),
            cutoff_convention=as_str(d.get("cutoff_convention", CUTOFF_CONVENTION)),
            cohort_n_per_parameter={k: as_int(v) for k, v in as_mapping(cohort.get("n_per_parameter")).items()},
            category_range=CategoryRange.from_dict(as_mapping(d.get("category_range"))),
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
        fields = cohort_fields(cohort, from_cohort or TB_PARAMETERS)

        def result(reason: str | None, calls: Mapping[str, str], score: int | None,
                   category: str | None) -> TAndBResult:
            return TAndBResult(
                reason is None, reason, wanted, cut, sources, calls, score, category, fields.cohort_name,
                fields.cohort_n, fields.warnings, provenance or Provenance(),
                cohort_n_per_parameter=fields.cohort_n_per_parameter)

        missing = [p for p, v in wanted.items() if v is None]
        if missing:
            regions = sorted({p.split("_")[1] for p in missing})
            return result(f"no {' and no '.join(regions)} region (missing {', '.join(missing)})", {}, None, None)
        uncut = [p for p in TB_PARAMETERS if p not in cut]
        if uncut:
            why = NO_COHORT if cohort is None else f"reference cohort {cohort.name!r} has no values for them"
            return result(f"no cut-off for {', '.join(uncut)}: {why}", {}, None, None)
        calls = {p: "Hi" if float(v) > cut[p] else "Lo" for p, v in wanted.items() if v is not None}
        score = sum(c == "Hi" for c in calls.values())
        category = "High" if score >= 3 else "Low"
        return result(None, calls, score, category)
