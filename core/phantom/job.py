"""``generate_phantom``: the long job that writes a synthetic slide and its truth.

Order of work: geometry and cells for the whole slide (small), then blocks rendered on a thread
pool (numpy and scipy release the GIL) and stored per pyramid level in scratch files, then the
two OME-TIFFs written from those files on a writer thread while the job keeps yielding progress.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from shapely.geometry import mapping

from core.errors import CoreError
from core.phantom.cells import Cells, compartment_names, place_cells
from core.phantom.layout import Layout, build_layout
from core.phantom.params import (
    CD3_HI_THRESHOLD,
    CHANNELS,
    COMPARTMENTS,
    LABEL_RULE,
    THRESHOLDS,
    TYPES,
    VERSION,
    PhantomParams,
    lymphocyte_density,
)
from core.phantom.render import Renderer
from core.phantom.templates import build_bank
from core.phantom.vessels import place_vessels
from core.phantom.writer import LevelStore, level_shapes, write_ome
from core.progress import CancelToken, Progress


@dataclass(frozen=True)
class PhantomPaths:
    """Files of one phantom (all in the output directory)."""

    mif: Path
    hoechst: Path
    cells_csv: Path
    tumour_geojson: Path
    tissue_geojson: Path
    metadata_json: Path
    seconds: float
    megapixels: float


def _cells_frame(p: PhantomParams, cells: Cells, means: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(1, len(cells) + 1),
            "x_px": np.round(cells.x, 2),
            "y_px": np.round(cells.y, 2),
            "x_um": np.round(cells.x * p.mpp, 3),
            "y_um": np.round(cells.y * p.mpp, 3),
            "type": np.asarray(TYPES, dtype=object)[cells.type],
            "compartment": compartment_names(cells.compartment),
            "area_um2": np.round(cells.area_um2, 2),
            "mean_hoechst": np.round(means[:, 0], 1),
            "mean_fitc": np.round(means[:, 1], 1),
            "mean_cy3": np.round(means[:, 2], 1),
            "mean_af750": np.round(means[:, 3], 1),
        }
    )


def _feature(geom, name: str, cls: str, colour: list[int]) -> dict:
    return {
        "type": "Feature",
        "geometry": mapping(geom),
        "properties": {"objectType": "annotation", "classification": {"name": cls, "color": colour}, "name": name},
    }


def _write_truth(p: PhantomParams, lay: Layout, cells: Cells, means: np.ndarray, out: Path) -> dict:
    df = _cells_frame(p, cells, means)
    df.to_csv(out / "cells.csv", index=False)
    for fname, geom, name, cls, colour in (
        ("tumour.geojson", lay.tumour, "Tumour (truth)", "Tumor", [200, 0, 0]),
        ("tissue.geojson", lay.tissue, "Tissue (truth)", "Tissue", [0, 160, 0]),
    ):
        doc = {"type": "FeatureCollection", "features": [_feature(geom, name, cls, colour)]}
        (out / fname).write_text(json.dumps(doc))
    areas = {k: round(v, 6) for k, v in lay.comp.areas_mm2.items()}
    counts = {c: {t: int(((df.compartment == c) & (df.type == t)).sum()) for t in TYPES} for c in COMPARTMENTS}
    dens = {
        c: {t: (counts[c][t] / areas[c] if areas[c] > 0 else 0.0) for t in TYPES} for c in COMPARTMENTS
    }
    labelling: dict[str, object] = {"thresholds": THRESHOLDS, "cd3_hi_threshold": CD3_HI_THRESHOLD, "rule": LABEL_RULE}
    meta: dict[str, object] = {
        "synthetic": True,
        "generator": "HoechstScore phantom",
        "version": VERSION,
        "seed": p.seed,
        "size": p.size,
        "mpp": p.mpp,
        "params": p.to_json(),
        "channels": list(CHANNELS),
        "im_half_width_um": p.im_half_width,
        "areas_mm2": areas,
        "densities": dens,
        "counts": counts,
        "lymphocyte_density_target": {
            "tumour_centre": lymphocyte_density(p.infiltration_ct),
            "invasive_margin": lymphocyte_density(p.infiltration_im),
        },
        "labelling": labelling,
        "files": {"tissue": "tissue.geojson", "tumour": "tumour.geojson", "cells": "cells.csv"},
    }
    if p.realism != "clean":
        from core.phantom.realism import slide_style

        realism: dict[str, object] = {"style": p.realism, **slide_style(p.seed).to_json()}
        if p.nuclear_contrast is not None:
            realism["contrast"] = p.nuclear_contrast
        meta["realism"] = realism
        labelling["note"] = (
            "Real style: marker positives are dimmer than these thresholds and vary across the slide, "
            "so the rule does not recover 'type'; 'type' in cells.csv is the truth."
        )
    (out / "phantom.json").write_text(json.dumps(meta, indent=1))
    return meta


def generate_phantom(
    params: PhantomParams, out_dir: str | Path, cancel: CancelToken | None = None
) -> Generator[Progress, None, PhantomPaths]:
    """Write a phantom into ``out_dir`` (created); yields progress per block, returns the paths.

    Memory is bounded by a few blocks plus the cell table, whatever ``params.size``.
    """
    t0 = time.perf_counter()
    cancel = cancel or CancelToken()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = params
    bank = build_bank(p.seed, p.mpp)
    lay = build_layout(p)
    vessels = place_vessels(p.seed, p.mpp, lay)
    cells = place_cells(p, lay, bank, vessels)
    renderer = Renderer(p, lay, cells, bank, vessels)
    nb = renderer.nbx
    shapes = level_shapes(p.size)
    tile_rows = sum(-(-h // 256) for h, _ in shapes)
    total = nb * nb + tile_rows * (len(CHANNELS) + 1)
    yield Progress(0, total, "Drawing tissue and cells")
    means = np.zeros((len(cells), 4), np.float32)
    store = LevelStore(out, shapes, len(CHANNELS))
    try:
        jobs = [(bx, by) for by in range(nb) for bx in range(nb)]
        with ThreadPoolExecutor(max(1, p.threads)) as pool:
            pending = [pool.submit(renderer.render, *jobs[i]) for i in range(min(len(jobs), 2 * p.threads))]
            nxt = len(pending)
            for done in range(len(jobs)):
                res = pending.pop(0).result()
                if nxt < len(jobs):
                    pending.append(pool.submit(renderer.render, *jobs[nxt]))
                    nxt += 1
                cancel.check()
                store.put_block(res.bx * p.block_size, res.by * p.block_size, res.image)
                means[res.cell_ids] = res.means
                yield Progress(done + 1, total, f"Block {done + 1} of {len(jobs)}")
            for f in pending:
                f.cancel()
        meta_done = nb * nb
        yield from _write_files(p, store, out, cancel, meta_done, total)
    finally:
        store.close()
    _write_truth(p, lay, cells, means, out)
    yield Progress(total, total, "Done")
    seconds = time.perf_counter() - t0
    return PhantomPaths(
        mif=out / "mif.ome.tif",
        hoechst=out / "hoechst.ome.tif",
        cells_csv=out / "cells.csv",
        tumour_geojson=out / "tumour.geojson",
        tissue_geojson=out / "tissue.geojson",
        metadata_json=out / "phantom.json",
        seconds=seconds,
        megapixels=p.size * p.size / 1e6,
    )


def _write_files(p: PhantomParams, store: LevelStore, out: Path, cancel: CancelToken, start: int,
                 total: int) -> Generator[Progress, None, None]:
    """Write both OME-TIFFs on a thread, yielding progress (tile rows written) meanwhile."""
    done = [start]
    stop = threading.Event()
    errors: list[BaseException] = []

    def tick() -> None:
        done[0] += 1

    uid = json.dumps(p.to_json(), sort_keys=True)

    def work() -> None:
        try:
            write_ome(out / "mif.ome.tif", store, [0, 1, 2, 3], list(CHANNELS), p.mpp, p.compression, p.threads, tick, stop, uid)
            write_ome(out / "hoechst.ome.tif", store, [0], [CHANNELS[0]], p.mpp, p.compression, p.threads, tick, stop, uid)
        except BaseException as err:  # re-raised on the job's thread
            errors.append(err)

    th = threading.Thread(target=work, name="phantom-writer", daemon=True)
    th.start()
    while th.is_alive():
        th.join(0.25)
        if cancel.cancelled:
            stop.set()
        yield Progress(min(done[0], total), total, "Writing OME-TIFF")
    if cancel.cancelled:
        cancel.check()
    if errors:
        err = errors[0]
        raise CoreError(f"Cannot write the phantom slide in {out}: {err}") from err
