"""Whether a category is near a cut: the score again with every count moved by the counting error.

Why: on phantoms the engine never saw (docs/validation.md), every judged density was within 10% of
the truth. Even so, 2 of 20 Immunoscore-like categories differed from the truth's. In each, one extra
cell in a small tumour centre (3 calls for 2 true cells, 10 for 9) moved the mean percentile across
the IS1/IS2 cut. A T-and-B miss had every density within 5%, and one of them lay 2.5% under its
cut-off (the cohort median). Such a category is what the engine measured, but the measurement
cannot tell it from the next one. The report and the app say so instead of printing it as certain
as any other.

The rule: each count in CT and IM is moved by ``COUNT_MARGIN`` of itself, rounded up and at least
one cell, all down and then all up, over the same areas. Both scores only grow with every density (a
percentile rank and a Hi/Lo call never fall when a density rises), so the two extremes bound every
category the counting error can reach. When they differ, the category is near a cut. The
reference cohort and the cut-offs stay as they are, since they are not measured on this slide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.jsontypes import JSONDict, JSONMapping, as_float, as_str
from core.scores.base import parameter_name
from core.scores.density import DensityTable

#: The largest density error allowed on unseen phantoms (docs/validation.md: every judged error was
#: ≤ 10%, the worst 7.1%), applied to each count, with at least one cell.
COUNT_MARGIN = 0.10


def count_margin(count: int, margin: float = COUNT_MARGIN) -> int:
    """Cells a count of ``count`` may be off by: ``margin`` of it rounded up, at least 1."""
    return max(1, math.ceil(margin * count - 1e-9))


def shifted_parameters(table: DensityTable, direction: int, margin: float = COUNT_MARGIN,
                       regions: tuple[str, ...] = ("CT", "IM")) -> dict[str, float | None]:
    """:meth:`DensityTable.parameters` with every count moved by :func:`count_margin` cells,
    down (``direction`` -1, never below 0) or up (+1); None for a missing region, as there."""
    if direction not in (-1, 1):
        raise ValueError(f"direction must be -1 or +1, not {direction}")
    out: dict[str, float | None] = {}
    for group in table.marker_groups:
        for region in regions:
            row = table.get(region)
            if row is None:
                out[parameter_name(group, region)] = None
                continue
            n = row.counts[group]
            out[parameter_name(group, region)] = max(0, n + direction * count_margin(n, margin)) / row.area_mm2
    return out


@dataclass(frozen=True)
class CategoryRange:
    """The categories a score takes with every count lowered and raised by the counting error.

    lower/upper: the score's label at each extreme, e.g. "IS1 (Low)" or "2 (Low)"; *_category the
    category alone. margin: the fraction each count was moved by (at least one cell).
    """

    lower: str
    upper: str
    lower_category: str
    upper_category: str
    margin: float = COUNT_MARGIN

    @property
    def near_cut(self) -> bool:
        """True when the counting error alone could change the category."""
        return self.lower_category != self.upper_category

    def describe(self) -> str:
        """One sentence for the report, the app and the CLI."""
        within = f"with each cell count {self.margin:.0%} (at least one cell) lower or higher"
        if not self.near_cut:
            return f"{within} it stays {self.lower_category}"
        return f"{within} it would be {self.lower} or {self.upper}"

    def to_dict(self) -> JSONDict:
        return {"lower": self.lower, "upper": self.upper, "lower_category": self.lower_category,
                "upper_category": self.upper_category, "margin": self.margin, "near_cut": self.near_cut}

    @classmethod
    def from_dict(cls, d: JSONMapping | None) -> CategoryRange | None:
        """Inverse of :meth:`to_dict`; None for a result stored before ranges were recorded."""
        if not d:
            return None
        return cls(as_str(d["lower"]), as_str(d["upper"]), as_str(d["lower_category"]),
                   as_str(d["upper_category"]), as_float(d.get("margin", COUNT_MARGIN)))
