"""Per-block checkpoints, so that an interrupted analysis resumes where it stopped.

Layout: ``<checkpoint_dir>/<key>/`` holds ``meta.json`` (what the key was made of, for people)
and one ``block-<row>.npz`` per finished block: the block's cells (model px, exact) and its rows of
the class raster. Written to a temporary name and renamed, so a crash never leaves half a block.
NumPy archives without pickles (loaded with ``allow_pickle=False``).

A crash can still leave debris, and a disk can hand back garbage, so reading is defensive: the
temporary name (``.block-<row>.<pid>.tmp``) starts with a dot and has no ``.npz`` suffix, so it never
matches a block; temporaries older than :data:`STALE_TMP_S` are removed (a younger one may be a
concurrent run's write in progress); only names of the exact form ``block-NNNNNN.npz`` count; and
each block is opened and checked (fields, lengths, raster shape) before the run trusts it. A block
that fails is deleted with a warning and computed again, so a damaged checkpoint costs time, never
the analysis.

The key is the sha256 of the slide's fingerprint (:mod:`core.fingerprint`: size and sha256 of its
first and last MiB), the pixel size in use and the channel, the model's weights sha256 and precision,
and the parameters that change
results (:meth:`AnalysisParams.result_key`) and the region. Any change starts a fresh directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from core.engine._extract import RawCells

log = logging.getLogger(__name__)

_FIELDS = RawCells.FIELDS
_BLOCK = re.compile(r"block-(\d{6})\.npz")
#: Seconds after which a temporary block file is taken as a dead run's leftover and removed.
STALE_TMP_S = 120.0


def checkpoint_key(ingredients: Mapping[str, object]) -> str:
    text = json.dumps(ingredients, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class Checkpoint:
    """Finished blocks of one analysis under ``root/<key>/``; ``root`` None = no checkpointing."""

    def __init__(self, root: Path | None, ingredients: Mapping[str, object]) -> None:
        self.key = checkpoint_key(ingredients)
        self.dir = None if root is None else Path(root) / self.key
        self._loaded: dict[int, tuple[RawCells, np.ndarray]] = {}
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = self.dir / "meta.json"
            if not meta.exists():
                meta.write_text(json.dumps(ingredients, indent=2, sort_keys=True, default=str), encoding="utf-8")

    def _path(self, row: int) -> Path:
        assert self.dir is not None
        return self.dir / f"block-{row:06d}.npz"

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files left by a killed run (this layout's and the old ``*.tmp.npz``)."""
        assert self.dir is not None
        now = time.time()
        for p in [*self.dir.glob(".block-*.tmp"), *self.dir.glob("block-*.tmp.npz")]:
            try:
                if now - p.stat().st_mtime > STALE_TMP_S or p.name.endswith(".tmp.npz"):
                    p.unlink()
            except OSError:  # gone already, or not ours to delete: it is ignored either way
                pass

    def _read(self, path: Path, raster_shape: tuple[int, int] | None) -> tuple[RawCells, np.ndarray]:
        """One block, checked: every field present, 1-D, equally long; the raster 2-D (and shaped)."""
        with np.load(path, allow_pickle=False) as z:
            arrays = {n: np.asarray(z[n]) for n in (*_FIELDS, "raster")}
        lengths = {arrays[n].shape for n in _FIELDS}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1:
            raise ValueError(f"cell fields of unequal shape {sorted(lengths)}")
        raster = arrays.pop("raster")
        if raster.ndim != 2 or (raster_shape is not None and raster.shape != tuple(raster_shape)):
            raise ValueError(f"raster of shape {raster.shape}, expected {raster_shape}")
        return RawCells(*(arrays[n] for n in _FIELDS)), raster

    def done_rows(self, raster_shape: tuple[int, int] | None = None) -> set[int]:
        """Rows whose block file exists and reads back whole; damaged ones are deleted (warning).

        ``raster_shape``: the (rows, cols) each block's class raster must have, when known. The
        blocks read here are kept for :meth:`load`, so a resume reads each file once.
        """
        if self.dir is None:
            return set()
        self._remove_stale_temporaries()
        self._loaded = {}
        for p in sorted(self.dir.glob("block-*.npz")):
            m = _BLOCK.fullmatch(p.name)
            if m is None:
                continue  # not a name this code writes: ignored, never parsed
            try:
                self._loaded[int(m.group(1))] = self._read(p, raster_shape)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                log.warning("Checkpoint block %s is unreadable (%s); it will be computed again.", p, err)
                try:
                    p.unlink()
                except OSError:
                    pass
        return set(self._loaded)

    def save(self, row: int, cells: RawCells, raster: np.ndarray) -> None:
        if self.dir is None:
            return
        final = self._path(row)
        tmp = self.dir / f".block-{row:06d}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, raster=raster, **{n: getattr(cells, n) for n in _FIELDS})
        os.replace(tmp, final)

    def load(self, row: int) -> tuple[RawCells, np.ndarray]:
        """A block :meth:`done_rows` found whole (read again if it was not kept)."""
        kept = self._loaded.pop(row, None)
        return kept if kept is not None else self._read(self._path(row), None)
