"""``analyse_slide``: the whole-slide inference loop (see the package docstring for the contract)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from shapely import unary_union
from shapely.geometry.base import BaseGeometry

from core.cells import concat_cell_tables, count_by_class
from core.engine._batching import predict_with_backoff
from core.engine._checkpoint import Checkpoint, slide_fingerprint
from core.engine._extract import Split, TileOutputs, extract_block, tile_class_raster
from core.engine._grid import TileGrid, check_region
from core.engine._reader import Prefetcher
from core.engine._results import cell_table, density_raster, mask_area_mm2, region_mask
from core.engine._tissue import detect_tissue, read_overview
from core.engine.params import AnalysisParams, AnalysisResult, BlockDone
from core.models.runtime import LoadedModel
from core.normalise import normalise_patch
from core.progress import CancelToken, Progress

#: Components smaller than two discs of 2.25 µm radius hold one nucleus: not examined for a split.
SPLIT_MIN_AREA_UM2 = 2 * np.pi * 2.25**2
#: A round component larger than this (a 4.4 µm-radius disc; lymphocyte nuclei are 20–60 µm²)
#: is examined for a split even when it is not elongated.
SPLIT_ROUND_AREA_UM2 = 60.0
#: Each part of a split must be at least a 2.25 µm-radius disc (~16 µm²; lymphocyte nuclei are 20–60).
SPLIT_MIN_PART_UM2 = np.pi * 2.25**2
#: Bump when a change makes old checkpoints invalid.
ENGINE_VERSION = 2  # 2: cells are nucleus instances with a confidence


@dataclass
class _Plan:
    """Which tiles this run computes, which blocks it finalises, and which come from a checkpoint."""

    selected: np.ndarray  # bool (rows, cols)
    rows: list[int]  # rows with selected tiles, ascending
    resumed: list[int]  # rows finished by an earlier run
    tiles: list[tuple[int, int]]  # tiles to compute now, raster order
    left: dict[int, int] = field(default_factory=dict)  # row -> tiles still to come


def _plan(selected: np.ndarray, done: set[int]) -> _Plan:
    rows = [int(r) for r in np.flatnonzero(selected.any(axis=1))]
    resumed: list[int] = []
    for r in rows:  # blocks finish in order, so a valid checkpoint is a prefix of the rows
        if r not in done:
            break
        resumed.append(r)
    finished = set(resumed)
    # The last finished row is read again: the next block's window needs its class map as margin.
    compute = [r for r in rows if r not in finished or (r + 1 in rows and r + 1 not in finished)]
    tiles = [(r, int(c)) for r in compute for c in np.flatnonzero(selected[r])]
    left = {r: int(selected[r].sum()) for r in compute}
    return _Plan(selected, rows, resumed, tiles, left)


@contextmanager
def _restore_threads(threads: int) -> Iterator[None]:
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _union(regions_um: BaseGeometry | Iterable[BaseGeometry] | None) -> BaseGeometry | None:
    if regions_um is None:
        return None
    if isinstance(regions_um, BaseGeometry):
        return regions_um
    return unary_union(list(regions_um))


def analyse_slide(
    slide: Any,
    model: LoadedModel,
    params: AnalysisParams | None = None,
    regions_um: BaseGeometry | Iterable[BaseGeometry] | None = None,
    cancel: CancelToken | None = None,
    checkpoint_dir: str | Path | None = None,
) -> Generator[Progress, None, AnalysisResult]:
    """Find and classify every cell of ``slide`` (a :class:`core.slides.Slide`) with ``model``.

    Yields :class:`Progress` ("Tile i of n") after every batch and a :class:`BlockDone` with the
    new cells after every finished block; returns an :class:`AnalysisResult`. ``regions_um``:
    polygon(s) in slide µm; only tiles near them are analysed and only cells centred inside them
    kept. ``checkpoint_dir``: finished blocks are saved there and a rerun resumes from them.
    Raises UncalibratedError, ChannelNotFoundError, RegionError, CoreError, Cancelled.
    """
    t0 = time.perf_counter()
    params = params or AnalysisParams()
    cancel = cancel or CancelToken()
    card = model.card
    mpp = slide.require_mpp()
    wanted = params.channel if params.channel is not None else card.input_channel_role
    channel = slide.channel_index(wanted)
    patch = params.patch_size or card.patch_size
    context = params.context_px if params.context_px is not None else patch // 8
    grid = TileGrid.build(slide.dimensions, mpp, card.mpp, patch, context, params.raster_um)
    region = _union(regions_um)
    if region is not None:
        region = check_region(region, grid)
    n_classes = card.n_classes
    k_r = grid.keep // grid.factor  # raster px per tile side

    yield Progress(0, 0, "Finding tissue")
    cancel.check()
    candidates = np.ones(grid.shape, dtype=bool)
    if region is not None:
        candidates = grid.region_tiles(region, margin_um=grid.keep * grid.model_mpp / 2)
    if params.tissue_detection:  # on the whole slide even with a region: the threshold needs glass
        tissue = detect_tissue(read_overview(slide, grid, channel), grid.raster_mpp, params.tissue_min_area_um2)
    else:
        tissue = np.ones(grid.raster_shape, dtype=bool)
    tissue_tiles = grid.tissue_tiles(ndimage.binary_dilation(tissue) if tissue.any() else tissue)
    selected = candidates & tissue_tiles

    ckpt = Checkpoint(
        Path(checkpoint_dir) if checkpoint_dir is not None else None,
        {
            "engine_version": ENGINE_VERSION,
            "slide": slide_fingerprint(slide.path),
            "slide_mpp": list(mpp),
            "channel": [channel, slide.channel_names[channel]],
            "model": card.name,
            "model_sha256": card.weights_sha256,
            "precision": model.precision,
            "device_type": model.device.type,
            "patch": patch,
            "params": params.result_key(),
            "region_sha256": None if region is None else hashlib.sha256(region.wkb).hexdigest(),
        },
    )
    plan = _plan(selected, ckpt.done_rows(raster_shape=(k_r, grid.shape[1] * k_r)))
    rows_total, cols_total = grid.shape
    class_map = np.zeros((rows_total * k_r, cols_total * k_r), dtype=np.uint8)
    tables: dict[int, pd.DataFrame] = {}  # block (tile row) -> its cells
    total = int(selected.sum())
    done = total - len(plan.tiles)
    for r in plan.resumed:  # reported too, so that the BlockDone reports always add up to the result
        raw, class_map[r * k_r : (r + 1) * k_r] = ckpt.load(r)
        tables[r] = cell_table(raw, grid, card.classes, region)
        yield BlockDone(done, total, f"Tile {done} of {total}", cells=tables[r].copy(), block=r)
    to_finalise = [r for r in plan.rows if r not in tables]
    min_px = max(1, int(np.ceil(params.min_cell_area_um2 / card.mpp**2)))
    max_px = int(params.max_cell_area_um2 / card.mpp**2)
    split = Split(params.split_depth_um / card.mpp, int(SPLIT_MIN_AREA_UM2 / card.mpp**2),
                  int(SPLIT_ROUND_AREA_UM2 / card.mpp**2), min_part_px=int(SPLIT_MIN_PART_UM2 / card.mpp**2))
    outputs: TileOutputs = {}
    timing = {"model": 0.0, "wait": 0.0}
    batch_size = params.batch_size

    def read_tile(tile: tuple[int, int]) -> np.ndarray:
        x = slide.read_region_at_mpp(location=grid.read_location(*tile), size=(patch, patch), mpp=card.mpp, channels=[channel])
        return normalise_patch(x)

    def ready(r: int) -> bool:
        return plan.left.get(r, 0) == 0 and plan.left.get(r + 1, 0) == 0

    def finalise(r: int) -> BlockDone:
        raw = extract_block(outputs, r, grid.shape, grid.keep, min_px, max_px, split)
        ckpt.save(r, raw, class_map[r * k_r : (r + 1) * k_r])
        tables[r] = cell_table(raw, grid, card.classes, region)
        return BlockDone(done, total, f"Tile {done} of {total}", cells=tables[r].copy(), block=r)

    depth = (params.prefetch_batches + 1) * batch_size
    threads_before = torch.get_num_threads()
    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    with _restore_threads(threads_before), Prefetcher(read_tile, plan.tiles, params.reader_threads, depth) as reader:
        i = 0
        while i < len(plan.tiles):
            cancel.check()
            group = plan.tiles[i : i + batch_size]
            tw = time.perf_counter()
            x = np.stack(reader.take(len(group)))
            tm = time.perf_counter()
            (labels, probs), batch_size = predict_with_backoff(
                lambda b: model.predict_classes(b, crop=grid.context), x, batch_size
            )
            timing["wait"] += tm - tw
            timing["model"] += time.perf_counter() - tm
            for (r, c), lab, pr in zip(group, labels, probs, strict=True):
                outputs[(r, c)] = (lab, pr)
                class_map[r * k_r : (r + 1) * k_r, c * k_r : (c + 1) * k_r] = tile_class_raster(lab, grid.factor, n_classes)
                plan.left[r] -= 1
            i += len(group)
            done += len(group)
            yield Progress(done, total, f"Tile {done} of {total}")
            while to_finalise and ready(to_finalise[0]):
                yield finalise(to_finalise.pop(0))
                keep_from = (to_finalise[0] - 1) if to_finalise else rows_total
                for key in [key for key in outputs if key[0] < keep_from]:
                    del outputs[key]
    assert not to_finalise, f"blocks {to_finalise} were never finished"

    cells = concat_cell_tables(tables[r] for r in sorted(tables))
    h, w = grid.raster_shape
    analysed = tissue if region is None else tissue & region_mask(region, grid)
    tissue_area = mask_area_mm2(tissue, grid)
    seconds = time.perf_counter() - t0
    summary = {
        "slide": str(slide.path),
        "slide_mpp": list(mpp),
        "channel": slide.channel_names[channel],
        "model": card.name,
        "model_sha256": card.weights_sha256,
        "model_mpp": card.mpp,
        "model_synthetic": card.synthetic,
        "device": str(model.device),
        "precision": model.precision,
        "precision_reason": model.precision_reason,
        "counts": count_by_class(cells, card.classes),
        "total_cells": int(len(cells)),
        "tissue_area_mm2": tissue_area,
        "analysed_area_mm2": mask_area_mm2(analysed, grid),
        "region_area_mm2": None if region is None else region.area / 1e6,
        "tiles_in_grid": rows_total * cols_total,
        "tiles_analysed": total,
        "tiles_skipped_background": int((candidates & ~tissue_tiles).sum()),
        "tiles_computed": len(plan.tiles),
        "blocks_resumed": len(plan.resumed),
        "batch_size": batch_size,
        "tile_px": patch,
        "context_px": grid.context,
        "seconds": seconds,
        "seconds_model": timing["model"],
        "seconds_waiting_for_tiles": timing["wait"],
        "checkpoint_key": ckpt.key,
    }
    return AnalysisResult(
        cells=cells,
        class_map=np.ascontiguousarray(class_map[:h, :w]),
        density=density_raster(cells, grid, n_classes, params.density_sigma_um),
        tissue_mask=tissue,
        tissue_area_mm2=tissue_area,
        raster_downsample=grid.raster_downsample[0],
        raster_downsample_y=grid.raster_downsample[1],
        raster_mpp=grid.raster_mpp,
        summary=summary,
    )
