"""``analyse_slide``: the whole-slide inference loop (see the package docstring for the contract)."""

from __future__ import annotations

import hashlib
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from shapely import unary_union
from shapely.geometry.base import BaseGeometry

from core.cells import concat_cell_tables, count_by_class
from core.engine._batching import batch_class_raster, cpu_post, predict_with_backoff
from core.engine._checkpoint import Checkpoint
from core.engine._extract import RawCells, Split, TileOutputs, extract_block
from core.engine._grid import TileGrid, check_region
from core.engine._reader import Ahead, BlockReader
from core.engine._results import cell_table, density_raster, mask_area_mm2, region_mask
from core.engine._stages import StageClock
from core.engine._tissue import detect_tissue, overview_levels, read_overview
from core.engine.params import AnalysisParams, AnalysisResult, BlockDone
from core.engine.summary import AnalysisSummary
from core.fingerprint import slide_fingerprint
from core.models.runtime import LoadedModel, classes_from_logits
from core.normalise import normalise_batch, normalise_batch_tensor
from core.progress import CancelToken, Progress

#: Components smaller than two discs of 2.25 µm radius hold one nucleus: not examined for a split.
SPLIT_MIN_AREA_UM2 = 2 * np.pi * 2.25**2
#: A round component larger than this (a 4.4 µm-radius disc; lymphocyte nuclei are 20–60 µm²)
#: is examined for a split even when it is not elongated.
SPLIT_ROUND_AREA_UM2 = 60.0
#: Each part of a split must be at least a 2.25 µm-radius disc (~16 µm²; lymphocyte nuclei are 20–60).
SPLIT_MIN_PART_UM2 = np.pi * 2.25**2
#: Bump when a change makes old checkpoints invalid.
ENGINE_VERSION = 3  # 2: cells are nucleus instances with a confidence; 3: nuclei need DNA (stain check)
#: Per-stage times in ``summary["stage_ms_per_tile"]`` (busy) and ``["stage_cpu_ms_per_tile"]`` (ms per
#: computed tile, summed over threads: stages that overlap add up to more than the wall time per tile).
R = TypeVar("R")
STAGES = ("decode", "assemble", "normalise", "model", "post-processing", "extraction", "cell table", "writing")


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
def _pool(workers: int, name: str) -> Iterator[ThreadPoolExecutor | None]:
    """A thread pool; None (work in the model's thread) for 0 workers."""
    if workers <= 0:
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _done(value: R) -> Future[R]:
    fut: Future[R] = Future()
    fut.set_result(value)
    return fut


def _submit(pool: ThreadPoolExecutor | None, fn: Callable[..., R], *args: Any) -> Future[R]:
    """``fn(*args)`` on ``pool``, or at once in this thread without one."""
    return pool.submit(fn, *args) if pool is not None else _done(fn(*args))


def _take(pending: deque[tuple[list[Any], np.ndarray]], n: int) -> tuple[list[Any], np.ndarray]:
    """The first ``n`` (key, patch) pairs of the queued rows, as one batch."""
    keys: list[Any] = []
    parts: list[np.ndarray] = []
    while len(keys) < n and pending:
        ks, xs = pending[0]
        m = min(n - len(keys), len(ks))
        keys += ks[:m]
        parts.append(xs[:m])
        if m == len(ks):
            pending.popleft()
        else:
            pending[0] = (ks[m:], xs[m:])
    return keys, parts[0] if len(parts) == 1 else np.concatenate(parts)


@contextmanager
def _quick_gil_handoff() -> Iterator[None]:
    """A 1 ms GIL switch interval for the run (restored after): the model's thread gets the GIL
    back from the reader, post-processing and extraction threads sooner after each model call
    (measured +6% tiles/s with the 13 ms stand-in; the app already runs jobs at 1 ms)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, 0.001))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


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
    # on the whole slide even with a region: the thresholds need glass and stroma
    check_stain = params.nucleus_stain_ratio > 0
    overview = read_overview(slide, grid, channel) if params.tissue_detection or check_stain else None
    levels = overview_levels(overview) if overview is not None else None
    if params.tissue_detection:
        tissue = detect_tissue(overview, grid.raster_mpp, params.tissue_min_area_um2, params.tissue_max_hole_um2,
                               levels)
    else:
        tissue = np.ones(grid.raster_shape, dtype=bool)
    stroma = levels.stroma if check_stain and levels is not None else None
    min_stain = params.nucleus_stain_ratio * stroma if stroma is not None else 0.0
    del overview, levels
    tissue_tiles = grid.tissue_tiles(ndimage.binary_dilation(tissue) if tissue.any() else tissue)
    selected = candidates & tissue_tiles

    ckpt = Checkpoint(
        Path(checkpoint_dir) if checkpoint_dir is not None else None,
        {
            "engine_version": ENGINE_VERSION,
            "slide": slide_fingerprint(slide.path).to_dict(),
            "slide_mpp": list(mpp),
            "channel": [channel, slide.channel_names[channel]],
            "model": card.name,
            "model_sha256": card.weights_sha256,
            "precision": model.precision,
            "runtime": model.runtime,
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
        cancel.check()
    to_finalise = [r for r in plan.rows if r not in tables]
    min_px = max(1, int(np.ceil(params.min_cell_area_um2 / card.mpp**2)))
    max_px = int(params.max_cell_area_um2 / card.mpp**2)
    split = Split(params.split_depth_um / card.mpp, int(SPLIT_MIN_AREA_UM2 / card.mpp**2),
                  int(SPLIT_ROUND_AREA_UM2 / card.mpp**2), min_part_px=int(SPLIT_MIN_PART_UM2 / card.mpp**2))
    outputs: TileOutputs = {}
    stage = StageClock(STAGES)  # seconds per stage, summed over the threads doing it
    batch_size = params.batch_size
    on_cpu = model.device.type == "cpu"
    crop = grid.context
    keep = grid.keep

    def prepare() -> Iterator[tuple[list[tuple[int, int]], np.ndarray, np.ndarray | None]]:
        """Batches (tile keys, input patches, raw kept centres for the stain check or None) in
        raster order; runs in the batch-reader thread. On the CPU the patches are normalised
        here; on a GPU where the model runs."""
        cols_by_row: dict[int, list[int]] = defaultdict(list)
        for r, c in plan.tiles:
            cols_by_row[r].append(c)
        pending: deque[tuple[list[tuple[int, int]], np.ndarray]] = deque()
        queued = 0
        with BlockReader(slide, grid, channel, cols_by_row, params.reader_threads, params.prefetch_rows) as reader:
            for r in sorted(cols_by_row):
                with stage("assemble"):
                    cols, x_row = reader.read_row(r)
                pending.append(([(r, c) for c in cols], x_row))
                queued += len(cols)
                while queued >= params.batch_size or (queued and r == plan.tiles[-1][0]):
                    keys, x = _take(pending, params.batch_size)
                    queued -= len(keys)
                    stain = x[:, 0, crop : crop + keep, crop : crop + keep].copy() if min_stain > 0 else None
                    if on_cpu:
                        with stage("normalise"):
                            x = normalise_batch(x)
                    yield keys, x, stain
            stage.add("decode", reader.decode_seconds, reader.decode_cpu_seconds)

    def post_cpu(logits: np.ndarray) -> tuple[np.ndarray, ...]:
        """Argmax, probability (where the class is positive) and class raster in numpy (a worker
        thread, beside the model)."""
        with stage("post-processing"):
            return cpu_post(logits, grid.factor, n_classes)

    def run_cpu(x: np.ndarray) -> tuple[np.ndarray, ...]:
        with stage("model"):
            return (model.logits(torch.from_numpy(x), crop).numpy(),)

    def run_device(x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Normalise, model, argmax + probability, crop and class raster on the GPU; copies back
        only the kept centres and the raster."""
        with stage("normalise"):
            xt = normalise_batch_tensor(model.to_device(x))
            torch.cuda.synchronize(model.device)  # for the stage times only: the ops queue anyway
        with stage("model"):
            logits = model.logits(xt, crop)
            torch.cuda.synchronize(model.device)
        with stage("post-processing"):
            cls, prob = classes_from_logits(logits)
            raster = batch_class_raster(cls, grid.factor, n_classes)
            return cls.cpu().numpy(), prob.cpu().numpy(), raster.cpu().numpy()

    def extract(r: int, tiles: TileOutputs) -> tuple[RawCells, pd.DataFrame]:
        with stage("extraction"):
            raw = extract_block(tiles, r, grid.shape, grid.keep, min_px, max_px, split, min_stain)
        with stage("cell table"):
            return raw, cell_table(raw, grid, card.classes, region)

    def ready(r: int) -> bool:
        return plan.left.get(r, 0) == 0 and plan.left.get(r + 1, 0) == 0

    posts: deque[tuple[list[tuple[int, int]], Future[tuple[np.ndarray, ...]], np.ndarray | None]] = deque()
    jobs: deque[tuple[int, Future[tuple[RawCells, pd.DataFrame]]]] = deque()

    def collect(limit: int) -> Iterator[BlockDone]:
        """Finished blocks in order; waits while more than ``limit`` are in flight."""
        while jobs and (len(jobs) > limit or jobs[0][1].done()):
            r, fut = jobs.popleft()
            raw, table = fut.result()
            with stage("writing"):
                ckpt.save(r, raw, class_map[r * k_r : (r + 1) * k_r])
                tables[r] = table
                block_done = BlockDone(done, total, f"Tile {done} of {total}", cells=table.copy(), block=r)
            yield block_done
            cancel.check()  # every resumption: a cancel is obeyed at once, not after the finished work is reported

    def apply(limit: int, pool: ThreadPoolExecutor | None) -> Iterator[Progress]:
        """Store finished batches in order (waiting while more than ``limit`` are in flight), then
        hand every block whose neighbours are done to the extraction pool."""
        nonlocal done
        while posts and (len(posts) > limit or posts[0][1].done()):
            group, fut, stain = posts.popleft()
            labels, probs, rasters = fut.result()
            for i, ((r, c), lab, pr, ras) in enumerate(zip(group, labels, probs, rasters, strict=True)):
                outputs[(r, c)] = (lab, pr) if stain is None else (lab, pr, stain[i])
                class_map[r * k_r : (r + 1) * k_r, c * k_r : (c + 1) * k_r] = ras
                plan.left[r] -= 1
            done += len(group)
            yield Progress(done, total, f"Tile {done} of {total}")
            cancel.check()
            while to_finalise and ready(to_finalise[0]):
                r = to_finalise.pop(0)
                need = {key: v for key, v in outputs.items() if r - 1 <= key[0] <= r + 1}
                jobs.append((r, _submit(pool, extract, r, need)))
                keep_from = (to_finalise[0] - 1) if to_finalise else rows_total
                for key in [key for key in outputs if key[0] < keep_from]:
                    del outputs[key]
            yield from collect(2 * params.extract_workers + 1)

    threads_before = torch.get_num_threads()
    if params.torch_threads:
        torch.set_num_threads(params.torch_threads)
    parallel = params.extract_workers > 0
    with (
        _restore_threads(threads_before),
        _quick_gil_handoff(),
        Ahead(prepare(), depth=2 if params.reader_threads > 0 else 0) as batches,
        _pool(params.extract_workers, "cell-extractor") as pool,
        _pool(1 if parallel and on_cpu else 0, "post-processing") as post_pool,
    ):
        waiting = 0.0  # the model's thread waiting for the next batch
        items = iter(batches)
        while True:
            tw = time.perf_counter()
            item = next(items, None)
            waiting += time.perf_counter() - tw
            if item is None:
                break
            group, x, stain = item
            cancel.check()
            outs, batch_size = predict_with_backoff(run_cpu if on_cpu else run_device, x, batch_size)
            posts.append((group, _submit(post_pool, post_cpu, outs[0]) if on_cpu else _done(outs), stain))
            yield from apply(1, pool)
        yield from apply(0, pool)
        yield from collect(0)
    assert not to_finalise, f"blocks {to_finalise} were never finished"

    cells = concat_cell_tables(tables[r] for r in sorted(tables))
    h, w = grid.raster_shape
    analysed = tissue if region is None else tissue & region_mask(region, grid)
    tissue_area = mask_area_mm2(tissue, grid)
    seconds = time.perf_counter() - t0
    busy_ms, cpu_ms = stage.per_tile_ms(len(plan.tiles))
    summary = AnalysisSummary(
        slide=str(slide.path),
        slide_mpp=(float(mpp[0]), float(mpp[1])),
        channel=slide.channel_names[channel],
        model=card.name,
        model_sha256=card.weights_sha256,
        model_mpp=card.mpp,
        model_synthetic=card.synthetic,
        device=str(model.device),
        precision=model.precision,
        precision_reason=model.precision_reason,
        runtime=model.runtime,
        counts=count_by_class(cells, card.classes),
        total_cells=int(len(cells)),
        tissue_area_mm2=tissue_area,
        nucleus_stain_min=float(min_stain),
        analysed_area_mm2=mask_area_mm2(analysed, grid),
        region_area_mm2=None if region is None else region.area / 1e6,
        tiles_in_grid=rows_total * cols_total,
        tiles_analysed=total,
        tiles_skipped_background=int((candidates & ~tissue_tiles).sum()),
        tiles_computed=len(plan.tiles),
        blocks_resumed=len(plan.resumed),
        batch_size=batch_size,
        tile_px=patch,
        context_px=grid.context,
        seconds=seconds,
        seconds_model=stage.busy["model"],
        seconds_waiting_for_tiles=waiting,
        stage_ms_per_tile=busy_ms,
        stage_cpu_ms_per_tile=cpu_ms,
        checkpoint_key=ckpt.key,
        classes=tuple(card.classes),
        class_colours=tuple(card.class_colours),
    )
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
