"""Pyramidal OME-TIFF writing with bounded memory.

TIFF wants each channel's tiles in order, channel after channel, while blocks come out with all
channels at once. So blocks (and their 2x area-averaged pyramid levels) go to one raw scratch
file per level first, row by row; the OME-TIFFs are then written tile by tile from those files.
Memory stays a few blocks whatever the slide size; the page cache does the rest.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile

TILE = 256


def level_shapes(size: int, min_size: int = 1024) -> list[tuple[int, int]]:
    """(height, width) of each pyramid level: halve (floor) until the side is <= ``min_size``."""
    shapes = [(size, size)]
    while max(shapes[-1]) > min_size:
        h, w = shapes[-1]
        shapes.append((h // 2, w // 2))
    return shapes


def downsample2(a: np.ndarray) -> np.ndarray:
    """2x2 area average of (C, h, w) (odd last row/column dropped), float32."""
    _, h, w = a.shape
    a = a[:, : h // 2 * 2, : w // 2 * 2].astype(np.float32)
    return (a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]) * 0.25


class LevelStore:
    """Raw uint16 scratch files, one per level, each laid out (C, H, W) row-major."""

    def __init__(self, directory: Path, shapes: list[tuple[int, int]], channels: int) -> None:
        self.shapes, self.channels = shapes, channels
        self.paths = [directory / f".phantom-level{i}.raw" for i in range(len(shapes))]
        self.fds: list[int] = []
        for path, (h, w) in zip(self.paths, shapes, strict=True):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.ftruncate(fd, channels * h * w * 2)
            self.fds.append(fd)

    def put_block(self, x0: int, y0: int, block: np.ndarray) -> None:
        """Store a level-0 block (C, h, w) uint16 at (x0, y0) and its downsampled levels."""
        cur = block.astype(np.float32)
        for level, (hl, wl) in enumerate(self.shapes):
            if level > 0:
                cur = downsample2(cur)
            s = 1 << level
            lx, ly = x0 // s, y0 // s
            part = cur[:, : max(0, min(cur.shape[1], hl - ly)), : max(0, min(cur.shape[2], wl - lx))]
            if part.size == 0:
                break
            arr = np.rint(part).astype(np.uint16) if level else block[:, : part.shape[1], : part.shape[2]]
            self._write(level, lx, ly, arr)

    def _write(self, level: int, x: int, y: int, arr: np.ndarray) -> None:
        fd = self.fds[level]
        h, w = self.shapes[level]
        for c in range(arr.shape[0]):
            for r in range(arr.shape[1]):
                os.pwrite(fd, arr[c, r].tobytes(), ((c * h + y + r) * w + x) * 2)

    def tiles(self, level: int, channels: list[int], counter: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
        """Tiles of the given channels in TIFF order (channel, tile row, tile column)."""
        fd = self.fds[level]
        h, w = self.shapes[level]
        for c in channels:
            for ty in range(0, h, TILE):
                rows = min(TILE, h - ty)
                buf = os.pread(fd, rows * w * 2, ((c * h + ty) * w) * 2)
                strip = np.frombuffer(buf, np.uint16).reshape(rows, w)
                for tx in range(0, w, TILE):
                    yield strip[:, tx : tx + TILE]
                if counter is not None:
                    counter()

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        for path in self.paths:
            path.unlink(missing_ok=True)


def write_ome(
    path: Path,
    store: LevelStore,
    channels: list[int],
    names: list[str],
    mpp: float,
    compression: str,
    threads: int,
    counter: Callable[[], None] | None = None,
    stop: threading.Event | None = None,
    uid: str = "",
) -> None:
    """Write the chosen channels as a tiled pyramidal OME-TIFF (levels in SubIFDs).

    Pixel size goes both into the TIFF resolution tags (what tiffslide reads) and the OME
    PhysicalSizeX/Y (what tifffile, QuPath and Bio-Formats read). ``uid`` seeds the OME UUID so
    the same phantom gives the same bytes.
    """

    def count() -> None:
        if stop is not None and stop.is_set():
            raise InterruptedError("stopped")
        if counter is not None:
            counter()

    opts: dict = {
        "tile": (TILE, TILE),
        "photometric": "minisblack",
        "resolutionunit": "CENTIMETER",
        "maxworkers": threads,
        "buffersize": 32 << 20,  # tifffile buffers 512 MB of tiles by default
        "dtype": np.uint16,
    }
    if compression != "none":
        opts["compression"] = compression
        opts["compressionargs"] = {"level": 1}
    metadata = {
        "axes": "CYX",
        "Name": "HoechstScore phantom (synthetic)",
        "Channel": {"Name": names},
        "PhysicalSizeX": mpp,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": mpp,
        "PhysicalSizeYUnit": "µm",
        "UUID": "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "hoechstscore-phantom:" + uid + path.name)),
    }
    n_levels = len(store.shapes)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for level, (h, w) in enumerate(store.shapes):
            res = 1e4 / (mpp * (1 << level))
            extra = {"subifds": n_levels - 1, "metadata": metadata, "software": "HoechstScore phantom"} if level == 0 else {"subfiletype": 1}
            tif.write(
                store.tiles(level, channels, count),
                shape=(len(channels), h, w),
                resolution=(res, res),
                **extra,
                **opts,
            )
