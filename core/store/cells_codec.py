"""Cells as column blobs: how an analysis's cell table is kept in the database.

Why blobs and not one row per cell: a slide has 10^5 to a few 10^6 cells and the store must
save and load them in well under 10 s. Measured with ``benchmarks/store_cells.py`` (1,000,000
cells, 2 cores shared with other jobs, so wall times are pessimistic):

=====================================  ==============  ==============
                                       SQLite (WAL)    PostgreSQL 15
=====================================  ==============  ==============
column blobs (this module): save/load  0.3-0.6/0.2 s   5.5/1.0 s
one row per cell, driver executemany   5.4/13 s        374/31 s
one row per cell, SQLAlchemy Core      13-23/10-15 s   132/32 s
=====================================  ==============  ==============

Rows are 20 to 100 times slower and nobody queries single cells in SQL (scores use the whole table
in pandas), so rows would buy nothing for their cost. A file beside the database was not an
option: it would leave the transaction, so a crash or a copied database could lose cells
silently.

Format of one chunk (up to :data:`CHUNK_CELLS` cells), little-endian whatever the machine::

    b"HSC2"  uint32 n   x_um f8[n]  y_um f8[n]  probability f8[n]  area_um2 f8[n]  class_id u1[n]
                        confidence f8[n]

Floats are kept as float64 so that what is loaded is exactly what was saved (41 bytes per cell).
Chunks written before cells had a confidence (``b"HSC1"``, the same without it) still load, with
confidence NaN (unknown).
Pixel coordinates are not stored: ``x_px = x_um / mpp_x`` with the slide's mpp, which the store
keeps with the slide. Each chunk row carries a CRC-32 of its blob, checked on load.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from core.classes import CLASS_NAMES
from core.errors import StoreError

CHUNK_CELLS = 100_000
MAGIC = b"HSC2"
#: Older chunk formats that still load: magic -> the stored columns it lacks.
_OLDER = {b"HSC1": ("confidence",)}
_HEADER = struct.Struct("<4sI")
#: Stored columns, in blob order, with their on-disk dtypes.
STORED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("x_um", "<f8"),
    ("y_um", "<f8"),
    ("probability", "<f8"),
    ("area_um2", "<f8"),
    ("class_id", "u1"),
    ("confidence", "<f8"),
)
#: Columns of the cell table load_cells returns (CONTRACTS.md "Cell table"), in this order.
CELL_COLUMNS = ("x_px", "y_px", "x_um", "y_um", "class_name", "class_id", "probability", "area_um2", "confidence")
#: Stored columns a cell table may lack (saved as NaN: unknown).
_OPTIONAL = ("confidence",)


def columns_from_frame(cells: pd.DataFrame, classes: Sequence[str] = CLASS_NAMES) -> dict[str, np.ndarray]:
    """The stored columns of a cell table as contiguous arrays of the on-disk dtypes.

    classes: the class table of the model that made the cells (index -> name; the paper's by
    default). Only ``class_id`` is stored, so a table whose ``class_name`` says another order is
    refused here rather than loaded later under the wrong names. Raises StoreError naming missing
    columns, class ids outside ``classes``, or a class name that does not match its id.
    """
    missing = [name for name, _ in STORED_COLUMNS if name not in cells.columns and name not in _OPTIONAL]
    if missing:
        raise StoreError(
            f"The cell table lacks column(s) {', '.join(missing)}; it needs "
            f"{', '.join(name for name, _ in STORED_COLUMNS)} (CONTRACTS.md 'Cell table')."
        )
    columns: dict[str, np.ndarray] = {}
    for name, dtype in STORED_COLUMNS:
        if name not in cells.columns:
            columns[name] = np.full(len(cells), np.nan, dtype=np.dtype(dtype))
            continue
        values = cells[name].to_numpy()
        if name == "class_id":
            ids = values.astype(np.int64, copy=False)
            bad = (ids < 0) | (ids >= len(classes))
            if bad.any():
                raise StoreError(
                    f"Cell class id {int(ids[bad][0])} is not one of 0..{len(classes) - 1} "
                    f"({', '.join(classes)})."
                )
            _check_names(cells, ids, classes)
            values = ids
        columns[name] = np.ascontiguousarray(values, dtype=np.dtype(dtype))
    return columns


def _check_names(cells: pd.DataFrame, ids: np.ndarray, classes: Sequence[str]) -> None:
    """StoreError when the table's class_name of some id is not ``classes[id]`` (one cell per id checked)."""
    if "class_name" not in cells.columns or not len(ids):
        return
    present, first = np.unique(ids, return_index=True)
    names = cells["class_name"].to_numpy()[first]
    for cid, name in zip(present.tolist(), names.tolist(), strict=True):
        if str(name) != classes[cid]:
            raise StoreError(
                f"Cell class id {cid} is {name!r} in the cell table but {classes[cid]!r} in the class table "
                f"({', '.join(classes)}). Save the cells with the class table of the model that made them "
                "(its card's classes)."
            )


def encode_chunks(columns: dict[str, np.ndarray]) -> Iterator[tuple[int, bytes, int]]:
    """Yields (n_cells, blob, crc32) for consecutive chunks of :data:`CHUNK_CELLS` cells."""
    total = len(columns["x_um"])
    for start in range(0, total, CHUNK_CELLS):
        stop = min(start + CHUNK_CELLS, total)
        parts = [_HEADER.pack(MAGIC, stop - start)]
        parts += [columns[name][start:stop].tobytes() for name, _ in STORED_COLUMNS]
        blob = b"".join(parts)
        yield stop - start, blob, zlib.crc32(blob)


def decode_chunks(chunks: list[tuple[int, bytes, int]], what: str) -> dict[str, np.ndarray]:
    """Stored columns from (n_cells, blob, crc32) chunks in order; StoreError if one is damaged.

    what: names the data in error messages, e.g. "analysis 12".
    """
    per_column: dict[str, list[np.ndarray]] = {name: [] for name, _ in STORED_COLUMNS}
    for index, (n_cells, blob, crc) in enumerate(chunks):
        blob = bytes(blob)  # PostgreSQL drivers give memoryview
        magic = blob[:4]
        lacks = _OLDER.get(magic, ())
        stored = [(name, d) for name, d in STORED_COLUMNS if name not in lacks]
        expected = _HEADER.size + n_cells * sum(np.dtype(d).itemsize for _, d in stored)
        header_ok = len(blob) >= _HEADER.size and _HEADER.unpack_from(blob) == (magic, n_cells)
        if zlib.crc32(blob) != crc or len(blob) != expected or not header_ok or (magic != MAGIC and not lacks):
            raise StoreError(
                f"The stored cells of {what} are damaged (chunk {index} fails its checksum). "
                "Restore the case database from a backup or run the analysis again."
            )
        offset = _HEADER.size
        for name, dtype in stored:
            array = np.frombuffer(blob, dtype=np.dtype(dtype), count=n_cells, offset=offset)
            per_column[name].append(array)
            offset += array.nbytes
        for name in lacks:
            per_column[name].append(np.full(n_cells, np.nan))
    return {
        name: np.concatenate(parts) if parts else np.empty(0, dtype=np.dtype(dtype))
        for (name, dtype), parts in zip(STORED_COLUMNS, per_column.values(), strict=True)
    }


def frame_from_columns(columns: dict[str, np.ndarray], mpp: tuple[float, float],
                       classes: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """The cell table (columns :data:`CELL_COLUMNS`) from stored columns, the slide's mpp and the
    class table of the model that made the cells (the paper's by default)."""
    class_id = columns["class_id"].astype(np.int64)
    if len(class_id) and int(class_id.max()) >= len(classes):
        raise StoreError(
            f"A stored cell has class id {int(class_id.max())} but the analysis's class table has "
            f"{len(classes)} classes ({', '.join(classes)})."
        )
    names = np.asarray(classes, dtype=object)[class_id]
    x_um = columns["x_um"].astype(np.float64, copy=False)
    y_um = columns["y_um"].astype(np.float64, copy=False)
    return pd.DataFrame(
        {
            "x_px": x_um / mpp[0],
            "y_px": y_um / mpp[1],
            "x_um": x_um,
            "y_um": y_um,
            "class_name": pd.array(names, dtype="str"),
            "class_id": class_id,
            "probability": columns["probability"].astype(np.float64, copy=False),
            "area_um2": columns["area_um2"].astype(np.float64, copy=False),
            "confidence": columns["confidence"].astype(np.float64, copy=False),
        },
        columns=list(CELL_COLUMNS),
    )
