"""Label the cells of an mIF slide from its marker channels: the training targets of the model.

Block by block (bounded memory, any slide size): segment nuclei on Hoechst, grow them by 1 µm
into cells (as QuPath's cell expansion in the paper), measure each cell's mean marker intensities,
and classify by thresholds. Blocks overlap by ``block_overlap_um`` and a cell belongs to the block
whose core holds its centroid, so cells on block borders are measured whole and counted once.

Class rule (``classify``), paper thresholds by default (FITC/CD20 5000, Cy3/CD8 4000, AF750/CD3 2200):

* CD20+ and (CD8+ or CD3+)  -> other: double positives, trained as background like the paper's
  TileExporter labels 5-7 (they are rare and biologically ambiguous, e.g. spill-over at contacts).
* CD20+ only                -> CD20
* CD8+ (CD20-)              -> CD8_CD3HI if mean AF750 ≥ cd3_hi else CD8_CD3LO
* CD3+ only                 -> CD3
* none                      -> other
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from skimage.segmentation import expand_labels

from core.classes import CLASS_NAMES, class_index
from core.progress import CancelToken, Progress
from core.slides import Slide
from training.config import CHANNEL_ROLES, LabelConfig, Thresholds
from training.segment import LOW_CONTRAST, NucleusLevels, estimate_threshold, segment_nuclei

#: Columns of the labeller's cell table (coordinates: level-0 px and µm; means: slide units).
CELL_COLUMNS: tuple[str, ...] = (
    "x_px", "y_px", "x_um", "y_um", "area_um2", "nucleus_area_um2",
    "mean_hoechst", "mean_cd20", "mean_cd8", "mean_cd3", "class_name", "class_id",
)  # fmt: skip


@dataclass
class LabelResult:
    """Output of :func:`label_slide`.

    ``mask``: uint8 (h, w) class index per level-0 pixel (0 = other/background), an array or a
    read-only memmap of ``mask_path``. ``cells``: one row per cell, columns :data:`CELL_COLUMNS`.
    ``hoechst_threshold``: a plain Hoechst intensity above which nuclei lie (background + nucleus
    threshold, slide units), reused to find tissue. ``levels``: the slide-wide nucleus detection
    levels, with the contrast. ``warnings``: what the user must hear (low contrast, no cells); a
    slide without cells gets no mask file (``mask_path`` None, ``mask`` all zero), never a refusal.
    """

    cells: pd.DataFrame
    mask: np.ndarray
    mask_path: Path | None
    mpp: float
    hoechst_threshold: float
    channels: dict[str, str]
    levels: NucleusLevels | None = None
    warnings: tuple[str, ...] = ()


def classify(cd20: np.ndarray, cd8: np.ndarray, cd3: np.ndarray, t: Thresholds) -> np.ndarray:
    """Class index per cell from its mean marker intensities (rule in the module docstring)."""
    p20, p8, p3 = cd20 >= t.cd20, cd8 >= t.cd8, cd3 >= t.cd3
    out = np.zeros(len(cd20), dtype=np.uint8)
    out[p3 & ~p8 & ~p20] = class_index("CD3")
    cd8_only = p8 & ~p20
    out[cd8_only & (cd3 >= t.cd3_hi)] = class_index("CD8_CD3HI")
    out[cd8_only & (cd3 < t.cd3_hi)] = class_index("CD8_CD3LO")
    out[p20 & ~p8 & ~p3] = class_index("CD20")
    return out


def resolve_channels(slide: Slide, cfg: LabelConfig) -> dict[str, int]:
    """Channel index per role; a missing channel raises ChannelNotFoundError naming those found."""
    return {role: slide.channel_index(cfg.channels.lookup(role)) for role in CHANNEL_ROLES}


def _blocks(width: int, height: int, size: int) -> list[tuple[int, int, int, int]]:
    return [
        (x, y, min(x + size, width), min(y + size, height))
        for y in range(0, height, size)
        for x in range(0, width, size)
    ]


def _measure(cells: np.ndarray, stack: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-label area (px), centroid (y, x) and mean of each channel, via bincount (fast, no loops)."""
    flat = cells.ravel()
    n = int(flat.max()) + 1
    area = np.bincount(flat, minlength=n).astype(np.float64)
    yy, xx = np.indices(cells.shape, dtype=np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.bincount(flat, weights=yy.ravel(), minlength=n) / area
        cx = np.bincount(flat, weights=xx.ravel(), minlength=n) / area
        means = np.stack([np.bincount(flat, weights=c.ravel().astype(np.float64), minlength=n) / area for c in stack]) \
            if len(stack) else np.zeros((0, n))
    return area, cy, cx, means


def label_slide(
    slide: Slide,
    cfg: LabelConfig,
    mask_path: str | Path | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, LabelResult]:
    """Segment, measure and classify every cell of ``slide``; yields one Progress per block.

    ``mask_path``: where to write the level-0 label mask as ``.npy`` (memory-mapped, so a whole
    slide never has to fit in memory); ``None`` keeps it in memory (small slides, tests).
    The mask is written to a temporary name and renamed when done, so a failed or empty run leaves
    no mask behind. Raises UncalibratedError (no mpp) or ChannelNotFoundError; a slide with low
    contrast or no cells is labelled (or not) with a warning in ``LabelResult.warnings``.
    """
    cancel = cancel or CancelToken()
    mpp = float(np.mean(slide.require_mpp()))
    idx = resolve_channels(slide, cfg)
    seg = cfg.segmentation
    width, height = slide.dimensions
    levels = estimate_threshold(slide, idx["hoechst"], seg)
    threshold = levels.threshold
    tmp_path = Path(str(mask_path) + ".part.npy") if mask_path is not None else None
    mask: np.ndarray  # a memmap (written block by block) or an array in memory
    if tmp_path is not None:
        mask = open_memmap(str(tmp_path), mode="w+", dtype=np.uint8, shape=(height, width))
    else:
        mask = np.zeros((height, width), dtype=np.uint8)
    margin = int(np.ceil(seg.block_overlap_um / mpp))
    expand_px = max(0, int(round(seg.cell_expansion_um / mpp)))
    px_area = mpp * mpp
    blocks = _blocks(width, height, seg.block_size_px)
    rows: list[np.ndarray] = []
    order = [idx[r] for r in CHANNEL_ROLES]
    for i, (x0, y0, x1, y1) in enumerate(blocks, 1):
        cancel.check()
        rx0, ry0 = max(0, x0 - margin), max(0, y0 - margin)
        rx1, ry1 = min(width, x1 + margin), min(height, y1 + margin)
        stack = slide.read_region((rx0, ry0), 0, (rx1 - rx0, ry1 - ry0), channels=order).astype(np.float32)
        nuclei = segment_nuclei(stack[0], mpp, seg, threshold) if np.isfinite(threshold) else None
        if nuclei is not None and nuclei.max() > 0:
            cells = expand_labels(nuclei, distance=expand_px) if expand_px else nuclei
            area, _, _, means = _measure(cells, stack)
            nuc_area, cy, cx, _ = _measure(nuclei, stack[:0])  # the position is the nucleus centroid
            nuc_area = np.pad(nuc_area, (0, len(area) - len(nuc_area)))
            cy, cx = (np.pad(c, (0, len(area) - len(c)), constant_values=np.nan) for c in (cy, cx))
            gy, gx = cy + ry0, cx + rx0
            own = (area > 0) & (gx >= x0) & (gx < x1) & (gy >= y0) & (gy < y1)
            own[0] = False
            ids = np.flatnonzero(own)
            cls = classify(means[1, ids], means[2, ids], means[3, ids], cfg.thresholds)
            lut = np.zeros(len(area), dtype=np.uint8)
            lut[ids] = cls
            painted = lut[cells]
            region = mask[ry0:ry1, rx0:rx1]
            np.copyto(region, painted, where=painted > 0)
            rows.append(
                np.column_stack([gx[ids], gy[ids], area[ids] * px_area, nuc_area[ids] * px_area, means[:, ids].T, cls])
            )
        yield Progress(i, len(blocks), f"Labelling block {i} of {len(blocks)}")
    if isinstance(mask, np.memmap):
        mask.flush()
    data = np.concatenate(rows) if rows else np.zeros((0, 9))
    warnings = []
    name = slide.path.name
    if len(data) == 0:
        warnings.append(
            f"{name}: no nuclei found (Hoechst channel {slide.channel_names[idx['hoechst']]!r}, contrast "
            f"{levels.contrast:.1f} background SDs); no labels written for it. Check the channel map "
            "(--channel-hoechst) and that the slide holds tissue."
        )
    elif levels.contrast < LOW_CONTRAST:
        warnings.append(
            f"{name}: low nuclear contrast ({levels.contrast:.1f} background SDs, under {LOW_CONTRAST:g}); "
            "nuclei may be missed or merged. Check its QC mosaic; [segmentation] threshold_scale < 1 finds "
            "dimmer nuclei."
        )
    cells_df = pd.DataFrame(
        {
            "x_px": data[:, 0],
            "y_px": data[:, 1],
            "x_um": data[:, 0] * mpp,
            "y_um": data[:, 1] * mpp,
            "area_um2": data[:, 2],
            "nucleus_area_um2": data[:, 3],
            **{f"mean_{role}": data[:, 4 + k] for k, role in enumerate(CHANNEL_ROLES)},
            "class_id": data[:, 8].astype(np.int64),
        }
    )
    cells_df.insert(10, "class_name", [CLASS_NAMES[c] for c in cells_df["class_id"]])
    written = None
    if tmp_path is not None and mask_path is not None:
        del mask
        if len(data):
            tmp_path.replace(mask_path)
            written = Path(mask_path)
            mask = np.load(str(mask_path), mmap_mode="r")
        else:
            tmp_path.unlink(missing_ok=True)
            Path(mask_path).unlink(missing_ok=True)  # a stale mask of an earlier run would mislead
            mask = np.zeros((height, width), dtype=np.uint8)
    names = {role: slide.channel_names[i] for role, i in idx.items()}
    absolute = levels.absolute if np.isfinite(levels.threshold) else float("inf")
    return LabelResult(cells_df, mask, written, mpp, absolute, names, levels, tuple(warnings))
