"""Per-block checkpoints, so that an interrupted analysis resumes where it stopped.

Layout: ``<checkpoint_dir>/<key>/`` holds ``meta.json`` (what the key was made of, for people)
and one ``block-<row>.npz`` per finished block: the block's cells (model px, exact) and its rows of
the class raster. Written to a temporary name and renamed, so a crash never leaves half a block.
NumPy archives without pickles (loaded with ``allow_pickle=False``).

The key is the sha256 of the slide's fingerprint (:mod:`core.fingerprint`: size and sha256 of its
first and last MiB), the pixel size in use and the channel, the model's weights sha256 and precision, and the parameters that change
results (:meth:`AnalysisParams.result_key`) and the region. Any change starts a fresh directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.engine._extract import RawCells
from core.fingerprint import slide_fingerprint as fingerprint

_FIELDS = RawCells.FIELDS


def slide_fingerprint(path: Path) -> dict[str, Any]:
    """The slide's identity in a checkpoint key: :func:`core.fingerprint.slide_fingerprint` (content,
    not path or modification time: a moved slide resumes, a re-exported one starts afresh)."""
    sha256, size = fingerprint(path)
    return {"sha256": sha256, "size": size}


def checkpoint_key(ingredients: dict[str, Any]) -> str:
    text = json.dumps(ingredients, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class Checkpoint:
    """Finished blocks of one analysis under ``root/<key>/``; ``root`` None = no checkpointing."""

    def __init__(self, root: Path | None, ingredients: dict[str, Any]) -> None:
        self.key = checkpoint_key(ingredients)
        self.dir = None if root is None else Path(root) / self.key
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = self.dir / "meta.json"
            if not meta.exists():
                meta.write_text(json.dumps(ingredients, indent=2, sort_keys=True, default=str), encoding="utf-8")

    def _path(self, row: int) -> Path:
        assert self.dir is not None
        return self.dir / f"block-{row:06d}.npz"

    def done_rows(self) -> set[int]:
        if self.dir is None:
            return set()
        return {int(p.stem.split("-")[1]) for p in self.dir.glob("block-*.npz")}

    def save(self, row: int, cells: RawCells, raster: np.ndarray) -> None:
        if self.dir is None:
            return
        final = self._path(row)
        tmp = final.with_name(final.stem + ".tmp.npz")
        np.savez(tmp, raster=raster, **{n: getattr(cells, n) for n in _FIELDS})
        os.replace(tmp, final)

    def load(self, row: int) -> tuple[RawCells, np.ndarray]:
        with np.load(self._path(row), allow_pickle=False) as z:
            cells = RawCells(*(z[n] for n in _FIELDS))
            return cells, z["raster"]
