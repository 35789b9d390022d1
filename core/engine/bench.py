"""Benchmark: how close the whole-slide pipeline comes to the model's own speed.

*Model-only* throughput runs the network alone (logits, on its device) on batches already in
memory (read and normalised beforehand): the ceiling. *Pipeline* throughput is a full
:func:`analyse_slide` (tissue detection, reading, normalising, model, stitching, cell
extraction) divided into the tiles it analysed. Their ratio, the *efficiency*, says how much the rest of the pipeline costs; 1.0 means
the model never waits.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.engine._grid import TileGrid
from core.engine._tissue import detect_tissue, read_overview
from core.engine.analyse import analyse_slide
from core.engine.params import AnalysisParams
from core.models.runtime import LoadedModel
from core.normalise import normalise_patch
from core.progress import run_to_completion

if TYPE_CHECKING:
    from core.slides import Slide


@dataclass(frozen=True)
class BenchResult:
    """One precision's numbers. Throughputs in tiles/s; ``s_per_mm2`` seconds per mm² of tissue."""

    device: str
    precision: str
    precision_reason: str
    batch_size: int
    model_tiles_per_s: float
    pipeline_tiles_per_s: float
    efficiency: float
    #: Same ratio on process CPU time (all threads): robust when other programs share the CPU.
    cpu_efficiency: float
    model_cpu_s_per_tile: float
    pipeline_cpu_s_per_tile: float
    tiles_analysed: int
    tiles_skipped_background: int
    tissue_area_mm2: float
    seconds: float
    s_per_mm2: float
    cells: int
    peak_rss_mb: float
    #: Busy time per stage (ms per computed tile, summed over threads); empty for engines without it.
    stage_ms_per_tile: dict[str, float] = field(default_factory=dict)
    #: The same in CPU time of the threads doing each stage (robust to other programs' load).
    stage_cpu_ms_per_tile: dict[str, float] = field(default_factory=dict)
    #: What ran the network: "torch" or "onnxruntime".
    runtime: str = "torch"

    def line(self) -> str:
        return (
            f"{self.device} {self.precision} ({self.runtime}): model {self.model_tiles_per_s:.2f} tiles/s | pipeline "
            f"{self.pipeline_tiles_per_s:.2f} tiles/s | efficiency {self.efficiency:.2f} "
            f"(CPU time: {self.cpu_efficiency:.2f}) | "
            f"{self.tiles_analysed} tiles analysed, {self.tiles_skipped_background} skipped as background | "
            f"{self.s_per_mm2:.1f} s/mm² tissue ({self.tissue_area_mm2:.2f} mm², {self.cells} cells) | "
            f"peak RSS {self.peak_rss_mb:.0f} MB"
            + ("\n  stages (ms/tile): " + ", ".join(f"{k} {v:.2f}" for k, v in self.stage_ms_per_tile.items())
               + f" | wall {1000 / self.pipeline_tiles_per_s:.2f}" if self.stage_ms_per_tile and self.pipeline_tiles_per_s else "")
            + ("\n  stages, CPU (ms/tile): " + ", ".join(f"{k} {v:.2f}" for k, v in self.stage_cpu_ms_per_tile.items())
               + f" | total {sum(self.stage_cpu_ms_per_tile.values()):.2f}" if self.stage_cpu_ms_per_tile else "")
        )


def reset_peak_rss() -> bool:
    """Restart the peak-RSS count (Linux: write 5 to /proc/self/clear_refs); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory (MB) since :func:`reset_peak_rss`, else since the process started."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def tissue_tiles_in_memory(slide: Slide, model: LoadedModel, params: AnalysisParams, n: int) -> np.ndarray:
    """The first ``n`` tissue tiles of the slide, read and normalised: (n, 1, P, P) float32."""
    card = model.card
    patch = params.patch_size or card.patch_size
    context = params.context_px if params.context_px is not None else patch // 8
    grid = TileGrid.build(slide.dimensions, slide.require_mpp(), card.mpp, patch, context, params.raster_um)
    channel = slide.channel_index(params.channel if params.channel is not None else card.input_channel_role)
    tissue = detect_tissue(read_overview(slide, grid, channel), grid.raster_mpp, params.tissue_min_area_um2,
                               params.tissue_max_hole_um2)
    rows, cols = np.nonzero(grid.tissue_tiles(tissue))
    tiles = [
        normalise_patch(slide.read_region_at_mpp(grid.read_location(r, c), (patch, patch), card.mpp, [channel]))
        for r, c in list(zip(rows.tolist(), cols.tolist(), strict=True))[:n]
    ]
    if not tiles:
        raise ValueError("the slide has no tissue tiles to benchmark")
    return np.stack(tiles)


def model_throughput(model: LoadedModel, tiles: np.ndarray, batch_size: int, crop: int) -> tuple[float, float]:
    """(tiles/s, CPU s/tile) of the network alone (``model.logits``, cropped, on its device) over
    in-memory normalised ``tiles``, after a warm-up batch: what the pipeline's model thread runs."""
    def sync() -> None:
        if model.device.type == "cuda":
            torch.cuda.synchronize()

    def run(batch: np.ndarray) -> None:
        model.logits(model.to_device(batch), crop)
        sync()

    run(tiles[:batch_size])
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(tiles), batch_size):
        run(tiles[i : i + batch_size])
    return len(tiles) / (time.perf_counter() - t0), (time.process_time() - c0) / len(tiles)


def benchmark(slide: Slide, model: LoadedModel, params: AnalysisParams, model_tiles: int = 48) -> BenchResult:
    """Model-only, then end-to-end throughput of ``model`` on ``slide`` (whole slide, no checkpoint)."""
    patch = params.patch_size or model.card.patch_size
    context = params.context_px if params.context_px is not None else patch // 8
    reset_peak_rss()
    tiles = tissue_tiles_in_memory(slide, model, params, model_tiles)
    model_rate, model_cpu = model_throughput(model, tiles, params.batch_size, context)
    del tiles
    c0 = time.process_time()
    result = run_to_completion(analyse_slide(slide, model, replace(params)))
    s = result.summary
    n = max(1, s.tiles_analysed)
    pipeline_cpu = (time.process_time() - c0) / n
    pipeline_rate = s.tiles_analysed / s.seconds if s.seconds > 0 else 0.0
    return BenchResult(
        device=str(model.device),
        precision=model.precision,
        precision_reason=model.precision_reason,
        batch_size=params.batch_size,
        model_tiles_per_s=model_rate,
        pipeline_tiles_per_s=pipeline_rate,
        efficiency=pipeline_rate / model_rate if model_rate > 0 else 0.0,
        cpu_efficiency=model_cpu / pipeline_cpu if pipeline_cpu > 0 else 0.0,
        model_cpu_s_per_tile=model_cpu,
        pipeline_cpu_s_per_tile=pipeline_cpu,
        tiles_analysed=s.tiles_analysed,
        tiles_skipped_background=s.tiles_skipped_background,
        tissue_area_mm2=result.tissue_area_mm2,
        seconds=s.seconds,
        s_per_mm2=s.seconds / result.tissue_area_mm2 if result.tissue_area_mm2 > 0 else float("nan"),
        cells=s.total_cells,
        peak_rss_mb=peak_rss_mb(),
        stage_ms_per_tile=dict(s.stage_ms_per_tile),
        stage_cpu_ms_per_tile=dict(s.stage_cpu_ms_per_tile),
        runtime=model.runtime,
    )
