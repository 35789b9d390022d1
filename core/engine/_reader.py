"""Reading ahead of the model: slide blocks decoded once by threads, batches prepared in a thread.

:class:`BlockReader` turns rows of tiles into input patches, each slide pixel decoded once;
:class:`Ahead` runs the batch preparation (reading, cutting, normalising) in its own thread, a
bounded number of batches ahead, so the model's thread only runs the model. Order is kept, so
results are deterministic.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from core.engine._grid import TileGrid
from core.slides._resample import input_span, resample

if TYPE_CHECKING:
    from core.slides import Slide

T = TypeVar("T")


class _End:
    """The marker the reader thread queues after the last item (one instance, ``_END``)."""


_END = _End()


class Ahead(Generic[T]):
    """Iterate ``items`` (a generator) computed in a thread, at most ``depth`` items ahead.

    ``depth=0`` computes each item in the calling thread when it is taken. An exception in the
    generator is raised to the consumer. Use as a context manager: leaving it (also through an
    exception or a cancel) stops the thread at its next item.
    """

    def __init__(self, items: Iterator[T], depth: int = 2) -> None:
        self._items = items
        self._depth = depth
        # an item (in a 1-tuple, so that None is an item too), the generator's exception, or the end
        self._queue: queue.Queue[tuple[T] | BaseException | _End] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._thread = threading.Thread(target=self._run, name="batch-reader", daemon=True)
            self._thread.start()

    def _put(self, item: tuple[T] | BaseException | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item,)):
                    self._close_items()  # stopped: let the generator clean up in its own thread
                    return
        except BaseException as err:  # handed to the consumer, which raises it
            self._put(err)
            return
        self._put(_END)

    def _close_items(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> Iterator[T]:
        if self._thread is None:
            yield from self._items
            return
        while True:
            got = self._queue.get()
            if isinstance(got, _End):
                return
            if isinstance(got, BaseException):
                raise got
            yield got[0]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        else:
            self._close_items()

    def __enter__(self) -> Ahead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Side (level px) of the chunks the block reader decodes: a multiple of common TIFF tile sizes
#: (64–512), so chunk reads stay aligned to the file's tiles and every file tile is decoded once.
CHUNK = 512


@dataclass(frozen=True)
class _Run:
    """Tiles (row, cols[0]..cols[-1]) read as one rectangle of level px, and where each tile lies in it."""

    row: int
    cols: list[int]
    level_box: tuple[int, int, int, int]  # x0, y0, x1, y1 in level px (may reach outside the level)
    #: Per tile, its input in the box: (x0, x1, start x) box px; a tile is the box columns
    #: [x0, x1) as they are (x1 − x0 = patch) when ``direct``, else resampled from ``start``.
    tiles: list[tuple[int, int, float]]
    start_y: float  # output's top edge in the box (box px)
    direct: bool


class BlockReader:
    """Model tiles of one row of tiles (a block) at a time, each slide pixel decoded once.

    The level the slide is read at is cut into ``CHUNK``² chunks aligned to the file's tiles;
    ``workers`` threads decode the chunks the next ``ahead`` rows need (tifffile/imagecodecs
    release the GIL while decoding) and a chunk is dropped once no later row needs it, so memory
    holds a few chunk rows (≈ 3 × 512 × slide width px) whatever the slide's size. Each block's
    contiguous tiles are assembled as one rectangle, resampled once if the slide's pixel size is
    not the model's (exactly as :meth:`Slide.read_region_at_mpp` does for one tile), and tiles are
    cut from memory. ``workers=0`` decodes in the calling thread.
    """

    def __init__(
        self, slide: Slide, grid: TileGrid, channel: int, cols_by_row: dict[int, list[int]], workers: int = 1, ahead: int = 2
    ) -> None:
        self._slide = slide
        self._grid = grid
        self._channel = channel
        mx, my = slide.require_mpp()
        fx, fy = grid.model_mpp / mx, grid.model_mpp / my
        self._level = slide.best_level_for_downsample(min(fx, fy))
        self._ds = float(slide.level_downsamples[self._level])
        self._k = (fx / self._ds, fy / self._ds)  # level px per model px
        self._level_size = slide.level_dimensions[self._level]
        self._rows = sorted(cols_by_row)
        self._runs = {r: self._row_runs(r, cols_by_row[r]) for r in self._rows}
        self._ahead = max(1, ahead)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunk-reader") if workers > 0 else None
        self._chunks: dict[tuple[int, int], Future[np.ndarray] | np.ndarray] = {}
        self._next = 0  # index in self._rows of the next row to read
        self.decode_seconds = 0.0  # summed over the reader threads
        self.decode_cpu_seconds = 0.0
        self._lock = threading.Lock()

    # --- geometry ------------------------------------------------------------------------------
    def _row_runs(self, row: int, cols: list[int]) -> list[_Run]:
        runs: list[list[int]] = []
        for c in sorted(cols):
            if runs and c == runs[-1][-1] + 1:
                runs[-1].append(c)
            else:
                runs.append([c])
        return [self._run(row, run) for run in runs]

    def _run(self, row: int, cols: list[int]) -> _Run:
        """The level box of a run of tiles and each tile's place in it, by the arithmetic of
        :meth:`Slide.read_region_at_mpp` for that tile alone (so no position drifts along a row,
        and a resample stays one tile wide: its weight matrices grow with the width squared)."""
        g = self._grid
        kx, ky = self._k
        ay = g.read_location(row, cols[0])[1] / self._ds
        axs = [g.read_location(row, c)[0] / self._ds for c in cols]
        p = g.patch
        if self.identity and _integral(ay) and all(_integral(a) for a in axs):
            xs = [round(a) for a in axs]
            y0 = round(ay)
            return _Run(row, cols, (xs[0], y0, xs[-1] + p, y0 + p), [(x - xs[0], x - xs[0] + p, 0.0) for x in xs], 0.0, True)
        spans = [input_span(a, kx, p) for a in axs]
        iy0, iy1 = input_span(ay, ky, p)
        x0 = spans[0][0]
        tiles = [(i0 - x0, i1 - x0, a - i0) for a, (i0, i1) in zip(axs, spans, strict=True)]
        return _Run(row, cols, (x0, iy0, spans[-1][1], iy1), tiles, ay - iy0, False)

    @property
    def identity(self) -> bool:
        """The level's pixels are the model's pixels (within 0.01%, as ``read_region_at_mpp``)."""
        return bool(abs(self._k[0] - 1) < 1e-4 and abs(self._k[1] - 1) < 1e-4)

    def _chunk_keys(self, row: int) -> list[tuple[int, int]]:
        lw, lh = self._level_size
        keys: list[tuple[int, int]] = []
        for run in self._runs[row]:
            x0, y0, x1, y1 = run.level_box
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, lw), min(y1, lh)
            if x1 <= x0 or y1 <= y0:
                continue
            keys += [(cy, cx) for cy in range(y0 // CHUNK, (y1 - 1) // CHUNK + 1) for cx in range(x0 // CHUNK, (x1 - 1) // CHUNK + 1)]
        return keys

    # --- reading -------------------------------------------------------------------------------
    def _decode(self, key: tuple[int, int]) -> np.ndarray:
        t0, c0 = time.perf_counter(), time.thread_time()
        cy, cx = key
        # +0.5 px: the level-0 location maps back to exactly this level px despite rounding.
        loc = ((cx * CHUNK + 0.5) * self._ds, (cy * CHUNK + 0.5) * self._ds)
        out: np.ndarray = self._slide.read_region(loc, self._level, (CHUNK, CHUNK), [self._channel])[0]
        with self._lock:
            self.decode_seconds += time.perf_counter() - t0
            self.decode_cpu_seconds += time.thread_time() - c0
        return out

    def _request(self, upto: int) -> None:
        """Start decoding the chunks of rows ``self._next .. upto`` (indices in ``self._rows``)."""
        for i in range(self._next, min(upto + 1, len(self._rows))):
            for key in self._chunk_keys(self._rows[i]):
                if key not in self._chunks:
                    self._chunks[key] = self._pool.submit(self._decode, key) if self._pool else self._decode(key)

    def _get(self, key: tuple[int, int]) -> np.ndarray:
        got = self._chunks[key]
        if isinstance(got, Future):
            got = got.result()
            self._chunks[key] = got
        return got

    def _box(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """Level pixels of ``box`` from the chunks (zero outside the level)."""
        x0, y0, x1, y1 = box
        out = np.zeros((y1 - y0, x1 - x0), dtype=self._slide.dtype)
        lw, lh = self._level_size
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, lw), min(y1, lh)
        for cy in range(cy0 // CHUNK, (cy1 - 1) // CHUNK + 1) if cy1 > cy0 and cx1 > cx0 else ():
            for cx in range(cx0 // CHUNK, (cx1 - 1) // CHUNK + 1):
                chunk = self._get((cy, cx))
                ya, yb = max(cy0, cy * CHUNK), min(cy1, (cy + 1) * CHUNK)
                xa, xb = max(cx0, cx * CHUNK), min(cx1, (cx + 1) * CHUNK)
                out[ya - y0 : yb - y0, xa - x0 : xb - x0] = chunk[ya - cy * CHUNK : yb - cy * CHUNK, xa - cx * CHUNK : xb - cx * CHUNK]
        return out

    def read_row(self, row: int) -> tuple[list[int], np.ndarray]:
        """(cols, float32 (n, 1, P, P)): the raw (not normalised) input patches of ``row``'s tiles.

        Rows must be read in ascending order."""
        i = self._rows.index(row, self._next)
        self._next = i
        self._request(i + self._ahead)
        p = self._grid.patch
        runs = self._runs[row]
        cols = [c for run in runs for c in run.cols]
        # Each tile is written once, straight into the batch array (converted as it is copied).
        out = np.empty((len(cols), 1, p, p), dtype=np.float32)
        k = 0
        for run in runs:
            box = self._box(run.level_box)
            n = len(run.cols)
            if run.direct:
                starts = [x0 for x0, _, _ in run.tiles]
                # (n, P, P) views cut from the box at each tile's column.
                tiles = np.lib.stride_tricks.sliding_window_view(box, p, axis=1)[:, starts].transpose(1, 0, 2)
                np.copyto(out[k : k + n, 0], tiles, casting="unsafe")
            else:
                for j, (x0, x1, sx) in enumerate(run.tiles):
                    out[k + j, 0] = resample(box[None, :, x0:x1], (sx, run.start_y), self._k, (p, p))[0]
            k += n
        self._next = i + 1
        self._evict()
        return cols, out

    def _evict(self) -> None:
        """Drop chunks above every row still to be read."""
        if self._next >= len(self._rows):
            self._chunks.clear()
            return
        keep_from = min((key[0] for key in self._chunk_keys(self._rows[self._next])), default=None)
        if keep_from is None:
            return
        for key in [k for k in self._chunks if k[0] < keep_from]:
            del self._chunks[key]

    def close(self) -> None:
        for got in self._chunks.values():
            if isinstance(got, Future):
                got.cancel()
        self._chunks.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> BlockReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _integral(v: float) -> bool:
    """A level coordinate that is a whole pixel but for float rounding (mx · mpp / mpp)."""
    return abs(v - round(v)) < 1e-6
