"""All scores of one slide at once: the call the app, the store and ``python -m core score`` share.

CT and IM come from the region set: drawn CT/IM regions are used as they are when there are any;
otherwise they are derived from the tumour outline (:func:`core.regions.derive_ct_im`, clipped to
tissue regions and the slide, exclusions removed). Densities are then measured in CT, IM and the
whole tumour, and the Immunoscore-like and T-and-B scores computed against the reference cohort.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import pandas as pd

from core.classes import DEFAULT_MARKER_GROUPS
from core.errors import ScoreError
from core.jsontypes import JSONDict, JSONMapping, as_list, as_mapping, as_str
from core.regions import DEFAULT_IM_HALF_WIDTH_UM, Polygonal, RegionKind, RegionSet, derive_ct_im
from core.scores.base import Provenance
from core.scores.cohort import NO_COHORT, ReferenceCohort
from core.scores.density import DensityTable, compute_densities
from core.scores.immunoscore import ImmunoscoreLike, ImmunoscoreLikeResult
from core.scores.near_cut import CategoryRange, shifted_parameters
from core.scores.tandb import TAndBResult, TAndBScore

_Result = TypeVar("_Result", ImmunoscoreLikeResult, TAndBResult)

REQUIRED_GROUPS = ("CD3+", "CD8+", "CD20+")


@dataclass(frozen=True)
class ScoringRegions:
    """The geometries scores are measured in (slide µm; None = absent) and how CT/IM were obtained."""

    ct: Polygonal | None
    im: Polygonal | None
    tumour: Polygonal | None
    exclusions: Polygonal | None
    source: str
    im_half_width_um: float | None
    warnings: tuple[str, ...] = ()


def _derived(im_half_width_um: float, on_tissue: bool) -> str:
    clipped = "clipped to tissue" if on_tissue else "not clipped to tissue (no Tissue region)"
    return f"derived from the tumour outline (IM half-width {im_half_width_um:g} µm), {clipped}"


def drawn_or_derived_ct_im(regions: RegionSet, im_half_width_um: float = DEFAULT_IM_HALF_WIDTH_UM) -> ScoringRegions:
    """The CT and IM the scores count in: drawn ones if any, else derived from the tumour by
    :func:`core.regions.derive_ct_im` (the set is not changed)."""
    tumour = regions.union(RegionKind.TUMOUR)
    exclusions = regions.union(RegionKind.EXCLUSION)
    ct, im = regions.union(RegionKind.TUMOUR_CENTRE), regions.union(RegionKind.INVASIVE_MARGIN)
    if ct is not None or im is not None:
        width = regions.im_half_width_um
        source = "drawn" if width is None else _derived(width, regions.has_tissue)
        return ScoringRegions(ct, im, tumour, exclusions, source, width)
    if tumour is None:
        return ScoringRegions(None, None, None, exclusions, "none", None,
                              ("No tumour, CT or IM region: draw or import the tumour outline.",))
    ct, im, warnings = derive_ct_im(regions, im_half_width_um)
    if ct.is_empty:
        warnings.append(f"The tumour has no centre (CT) with an IM half-width of {im_half_width_um:g} µm.")
    return ScoringRegions(
        None if ct.is_empty else ct, None if im.is_empty else im, tumour, exclusions,
        _derived(im_half_width_um, regions.has_tissue), im_half_width_um,
        tuple(warnings),
    )


@dataclass(frozen=True)
class CaseScores:
    """Densities and both scores of one slide, with their shared provenance and warnings."""

    densities: DensityTable
    immunoscore_like: ImmunoscoreLikeResult
    t_and_b: TAndBResult
    provenance: Provenance
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> JSONDict:
        return {
            "software_version": self.provenance.software_version,
            "densities": self.densities.to_dict(),
            "immunoscore_like": self.immunoscore_like.to_dict(),
            "t_and_b": self.t_and_b.to_dict(),
            "provenance": self.provenance.to_dict(),
            "warnings": list(self.warnings),
        }

    def near_cut_notes(self) -> dict[str, str]:
        """Score name -> "Near a category cut: <name> <why>." for each score whose category the
        counting error could change (core.scores.near_cut); the one wording of the CLI and the app."""
        results = ((ImmunoscoreLike.name, self.immunoscore_like), (TAndBScore.name, self.t_and_b))
        return {name: f"Near a category cut: {name} {r.category_range.describe()}." for name, r in results
                if r.category_range is not None and r.category_range.near_cut}

    @classmethod
    def from_dict(cls, d: JSONMapping) -> CaseScores:
        """Inverse of :meth:`to_dict`: a stored result back as typed values (store, report, app)."""
        return cls(DensityTable.from_dict(as_mapping(d.get("densities"))),
                   ImmunoscoreLikeResult.from_dict(as_mapping(d.get("immunoscore_like"))),
                   TAndBResult.from_dict(as_mapping(d.get("t_and_b"))),
                   Provenance.from_dict(as_mapping(d.get("provenance"))),
                   tuple(as_str(w) for w in as_list(d.get("warnings"))))


def _with_range(table: DensityTable, result: _Result, score: Callable[[dict[str, float | None]], _Result],
                label: Callable[[_Result], str]) -> _Result:
    """``result`` with its :class:`CategoryRange`: the same score with every CT/IM count lowered and
    raised by the counting error (core.scores.near_cut)."""
    if not result.evaluable:
        return result
    low, high = (score(shifted_parameters(table, direction)) for direction in (-1, 1))
    if not (low.evaluable and high.evaluable and low.category and high.category):
        return result
    return replace(result, category_range=CategoryRange(label(low), label(high), low.category, high.category))


def score_case(
    cells: pd.DataFrame,
    regions: RegionSet,
    cohort: ReferenceCohort | None,
    *,
    im_half_width_um: float = DEFAULT_IM_HALF_WIDTH_UM,
    marker_groups: Mapping[str, tuple[str, ...]] = DEFAULT_MARKER_GROUPS,
    cutoffs: Mapping[str, float] | None = None,
    model_name: str | None = None,
    model_sha256: str | None = None,
) -> CaseScores:
    """Densities (cells/mm²) in CT, IM and the whole tumour, the Immunoscore-like and T-and-B scores.

    cells: cell table (x_um, y_um in slide µm, class_name). cutoffs: explicit T-and-B cut-offs
    (cells/mm²) by parameter; the others are the cohort median. cohort: None = no reference
    cohort yet (densities only; both scores "not evaluable"). model_*: recorded in provenance.
    """
    lacking = [g for g in REQUIRED_GROUPS if g not in marker_groups]
    if lacking:
        raise ScoreError(
            f"Marker groups {', '.join(lacking)} are needed for the scores; "
            f"given: {', '.join(marker_groups)}."
        )
    sr = drawn_or_derived_ct_im(regions, im_half_width_um)
    provenance = Provenance.for_cohort(
        cohort, regions=tuple((r.kind.value, r.display_name, r.area_mm2) for r in regions),
        region_source=sr.source, im_half_width_um=sr.im_half_width_um, model_name=model_name,
        model_sha256=model_sha256, marker_groups=marker_groups,
    )
    named = {"CT": sr.ct, "IM": sr.im}
    if sr.tumour is not None:
        named["Tumour"] = sr.tumour
    table = compute_densities(cells, named, exclusions=sr.exclusions, marker_groups=marker_groups,
                              provenance=provenance)
    values = table.parameters()
    is_result = _with_range(table, ImmunoscoreLike.compute(values, cohort, provenance),
                            lambda v: ImmunoscoreLike.compute(v, cohort, provenance),
                            lambda r: f"{r.label} ({r.category})")
    tb_result = _with_range(table, TAndBScore.compute(values, cohort, cutoffs, provenance),
                            lambda v: TAndBScore.compute(v, cohort, cutoffs, provenance), lambda r: r.label)
    warnings = (*sr.warnings, *(cohort.warnings if cohort is not None else (f"Not scored: {NO_COHORT}.",)))
    return CaseScores(table, is_result, tb_result, provenance, warnings)
