"""TIFF-family backend: OME-TIFF, SVS, generic (pyramidal) TIFF and ImageJ hyperstacks, via tiffslide.

Pixels are read through ``TiffSlide.zarr_group`` (one zarr array per level, axes ``CYX``, ``YXS``
or ``YX``) rather than ``TiffSlide.read_region``, which returns (h, w, C) and whose PIL path fails on
multichannel uint16. tiffslide keeps one zarr group per thread, and all of them read the file
through tifffile's file handle under its reentrant lock (seek+read are atomic), so one backend is
safe to read from several threads; tile decoding happens outside the lock.

Before tiffslide parses anything we check with tifffile what it would choke on or silently get
wrong, so the user gets a message that says what is wrong: empty images, axes other than C/Y/X
(time points, Z stacks) and files cut short (tile data beyond the end of the file).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
import tiffslide
import zarr

from core.errors import SlideOpenError
from core.slides._base import plain_reason
from core.slides._tiffmeta import (
    imagej_channel_names,
    imagej_mpp,
    ome_channel_names,
    ome_mpp,
    plausible_mpp,
)
from core.slides.channels import placeholder_names

__all__ = ["TiffBackend", "open_tiff", "TiffInfo"]

_SUPPORTED_AXES = ("YX", "CYX", "YXS")
_AXIS_NAMES = {"T": "time points", "Z": "Z planes", "I": "images", "Q": "planes"}


_DAMAGE_WORDS = ("corrupt", "truncat", "offset", "invalid")


class _TifffileProblems(logging.Handler):
    """Collects what tifffile logs (it skips broken IFDs with a log line instead of raising)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.thread == self.thread and any(w in message.lower() for w in _DAMAGE_WORDS):
            self.messages.append(message)


@contextlib.contextmanager
def _collect_tifffile_problems() -> Iterator[_TifffileProblems]:
    handler = _TifffileProblems()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


class TiffInfo:
    """What :func:`open_tiff` found: format name, channel names, dtype and the file's own mpp."""

    def __init__(
        self, format: str, names: list[str], dtype: np.dtype, mpp: tuple[float, float] | None
    ) -> None:
        self.format, self.names, self.dtype, self.mpp = format, names, dtype, mpp


class TiffBackend:
    """Reads in-bounds rectangles of a level from a :class:`tiffslide.TiffSlide`."""

    def __init__(self, slide: tiffslide.TiffSlide, axes: str) -> None:
        self._slide = slide
        self._axes = axes
        self._local = threading.local()  # per-thread list of level arrays
        self.level_dimensions = [(int(w), int(h)) for w, h in slide.level_dimensions]
        self.level_downsamples = [float(d) for d in slide.level_downsamples]

    def _levels(self) -> list[zarr.Array]:
        arrays: list[zarr.Array] | None = getattr(self._local, "arrays", None)
        if arrays is None:
            group = self._slide.zarr_group
            if isinstance(group, zarr.Array):
                arrays = [group]
            else:
                arrays = []
                for i in range(len(self.level_dimensions)):
                    level = group[str(i)]
                    if not isinstance(level, zarr.Array):  # tiffslide stores one array per level
                        raise TypeError(f"level {i} of the slide's zarr store is a {type(level).__name__}, not an array")
                    arrays.append(level)
            self._local.arrays = arrays
        return arrays

    def read(self, level: int, x: int, y: int, w: int, h: int, channels: list[int]) -> np.ndarray:
        arr = self._levels()[level]
        ys, xs = slice(y, y + h), slice(x, x + w)
        if self._axes == "YX":
            out = np.asarray(arr[ys, xs])[None]
        elif self._axes == "YXS":
            out = np.moveaxis(np.asarray(arr[ys, xs, :]), -1, 0)[channels]
        elif channels == list(range(arr.shape[0])):
            out = np.asarray(arr[:, ys, xs])
        else:
            out = np.asarray(arr.get_orthogonal_selection((np.asarray(channels, dtype=np.int64), ys, xs)))
        return np.ascontiguousarray(out)

    def close(self) -> None:
        self._slide.close()


def _check_series(path: Path, tif: tifffile.TiffFile) -> tifffile.TiffPageSeries:
    if not tif.series:
        raise SlideOpenError(path, "the TIFF file contains no readable image. Export the slide again.")
    series = tif.series[0]
    if any(int(n) == 0 for n in series.shape):
        raise SlideOpenError(
            path, f"the image is empty (shape {tuple(series.shape)} with axes {series.axes}); "
            "there are no pixels to analyse. Export the slide again."
        )  # fmt: skip
    if not series.axes:
        raise SlideOpenError(path, "the image has no recognisable axes (no width and height); the file "
                             "is damaged or not a slide. Export the slide again.")  # fmt: skip
    if series.axes not in _SUPPORTED_AXES:
        extra = [f"{a}={n} ({_AXIS_NAMES.get(a, a)})" for a, n in zip(series.axes, series.shape, strict=True)
                 if a not in "YXCS"]  # fmt: skip
        raise SlideOpenError(
            path, f"unsupported image axes {series.axes} with shape {tuple(series.shape)}: "
            f"{', '.join(extra) or 'axes order not supported'}. Only 2-D images with channels (C, Y, X) "
            "or RGB are supported; export a single time point and Z plane (e.g. a maximum "
            "projection in Fiji), keeping the channels."
        )  # fmt: skip
    if series.dtype not in (np.uint8, np.uint16):
        raise SlideOpenError(
            path, f"pixel type {series.dtype} is not supported; convert the slide to 8- or 16-bit "
            "unsigned integers (uint8/uint16)."
        )  # fmt: skip
    return series


#: Largest decoded tile or strip we accept: every read decodes whole tiles or strips, so one this
#: big would cost this much memory for even a 1-pixel read.
MAX_CHUNK_BYTES = 512 * 2**20
#: Largest ratio of pixel bytes to stored bytes believed for an image above 1 GiB. Real slides
#: compress 2-50x (an empty flat slide, ~1000x); a header edited to claim 100x the pixels does not.
MAX_COMPRESSION_RATIO = 10_000


def _damaged(path: Path, what: str) -> SlideOpenError:
    return SlideOpenError(path, f"the file is damaged: {what}. Copy or export it again.")


def _check_page(path: Path, frame: tifffile.TiffPage | tifffile.TiffFrame, size: int) -> None:
    """Cheap checks of one page's tile/strip table against its header and the file size."""
    offsets, counts = frame.dataoffsets, frame.databytecounts
    page = frame.keyframe  # a TiffFrame shares its header fields with its key page
    if page is None:  # tifffile sets it for every page it returns; a frame without one is unreadable
        raise _damaged(path, "an image frame has no header (key page)")
    expected = int(np.prod(page.chunked)) if page.chunked else len(offsets)
    if len(offsets) != expected or len(counts) != len(offsets):
        raise _damaged(path, f"an image of {page.imagewidth}x{page.imagelength} pixels needs {expected} "
                       f"tiles or strips but its table lists {len(offsets)}")  # fmt: skip
    ends = [o + n for o, n in zip(offsets, counts, strict=False) if n]
    if ends and max(ends) > size:
        raise SlideOpenError(
            path, f"the file is truncated: it is {size:,} bytes but its image data runs to "
            f"{max(ends):,} bytes. The copy or export was cut short; copy it again."
        )  # fmt: skip
    ranges = sorted({(int(o), int(n)) for o, n in zip(offsets, counts, strict=False) if n})
    if ranges and ranges[0][0] < 8:
        raise _damaged(path, "its tile/strip table points into the file header (offset 0)")
    for (o1, n1), (o2, _) in zip(ranges, ranges[1:], strict=False):
        if o2 < o1 + n1:  # identical entries may be a writer's shared blank tile; overlaps never are
            raise _damaged(path, f"two tiles or strips overlap (bytes {o1:,} and {o2:,}); the tile table is corrupt")
    chunk = int(np.prod(page.chunks)) * page.dtype.itemsize if page.dtype is not None else 0
    if page.planarconfig == 1 and len(page.chunks) < 3:
        chunk *= page.samplesperpixel
    if chunk > MAX_CHUNK_BYTES:
        raise SlideOpenError(
            path, f"the image is stored in pieces of {chunk / 2**20:,.0f} MB each ({page.imagewidth}x"
            f"{page.imagelength} pixels in {len(offsets)} strips); reading any part would decode a whole "
            "piece. Convert it to a tiled (pyramidal) OME-TIFF, e.g. with QuPath or bfconvert."
        )  # fmt: skip
    pixel_bytes = page.imagewidth * page.imagelength * page.samplesperpixel * (page.dtype.itemsize if page.dtype else 1)
    stored = sum(int(n) for n in counts)
    compressed = page.compression != 1
    if (not compressed and stored < pixel_bytes // 2) or (
        compressed and pixel_bytes > 2**30 and pixel_bytes > MAX_COMPRESSION_RATIO * max(stored, 1)
    ):
        raise SlideOpenError(
            path, f"its header claims {page.imagewidth:,}x{page.imagelength:,} pixels ({pixel_bytes / 2**20:,.0f} MB) "
            f"but the file holds only {stored / 2**20:,.1f} MB of image data; the header is damaged. "
            "Copy or export it again."
        )  # fmt: skip


def _check_complete(path: Path, tif: tifffile.TiffFile, series: tifffile.TiffPageSeries) -> None:
    """Raise if any level's tile table is implausible: cut short, corrupt, or a header that lies."""
    size = tif.filehandle.size
    for level in series.levels:
        for page in level.pages:
            if page is None:
                raise SlideOpenError(path, "a page of the image is missing; the file is incomplete. "
                                     "Copy or export it again.")  # fmt: skip
            _check_page(path, page, size)


def _format(tif: tifffile.TiffFile) -> str:
    if tif.is_ome:
        return "ome-tiff"
    if tif.is_svs:
        return "svs"
    if tif.is_imagej:
        return "imagej"
    return "tiff"


def open_tiff(path: Path) -> tuple[TiffBackend, TiffInfo]:
    """Open a TIFF-family slide. Raises :class:`SlideOpenError` with the reason."""
    with _collect_tifffile_problems() as problems:
        try:
            ts = tiffslide.TiffSlide(path)
        except Exception as exc:  # TiffFileError, struct.error, ValueError... from a damaged header
            raise SlideOpenError(
                path, f"the file looks like a TIFF but its structure is damaged ({plain_reason(exc)}). "
                "It may be truncated or corrupt; copy or export it again."
            ) from exc  # fmt: skip
        try:
            backend, info = _inspect(path, ts)
        except Exception as exc:
            ts.close()
            if problems.messages:  # the real cause: a broken IFD that tifffile skipped
                raise SlideOpenError(
                    path, f"the file is damaged or truncated ({plain_reason(Exception(problems.messages[0]))}). "
                    "The copy or export is incomplete or corrupt; copy or export it again."
                ) from exc  # fmt: skip
            if isinstance(exc, SlideOpenError):
                raise
            raise SlideOpenError(
                path, f"the TIFF structure is damaged or unusual and could not be read ({plain_reason(exc)}). "
                "Copy or export it again, or convert it to OME-TIFF."
            ) from exc  # fmt: skip
        broken = [m for m in problems.messages if "invalid data type" not in m.lower()]
        if broken:  # opened, but part of the structure (e.g. the OME description) is lost
            ts.close()
            raise SlideOpenError(
                path, f"the file is damaged or truncated ({plain_reason(Exception(broken[0]))}). The copy or export is "
                "incomplete or corrupt; copy or export it again."
            )  # fmt: skip
    return backend, info


def _inspect(path: Path, ts: tiffslide.TiffSlide) -> tuple[TiffBackend, TiffInfo]:
    tif = ts.ts_tifffile
    series = _check_series(path, tif)
    _check_complete(path, tif, series)
    props = ts.properties
    axes = props["tiffslide.series-axes"]
    n = 1 if axes == "YX" else int(series.shape[axes.index("C" if axes == "CYX" else "S")])
    names = ome_channel_names(tif, n) or imagej_channel_names(tif, n)
    if names is None and axes == "YXS":
        names = ["R", "G", "B", "A"][:n] if n <= 4 else None
    mpp = (
        plausible_mpp(props.get("tiffslide.mpp-x"), props.get("tiffslide.mpp-y"))
        or ome_mpp(tif)
        or imagej_mpp(tif)
    )
    info = TiffInfo(_format(tif), names or placeholder_names(n), np.dtype(series.dtype), mpp)
    backend = TiffBackend(ts, axes)
    for level, (w, h) in enumerate(backend.level_dimensions):  # decode one tile per level: a header
        try:  # that lies about the size (e.g. an edited ImageWidth) fails here, not in the app later
            backend.read(level, w - 1, h - 1, 1, 1, [0])
        except Exception as exc:
            raise SlideOpenError(
                path, f"the image data of level {level} does not match its header ({plain_reason(exc)}); "
                "the file is damaged. Copy or export it again."
            ) from exc  # fmt: skip
    return backend, info
