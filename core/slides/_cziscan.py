"""Check a CZI file's structure in pure Python before libCZI sees it.

Why: libCZI trusts the numbers in the file. A sub-block directory entry claiming 2³¹−1 dimensions,
or a sub-block whose ``DataSize`` is −1 or 2⁴⁰, makes it read or allocate out of bounds and the
whole process dies with a segmentation fault (issue 14, row 1): the app closes and unsaved region
edits are lost. No ``try`` can catch that, so the numbers libCZI would trust are checked here first.

Decision: validate, do not isolate. The alternative, opening and reading every CZI in a worker
process, survives any crash but costs a process start per slide (about 0.3-0.5 s with NumPy and
libCZI imported) and a copy of every tile between processes (a 256² tile of 4 × uint16 channels is
0.5 MB), on every read, for every user, to protect against files that are almost always fine. The
check costs about 20 µs per directory entry at open (a 2,048-sub-block file: 44 ms, where libCZI's
own open takes 21 ms; a one-block file: 0.2 ms), and, because sub-block headers lie all over the
file, each sub-block's header is checked only when a read first touches it (:class:`CziLayout`;
about 60 µs per sub-block, once, against milliseconds to decode it). Measured on this 2-core
machine (``benchmarks/fuzz.py --czi-scan`` times the small case). The fuzz benchmark feeds mutated
CZIs to the real library in child processes to find what these checks still miss.

What is checked (CZI 1.2 segment layout; all integers little-endian): the file header and the
positions it points to; the sub-block directory (entry count, each entry's schema, dimension count,
dimension sizes, pixel type, compression, file position); each sub-block segment (its id, its own
copy of the directory entry, and metadata/data/attachment sizes that must fit in the file); the
metadata segment's sizes; the attachment directory's entry count.
"""

from __future__ import annotations

import io
import struct
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

from core.errors import SlideOpenError

__all__ = ["check_czi_structure", "CziLayout", "CziStructureError"]

_SEGMENT_HEADER = 32  # Id (16 bytes), AllocatedSize (int64), UsedSize (int64)
_DIRECTORY_HEADER = 128  # EntryCount (int32) + 124 reserved
_ENTRY_FIXED = 32  # DirectoryEntryDV without its dimension entries
_DIMENSION_ENTRY = 20
_MAX_DIMENSIONS = 16  # the CZI spec names 12 dimensions (X Y C Z T R I H V B S M)
_MAX_EXTENT = 2**31 - 1
_PIXEL_BYTES = {0: 1, 1: 2, 2: 4, 3: 3, 4: 6, 8: 12, 9: 4, 10: 8, 11: 24, 12: 4, 13: 8}  # PixelType -> bytes
_COMPRESSIONS = {0, 1, 2, 4, 5, 6}  # none, JPEG, LZW, JPEG XR, zstd0, zstd1
_KNOWN_DIMENSIONS = set(b"XYCZTRIHVBSM")


class CziStructureError(SlideOpenError):
    """The CZI file's structure is inconsistent; libCZI must not be given it."""


def _read(fh: BinaryIO, pos: int, n: int, size: int, what: str, path: Path) -> bytes:
    if pos < 0 or pos + n > size:
        raise CziStructureError(path, f"the CZI file is damaged: its {what} lies outside the file "
                                f"(byte {pos:,} of a {size:,}-byte file). Copy it again or re-export it from ZEN.")  # fmt: skip
    fh.seek(pos)
    data = fh.read(n)
    if len(data) < n:
        raise CziStructureError(path, f"the CZI file is damaged: its {what} runs past the end of its segment "
                                f"(byte {pos:,}). Copy it again or re-export it from ZEN.")  # fmt: skip
    return data


class _Window(io.BytesIO):
    """Bytes read from ``base`` onwards, addressed by file position (one read for the whole directory)."""

    def __init__(self, data: bytes, base: int) -> None:
        super().__init__(data)
        self.base = base

    def seek(self, pos: int, whence: int = 0) -> int:
        return super().seek(max(0, pos - self.base), whence)


def _segment_id(fh: BinaryIO, pos: int, size: int, expected: bytes, what: str, path: Path) -> tuple[int, int]:
    head = _read(fh, pos, _SEGMENT_HEADER, size, what, path)
    if head[:16].rstrip(b"\0") != expected:
        raise _bad(path, f"the {what} at byte {pos:,} is not a {expected.decode()} segment")
    allocated, used = struct.unpack_from("<qq", head, 16)
    if allocated < 0 or used < 0 or pos + _SEGMENT_HEADER + min(allocated, used) > size:
        raise _bad(path, f"the {what} at byte {pos:,} claims {allocated:,} bytes, beyond the end of the file")
    return allocated, used


def _bad(path: Path, what: str) -> CziStructureError:
    return CziStructureError(path, f"the CZI file is damaged: {what}. Copy it again or re-export it from ZEN.")


def _entry(fh: BinaryIO, pos: int, size: int, path: Path, where: str) -> tuple[int, int, int, int, int, tuple[int, int, int, int]]:
    """Check one DirectoryEntryDV at ``pos``.

    Returns (length, pixel type, file position, compression, uncompressed bytes, (x, y, w, h) in CZI pixels).
    """
    fixed = _read(fh, pos, _ENTRY_FIXED, size, where, path)
    if fixed[:2] != b"DV":
        raise _bad(path, f"{where} has schema {fixed[:2]!r}, not 'DV'")
    pixel_type, file_pos, file_part, compression = struct.unpack_from("<iqii", fixed, 2)
    (n_dims,) = struct.unpack_from("<i", fixed, 28)
    if not 1 <= n_dims <= _MAX_DIMENSIONS:
        raise _bad(path, f"{where} claims {n_dims:,} dimensions (at most {_MAX_DIMENSIONS} exist)")
    if pixel_type not in _PIXEL_BYTES:
        raise _bad(path, f"{where} has an unknown pixel type ({pixel_type})")
    if compression not in _COMPRESSIONS:
        raise _bad(path, f"{where} has an unknown compression ({compression})")
    if file_part != 0:
        raise _bad(path, f"{where} points into file part {file_part}; only single-file CZIs are supported")
    dims = _read(fh, pos + _ENTRY_FIXED, _DIMENSION_ENTRY * n_dims, size, where, path)
    extents: dict[int, int] = {}
    rect = [0, 0, 0, 0]
    for k in range(n_dims):
        name, start, extent, _, stored = struct.unpack_from("<4siifi", dims, _DIMENSION_ENTRY * k)
        letter = name[0]
        if letter not in _KNOWN_DIMENSIONS or name[1:].strip(b"\0"):
            raise _bad(path, f"{where} has an unknown dimension {name.rstrip(bytes(1))!r}")
        if extent < 0 or stored < 0 or extent > _MAX_EXTENT or abs(start) > 2**30:
            raise _bad(path, f"{where} has an impossible extent for dimension {chr(letter)} "
                       f"(start {start:,}, size {extent:,}, stored size {stored:,})")  # fmt: skip
        extents[letter] = stored if letter in b"XY" else 1
        if letter in b"XY":
            axis = 0 if letter == ord("X") else 1
            rect[axis], rect[axis + 2] = start, extent
    if not extents.get(ord("X")) or not extents.get(ord("Y")):
        raise _bad(path, f"{where} has no width or height")
    pixel_bytes = extents[ord("X")] * extents[ord("Y")] * _PIXEL_BYTES[pixel_type]
    return _ENTRY_FIXED + _DIMENSION_ENTRY * n_dims, pixel_type, file_pos, compression, pixel_bytes, (rect[0], rect[1], rect[2], rect[3])


def _subblock(fh: BinaryIO, pos: int, size: int, path: Path, index: int) -> None:
    where = f"image block {index + 1}"
    if pos < _SEGMENT_HEADER:
        raise _bad(path, f"{where} points into the file header (byte {pos:,})")
    _segment_id(fh, pos, size, b"ZISRAWSUBBLOCK", where, path)
    sizes = _read(fh, pos + _SEGMENT_HEADER, 16, size, where, path)
    meta, attach, data = struct.unpack("<iiq", sizes)
    length, _, _, compression, pixel_bytes, _ = _entry(fh, pos + _SEGMENT_HEADER + 16, size, path, f"the header of {where}")
    if meta < 0 or attach < 0 or data < 0:
        raise _bad(path, f"{where} has a negative size (metadata {meta:,}, data {data:,}, attachment {attach:,} bytes)")
    end = pos + _SEGMENT_HEADER + max(256, 16 + length) + meta + data + attach
    if end > size:
        raise _bad(path, f"{where} claims {data:,} bytes of pixels, running past the end of the file "
                   f"(to byte {end:,} of {size:,}); the file is truncated or corrupt")  # fmt: skip
    if compression == 0 and data < pixel_bytes:
        raise _bad(path, f"{where} holds {data:,} bytes but its {pixel_bytes:,} bytes of pixels are stored uncompressed")


class CziLayout:
    """The sub-blocks of a CZI whose directory passed :func:`check_czi_structure`, for checks on first read.

    A sub-block's own header is checked (:func:`_subblock`) the first time a read touches its
    rectangle: the directory is one contiguous read at open, but the sub-block headers are spread
    over the whole file (tens of thousands of seeks on a real slide).
    """

    def __init__(self, path: Path, size: int, positions: list[int], rects: list[tuple[int, int, int, int]]) -> None:
        self.path, self.size = path, size
        self.positions = np.asarray(positions, dtype=np.int64)
        r = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
        self.x0, self.y0, self.x1, self.y1 = r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]
        self.checked = np.zeros(len(positions), dtype=bool)
        self._lock = threading.Lock()

    def check_region(self, x: int, y: int, w: int, h: int) -> None:
        """Check every not yet checked sub-block overlapping [x, x+w) x [y, y+h) (CZI pixels)."""
        todo = ~self.checked & (self.x0 < x + w) & (self.x1 > x) & (self.y0 < y + h) & (self.y1 > y)
        if not todo.any():
            return
        with self._lock, self.path.open("rb") as fh:
            for i in np.flatnonzero(todo & ~self.checked):
                _subblock(fh, int(self.positions[i]), self.size, self.path, int(i))
                self.checked[i] = True


def check_czi_structure(path: Path) -> CziLayout:
    """Raise :class:`CziStructureError` (a :class:`SlideOpenError`) for a structurally damaged CZI.

    Checks the file header, the sub-block directory, the metadata and attachment directory now;
    returns the layout whose :meth:`CziLayout.check_region` checks sub-block headers before a read.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        header = _read(fh, 0, 112, size, "file header", path)
        if header[:16].rstrip(b"\0") != b"ZISRAWFILE":
            raise _bad(path, "the file header is missing")
        directory, metadata = struct.unpack_from("<qq", header, 84)
        (attachments,) = struct.unpack_from("<q", header, 104)
        if directory <= 0:
            raise _bad(path, "it has no image block directory (the file was not closed by the writer)")
        _, used = _segment_id(fh, directory, size, b"ZISRAWDIRECTORY", "image block directory", path)
        (count,) = struct.unpack("<i", _read(fh, directory + _SEGMENT_HEADER, 4, size, "image block directory", path))
        first = directory + _SEGMENT_HEADER + _DIRECTORY_HEADER
        if count < 0 or first + count * (_ENTRY_FIXED + 2 * _DIMENSION_ENTRY) > size:
            raise _bad(path, f"the image block directory claims {count:,} entries, more than the file can hold")
        fh.seek(first)
        window = _Window(fh.read(max(0, min(size, directory + _SEGMENT_HEADER + used) - first)), first)
        pos = first
        positions, rects = [], []
        for i in range(count):
            length, _, file_pos, _, _, rect = _entry(window, pos, size, path, f"directory entry {i + 1}")
            if file_pos < _SEGMENT_HEADER or file_pos + _SEGMENT_HEADER + 48 > size:
                raise _bad(path, f"directory entry {i + 1} points to byte {file_pos:,}, outside the file")
            positions.append(file_pos)
            rects.append(rect)
            pos += length
        if metadata:
            _segment_id(fh, metadata, size, b"ZISRAWMETADATA", "metadata", path)
            xml, att = struct.unpack("<ii", _read(fh, metadata + _SEGMENT_HEADER, 8, size, "metadata", path))
            if xml < 0 or att < 0 or metadata + _SEGMENT_HEADER + 256 + xml + att > size:
                raise _bad(path, f"its metadata claims {xml:,} bytes, running past the end of the file")
        if attachments:
            _segment_id(fh, attachments, size, b"ZISRAWATTDIR", "attachment directory", path)
            (n_att,) = struct.unpack("<i", _read(fh, attachments + _SEGMENT_HEADER, 4, size, "attachment directory", path))
            if n_att < 0 or attachments + _SEGMENT_HEADER + 256 + 128 * n_att > size:
                raise _bad(path, f"the attachment directory claims {n_att:,} entries, more than the file can hold")
    return CziLayout(path, size, positions, rects)
