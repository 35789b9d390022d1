"""The plain inputs of a PDF report: what the report shows, already computed.

The report never reads the case store, the slide or the model itself. A caller (the app, the
``report`` and ``demo-case`` commands) gathers the results into a :class:`ReportData` and the lab's
choices into a :class:`ReportSettings`; the same two values always give the same PDF bytes. That
keeps the report testable with hand-built values and lets a signed case be re-printed identically.

Units: areas in mm², densities in cells/mm², percentiles 0-100, region geometry in slide µm
(origin at the top-left of level 0, x right, y down), ``mpp`` in µm per level-0 pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
from shapely.geometry.base import BaseGeometry

from core.density_map import DensityOverlay  # the overview's density raster: made in core, re-exported here

#: Fewer reference cases than this and the report warns that percentiles are unstable.
MIN_COHORT_SIZE = 30


class RegionLike(Protocol):
    """Anything with a region kind and a polygonal geometry in slide µm (e.g. ``core.regions.Region``).

    ``kind`` is one of ``tumour``, ``tumour_centre``, ``invasive_margin``, ``exclusion``,
    ``tissue``, ``other`` (a ``RegionKind`` is a ``str`` and compares equal to these).
    """

    @property
    def kind(self) -> str: ...

    @property
    def geometry(self) -> BaseGeometry: ...


@dataclass(frozen=True)
class ReportSettings:
    """The lab's choices, passed in by the app or the command line (core reads no settings file).

    lab_name: printed in the header; logo_path: a PNG/JPEG shown left of it (None: the HoechstScore
    mark from ``resources/branding``; a missing file is an error, not silently skipped);
    operator: who prints the report ("Printed by"); lab_address: optional second header line;
    printed_at: when it is printed (aware datetime; the app passes now). None prints "–" so that
    a re-print from the command line stays byte-identical.
    """

    lab_name: str = "Research laboratory"
    logo_path: Path | None = None
    operator: str = ""
    lab_address: str = ""
    printed_at: datetime | None = None


@dataclass(frozen=True)
class RegionStat:
    """One row of the density table: a scored region and its counts and densities per marker.

    label: e.g. "Tumour centre (CT)"; short: "CT"; area_mm2: scored area (exclusions removed);
    counts / densities: marker group name ("CD3+") -> cells and cells/mm².
    """

    label: str
    short: str
    area_mm2: float
    counts: Mapping[str, int]
    densities: Mapping[str, float]


@dataclass(frozen=True)
class ScoreComponent:
    """One density that enters a score: e.g. label "CD3+ CT", its density and its percentile.

    For the T-and-B score ``cutoff`` (cells/mm²) and ``high`` (density above the cut-off) are set.
    """

    label: str
    density: float | None
    percentile: float | None = None
    cutoff: float | None = None
    high: bool | None = None


@dataclass(frozen=True)
class ImmunoscoreSummary:
    """The Immunoscore-like result, or why it could not be computed (``evaluable`` False + reason).

    Named as in core (:class:`core.scores.ImmunoscoreLikeResult`): label "IS0".."IS4"; category
    "Low", "Intermediate" or "High"; level 0-4. components: the four percentiles (CD3+ CT, CD3+ IM,
    CD8+ CT, CD8+ IM) in that order.
    """

    evaluable: bool
    mean_percentile: float | None = None
    label: str = ""
    category: str = ""
    level: int | None = None
    components: Sequence[ScoreComponent] = ()
    reason: str = ""
    #: Set when the counting error could change the category (core.scores.near_cut), e.g. "with each
    #: cell count 10% (at least one cell) lower or higher it would be IS1 (Low) or IS2 (Intermediate)".
    near_cut: str = ""


@dataclass(frozen=True)
class TBSummary:
    """The T-and-B score (number of Hi among CD8+/CD20+ in CT/IM, 0-4) or why it is not evaluable.

    category: "Low" (0-2) or "High" (3-4), as in core; cutoff_rule: how cut-offs were chosen,
    e.g. "cohort median".
    """

    evaluable: bool
    score: int | None = None
    category: str = ""
    components: Sequence[ScoreComponent] = ()
    cutoff_rule: str = "cohort median"
    reason: str = ""
    near_cut: str = ""  # as ImmunoscoreSummary.near_cut


@dataclass(frozen=True)
class CohortSummary:
    """The reference cohort the percentiles and cut-offs come from.

    n: cases; n_min: the fewest values any scored parameter rests on (None: as n); version: hash
    of its values; date: when it was made (both recorded with the scores).
    """

    name: str
    n: int
    synthetic: bool = False
    description: str = ""
    version: str = ""
    date: str = ""
    n_min: int | None = None

    @property
    def too_small(self) -> bool:
        return min(self.n, self.n if self.n_min is None else self.n_min) < MIN_COHORT_SIZE


@dataclass(frozen=True)
class ModelSummary:
    """The model that classified the cells, as its model card describes it.

    metrics: label -> value (already chosen and flattened from the card, e.g. "Per-cell F1 (mean)").
    """

    name: str
    version: str = ""
    sha256: str = ""
    created: str = ""
    synthetic: bool = False
    metrics: Mapping[str, float | str] = field(default_factory=dict)

    @property
    def sha256_short(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class QCSummary:
    """Quality figures a reader needs to trust the numbers.

    mpp: (x, y) µm per level-0 pixel; tissue_area_mm2: tissue the model analysed;
    region_fractions: region label -> fraction (0-1) of the region that was analysed;
    items: further (label, value) lines, e.g. ("Cells detected", "12,345"); warnings: sentences.
    """

    mpp: tuple[float, float]
    tissue_area_mm2: float | None = None
    region_fractions: Mapping[str, float] = field(default_factory=dict)
    items: Sequence[tuple[str, str]] = ()
    warnings: Sequence[str] = ()


@dataclass(frozen=True)
class Signature:
    """Who signed the case and when; an unsigned case prints empty signature lines."""

    signed_by: str
    signed_at: datetime
    meaning: str = ""  # what the signer approved, as stated when signing


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows. See the module docstring for units.

    thumbnail: the slide seen small: (h, w) or (1, h, w) Hoechst intensities of any dtype, or
    (h, w, 3) uint8 RGB; thumbnail_downsample: level-0 pixels per thumbnail pixel.
    report_date: the date of the results (last change or signing), printed as "Results of" and
    written as the PDF's creation date (never "now", so a re-print is byte-identical); the print
    time is ``ReportSettings.printed_at``. synthetic_reasons: why the SYNTHETIC banner is shown
    ("slide", "model", "cohort" with the evidence); method_steps: sentences saying what was done
    for this case (channel, pixel size, model, precision, regions, cohort), printed in the method.
    """

    case_id: str
    slide_name: str
    report_date: datetime
    thumbnail: np.ndarray
    thumbnail_downsample: float
    mpp: tuple[float, float]
    qc: QCSummary
    slide_id: str = ""
    case_label: str = ""
    patient_id: str = ""
    created_at: datetime | None = None
    analysed_at: datetime | None = None
    operator: str = ""
    regions: Sequence[RegionLike] = ()
    density: DensityOverlay | None = None
    region_stats: Sequence[RegionStat] = ()
    markers: Sequence[str] = ("CD3+", "CD8+", "CD20+")
    immunoscore: ImmunoscoreSummary | None = None
    tb_score: TBSummary | None = None
    cohort: CohortSummary | None = None
    model: ModelSummary | None = None
    synthetic: bool = False
    signature: Signature | None = None
    im_half_width_um: float | None = None
    software_version: str = ""
    notes: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    synthetic_reasons: Sequence[str] = ()
    method_steps: Sequence[str] = ()
