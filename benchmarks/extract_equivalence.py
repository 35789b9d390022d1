"""Cell extraction, old against new: the same cells from the same class maps, and how long each takes.

``record`` runs a whole analysis and saves every tile's class map and probability, every block's
call of :func:`core.engine._extract.extract_block` and its cells, and the final cell table. Run it
with the code to compare against (e.g. ``git archive main | tar -x -C /tmp/old`` and
``PYTHONPATH=/tmp/old``). ``check`` runs the current ``extract_block`` on the saved inputs, requires
every block's cells to be exactly equal, and times both per block (``--old`` imports the old
module from a source tree). ``analyse`` reruns the whole analysis and compares the cell table.

    PYTHONPATH=/tmp/old python benchmarks/extract_equivalence.py record --slide S --out /tmp/ref [--model DIR]
    PYTHONPATH=. python benchmarks/extract_equivalence.py check --ref /tmp/ref [--old /tmp/old] [--rounds 3]
    PYTHONPATH=. python benchmarks/extract_equivalence.py analyse --ref /tmp/ref [--workers 2]

``--model`` omitted: the instant stand-in (speed only); a model directory runs at fp32 with torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from core.engine import _extract
from core.engine.params import AnalysisParams
from core.models.card import load_card
from core.models.runtime import LoadedModel, default_model_dir, load_model
from core.progress import run_to_completion
from core.slides import open_slide

RAW = _extract.RawCells.FIELDS


def _model(model_dir: Path | None) -> LoadedModel:
    from core.engine.standin import standin_model

    if model_dir is None:
        return standin_model(load_card(default_model_dir()))
    return load_model(model_dir, device="cpu", precision="fp32")


def _analyse(slide_path: Path, model_dir: Path | None, params: AnalysisParams) -> pd.DataFrame:
    from core.engine.analyse import analyse_slide

    with open_slide(slide_path) as slide:
        return run_to_completion(analyse_slide(slide, _model(model_dir), params)).cells


def record(args: argparse.Namespace) -> None:
    """Analyse the slide with the code on PYTHONPATH, saving each block's inputs and cells."""
    import core.engine.analyse as analyse_mod

    calls: list[dict[str, Any]] = []
    tiles: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    original = analyse_mod.extract_block

    def recording(t: Any, row: int, grid_shape: Any, keep: int, min_px: int, max_px: int, split: Any) -> Any:
        out = original(t, row, grid_shape, keep, min_px, max_px, split)
        tiles.update(t)
        calls.append({"row": row, "grid_shape": list(grid_shape), "keep": keep, "min_px": min_px,
                      "max_px": max_px, "split": dataclasses.asdict(split), "tiles": sorted(map(list, t)),
                      "cells": {f: getattr(out, f) for f in RAW}})
        return out

    analyse_mod.extract_block = recording
    try:
        cells = _analyse(args.slide, args.model, AnalysisParams(extract_workers=0))
    finally:
        analyse_mod.extract_block = original
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted(tiles)
    np.savez_compressed(out / "tiles.npz", keys=np.array(keys, dtype=np.int64),
                        labels=np.stack([tiles[k][0] for k in keys]), probs=np.stack([tiles[k][1] for k in keys]))
    arrays = {f"{i}_{f}": c["cells"][f] for i, c in enumerate(calls) for f in RAW}
    np.savez_compressed(out / "blocks.npz", **arrays)
    meta = [{k: v for k, v in c.items() if k != "cells"} for c in calls]
    (out / "blocks.json").write_text(json.dumps({"slide": str(args.slide), "model": str(args.model or ""),
                                                 "blocks": meta}))
    cells.to_csv(out / "cells.csv", index=False)
    print(f"recorded {len(calls)} blocks, {len(keys)} tiles, {len(cells)} cells in {out}")


def _load(ref: Path) -> tuple[dict[str, Any], dict[tuple[int, int], tuple[np.ndarray, np.ndarray]], Any]:
    meta = json.loads((ref / "blocks.json").read_text())
    with np.load(ref / "tiles.npz") as z:
        tiles = {(int(r), int(c)): (lab, pr) for (r, c), lab, pr in zip(z["keys"], z["labels"], z["probs"], strict=True)}
    return meta, tiles, np.load(ref / "blocks.npz")


def _old_module(tree: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_extract", tree / "core" / "engine" / "_extract.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_extract"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


def _run_blocks(mod: ModuleType, meta: dict[str, Any], tiles: dict[Any, Any]) -> tuple[list[Any], float]:
    """Every recorded block through ``mod.extract_block``: the cells and the CPU seconds (this
    thread's, so other programs' load does not count)."""
    outs = []
    t0 = time.thread_time()
    for b in meta["blocks"]:
        need = {(r, c): tiles[(r, c)] for r, c in b["tiles"]}
        outs.append(mod.extract_block(need, b["row"], tuple(b["grid_shape"]), b["keep"], b["min_px"], b["max_px"],
                                      mod.Split(**b["split"])))
    return outs, time.thread_time() - t0


def check(args: argparse.Namespace) -> None:
    """Current ``extract_block`` on the recorded inputs: equal cells, and ms per tile."""
    meta, tiles, saved = _load(args.ref)
    outs, _ = _run_blocks(_extract, meta, tiles)
    bad = [i for i, out in enumerate(outs) for f in RAW if not np.array_equal(getattr(out, f), saved[f"{i}_{f}"])]
    n_cells = sum(len(o.cx) for o in outs)
    print(f"{len(outs)} blocks, {n_cells} cells: " + ("IDENTICAL" if not bad else f"DIFFERENT in blocks {sorted(set(bad))}"))
    contenders: list[tuple[str, Callable[[], float]]] = [("new", lambda: _run_blocks(_extract, meta, tiles)[1])]
    if args.old is not None:
        old = _old_module(args.old)
        contenders.append(("old", lambda: _run_blocks(old, meta, tiles)[1]))
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(args.rounds):  # interleaved, so both see the same load
        for name, fn in contenders:
            times[name].append(1000 * fn() / len(tiles))
    for name, ts in times.items():
        print(f"{name}: extraction {min(ts):.3f} CPU ms/tile best, {statistics.median(ts):.3f} median of {len(ts)} "
              f"(load {os.getloadavg()[0]:.2f})")
    if bad:
        sys.exit(1)


def analyse(args: argparse.Namespace) -> None:
    """Rerun the whole analysis with the current code; the cell table must equal the recorded one."""
    meta = json.loads((args.ref / "blocks.json").read_text())
    model = Path(meta["model"]) if meta["model"] else None
    ref = pd.read_csv(args.ref / "cells.csv")
    params = AnalysisParams(extract_workers=args.workers, batch_size=args.batch_size)
    cells = _analyse(Path(meta["slide"]), model, params)
    cells.to_csv(args.ref / "cells-now.csv", index=False)
    now = pd.read_csv(args.ref / "cells-now.csv")  # the same CSV round trip as the reference
    same = ref.shape == now.shape and ref.equals(now)
    print(f"{len(now)} cells now, {len(ref)} recorded: {'IDENTICAL' if same else 'DIFFERENT'}")
    if not same:
        sys.exit(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("record")
    p.add_argument("--slide", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the instant stand-in)")
    p.set_defaults(func=record)
    p = sub.add_parser("check")
    p.add_argument("--ref", type=Path, required=True)
    p.add_argument("--old", type=Path, default=None, help="source tree of the old code, to time it too")
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(func=check)
    p = sub.add_parser("analyse")
    p.add_argument("--ref", type=Path, required=True)
    p.add_argument("--workers", type=int, default=2, help="extraction workers")
    p.add_argument("--batch-size", type=int, default=5)
    p.set_defaults(func=analyse)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
