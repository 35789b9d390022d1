"""The tissue an analysis found, as the case's Tissue region when none is drawn.

Why here and not in the engine: a lab may draw the tissue itself, and a drawn outline wins. The
tissue matters to the scores because a derived invasive margin is clipped to it.
"""

from __future__ import annotations

from core.engine.summary import AnalysisSummary
from core.jsontypes import as_mapping
from core.regions import Region, RegionKind, RegionSet


def detected_tissue(summary: AnalysisSummary, mpp: tuple[float, float], author: str = "HoechstScore"
                    ) -> Region | None:
    """The tissue a stored analysis found (its summary's ``tissue_mask``) as a "Tissue" Region in
    slide µm, or None when the summary has no mask or the mask no tissue."""
    from core.regions.raster import tissue_region
    from core.tissue_mask import decode_mask

    if summary.tissue_mask is None:
        return None
    mask, downsample = decode_mask(as_mapping(summary.tissue_mask))
    found: Region | None = tissue_region(mask, (downsample * mpp[0], downsample * mpp[1]), author=author)
    return found


def adopt_detected_tissue(regions: RegionSet, summary: AnalysisSummary, mpp: tuple[float, float],
                          author: str = "HoechstScore") -> list[str]:
    """Give a region set without a Tissue region the tissue the analysis found, and re-derive CT/IM
    that were derived (so the invasive margin is clipped to tissue). Returns the warnings of the
    re-derivation; does nothing (returns []) when a Tissue region exists or none was found.
    """
    if regions.of_kind(RegionKind.TISSUE):
        return []
    tissue = detected_tissue(summary, mpp, author)
    if tissue is None:
        return []
    width = regions.im_half_width_um
    regions.add(tissue)
    return regions.replace_ct_im_by_derived(width, author=author) if width is not None else []
