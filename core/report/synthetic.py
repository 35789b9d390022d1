"""Is this case made of synthetic data? Decided by content, never by how the case was opened.

A phantom slide opened with File › Open is as synthetic as the demo's: the phantom writer stamps
its files (TIFF ``Software`` "HoechstScore phantom", OME image name "... (synthetic)"), and those
marks travel with the file. The model card and the reference cohort carry their own flags. Each
reason is a short phrase for the report's quality section; any reason prints the SYNTHETIC banner.
"""

from __future__ import annotations

from pathlib import Path

#: What the phantom writer puts in the files it makes (core/phantom/writer.py).
PHANTOM_MARKS = ("HoechstScore phantom",)


def phantom_mark(path: str | Path) -> str | None:
    """The phantom's mark found in the first TIFF page of ``path`` (Software or description), or
    None: not a phantom, not a TIFF, or unreadable (then the other checks decide)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            texts = [str(page.software or ""), str(page.description or "")]
    except Exception:  # any unreadable or non-TIFF file: no mark found
        return None
    for mark in PHANTOM_MARKS:
        if any(mark in t for t in texts):
            return mark
    return None


def synthetic_reasons(slide_path: str | Path, slide_flag: bool, model_synthetic: bool,
                      cohort_synthetic: bool) -> list[str]:
    """Why the report must say SYNTHETIC (empty: nothing synthetic found)."""
    reasons = []
    mark = phantom_mark(slide_path)
    if mark:
        reasons.append(f"slide made by the phantom generator (file marked “{mark}”)")
    elif slide_flag:
        reasons.append("slide recorded as synthetic")
    if model_synthetic:
        reasons.append("model trained on synthetic slides (model card)")
    if cohort_synthetic:
        reasons.append("reference cohort is synthetic")
    return reasons
