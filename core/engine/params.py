"""Inputs and outputs of :func:`core.engine.analyse_slide`: frozen parameters, result, block reports."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.engine.summary import AnalysisSummary
from core.progress import Progress


@dataclass(frozen=True)
class AnalysisParams:
    """How to analyse a slide. Pixel sizes are model pixels (the model card's mpp) unless in µm.

    Fields that change the cell table (and so the checkpoint key) are marked *result*; the others
    only change speed or memory.
    """

    #: Tiles per model call (halved automatically if the GPU runs out of memory). Speed.
    batch_size: int = 8
    #: Input patch size in model px; None = the model card's patch_size. *result*
    patch_size: int | None = None
    #: Context around each tile's centre (model px per side); the model sees it, the output keeps
    #: only the centre ``patch_size - 2 * context_px``. None = patch_size // 8 (32 for 256). *result*
    context_px: int | None = None
    #: Channel to analyse (name, role or index); None = the card's input role ("hoechst"). *result*
    channel: str | int | None = None
    #: Skip tiles without tissue (Otsu on log intensity of a low-resolution read). *result*
    tissue_detection: bool = True
    #: Tissue pieces smaller than this (µm²) are ignored as debris. *result*
    tissue_min_area_um2: float = 20_000.0
    #: Holes in the tissue smaller than this (µm²) are filled; larger ones (lumens, tears, fat) are
    #: glass and count in no region's area. *result*
    tissue_max_hole_um2: float = 500.0
    #: Nuclei smaller than this (µm²) are no cell: fragments, e.g. a few pixels of a tumour or
    #: stromal nucleus called a lymphocyte class. Lymphocyte nuclei are 20–60 µm²; the model's
    #: call of one is larger (median 64 µm²: its foreground reaches past the nucleus border).
    #: Measured end to end on 28 validation phantoms (seeds 11000–11019, 12000–12007), demo model:
    #: of 3,539 calls, 3,252 matched a true lymphocyte of their class and 278 matched none or a
    #: non-lymphocyte; [20, 200] µm² drops 119 of those 278 and 10 of the 3,252 (0.3%), where
    #: the earlier [3, 400] kept all. *result*
    min_cell_area_um2: float = 20.0
    #: ... and larger than this (µm², a 16 µm disc; 99.9% of the calls that are lymphocytes are
    #: under 136 µm²) are no cell either: blobs over vessels, debris or a glass tile the model
    #: lit up. Touching nuclei are split before this test. *result*
    max_cell_area_um2: float = 200.0
    #: A cell's nucleus must hold DNA: the mean Hoechst of its pixels must be at least this multiple
    #: of the slide's stroma|nucleus level (the upper three-class Otsu threshold of the same
    #: low-resolution read the tissue is found on); 0 = no check. Measured on the 20 validation
    #: phantoms of seeds 11000–11019, demo model: the 132 calls within 3.5 µm of no true cell lie on
    #: stroma fibres or glass gaps inside the tissue (stain in a 2 µm disc at their centre: median
    #: 0.43× that level), every one of the 2,647 right calls at ≥ 2.8×. The check at 1.0 dropped
    #: 124 calls, all of them among those 132, and no right call. *result*
    nucleus_stain_ratio: float = 1.0
    #: Touching nuclei are split where the narrowing between their centres is at least this deep
    #: (µm of distance to the nucleus border; two round 3.5 µm-radius lymphocytes whose centres are
    #: 5 µm apart leave 1 µm); 0 = never split. See core.engine._extract. 1.0 measured on phantoms:
    #: 0.75 over-split ragged calls (+21% cells on a moderate slide), 1.5 merged more touching
    #: nuclei on a hot one (16 of 249 missed against 9). *result*
    split_depth_um: float = 1.0
    #: Target pixel size (µm) of the low-resolution rasters (class map, density, tissue). *result*
    raster_um: float = 4.0
    #: Gaussian smoothing (µm, sigma) of the density raster. Display only.
    density_sigma_um: float = 50.0
    #: Threads decoding the slide ahead of the model (file-aligned chunks, each decoded once);
    #: 0 = decode in the model's thread between batches (no look-ahead). Speed.
    reader_threads: int = 1
    #: Rows of tiles (blocks) decoded ahead of the model (bounded look-ahead). Speed and memory.
    prefetch_rows: int = 2
    #: Threads extracting the cells of finished blocks while the model runs on the next tiles;
    #: 0 = extract in the model's thread. The cell table is the same either way. Two measured
    #: +20% tiles/s over one with the instant stand-in on 2 shared cores: extraction still holds
    #: the GIL for much of its time, and a second block can run while the first waits. Speed.
    extract_workers: int = 2
    #: PyTorch CPU threads for this run (restored afterwards); None = leave PyTorch's setting.
    #: The app passes cores − 1 so that its UI thread keeps a core. Speed.
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, not {self.batch_size}")
        if self.context_px is not None and self.context_px < 0:
            raise ValueError(f"context_px must be ≥ 0, not {self.context_px}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be ≥ 1, not {self.torch_threads}")
        if not self.nucleus_stain_ratio >= 0:
            raise ValueError(f"nucleus_stain_ratio must be ≥ 0, not {self.nucleus_stain_ratio}")
        if not self.split_depth_um >= 0:
            raise ValueError(f"split_depth_um must be ≥ 0, not {self.split_depth_um}")
        if self.reader_threads < 0 or self.prefetch_rows < 1 or self.extract_workers < 0:
            raise ValueError("reader_threads and extract_workers must be ≥ 0 and prefetch_rows ≥ 1")

    def result_key(self) -> dict[str, object]:
        """The fields that change the cell table, for checkpoint keys."""
        return {
            "patch_size": self.patch_size,
            "context_px": self.context_px,
            "channel": self.channel,
            "tissue_detection": self.tissue_detection,
            "tissue_min_area_um2": self.tissue_min_area_um2,
            "tissue_max_hole_um2": self.tissue_max_hole_um2,
            "min_cell_area_um2": self.min_cell_area_um2,
            "max_cell_area_um2": self.max_cell_area_um2,
            "nucleus_stain_ratio": self.nucleus_stain_ratio,
            "split_depth_um": self.split_depth_um,
            "raster_um": self.raster_um,
        }


@dataclass(frozen=True, eq=False)
class BlockDone(Progress):
    """Progress that also carries the cells of one finished block (a row of tiles).

    ``cells`` is a new DataFrame no one else holds, so it may be handed to another thread.
    ``block`` is the tile row; blocks finish top to bottom.
    """

    cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    block: int = -1


@dataclass
class AnalysisResult:
    """What one analysis of one slide produced. Rasters share one grid: raster pixel (i, j) covers
    level-0 px ``[j·d, (j+1)·d) × [i·d_y, (i+1)·d_y)`` with ``d = raster_downsample``
    (``raster_downsample_y`` for anisotropic pixels); ``raster_mpp`` µm per raster pixel."""

    cells: pd.DataFrame
    class_map: np.ndarray  # uint8 (h, w): most frequent positive class per raster pixel, 0 = none
    density: np.ndarray  # float32 (C, h, w): cells/mm² per class, Gaussian-smoothed
    tissue_mask: np.ndarray  # bool (h, w)
    tissue_area_mm2: float
    raster_downsample: float
    raster_downsample_y: float
    raster_mpp: float
    summary: AnalysisSummary = field(default_factory=AnalysisSummary)
