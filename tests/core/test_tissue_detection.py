"""Tissue detection on an overview: glass holes stay out of the tissue (densities divide by it),
small gaps between nuclei are tissue, debris is dropped."""

from __future__ import annotations

import numpy as np

from core.engine._tissue import detect_tissue

RASTER_UM = 4.0


def _overview(seed: int = 0) -> tuple[np.ndarray, dict[str, tuple[slice, slice]]]:
    """A 200² raster (800 µm): glass, a 600 µm tissue square of dim stroma with bright nuclei, a
    120 µm glass hole (14,400 µm²) and a 12 µm gap (144 µm²) inside it, a speck of debris outside."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 10.0, (200, 200))  # glass
    img[25:175, 25:175] = rng.normal(400.0, 40.0, (150, 150))  # stroma
    nuclei = rng.random((150, 150)) < 0.15
    img[25:175, 25:175][nuclei] = 2000.0
    parts = {"hole": (slice(60, 90), slice(60, 90)), "gap": (slice(130, 133), slice(130, 133)),
             "debris": (slice(5, 8), slice(5, 8))}
    img[parts["hole"]] = rng.normal(100.0, 10.0, (30, 30))
    img[parts["gap"]] = 100.0
    img[parts["debris"]] = 2000.0
    return img.astype(np.float32), parts


def test_glass_holes_stay_out_small_gaps_are_filled_and_debris_dropped() -> None:
    img, parts = _overview()
    mask = detect_tissue(img, RASTER_UM, min_area_um2=1_000.0)
    assert mask[100:170, 100:170].all() and mask[30:50, 30:170].all()  # stroma with nuclei
    assert not mask[parts["hole"]][2:-2, 2:-2].any()  # a vessel-sized hole is glass
    assert mask[parts["gap"]].all()  # a gap between nuclei is tissue
    assert not mask[parts["debris"]].any() and not mask[:20, :].any()
    hole_um2 = 30 * 30 * RASTER_UM**2
    filled = detect_tissue(img, RASTER_UM, min_area_um2=1_000.0, max_hole_um2=2 * hole_um2)
    assert filled[parts["hole"]].all()  # below the limit, holes are filled as before
    assert abs(int(filled.sum()) - int(mask.sum()) - 900) <= 60
