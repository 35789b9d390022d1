"""Plain-text rendering of a slide's scores, for the CLI and logs (the words come from the score classes)."""

from __future__ import annotations

from core.regions.kinds import BY_SHORT
from core.scores.case import CaseScores
from core.scores.density import CellDensity
from core.scores.immunoscore import ImmunoscoreLike
from core.scores.tandb import TAndBScore


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def format_scores(scores: CaseScores) -> str:
    """A readable multi-line table: areas, densities per region, both scores, provenance, warnings."""
    table = scores.densities
    regions = [r.region for r in table.regions]
    lines = [f"{CellDensity.name} ({CellDensity.unit})"]
    width = max(len(g) for g in table.marker_groups) + 14
    lines.append("".ljust(width) + "".join(r.rjust(12) for r in regions))
    lines.append("Area (mm²)".ljust(width) + "".join(_num(r.area_mm2, 3).rjust(12) for r in table.regions))
    for group in table.marker_groups:
        counts = "".join(f"{r.counts[group]:,}".rjust(12) for r in table.regions)
        densities = "".join(_num(r.densities[group]).rjust(12) for r in table.regions)
        lines.append(f"{group} cells".ljust(width) + counts)
        lines.append(f"{group} density".ljust(width) + densities)
    for missing in table.missing:
        lines.append(f"No {BY_SHORT[missing].in_sentence if missing in BY_SHORT else missing}: "
                     "its densities are not available.")
    lines.append("")
    isl = scores.immunoscore_like
    if isl.evaluable:
        ranks = ", ".join(f"{p} {v:.1f}" for p, v in isl.percentiles.items())
        lines.append(f"{ImmunoscoreLike.name}: {isl.label} ({isl.category}), mean percentile "
                     f"{isl.mean_percentile:.1f} [{ranks}]")
    else:
        lines.append(f"{ImmunoscoreLike.name}: not evaluable ({isl.reason})")
    tb = scores.t_and_b
    if tb.evaluable:
        calls = ", ".join(f"{p} {c} (cut-off {tb.cutoffs[p]:,.1f})" for p, c in tb.calls.items())
        lines.append(f"{TAndBScore.name}: {tb.label} [{calls}]")
    else:
        lines.append(f"{TAndBScore.name}: not evaluable ({tb.reason})")
    lines += scores.near_cut_notes().values()
    prov = scores.provenance
    synthetic = ", SYNTHETIC" if prov.cohort_synthetic else ""
    lines.append("")
    if prov.cohort_name is None:
        lines.append("Reference cohort: none")
    else:
        n_values = sorted(set(prov.cohort_n_per_parameter.values()))
        per = ("" if n_values in ([], [prov.cohort_n])
               else f"; {min(n_values)}-{max(n_values)} values per parameter")
        dated = f", dated {prov.cohort_date}" if prov.cohort_date else ""
        lines.append(f"Reference cohort: {prov.cohort_name} (n={prov.cohort_n}{synthetic}{per}); "
                     f"version {prov.cohort_version}{dated}")
    lines.append(f"CT/IM: {prov.region_source}")
    if prov.model_name or prov.model_sha256:
        lines.append(f"Model: {prov.model_name or '?'} (sha256 {prov.model_sha256 or '?'})")
    lines.append(f"HoechstScore {prov.software_version}")
    lines += [f"Warning: {w}" for w in scores.warnings]
    return "\n".join(lines)
