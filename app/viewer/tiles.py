"""Tile loading for the slide view: decode in a thread pool, cache as pixmaps on the UI thread.

A tile is ``TILE`` × ``TILE`` pixels of one pyramid level, keyed ``(level, col, row)``. Workers
(``QRunnable`` in a private ``QThreadPool``) read the slide and compose a ``QImage``; the UI thread
turns it into a ``QPixmap`` (pixmaps must not be made off the UI thread) and stores it in an LRU
cache. Requests the view no longer wants (it moved on) are dropped before they are decoded.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QRectF, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap

from app.viewer.display import DisplaySettings, compose_rgb32

if TYPE_CHECKING:
    from core.slides import Slide

TILE = 512
TileKey = tuple[int, int, int]  # (level, col, row)


def array_to_qimage(rgb32: np.ndarray, fmt: QImage.Format = QImage.Format.Format_RGB32) -> QImage:
    """A QImage owning a copy of an (h, w) uint32 array (RGB32 or ARGB32 layout).

    The image allocates its own memory and numpy writes into it (building a QImage over a numpy
    buffer trips a reference-count bug in PySide6 6.12).
    """
    h, w = rgb32.shape
    img = QImage(w, h, fmt)
    view = np.frombuffer(img.bits(), dtype=np.uint32).reshape(h, img.bytesPerLine() // 4)
    view[:, :w] = rgb32
    return img


def draw_part(painter: QPainter, part: QRectF, whole: QRectF, image: QPixmap | QImage) -> None:
    """Draw the ``part`` (scene rect) of an image that covers ``whole`` (scene rect)."""
    if part.isEmpty():
        return
    sx, sy = image.width() / whole.width(), image.height() / whole.height()
    source = QRectF((part.left() - whole.left()) * sx, (part.top() - whole.top()) * sy, part.width() * sx,
                    part.height() * sy)
    if isinstance(image, QImage):
        painter.drawImage(part, image, source)
    else:
        painter.drawPixmap(part, image, source)


class TileCache:
    """LRU cache of tile pixmaps with the display version they were made with."""

    def __init__(self, max_tiles: int = 600) -> None:
        self.max_tiles = max_tiles
        self._items: OrderedDict[TileKey, tuple[int, QPixmap]] = OrderedDict()

    def get(self, key: TileKey) -> tuple[int, QPixmap] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: TileKey, version: int, pixmap: QPixmap) -> None:
        self._items[key] = (version, pixmap)
        self._items.move_to_end(key)
        while len(self._items) > self.max_tiles:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class _TileSignals(QObject):
    """Carries finished tiles from pool threads to the UI thread (queued connection)."""

    loaded = Signal(int, int, int, int, QImage)  # level, col, row, display version, image
    failed = Signal(str)


class _TileJob(QRunnable):
    def __init__(self, loader: TileLoader, key: TileKey, version: int) -> None:
        super().__init__()
        self._loader, self._key, self._version = loader, key, version

    def run(self) -> None:
        loader = self._loader
        if not loader.still_wanted(self._key, self._version):
            loader.forget(self._key, self._version)
            return
        try:
            image = loader.decode(self._key)
        except Exception as exc:  # a bad tile must not kill the pool; the view shows the coarse one
            loader.forget(self._key, self._version)
            loader.signals.failed.emit(str(exc))
            return
        loader.forget(self._key, self._version)
        loader.signals.loaded.emit(*self._key, self._version, image)


class TileLoader(QObject):
    """Decodes tiles of one slide in a thread pool; emits ``signals.loaded(key, version, QImage)``."""

    def __init__(self, slide: Slide, display: DisplaySettings, threads: int | None = None) -> None:
        super().__init__()
        if threads is None:
            # One core stays with the UI thread: on 2 cores, two decoders beside an analysis made the
            # longest event-loop stall 60-73 ms; one decoder, 39-45 ms (40000² slide, panning).
            threads = min(4, (os.cpu_count() or 2) - 1)
        self.slide = slide
        self.display = display
        self.signals = _TileSignals()
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(max(1, threads))
        self._lock = threading.Lock()
        self._wanted: set[TileKey] = set()
        self._pending: dict[TileKey, int] = {}  # key -> display version queued
        self.decoded = 0  # count, for tests and benchmarks

    # --- called on the UI thread
    def set_display(self, display: DisplaySettings) -> None:
        self.display = display

    def request(self, keys: Iterable[TileKey]) -> None:
        """Want exactly ``keys`` now; queue those not yet pending, drop interest in the others."""
        keys = list(keys)
        version = self.display.version
        with self._lock:
            self._wanted = set(keys)
            new = [k for k in keys if self._pending.get(k) != version]
            self._pending.update((k, version) for k in new)
        for key in new:
            self.pool.start(_TileJob(self, key, version))

    def shutdown(self) -> None:
        with self._lock:
            self._wanted.clear()
        self.pool.clear()
        # Wait for the decodes already running (at most one tile each): a pool thread still reading
        # when the caller closes the slide, or when Qt deletes this object, could touch freed memory.
        # A 2 s limit once returned early on a loaded 2-core machine and the process segfaulted in
        # a tile thread during the app tests.
        self.pool.waitForDone()

    # --- called on pool threads
    def still_wanted(self, key: TileKey, version: int) -> bool:
        with self._lock:
            return key in self._wanted and version == self.display.version

    def forget(self, key: TileKey, version: int) -> None:
        with self._lock:
            if self._pending.get(key) == version:
                del self._pending[key]

    def decode(self, key: TileKey) -> QImage:
        """Read and compose one tile (any thread)."""
        level, col, row = key
        slide = self.slide
        lw, lh = slide.level_dimensions[level]
        ds = slide.level_downsamples[level]
        x, y = col * TILE, row * TILE
        w, h = min(TILE, lw - x), min(TILE, lh - y)
        display = self.display
        channels = display.visible_indices or [0]
        data = slide.read_region(
            location=(int(round(x * ds)), int(round(y * ds))), level=level, size=(w, h), channels=channels
        )
        full = np.zeros((len(display.channels) or 1, h, w), dtype=data.dtype)
        for j, c in enumerate(channels):
            full[c] = data[j]
        self.decoded += 1
        return array_to_qimage(compose_rgb32(full, display))
