"""The :class:`Slide` every part of HoechstScore reads through, independent of the file format.

A format backend (:mod:`._tiff`, :mod:`._czi`) only knows how to read an in-bounds rectangle of one
level; this class adds what is the same for every format: level-0 coordinates, zero-fill outside the
image, channel lookup by role, reads at a pixel size (mpp) and thumbnails.

Coordinate frames: ``location`` is always (x, y) in level-0 pixels of the slide, origin top-left;
``size`` is (width, height) in pixels of the level read (or of the output, for
:meth:`Slide.read_region_at_mpp`). Arrays are channels-first ``(C, h, w)``. mpp is (x, y) µm per
level-0 pixel. A Slide holds no mutable state after opening, so one instance may be read from many
threads at once; backends make their file access thread-safe.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np

from core.errors import ChannelNotFoundError, SlideError, UncalibratedError
from core.slides._resample import input_span, resample
from core.slides.channels import find_channel

__all__ = ["Slide", "SlideBackend", "ChannelSpec", "THUMBNAIL_BLOCK_BYTES"]

#: Most bytes of slide pixels :meth:`Slide.thumbnail` holds at once (plus a float32 copy of them).
THUMBNAIL_BLOCK_BYTES = 64 * 2**20

ChannelSpec = int | str | Sequence[int | str] | None
"""Channels to read: None (all), one index/name/role, or a sequence of them."""


_INTERNALS = (
    re.compile(r"\s*Invoked with:.*", re.S),  # pybind11 repeats the arguments, object reprs and all
    re.compile(r"<[A-Za-z_][\w.]*(?:\s[^<>]*)?>\s*"),  # <Foo object at 0x..>, <tifffile.TiffTag 262 @58>
    re.compile(r"\s+"),
)


def plain_reason(exc: BaseException, limit: int = 160) -> str:
    """A library exception's text fit for a lab user: no object reprs or pybind11 argument dumps.

    Keeps the first line of the message (libraries put their stack and argument dumps after it),
    cut to ``limit`` characters; the exception type's name when nothing readable is left.
    """
    text = str(exc).strip().split("\n")[0]
    if "incompatible function arguments" in text:  # pybind11: a number beyond the library's int range
        return "the reading library refused a position or size outside its range"
    text = _INTERNALS[0].sub("", text)
    text = _INTERNALS[1].sub("…", text)
    text = _INTERNALS[2].sub(" ", text).strip(" :;,")
    if not text:
        return type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SlideBackend(Protocol):
    """What a file format provides. Reads are in-bounds, in pixels of the level."""

    level_dimensions: list[tuple[int, int]]
    level_downsamples: list[float]

    def read(self, level: int, x: int, y: int, w: int, h: int, channels: list[int]) -> np.ndarray:
        """Pixels [y, y+h) x [x, x+w) of ``level`` (level pixels, inside it) as (C, h, w)."""
        ...

    def close(self) -> None: ...


class Slide:
    """An opened slide. Create with :func:`core.slides.open_slide`; use as a context manager."""

    def __init__(
        self,
        path: Path,
        format: str,
        backend: SlideBackend,
        channel_names: list[str],
        dtype: np.dtype,
        mpp: tuple[float, float] | None,
        aliases: Mapping[str, Sequence[str]],
    ) -> None:
        self.path = path
        self.format = format
        self._backend = backend
        self._names = list(channel_names)
        self._dtype = np.dtype(dtype)
        self._mpp = mpp
        self._aliases = aliases
        self._closed = False

    def __repr__(self) -> str:
        w, h = self.dimensions
        return (
            f"Slide({self.path.name!r}, format={self.format!r}, {w}x{h}, levels={self.level_count}, "
            f"channels={self._names}, dtype={self._dtype}, mpp={self._mpp})"
        )

    # --- geometry and calibration -------------------------------------------------------------
    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0 in pixels."""
        return self._backend.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self._backend.level_dimensions)

    @property
    def level_dimensions(self) -> list[tuple[int, int]]:
        """(width, height) in pixels of each level, level 0 first."""
        return list(self._backend.level_dimensions)

    @property
    def level_downsamples(self) -> list[float]:
        """Level-0 pixels per pixel of each level (1.0 for level 0)."""
        return list(self._backend.level_downsamples)

    @property
    def mpp(self) -> tuple[float, float] | None:
        """(x, y) µm per level-0 pixel, or None when the file has no pixel size and none was given."""
        return self._mpp

    @property
    def is_calibrated(self) -> bool:
        return self._mpp is not None

    def require_mpp(self) -> tuple[float, float]:
        """(x, y) µm per level-0 pixel; raises :class:`UncalibratedError` on an uncalibrated slide."""
        if self._mpp is None:
            raise UncalibratedError(self.path)
        return self._mpp

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (OpenSlide's rule)."""
        best = 0
        for level, ds in enumerate(self._backend.level_downsamples):
            if ds <= downsample * (1.0 + 1e-3):
                best = level
        return best

    # --- channels -------------------------------------------------------------------------------
    @property
    def channel_names(self) -> list[str]:
        return list(self._names)

    @property
    def n_channels(self) -> int:
        return len(self._names)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type of :meth:`read_region` and :meth:`thumbnail` (uint8 or uint16)."""
        return self._dtype

    def channel_index(self, name_or_role: str | int) -> int:
        """Index of a channel given its index, exact name, or role (``"hoechst"``, ``"cd3"``...).

        Raises :class:`ChannelNotFoundError` naming the channels the slide has.
        """
        if isinstance(name_or_role, int | np.integer):
            if 0 <= int(name_or_role) < len(self._names):
                return int(name_or_role)
            raise ChannelNotFoundError(self.path, f"channel #{int(name_or_role)}", self._names)
        index = find_channel(self._names, str(name_or_role), self._aliases)
        if index is None:
            raise ChannelNotFoundError(self.path, str(name_or_role), self._names)
        return index

    def _channel_list(self, channels: ChannelSpec) -> list[int]:
        if channels is None:
            return list(range(len(self._names)))
        if isinstance(channels, str | int | np.integer):
            return [self.channel_index(channels)]
        return [self.channel_index(c) for c in channels]

    # --- reading --------------------------------------------------------------------------------
    def read_region(
        self,
        location: tuple[float, float] = (0, 0),
        level: int = 0,
        size: tuple[int, int] = (256, 256),
        channels: ChannelSpec = None,
    ) -> np.ndarray:
        """Read (C, h, w) pixels of ``level`` in the slide's dtype.

        ``location``: (x, y) of the top-left corner in level-0 pixels (may be negative, and
        fractional: it is floored to a pixel of ``level``);
        ``size``: (w, h) in pixels of ``level``. Parts outside the image are zero.
        """
        if not 0 <= level < self.level_count:
            raise ValueError(f"level {level} does not exist; this slide has levels 0..{self.level_count - 1}")
        ds = self._backend.level_downsamples[level]
        x = math.floor(location[0] / ds)
        y = math.floor(location[1] / ds)
        return self._read_level(level, x, y, int(size[0]), int(size[1]), self._channel_list(channels))

    def _read_level(self, level: int, x: int, y: int, w: int, h: int, chans: list[int]) -> np.ndarray:
        """Zero-filled read in level pixels; the backend sees only the in-bounds part."""
        self._check_open()
        if w < 0 or h < 0:
            raise ValueError(f"size must be non-negative, got ({w}, {h})")
        lw, lh = self._backend.level_dimensions[level]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        if x0 == x and y0 == y and x1 == x + w and y1 == y + h and w and h:
            return self._backend_read(level, x, y, w, h, chans)
        out = np.zeros((len(chans), h, w), dtype=self._dtype)
        if x1 > x0 and y1 > y0:
            inside = self._backend_read(level, x0, y0, x1 - x0, y1 - y0, chans)
            out[:, y0 - y : y1 - y, x0 - x : x1 - x] = inside
        return out

    def _backend_read(self, level: int, x: int, y: int, w: int, h: int, chans: list[int]) -> np.ndarray:
        try:
            return self._backend.read(level, x, y, w, h, chans)
        except SlideError:
            raise
        except Exception as exc:  # decoder and I/O errors of any library: the file is damaged
            raise SlideError(
                self.path,
                f"reading pixels ({w}x{h} at x={x}, y={y} of level {level}) failed ({plain_reason(exc)}). "
                "The file is damaged or incomplete; copy or export it again.",
            ) from exc

    def read_region_at_mpp(
        self,
        location: tuple[float, float] = (0, 0),
        size: tuple[int, int] = (256, 256),
        mpp: float = 0.227,
        channels: ChannelSpec = None,
    ) -> np.ndarray:
        """Read (C, h, w) float32 pixels of ``mpp`` µm each, whatever the slide's own pixel size.

        ``location``: (x, y) of the top-left corner in level-0 pixels; ``size``: (w, h) output
        pixels. Reads the coarsest level at least as fine as ``mpp`` and resamples it (exact area
        average when shrinking, linear when enlarging). Raises :class:`UncalibratedError`.
        """
        mx, my = self.require_mpp()
        fx, fy = mpp / mx, mpp / my  # level-0 pixels per output pixel
        chans = self._channel_list(channels)
        level = self.best_level_for_downsample(min(fx, fy))
        dsx = dsy = self._backend.level_downsamples[level]
        ax, ay = location[0] / dsx, location[1] / dsy
        kx, ky = fx / dsx, fy / dsy  # level pixels per output pixel
        w, h = int(size[0]), int(size[1])
        # a pixel size within 0.01% of a level's is read as is (0.03 px over a 256 px tile)
        if abs(kx - 1) < 1e-4 and abs(ky - 1) < 1e-4 and ax == int(ax) and ay == int(ay):
            return self._read_level(level, int(ax), int(ay), w, h, chans).astype(np.float32)
        ix0, ix1 = input_span(ax, kx, w)
        iy0, iy1 = input_span(ay, ky, h)
        block = self._read_level(level, ix0, iy0, ix1 - ix0, iy1 - iy0, chans)
        return resample(block, (ax - ix0, ay - iy0), (kx, ky), (w, h))

    def thumbnail(self, max_size: int = 1024, channels: ChannelSpec = None) -> np.ndarray:
        """The whole slide as (C, h, w) in the slide's dtype, its longer side at most ``max_size``.

        Reads the smallest level whose longer side is still at least ``max_size``. When that level
        is larger than :data:`THUMBNAIL_BLOCK_BYTES` (a slide without a pyramid), it is read in
        blocks of at most that size, each reduced to its output pixels (the mean of f x f pixels,
        f the integer reduction factor) before the next is read: memory stays bounded whatever
        the slide's size, and time grows with the pixels of the level.
        """
        chans = self._channel_list(channels)
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 pixel, got {max_size}")
        level = 0
        for i, (lw, lh) in enumerate(self._backend.level_dimensions):
            if max(lw, lh) >= max_size:
                level = i
        lw, lh = self._backend.level_dimensions[level]
        if max(lw, lh) <= max_size:
            return self._read_level(level, 0, 0, lw, lh, chans)
        px_bytes = len(chans) * self._dtype.itemsize
        if lw * lh * px_bytes > THUMBNAIL_BLOCK_BYTES:
            return self._blocked_thumbnail(level, math.ceil(max(lw, lh) / max_size), chans)
        scale = max_size / max(lw, lh)
        w, h = max(1, round(lw * scale)), max(1, round(lh * scale))
        block = self._read_level(level, 0, 0, lw, lh, chans)
        out = resample(block, (0.0, 0.0), (lw / w, lh / h), (w, h))
        return self._to_dtype(out)

    def _blocked_thumbnail(self, level: int, f: int, chans: list[int]) -> np.ndarray:
        """Means of f x f pixels of ``level``, read in blocks of at most THUMBNAIL_BLOCK_BYTES."""
        lw, lh = self._backend.level_dimensions[level]
        w, h = math.ceil(lw / f), math.ceil(lh / f)
        px_bytes = len(chans) * self._dtype.itemsize
        # whole output rows per block when they fit (a strip-stored file decodes each strip once)
        rows = max(1, THUMBNAIL_BLOCK_BYTES // (f * f * w * px_bytes))
        cols = w if rows > 1 else max(1, THUMBNAIL_BLOCK_BYTES // (f * f * px_bytes))
        out = np.empty((len(chans), h, w), dtype=np.float64)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            for c0 in range(0, w, cols):
                c1 = min(w, c0 + cols)
                block = self._read_level(level, c0 * f, r0 * f, (c1 - c0) * f, (r1 - r0) * f, chans)
                sums = block.reshape(len(chans), r1 - r0, f, c1 - c0, f).sum(axis=(2, 4), dtype=np.float64)
                out[:, r0:r1, c0:c1] = sums
        # the last row and column of blocks overhang the level (zero-filled): divide by real pixels
        ny = np.minimum(f, lh - f * np.arange(h))
        nx = np.minimum(f, lw - f * np.arange(w))
        out /= ny[:, None] * nx[None, :]
        return self._to_dtype(out)

    def _to_dtype(self, values: np.ndarray) -> np.ndarray:
        if np.issubdtype(self._dtype, np.integer):
            info = np.iinfo(self._dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        return values.astype(self._dtype)

    # --- lifetime -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SlideError(self.path, "the slide was closed; open it again to read from it.")

    def close(self) -> None:
        """Release the file. Reading afterwards raises :class:`SlideError`."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
