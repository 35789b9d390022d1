"""Immunoscore-like (IS): the four CD3/CD8 densities in CT and IM ranked against a reference cohort.

Not the vendor's Immunoscore®; never call it that. SPEC: percentiles of CD3_CT, CD3_IM, CD8_CT,
CD8_IM against the cohort (convention in :mod:`core.scores.percentile`); their mean m gives

    IS0: 0 <= m <= 10   (a mean of exactly 0 is IS0: the bottom bin is closed at 0)
    IS1: 10 < m <= 25   IS2: 25 < m <= 70   IS3: 70 < m <= 95   IS4: 95 < m <= 100

and the category Low (m <= 25, IS0-IS1), Intermediate (25 < m <= 70, IS2), High (m > 70, IS3-IS4).
Comparisons are exact (fractions). Any of the four missing (no CT, no IM, no cohort values, no
cohort) makes the score "not evaluable" with the reason; a mean of fewer than four is never reported.

Names (one per concept, the same in the store, report and app): ``level`` is the number 0-4,
``label`` its display "IS0".."IS4", ``category`` the word Low/Intermediate/High.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar

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
from core.scores.percentile import PERCENTILE_CONVENTION, percentile_rank_exact

IS_PARAMETERS: tuple[str, ...] = ("CD3_CT", "CD3_IM", "CD8_CT", "CD8_IM")
#: Upper bounds (inclusive) of IS0..IS4 on the mean percentile.
IS_UPPER_BOUNDS: tuple[int, ...] = (10, 25, 70, 95, 100)


def is_level(mean_percentile: Fraction | float) -> int:
    """IS level 0-4 of a mean percentile in [0, 100] (bins closed on the right, IS0 also holds 0)."""
    if not 0 <= mean_percentile <= 100:
        raise ValueError(f"mean percentile must be within 0-100, got {mean_percentile}")
    return next(i for i, upper in enumerate(IS_UPPER_BOUNDS) if mean_percentile <= upper)


def is_category(mean_percentile: Fraction | float) -> str:
    """"Low" (<= 25), "Intermediate" (<= 70) or "High" (> 70)."""
    if mean_percentile <= 25:
        return "Low"
    return "Intermediate" if mean_percentile <= 70 else "High"


@dataclass(frozen=True)
class ImmunoscoreLikeResult:
    """One Immunoscore-like result. Percentiles are 0-100; values are cells/mm².

    When ``evaluable`` is False, ``reason`` says why and mean/level/category are None.
    cohort_n: the fewest cohort values among the four parameters (what the percentiles rest on);
    cohort_n_per_parameter: values present per parameter.
    """

    evaluable: bool
    reason: str | None
    values: Mapping[str, float | None]
    percentiles: Mapping[str, float]
    mean_percentile: float | None
    level: int | None
    category: str | None
    cohort_name: str | None
    cohort_n: int | None
    warnings: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)
    percentile_convention: str = PERCENTILE_CONVENTION
    cohort_n_per_parameter: Mapping[str, int] = field(default_factory=dict)
    #: The categories within the counting error (core.scores.near_cut); None when not evaluable or not computed.
    category_range: CategoryRange | None = None

    @property
    def label(self) -> str:
        """"IS0".."IS4", or "not evaluable"."""
        return f"IS{self.level}" if self.level is not None else "not evaluable"

    def to_dict(self) -> JSONDict:
        return {
            "score": ImmunoscoreLike.key, "name": ImmunoscoreLike.name, "evaluable": self.evaluable,
            "reason": self.reason, "label": self.label, "level": self.level, "category": self.category,
            "mean_percentile": self.mean_percentile, "percentiles": dict(self.percentiles),
            "values": dict(self.values), "unit": "cells/mm²",
            "percentile_convention": self.percentile_convention,
            "cohort": cohort_dict(self.cohort_name, self.cohort_n, self.cohort_n_per_parameter, self.provenance),
            "warnings": list(self.warnings), "provenance": self.provenance.to_dict(),
            "category_range": None if self.category_range is None else self.category_range.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: JSONMapping) -> ImmunoscoreLikeResult:
        """Inverse of :meth:`to_dict` (a stored result); older results lack the per-parameter counts."""
        cohort = as_mapping(d.get("cohort"))
        return cls(
            evaluable=bool(d.get("evaluable")), reason=opt_str(d.get("reason")),
            values={k: opt_float(v) for k, v in as_mapping(d.get("values")).items()},
            percentiles={k: as_float(v) for k, v in as_mapping(d.get("percentiles")).items()},
            mean_percentile=opt_float(d.get("mean_percentile")), level=opt_int(d.get("level")),
            category=opt_str(d.get("category")), cohort_name=opt_str(cohort.get("name")),
            cohort_n=opt_int(cohort.get("n")),
            warnings=tuple(as_str(w) for w in as_list(d.get("warnings"))),
            provenance=Provenance.from_dict(as_mapping(d.get("provenance"))),
            percentile_convention=as_str(d.get("percentile_convention", PERCENTILE_CONVENTION)),
            cohort_n_per_parameter={k: as_int(v) for k, v in as_mapping(cohort.get("n_per_parameter")).items()},
            category_range=CategoryRange.from_dict(as_mapping(d.get("category_range"))),
        )


class ImmunoscoreLike(Score):
    """Immunoscore-like (IS): mean cohort percentile of CD3+ and CD8+ densities in CT and IM."""

    key: ClassVar[str] = "immunoscore_like"
    name: ClassVar[str] = "Immunoscore-like (IS)"
    help: ClassVar[str] = (
        "Each of the CD3+ and CD8+ densities in the tumour centre (CT) and invasive margin (IM) is "
        "ranked against the reference cohort (percentile; ties count half). The mean of the four "
        "percentiles gives IS0 (0-10), IS1 (>10-25), IS2 (>25-70), IS3 (>70-95) or IS4 (>95-100), and "
        "the category Low (IS0-1), Intermediate (IS2) or High (IS3-4). A research score modelled on "
        "the published Immunoscore method; not the commercial Immunoscore® test. Not evaluable "
        "without both CT and IM."
    )

    @staticmethod
    def compute(
        values: Mapping[str, float | None], cohort: ReferenceCohort | None, provenance: Provenance | None = None
    ) -> ImmunoscoreLikeResult:
        """Score densities ``values`` (cells/mm², keys CD3_CT, CD3_IM, CD8_CT, CD8_IM) against ``cohort``."""
        wanted = {p: values.get(p) for p in IS_PARAMETERS}
        fields = cohort_fields(cohort, IS_PARAMETERS)

        def result(reason: str | None, percentiles: Mapping[str, float], mean: float | None, level: int | None,
                   category: str | None) -> ImmunoscoreLikeResult:
            return ImmunoscoreLikeResult(
                reason is None, reason, wanted, percentiles, mean, level, category, fields.cohort_name,
                fields.cohort_n, fields.warnings, provenance or Provenance(),
                cohort_n_per_parameter=fields.cohort_n_per_parameter)

        def not_evaluable(reason: str) -> ImmunoscoreLikeResult:
            return result(reason, {}, None, None, None)

        missing = [p for p, v in wanted.items() if v is None]
        if missing:
            regions = sorted({p.split("_")[1] for p in missing})
            return not_evaluable(f"no {' and no '.join(regions)} region (missing {', '.join(missing)})")
        if cohort is None:
            return not_evaluable(NO_COHORT)
        empty = [p for p in IS_PARAMETERS if cohort.values(p).size == 0]
        if empty:
            return not_evaluable(f"reference cohort {cohort.name!r} has no values for {', '.join(empty)}")
        present = {p: float(v) for p, v in wanted.items() if v is not None}  # all four, checked above
        exact = {p: percentile_rank_exact(cohort.values(p), v) for p, v in present.items()}
        mean = sum(exact.values(), Fraction(0)) / len(exact)
        return result(None, {p: float(f) for p, f in exact.items()}, float(mean), is_level(mean), is_category(mean))
