"""``analyse_slide``: the whole-slide inference loop, run by a :class:`SlideAnalysis` with one method
per stage of the package docstring (which states the contract)."""

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
from typing import TYPE_CHECKING, TypeVar

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

if TYPE_CHECKING:
    from core.slides import Slide

#: Components smaller than two discs of 2.25 µm radius hold one nucleus: not examined for a split.
SPLIT_MIN_AREA_UM2 = 2 * np.pi * 2.25**2
#: A round component larger than this (a 4.4 µm-radius disc; lymphocyte nuclei are 20–60 µm²)
#: is examined for a split even when it is not elongated.
SPLIT_ROUND_AREA_UM2 = 60.0
#: Each part of a split must be at least a 2.25 µm-radius disc (~16 µm²; lymphocyte nuclei are 20–60).
SPLIT_MIN_PART_UM2 = np.pi * 2.25**2
#: Bump when a change makes old checkpoints invalid.
ENGINE_VERSION = 3  # 2: cells are nucleus instances with a confidence; 3: nuclei need DNA (stain check)
R = TypeVar("R")
Key = TypeVar("Key")
#: Per-stage times in ``summary.stage_ms_per_tile`` (busy) and ``.stage_cpu_ms_per_tile`` (ms per
#: computed tile, summed over threads: stages that overlap add up to more than the wall time per tile).
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


def _submit(pool: ThreadPoolExecutor | None, fn: Callable[..., R], *args: object) -> Future[R]:
    """``fn(*args)`` on ``pool``, or at once in this thread without one."""
    return pool.submit(fn, *args) if pool is not None else _done(fn(*args))


def _take(pending: deque[tuple[list[Key], np.ndarray]], n: int) -> tuple[list[Key], np.ndarray]:
    """The first ``n`` (key, patch) pairs of the queued rows, as one batch."""
    keys: list[Key] = []
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


#: One batch on its way to the model: tile keys (row, col), input patches (N, 1, P, P), and the raw
#: kept centres for the nucleus stain check (None without it).
Batch = tuple[list[tuple[int, int]], np.ndarray, np.ndarray | None]
#: Per-batch model outputs: labels (N, K, K), winner probability (N, K, K), class rasters.
Outputs = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class _Tissue:
    """Stage 2's answer: where the tissue is, which tiles to read, and the nucleus stain threshold."""

    mask: np.ndarray  # bool raster: tissue
    candidates: np.ndarray  # bool (rows, cols): tiles near the region (all without one)
    tissue_tiles: np.ndarray  # bool (rows, cols): tiles touching (dilated) tissue
    min_stain: float  # a nucleus's mean Hoechst must reach this; 0: no check

    @property
    def selected(self) -> np.ndarray:
        """bool (rows, cols): the tiles to analyse."""
        selected: np.ndarray = self.candidates & self.tissue_tiles
        return selected


class SlideAnalysis:
    """One analysis of one slide with one model, one method per stage of :mod:`core.engine`:

    1. geometry (the constructor): channel, pixel sizes, the tile grid, the region;
    2. :meth:`find_tissue`: the tissue mask, the tiles to read, the nucleus stain threshold;
    3. :meth:`resume` (blocks from a checkpoint), then :meth:`infer_all`, which runs
       :meth:`pre_process` (reader thread: decode, cut, normalise on the CPU),
       :meth:`infer_cpu` / :meth:`infer_device` (model thread) and :meth:`post_process`
       (a worker beside the model on the CPU);
    4. :meth:`extract`: a finished block's cells, in the extraction pool;
    5. :meth:`save`: each block to the checkpoint and the caller (a :class:`BlockDone`), in order;

    then :meth:`result` (cells, rasters, :class:`AnalysisSummary`). :meth:`run` does all of it as
    one job; :func:`analyse_slide` is ``yield from SlideAnalysis(...).run()``. The state the stages
    share (the class map, the tile outputs still needed, the finished tables, the batches and
    blocks in flight) lives on the object and is touched only by the model's thread, except that
    :meth:`pre_process`, :meth:`post_process` and :meth:`extract` run in other threads and read
    only what the constructor and :meth:`find_tissue` fixed before they start.
    """

    def __init__(
        self,
        slide: Slide,
        model: LoadedModel,
        params: AnalysisParams | None = None,
        regions_um: BaseGeometry | Iterable[BaseGeometry] | None = None,
        cancel: CancelToken | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        """Stage 1, geometry. Raises UncalibratedError, ChannelNotFoundError, RegionError, CoreError."""
        self.t0 = time.perf_counter()
        self.slide = slide
        self.model = model
        self.params = params = params or AnalysisParams()
        self.cancel = cancel or CancelToken()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.card = card = model.card
        self.mpp = slide.require_mpp()
        wanted = params.channel if params.channel is not None else card.input_channel_role
        self.channel = slide.channel_index(wanted)
        self.patch = params.patch_size or card.patch_size
        context = params.context_px if params.context_px is not None else self.patch // 8
        self.grid = grid = TileGrid.build(slide.dimensions, self.mpp, card.mpp, self.patch, context, params.raster_um)
        region = _union(regions_um)
        self.region = check_region(region, grid) if region is not None else None
        self.n_classes = card.n_classes
        self.k_r = grid.keep // grid.factor  # raster px per tile side
        self.on_cpu = model.device.type == "cpu"
        self.min_px = max(1, int(np.ceil(params.min_cell_area_um2 / card.mpp**2)))
        self.max_px = int(params.max_cell_area_um2 / card.mpp**2)
        self.split = Split(params.split_depth_um / card.mpp, int(SPLIT_MIN_AREA_UM2 / card.mpp**2),
                           int(SPLIT_ROUND_AREA_UM2 / card.mpp**2), min_part_px=int(SPLIT_MIN_PART_UM2 / card.mpp**2))
        self.stage = StageClock(STAGES)  # seconds per stage, summed over the threads doing it
        self.batch_size = params.batch_size  # halved on GPU out-of-memory
        self.waiting = 0.0  # the model's thread waiting for the next batch

    # -- 2. tissue -------------------------------------------------------------------------------

    def find_tissue(self) -> _Tissue:
        """Otsu on the log overview (closed, filled, cleaned of debris), the tiles within half a
        tile of the region, and the stain threshold from the same overview (on the whole slide
        even with a region: the thresholds need glass and stroma)."""
        params, grid = self.params, self.grid
        candidates = np.ones(grid.shape, dtype=bool)
        if self.region is not None:
            candidates = grid.region_tiles(self.region, margin_um=grid.keep * grid.model_mpp / 2)
        check_stain = params.nucleus_stain_ratio > 0
        overview = read_overview(self.slide, grid, self.channel) if params.tissue_detection or check_stain else None
        levels = overview_levels(overview) if overview is not None else None
        if params.tissue_detection and overview is not None:
            tissue = detect_tissue(overview, grid.raster_mpp, params.tissue_min_area_um2, params.tissue_max_hole_um2,
                                   levels)
        else:
            tissue = np.ones(grid.raster_shape, dtype=bool)
        stroma = levels.stroma if check_stain and levels is not None else None
        min_stain = float(params.nucleus_stain_ratio * stroma) if stroma is not None else 0.0
        tissue_tiles = grid.tissue_tiles(ndimage.binary_dilation(tissue) if tissue.any() else tissue)
        return _Tissue(tissue, candidates, tissue_tiles, min_stain)

    # -- 5. checkpoint: the plan and the blocks an earlier run finished ---------------------------

    def open_checkpoint(self, selected: np.ndarray) -> None:
        """The checkpoint of this slide, model and parameters; the plan (what to compute, which
        blocks an earlier run finished) and the buffers the stages share."""
        card, model, region = self.card, self.model, self.region
        self.ckpt = Checkpoint(
            self.checkpoint_dir,
            {
                "engine_version": ENGINE_VERSION,
                "slide": slide_fingerprint(self.slide.path).to_dict(),
                "slide_mpp": list(self.mpp),
                "channel": [self.channel, self.slide.channel_names[self.channel]],
                "model": card.name,
                "model_sha256": card.weights_sha256,
                "precision": model.precision,
                "runtime": model.runtime,
                "device_type": model.device.type,
                "patch": self.patch,
                "params": self.params.result_key(),
                "region_sha256": None if region is None else hashlib.sha256(region.wkb).hexdigest(),
            },
        )
        k_r, (rows, cols) = self.k_r, self.grid.shape
        self.plan = _plan(selected, self.ckpt.done_rows(raster_shape=(k_r, cols * k_r)))
        self.class_map = np.zeros((rows * k_r, cols * k_r), dtype=np.uint8)
        self.tables: dict[int, pd.DataFrame] = {}  # block (tile row) -> its cells
        self.total = int(selected.sum())
        self.done = self.total - len(self.plan.tiles)
        self.outputs: TileOutputs = {}  # tile -> model outputs, until the blocks needing it are extracted
        self.posts: deque[tuple[list[tuple[int, int]], Future[Outputs], np.ndarray | None]] = deque()
        self.jobs: deque[tuple[int, Future[tuple[RawCells, pd.DataFrame]]]] = deque()

    def resume(self) -> Iterator[BlockDone]:
        """The blocks an earlier run finished, reported too, so the BlockDone reports always add
        up to the result."""
        k_r = self.k_r
        for r in self.plan.resumed:
            raw, self.class_map[r * k_r : (r + 1) * k_r] = self.ckpt.load(r)
            self.tables[r] = cell_table(raw, self.grid, self.card.classes, self.region)
            yield BlockDone(self.done, self.total, f"Tile {self.done} of {self.total}", cells=self.tables[r].copy(), block=r)
            self.cancel.check()
        self.to_finalise = [r for r in self.plan.rows if r not in self.tables]

    # -- 3. pipeline: pre-process, infer, post-process --------------------------------------------

    def pre_process(self, min_stain: float) -> Iterator[Batch]:
        """Batches in raster order; runs in the batch-reader thread. On the CPU the patches are
        normalised here; on a GPU where the model runs."""
        params, plan, stage = self.params, self.plan, self.stage
        crop, keep, on_cpu = self.grid.context, self.grid.keep, self.on_cpu
        cols_by_row: dict[int, list[int]] = defaultdict(list)
        for r, c in plan.tiles:
            cols_by_row[r].append(c)
        pending: deque[tuple[list[tuple[int, int]], np.ndarray]] = deque()
        queued = 0
        with BlockReader(self.slide, self.grid, self.channel, cols_by_row, params.reader_threads,
                         params.prefetch_rows) as reader:
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

    def infer_cpu(self, x: np.ndarray) -> Outputs:
        """The model's logits on the CPU (argmax etc. follow in :meth:`post_process`)."""
        with self.stage("model"):
            return (self.model.logits(torch.from_numpy(x), self.grid.context).numpy(),)

    def infer_device(self, x: np.ndarray) -> Outputs:
        """Normalise, model, argmax + probability, crop and class raster on the GPU; copies back
        only the kept centres and the raster."""
        model, stage = self.model, self.stage
        with stage("normalise"):
            xt = normalise_batch_tensor(model.to_device(x))
            torch.cuda.synchronize(model.device)  # for the stage times only: the ops queue anyway
        with stage("model"):
            logits = model.logits(xt, self.grid.context)
            torch.cuda.synchronize(model.device)
        with stage("post-processing"):
            cls, prob = classes_from_logits(logits)
            raster = batch_class_raster(cls, self.grid.factor, self.n_classes)
            return cls.cpu().numpy(), prob.cpu().numpy(), raster.cpu().numpy()

    def post_process(self, logits: np.ndarray) -> Outputs:
        """Argmax, probability (where the class is positive) and class raster in numpy (a worker
        thread, beside the model)."""
        with self.stage("post-processing"):
            return cpu_post(logits, self.grid.factor, self.n_classes)

    # -- 4. cells ---------------------------------------------------------------------------------

    def extract(self, r: int, tiles: TileOutputs, min_stain: float) -> tuple[RawCells, pd.DataFrame]:
        """Block ``r``'s cells from its tiles and its neighbours' (an extraction-pool thread)."""
        grid = self.grid
        with self.stage("extraction"):
            raw = extract_block(tiles, r, grid.shape, grid.keep, self.min_px, self.max_px, self.split, min_stain)
        with self.stage("cell table"):
            return raw, cell_table(raw, grid, self.card.classes, self.region)

    def _ready(self, r: int) -> bool:
        left = self.plan.left
        return left.get(r, 0) == 0 and left.get(r + 1, 0) == 0

    def _store_batches(self, limit: int, pool: ThreadPoolExecutor | None, min_stain: float) -> Iterator[Progress]:
        """Store finished batches in order (waiting while more than ``limit`` are in flight), then
        hand every block whose neighbours are done to the extraction pool."""
        posts, outputs, class_map, k_r, left = self.posts, self.outputs, self.class_map, self.k_r, self.plan.left
        to_finalise, total = self.to_finalise, self.total
        while posts and (len(posts) > limit or posts[0][1].done()):
            group, fut, stain = posts.popleft()
            labels, probs, rasters = fut.result()
            for i, ((r, c), lab, pr, ras) in enumerate(zip(group, labels, probs, rasters, strict=True)):
                outputs[(r, c)] = (lab, pr) if stain is None else (lab, pr, stain[i])
                class_map[r * k_r : (r + 1) * k_r, c * k_r : (c + 1) * k_r] = ras
                left[r] -= 1
            self.done += len(group)
            yield Progress(self.done, total, f"Tile {self.done} of {total}")
            self.cancel.check()
            while to_finalise and self._ready(to_finalise[0]):
                r = to_finalise.pop(0)
                need = {key: v for key, v in outputs.items() if r - 1 <= key[0] <= r + 1}
                self.jobs.append((r, _submit(pool, self.extract, r, need, min_stain)))
                keep_from = (to_finalise[0] - 1) if to_finalise else self.grid.shape[0]
                for key in [key for key in outputs if key[0] < keep_from]:
                    del outputs[key]
            yield from self.save(2 * self.params.extract_workers + 1)

    # -- 5. save ----------------------------------------------------------------------------------

    def save(self, limit: int) -> Iterator[BlockDone]:
        """Finished blocks in order, each saved to the checkpoint and reported; waits while more
        than ``limit`` are in flight."""
        jobs, k_r = self.jobs, self.k_r
        while jobs and (len(jobs) > limit or jobs[0][1].done()):
            r, fut = jobs.popleft()
            raw, table = fut.result()
            with self.stage("writing"):
                self.ckpt.save(r, raw, self.class_map[r * k_r : (r + 1) * k_r])
                self.tables[r] = table
                block_done = BlockDone(self.done, self.total, f"Tile {self.done} of {self.total}", cells=table.copy(),
                                       block=r)
            yield block_done
            self.cancel.check()  # every resumption: a cancel is obeyed at once, not after the finished work is reported

    # -- the run ----------------------------------------------------------------------------------

    def infer_all(self, min_stain: float) -> Iterator[Progress]:
        """Stages 3-5 over every planned tile: the reader thread prepares batches ahead, the model
        runs here, post-processing and extraction in pools; ``cancel.check()`` before every batch."""
        params, on_cpu = self.params, self.on_cpu
        threads_before = torch.get_num_threads()
        if params.torch_threads:
            torch.set_num_threads(params.torch_threads)
        parallel = params.extract_workers > 0
        infer = self.infer_cpu if on_cpu else self.infer_device
        with (
            _restore_threads(threads_before),
            _quick_gil_handoff(),
            Ahead(self.pre_process(min_stain), depth=2 if params.reader_threads > 0 else 0) as batches,
            _pool(params.extract_workers, "cell-extractor") as pool,
            _pool(1 if parallel and on_cpu else 0, "post-processing") as post_pool,
        ):
            items = iter(batches)
            while True:
                tw = time.perf_counter()
                item = next(items, None)
                self.waiting += time.perf_counter() - tw
                if item is None:
                    break
                group, x, stain = item
                self.cancel.check()
                outs, self.batch_size = predict_with_backoff(infer, x, self.batch_size)
                self.posts.append((group, _submit(post_pool, self.post_process, outs[0]) if on_cpu else _done(outs), stain))
                yield from self._store_batches(1, pool, min_stain)
            yield from self._store_batches(0, pool, min_stain)
            yield from self.save(0)
        assert not self.to_finalise, f"blocks {self.to_finalise} were never finished"

    def result(self, tissue: _Tissue) -> AnalysisResult:
        """The cell table of all blocks, the rasters and the summary."""
        grid, card, model, region, plan = self.grid, self.card, self.model, self.region, self.plan
        cells = concat_cell_tables(self.tables[r] for r in sorted(self.tables))
        h, w = grid.raster_shape
        rows, cols = grid.shape
        analysed = tissue.mask if region is None else tissue.mask & region_mask(region, grid)
        tissue_area = mask_area_mm2(tissue.mask, grid)
        seconds = time.perf_counter() - self.t0
        busy_ms, cpu_ms = self.stage.per_tile_ms(len(plan.tiles))
        summary = AnalysisSummary(
            slide=str(self.slide.path),
            slide_mpp=(float(self.mpp[0]), float(self.mpp[1])),
            channel=self.slide.channel_names[self.channel],
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
            nucleus_stain_min=tissue.min_stain,
            analysed_area_mm2=mask_area_mm2(analysed, grid),
            region_area_mm2=None if region is None else region.area / 1e6,
            tiles_in_grid=rows * cols,
            tiles_analysed=self.total,
            tiles_skipped_background=int((tissue.candidates & ~tissue.tissue_tiles).sum()),
            tiles_computed=len(plan.tiles),
            blocks_resumed=len(plan.resumed),
            batch_size=self.batch_size,
            tile_px=self.patch,
            context_px=grid.context,
            seconds=seconds,
            seconds_model=self.stage.busy["model"],
            seconds_waiting_for_tiles=self.waiting,
            stage_ms_per_tile=busy_ms,
            stage_cpu_ms_per_tile=cpu_ms,
            checkpoint_key=self.ckpt.key,
            classes=tuple(card.classes),
            class_colours=tuple(card.class_colours),
        )
        return AnalysisResult(
            cells=cells,
            class_map=np.ascontiguousarray(self.class_map[:h, :w]),
            density=density_raster(cells, grid, self.n_classes, self.params.density_sigma_um),
            tissue_mask=tissue.mask,
            tissue_area_mm2=tissue_area,
            raster_downsample=grid.raster_downsample[0],
            raster_downsample_y=grid.raster_downsample[1],
            raster_mpp=grid.raster_mpp,
            summary=summary,
        )

    def run(self) -> Generator[Progress, None, AnalysisResult]:
        """All stages in order, as one job (see :func:`analyse_slide`)."""
        yield Progress(0, 0, "Finding tissue")
        self.cancel.check()
        tissue = self.find_tissue()
        self.open_checkpoint(tissue.selected)
        yield from self.resume()
        yield from self.infer_all(tissue.min_stain)
        return self.result(tissue)


def analyse_slide(
    slide: Slide,
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
    # A generator: nothing runs (and no error is raised) until the caller takes the first report.
    return (yield from SlideAnalysis(slide, model, params, regions_um, cancel, checkpoint_dir).run())
