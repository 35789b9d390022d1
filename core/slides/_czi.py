"""Zeiss CZI backend, reading the file directly with pylibCZIrw (libCZI).

Decision: read CZI directly, do not convert it to a cached OME-TIFF. Measured on a 3072x3072,
4-channel uint16 CZI in 1024x1024 sub-blocks (2 shared cores; see the report of the change that
added this module):

- direct 256x256 tile, all 4 channels: 0.9 ms uncompressed; 5.2 ms zstd without a sub-block cache,
  0.8 ms with libCZI's sub-block cache (used here). Our OME-TIFF path reads the same tile in 2.4 ms,
  so a converted copy would be no faster to read;
- converting would mean decoding and re-encoding the whole slide once (minutes and gigabytes for a
  real 50k x 50k 4-channel scan) before the user sees anything, and a cache to manage.

Levels: the CZI plane is exposed as a virtual 2x pyramid down to about 1024 px. Level 1 (2x) is
made from level-0 pixels by exact block averaging, so it matches what a TIFF pyramid holds and
:meth:`Slide.read_region_at_mpp` stays an area average for the common case (a 40x scan at 0.11 µm
read at the model's 0.227 µm). Coarser levels use libCZI's ``zoom``, which uses the file's own
pyramid sub-blocks when the scanner wrote them and otherwise subsamples on the fly (it picks pixels,
it does not average; 5-12 ms for a whole 3072x3072 plane at 1/4) -- for overviews and thumbnails,
where averaging 16+ full-resolution pixels per output pixel would cost a full read of the slide.

Coordinates: CZI planes may start at a non-zero (x, y); level-0 pixel (0, 0) of the Slide is the
top-left corner of ``total_bounding_rectangle``. Scaling in CZI metadata is in metres per pixel.

Threads: each thread gets its own ``CziReader`` (own stream and cache); libCZI does not document a
shared reader as safe for concurrent reads, and separate readers still read in parallel.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from pylibCZIrw import czi as pyczi

from core.errors import SlideOpenError
from core.slides._base import plain_reason
from core.slides._cziscan import CziLayout, check_czi_structure
from core.slides._tiffmeta import plausible_mpp
from core.slides.channels import placeholder_names

__all__ = ["CziBackend", "CziInfo", "open_czi"]

_PIXEL_TYPES: dict[str, tuple[np.dtype, int]] = {
    "Gray8": (np.dtype(np.uint8), 1), "Gray16": (np.dtype(np.uint16), 1),
    "Bgr24": (np.dtype(np.uint8), 3), "Bgr48": (np.dtype(np.uint16), 3),
}  # fmt: skip
_CACHE = pyczi.CacheOptions(
    type=pyczi.CacheType.Standard, max_memory_usage=128 * 2**20, max_sub_block_count=64
)  # decoded sub-blocks per reader: a 256 px tile read no longer decodes its whole 1024 px sub-block
_MAX_AVERAGED_DOWNSAMPLE = 2
_SMALLEST_LEVEL = 1024


class CziInfo:
    """What :func:`open_czi` found: channel names, dtype and the file's own mpp."""

    def __init__(self, names: list[str], dtype: np.dtype, mpp: tuple[float, float] | None) -> None:
        self.names, self.dtype, self.mpp = names, dtype, mpp


class CziBackend:
    """Reads in-bounds rectangles of a virtual pyramid level from a CZI file."""

    def __init__(self, path: Path, reader: pyczi.CziReader, origin: tuple[int, int], size: tuple[int, int],
                 rgb: bool, dtype: np.dtype, layout: CziLayout) -> None:  # fmt: skip
        """``origin``/``size``: the plane's bounding rectangle in CZI pixels; ``rgb``: one BGR plane;
        ``layout``: sub-blocks whose headers are checked before libCZI reads them."""
        self._layout = layout
        self._path = str(path)
        self._dtype = dtype
        self._origin = origin
        self._rgb = rgb
        self._local = threading.local()
        self._local.reader = reader
        self._readers = [reader]
        self._lock = threading.Lock()
        w, h = size
        self.level_dimensions = [(w, h)]
        self.level_downsamples = [1.0]
        ds = 2
        while max(w, h) / (ds // 2) > _SMALLEST_LEVEL:
            self.level_dimensions.append((max(1, w // ds), max(1, h // ds)))
            self.level_downsamples.append(float(ds))
            ds *= 2

    def _reader(self) -> pyczi.CziReader:
        reader: pyczi.CziReader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = pyczi.CziReader(self._path, cache_options=_CACHE)
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    def _plane(
        self, reader: pyczi.CziReader, c: int, roi: tuple[int, int, int, int], zoom: float
    ) -> np.ndarray:
        """One C plane as (S, h, w); S=3 in RGB order for RGB files."""
        plane = {"C": c if not self._rgb else 0, "T": 0, "Z": 0}
        a = reader.read(plane=plane, roi=roi, zoom=zoom if zoom < 1.0 else None)
        a = np.moveaxis(a, -1, 0)
        return a[::-1] if self._rgb else a  # libCZI gives BGR

    def read(self, level: int, x: int, y: int, w: int, h: int, channels: list[int]) -> np.ndarray:
        reader = self._reader()
        ds = int(self.level_downsamples[level])
        ox, oy = self._origin
        roi = (ox + x * ds, oy + y * ds, w * ds, h * ds)
        self._layout.check_region(*roi)  # a damaged sub-block header must not reach libCZI (segfault)
        zoom = 1.0 if ds <= _MAX_AVERAGED_DOWNSAMPLE else 1.0 / ds
        planes = [0] if self._rgb else channels
        stack = np.concatenate([self._plane(reader, c, roi, zoom) for c in planes], axis=0)
        if self._rgb:
            stack = stack[channels]
        if zoom == 1.0 and ds > 1:
            c = stack.shape[0]
            sums = stack.reshape(c, h, ds, w, ds).sum(axis=(2, 4), dtype=np.uint32)
            stack = ((sums + ds * ds // 2) // (ds * ds)).astype(self._dtype)  # rounded mean
        elif stack.shape[1:] != (h, w):  # zoomed reads may be a pixel off
            out = np.zeros((stack.shape[0], h, w), dtype=stack.dtype)
            hh, ww = min(h, stack.shape[1]), min(w, stack.shape[2])
            out[:, :hh, :ww] = stack[:, :hh, :ww]
            stack = out
        return np.ascontiguousarray(stack)

    def close(self) -> None:
        """Close every thread's reader (readers of finished threads stay open until then)."""
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()


def _find(node: object, *keys: str) -> object:
    """``node[keys[0]][keys[1]]...`` of libCZI's metadata dict (parsed XML); None where a key is
    missing or a node on the way is not a dict."""
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _as_list(node: object) -> list[object]:
    """An XML element that may repeat: a list of them, one alone, or none."""
    if node is None:
        return []
    return list(node) if isinstance(node, list) else [node]


def _channel_names(meta: object, n: int) -> list[str] | None:
    image = _find(meta, "ImageDocument", "Metadata", "Information", "Image")
    channels = _as_list(_find(image, "Dimensions", "Channels", "Channel"))
    names = [str(ch.get("@Name") or ch.get("Name") or "").strip() for ch in channels if isinstance(ch, dict)]
    return names if len(names) == n and all(names) else None


def _mpp(meta: object) -> tuple[float, float] | None:
    """µm per pixel from ``Scaling/Items/Distance`` (CZI stores metres)."""
    items = _as_list(_find(meta, "ImageDocument", "Metadata", "Scaling", "Items", "Distance"))
    try:
        values = {d["@Id"]: float(d["Value"]) for d in items if isinstance(d, dict)}
    except (KeyError, TypeError, ValueError):
        return None
    x, y = values.get("X"), values.get("Y")
    if x is None or y is None:
        return None
    return plausible_mpp(x * 1e6, y * 1e6)


def open_czi(path: Path) -> tuple[CziBackend, CziInfo]:
    """Open a CZI slide. Raises :class:`SlideOpenError` with the reason.

    The structure is checked in pure Python first (:mod:`._cziscan`): libCZI crashes the process,
    rather than raising, on some damaged files.
    """
    layout = check_czi_structure(path)
    try:
        reader = pyczi.CziReader(str(path), cache_options=_CACHE)
    except Exception as exc:  # libCZI raises RuntimeError for damaged headers or directories
        raise SlideOpenError(path, f"the CZI file is damaged or incomplete and could not be read ({plain_reason(exc)}). "
                             "Copy it again or re-export it from ZEN.") from exc  # fmt: skip
    try:
        backend, info = _inspect(path, reader, layout)
    except SlideOpenError:
        reader.close()
        raise
    except Exception as exc:
        reader.close()
        raise SlideOpenError(path, f"the CZI file could not be read ({plain_reason(exc)}); it may be damaged. "
                             "Copy it again or re-export it from ZEN.") from exc  # fmt: skip
    return backend, info


def _inspect(path: Path, reader: pyczi.CziReader, layout: CziLayout) -> tuple[CziBackend, CziInfo]:
    box = reader.total_bounding_box
    extra = [f"{k}={hi - lo}" for k, (lo, hi) in box.items() if k not in ("X", "Y", "C") and hi - lo > 1]
    if extra:
        raise SlideOpenError(path, f"unsupported image axes: {', '.join(extra)} "
                             "(T = time points, Z = Z planes). "
                             "Only 2-D images with channels are supported; export a single time point and "
                             "Z plane (e.g. an extended-depth-of-focus image) from ZEN.")  # fmt: skip
    rect = reader.total_bounding_rectangle
    if rect.w <= 0 or rect.h <= 0:
        raise SlideOpenError(path, "the image is empty (0 x 0 pixels); there are no pixels to analyse.")
    lo, hi = box.get("C", (0, 1))
    n_planes = max(1, hi - lo)
    types = {reader.get_channel_pixel_type(c) for c in range(n_planes)}
    if len(types) != 1 or next(iter(types)) not in _PIXEL_TYPES:
        raise SlideOpenError(path, f"pixel type {', '.join(sorted(types))} is not supported; "
                             f"supported: {', '.join(_PIXEL_TYPES)}.")  # fmt: skip
    dtype, samples = _PIXEL_TYPES[next(iter(types))]
    rgb = samples == 3
    if rgb and n_planes != 1:
        raise SlideOpenError(path, "RGB CZI files with several channels are not supported.")
    meta = reader.metadata
    n = 3 if rgb else n_planes
    names = ["R", "G", "B"] if rgb else (_channel_names(meta, n) or placeholder_names(n))
    backend = CziBackend(path, reader, (rect.x, rect.y), (rect.w, rect.h), rgb, dtype, layout)
    return backend, CziInfo(names, dtype, _mpp(meta))
