"""What every score shares: its display words, and the provenance every result records.

STYLE.md §3: each score is one small class carrying its display name and help text, so the
table in the app, the PDF report and the CLI print the same words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from core import __version__
from core.regions.kinds import BY_SHORT

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["regions"] = [{"kind": k, "name": n, "area_mm2": a} for k, n, a in self.regions]
        d["marker_groups"] = {k: list(v) for k, v in self.marker_groups.items()}
        d["cohort_n_per_parameter"] = dict(self.cohort_n_per_parameter)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Provenance:
        """Inverse of :meth:`to_dict`; keys unknown to this version are ignored, missing ones default."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["regions"] = tuple((r["kind"], r["name"], r["area_mm2"]) for r in d.get("regions") or ())
        kwargs["marker_groups"] = dict(d.get("marker_groups") or {})
        kwargs["cohort_n_per_parameter"] = dict(d.get("cohort_n_per_parameter") or {})
        return cls(**kwargs)

    @classmethod
    def for_cohort(cls, cohort: Any, **kwargs: Any) -> Provenance:
        """Provenance recording ``cohort`` (a ReferenceCohort, or None: no cohort) plus ``kwargs``."""
        if cohort is None:
            return cls(**kwargs)
        return cls(cohort_name=cohort.name, cohort_n=cohort.n, cohort_synthetic=cohort.synthetic,
                   cohort_n_per_parameter=cohort.n_per_parameter, cohort_version=cohort.version,
                   cohort_date=cohort.date, cohort_source=cohort.source, **kwargs)
