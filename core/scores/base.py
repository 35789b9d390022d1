"""What every score shares: its display words, and the provenance every result records.

STYLE.md §3: each score is one small class carrying its display name and help text, so the
table in the app, the PDF report and the CLI print the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

from core import __version__
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
from core.regions.kinds import BY_SHORT

if TYPE_CHECKING:
    from core.scores.cohort import ReferenceCohort

#: Short region names used in parameter names (CD3_CT) -> display names (from core.regions.kinds).
REGION_LABELS: Mapping[str, str] = {short: info.label for short, info in BY_SHORT.items()}


class Score:
    """A named number computed from the cells in a region; subclasses set the class attributes."""

    key: ClassVar[str]  # stable identifier in JSON and the store
    name: ClassVar[str]  # display name
    help: ClassVar[str]  # one paragraph for tooltips, the report's notes and ``--help``
    unit: ClassVar[str] = ""


def parameter_name(marker: str, region: str) -> str:
    """Cohort/parameter column name of a marker group in a region: ("CD3+", "CT") -> "CD3_CT"."""
    return f"{marker.rstrip('+')}_{region}"


@dataclass(frozen=True)
class Provenance:
    """Where a score came from, stored with every result.

    regions: one (kind, name, area_mm2) per region of the slide; region_source: how CT and IM were
    obtained ("drawn" or "derived from the tumour outline"); im_half_width_um: IM half-width used
    when derived (None when drawn); cohort_*: the reference cohort (name, n cases, synthetic flag,
    values per parameter, version = hash of its values, date, source); model_*: the model that
    found the cells (as passed in); software_version: core.__version__.
    """

    regions: tuple[tuple[str, str, float], ...] = ()
    region_source: str = ""
    im_half_width_um: float | None = None
    cohort_name: str | None = None
    cohort_n: int | None = None
    cohort_synthetic: bool | None = None
    cohort_n_per_parameter: Mapping[str, int] = field(default_factory=dict)
    cohort_version: str | None = None
    cohort_date: str | None = None
    cohort_source: str | None = None
    model_name: str | None = None
    model_sha256: str | None = None
    marker_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    software_version: str = __version__

    def __post_init__(self) -> None:
        object.__setattr__(self, "marker_groups", {k: tuple(v) for k, v in self.marker_groups.items()})
        object.__setattr__(self, "cohort_n_per_parameter", {k: int(v) for k, v in self.cohort_n_per_parameter.items()})
        object.__setattr__(self, "regions", tuple((str(k), str(n), float(a)) for k, n, a in self.regions))

    def to_dict(self) -> JSONDict:
        return {
            "regions": [{"kind": k, "name": n, "area_mm2": a} for k, n, a in self.regions],
            "region_source": self.region_source, "im_half_width_um": self.im_half_width_um,
            "cohort_name": self.cohort_name, "cohort_n": self.cohort_n, "cohort_synthetic": self.cohort_synthetic,
            "cohort_n_per_parameter": dict(self.cohort_n_per_parameter), "cohort_version": self.cohort_version,
            "cohort_date": self.cohort_date, "cohort_source": self.cohort_source, "model_name": self.model_name,
            "model_sha256": self.model_sha256, "marker_groups": {k: list(v) for k, v in self.marker_groups.items()},
            "software_version": self.software_version,
        }

    @classmethod
    def from_dict(cls, d: JSONMapping | None) -> Provenance:
        """Inverse of :meth:`to_dict`; keys unknown to this version are ignored, missing ones default."""
        d = d or {}
        synthetic = d.get("cohort_synthetic")
        regions = (as_mapping(r) for r in as_list(d.get("regions")))
        return cls(
            regions=tuple((as_str(r["kind"]), as_str(r["name"]), as_float(r["area_mm2"])) for r in regions),
            region_source=as_str(d.get("region_source", "")),
            im_half_width_um=opt_float(d.get("im_half_width_um")),
            cohort_name=opt_str(d.get("cohort_name")),
            cohort_n=opt_int(d.get("cohort_n")),
            cohort_synthetic=None if synthetic is None else bool(synthetic),
            cohort_n_per_parameter={k: as_int(v) for k, v in as_mapping(d.get("cohort_n_per_parameter")).items()},
            cohort_version=opt_str(d.get("cohort_version")), cohort_date=opt_str(d.get("cohort_date")),
            cohort_source=opt_str(d.get("cohort_source")), model_name=opt_str(d.get("model_name")),
            model_sha256=opt_str(d.get("model_sha256")),
            marker_groups={k: tuple(as_str(m) for m in as_list(v))
                           for k, v in as_mapping(d.get("marker_groups")).items()},
            software_version=as_str(d.get("software_version", __version__)),
        )

    @classmethod
    def for_cohort(
        cls, cohort: ReferenceCohort | None, *, regions: tuple[tuple[str, str, float], ...] = (),
        region_source: str = "", im_half_width_um: float | None = None, model_name: str | None = None,
        model_sha256: str | None = None, marker_groups: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Provenance:
        """Provenance recording ``cohort`` (None: no cohort) and the slide's regions, model and groups."""
        rest = Provenance(regions=regions, region_source=region_source, im_half_width_um=im_half_width_um,
                          model_name=model_name, model_sha256=model_sha256, marker_groups=marker_groups or {})
        if cohort is None:
            return rest
        return replace(rest, cohort_name=cohort.name, cohort_n=cohort.n, cohort_synthetic=cohort.synthetic,
                       cohort_n_per_parameter=cohort.n_per_parameter, cohort_version=cohort.version,
                       cohort_date=cohort.date, cohort_source=cohort.source)
