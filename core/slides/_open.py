"""``open_slide``: recognise a file by its content and open it with the right backend.

The first bytes decide, not the extension: a ``.tif`` that is really a text file, or a CZI renamed
``.tif``, must give a clear message or just work. TIFF and BigTIFF (both byte orders) go to
:mod:`._tiff` (OME-TIFF, SVS, ImageJ, generic), ``ZISRAWFILE`` to :mod:`._czi`.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.errors import SlideOpenError
from core.slides._base import Slide, SlideBackend
from core.slides.channels import merge_aliases

__all__ = ["open_slide"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_CZI_MAGIC = b"ZISRAWFILE"
_OTHER_MAGIC = {
    b"\x89PNG": "a PNG picture", b"\xff\xd8\xff": "a JPEG picture", b"PK\x03\x04": "a ZIP archive",
    b"%PDF": "a PDF document", b"\x89HDF": "an HDF5 file", b"BM": "a BMP picture",
}  # fmt: skip
_SUPPORTED = "OME-TIFF, SVS, pyramidal TIFF, ImageJ TIFF and Zeiss CZI"


def _describe(head: bytes) -> str:
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return what
    if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "text"
    return "not an image format we recognise"


def _check_mpp(path: Path, mpp: float | Sequence[float] | None) -> tuple[float, float] | None:
    if mpp is None:
        return None
    pair = (mpp, mpp) if isinstance(mpp, int | float) else tuple(mpp)
    if len(pair) != 2 or not all(isinstance(v, int | float) and math.isfinite(v) and v > 0 for v in pair):
        raise SlideOpenError(path, f"the pixel size {mpp!r} is not valid; give (x, y) in µm per pixel, "
                             "two positive numbers such as (0.227, 0.227).")  # fmt: skip
    return (float(pair[0]), float(pair[1]))


def open_slide(
    path: str | os.PathLike[str],
    mpp: float | tuple[float, float] | None = None,
    channel_aliases: Mapping[str, Sequence[str]] | None = None,
) -> Slide:
    """Open a slide file of any supported format.

    ``mpp``: (x, y) µm per level-0 pixel; overrides the file's pixel size (for uncalibrated
    files). ``channel_aliases``: role -> channel names, replacing the defaults of those roles
    (see :data:`core.slides.CHANNEL_ALIASES`). Raises :class:`~core.errors.SlideOpenError`.
    """
    p = Path(path)
    override = _check_mpp(p, mpp)
    if not p.exists():
        raise SlideOpenError(p, f"the file does not exist ({p}). Check the path; was the file moved, "
                             "renamed, or is its drive disconnected?")  # fmt: skip
    if p.is_dir():
        raise SlideOpenError(p, f"{p} is a folder, not a slide file. Choose the slide file inside it.")
    try:  # a named pipe or device "called .tif" would block the first read forever
        regular = stat.S_ISREG(p.stat().st_mode)
    except OSError as exc:
        raise SlideOpenError(p, f"the file cannot be read ({exc.strerror}). Check that you may read "
                             "it and that its drive is connected.") from exc  # fmt: skip
    if not regular:
        raise SlideOpenError(p, f"{p} is not a regular file (it is a pipe, socket or device). "
                             "Choose the slide file itself.")  # fmt: skip
    try:
        with p.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise SlideOpenError(p, f"the file cannot be read ({exc.strerror}). Check that you may read "
                             "it and that its drive is connected.") from exc  # fmt: skip
    if not head:
        raise SlideOpenError(p, "the file is empty (0 bytes); the copy or export failed. Copy it again.")
    backend: SlideBackend
    if head[:4] in _TIFF_MAGIC:
        from core.slides._tiff import open_tiff

        backend, info = open_tiff(p)
        fmt, names, dtype, file_mpp = info.format, info.names, info.dtype, info.mpp
    elif head.startswith(_CZI_MAGIC):
        from core.slides._czi import open_czi

        backend, czi_info = open_czi(p)
        fmt, names, dtype, file_mpp = "czi", czi_info.names, czi_info.dtype, czi_info.mpp
    else:
        raise SlideOpenError(p, f"the file is {_describe(head)}, not a slide image. Supported formats: "
                             f"{_SUPPORTED}. Check that you chose the right file.")  # fmt: skip
    return Slide(p, fmt, backend, names, dtype, override or file_mpp, merge_aliases(channel_aliases))
