"""One case of a cohort, as a worker runs it: analyse the slide, score it, write its folder.

The folder ``OUT/<case_id>/`` gets the files ``python -m core analyse`` writes (cells.csv,
cells.geojson, summary.json, class_map.png) and, with regions, the ``scores.json`` that
``python -m core score`` writes, through the same core calls. ``done.json`` is written last: it
names the case's key (:func:`case_key`), so a re-run with the same slide file, model and settings
skips the case, and anything else runs it again. An interrupted case resumes from the engine's
checkpoint in ``OUT/<case_id>/.checkpoint``.

A worker process keeps one loaded model per (model folder, device, precision) for its lifetime
(:func:`worker_model`): loading it per slide would cost more than a small slide's analysis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core.cohort.manifest import CohortCase
from core.engine.params import AnalysisParams
from core.errors import CoreError
from core.jsontypes import JSONDict, JSONValue
from core.regions import DEFAULT_IM_HALF_WIDTH_UM

if TYPE_CHECKING:  # imported in the worker, where a case runs
    from core.models.runtime import LoadedModel
    from core.regions import RegionSet

log = logging.getLogger(__name__)

DONE = "done.json"
#: Files a case writes besides DONE (the engine's checkpoint lives in ``.checkpoint`` until done).
#: The engine's tissue outline, once ``write_analysis`` writes it (a "Tissue" region).
TISSUE = "tissue.geojson"
OUTPUTS = ("cells.csv", "cells.geojson", TISSUE, "summary.json", "class_map.png", "scores.json", "store_extras.json")
#: Bump when a change in this module makes earlier case folders invalid.
COHORT_VERSION = 1


@dataclass(frozen=True)
class CohortSettings:
    """How every case of a cohort is analysed and scored (the same for all, part of each case key).

    model_dir: model folder; model_sha256: its weights' sha256 (from the card, so the key is
    known without loading the model); device/precision: as ``load_model`` (None: chosen on each
    worker); reference_csv: the cohort the scores rank against; im_half_width_um: IM half-width
    when CT/IM are derived from a tumour outline; runtime: the CPU inference runtime, as
    ``core analyse --runtime`` (its "auto" default too, so that a cohort case equals a per-slide
    run of the same slide to the last digit: ONNX Runtime and PyTorch agree on the classes, not on
    every last bit of the probabilities).
    """

    model_dir: Path
    model_sha256: str
    reference_csv: Path | None
    params: AnalysisParams = AnalysisParams()
    device: str | None = None
    precision: str | None = None
    im_half_width_um: float = DEFAULT_IM_HALF_WIDTH_UM
    runtime: str = "auto"


def _file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def case_key(case: CohortCase, settings: CohortSettings) -> str:
    """What makes a case's results: slide file identity, regions, model, settings (sha256, 24 hex)."""
    from core.errors import SlideError
    from core.fingerprint import slide_fingerprint

    try:
        slide: Mapping[str, object] = slide_fingerprint(case.slide).to_dict()
    except SlideError:  # unreadable now: the case fails with its own message; its key still names it
        slide = {"path": str(Path(case.slide).resolve()), "unreadable": True}
    ingredients = {
        "cohort_version": COHORT_VERSION,
        "slide": slide,
        "mpp": case.mpp,
        "regions_sha256": _file_sha256(case.regions),
        "model_sha256": settings.model_sha256,
        "device": settings.device,
        "precision": settings.precision,
        "runtime": settings.runtime,
        "params": settings.params.result_key(),
        "im_half_width_um": settings.im_half_width_um,
        "reference_sha256": None if settings.reference_csv is None else _file_sha256(settings.reference_csv),
    }
    text = json.dumps(ingredients, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def read_done(folder: Path) -> JSONDict | None:
    """The case's done marker, or None when missing or unreadable (the case then runs again)."""
    try:
        data: JSONValue = json.loads((folder / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(folder: Path, key: str) -> bool:
    """Whether the case in ``folder`` finished with this key (same slide, model and settings)."""
    done = read_done(folder)
    return done is not None and done.get("key") == key


@lru_cache(maxsize=2)
def worker_model(model_dir: str, device: str | None, precision: str | None, runtime: str = "auto",
                 threads: int | None = None) -> LoadedModel:
    """The model, loaded once per worker process (and per folder/device/precision/runtime)."""
    from core.models.inference import load_for_inference

    return load_for_inference(Path(model_dir), _worker_device(device), precision, runtime, threads)


def _worker_device(device: str | None) -> str | None:
    """With several GPUs, worker n of a LocalCluster takes GPU n mod count (one worker per GPU)."""
    import torch

    if device not in (None, "cuda") or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    try:
        from distributed import get_worker

        index = int(get_worker().name)
    except (ImportError, ValueError, TypeError):
        return device
    return f"cuda:{index % torch.cuda.device_count()}"


def case_regions(case: CohortCase, folder: Path, mpp: tuple[float, float], size_px: Sequence[int]
                 ) -> RegionSet | None:
    """The case's regions (RegionSet, slide µm, clipped to the slide) as ``core score`` reads them:
    the manifest's file plus, when the engine wrote one into the case folder, ``tissue.geojson``
    (the tissue it found, which clips the derived IM). None when the case has no regions file."""
    from core.regions import RegionSet, read_regions_geojson

    if case.regions is None:
        return None
    bounds = (size_px[0] * mpp[0], size_px[1] * mpp[1])
    found = []
    for path in (case.regions, folder / TISSUE):
        if path == folder / TISSUE and not path.is_file():
            continue
        imported = read_regions_geojson(path, mpp, bounds_um=bounds)
        for warning in imported.warnings:
            log.warning("%s: %s", path.name, warning)
        found += imported.regions
    return RegionSet(found, bounds_um=bounds)


def _analyse(case: CohortCase, folder: Path, settings: CohortSettings) -> JSONDict:
    import pandas as pd

    from core.case import jsonable
    from core.engine import analyse_slide
    from core.engine.export import write_analysis
    from core.progress import run_to_completion
    from core.report.qc import analysis_summary_extras
    from core.scores import ReferenceCohort, score_case
    from core.slides import open_slide

    model = worker_model(str(settings.model_dir), settings.device, settings.precision, settings.runtime,
                         settings.params.torch_threads)
    checkpoint = folder / ".checkpoint"
    with open_slide(case.slide, mpp=case.mpp) as slide:
        mpp = slide.require_mpp()
        size = slide.dimensions
        if case.regions is not None:  # read before the long analysis: a bad file fails at once
            case_regions(case, folder, mpp, size)
        result = run_to_completion(analyse_slide(slide, model, settings.params, checkpoint_dir=checkpoint))
    write_analysis(result, folder, mpp, model.card.class_colours)
    # What a stored analysis carries beyond summary.json (model card, tissue mask for the report),
    # for the driver's merge into the case store (core.cohort.store).
    extras = jsonable(analysis_summary_extras(result, model.card))
    (folder / "store_extras.json").write_text(json.dumps(extras) + "\n", encoding="utf-8")
    regions = case_regions(case, folder, mpp, size)
    if regions is not None:
        # Scored from the cells.csv just written, as `core score --cells` would read it, so the
        # scores equal a per-slide `analyse` + `score` run to the last digit.
        cells = pd.read_csv(folder / "cells.csv")
        scores = score_case(cells, regions, None if settings.reference_csv is None else ReferenceCohort.from_csv(settings.reference_csv),
                            im_half_width_um=settings.im_half_width_um, model_name=model.card.name,
                            model_sha256=model.card.weights_sha256)
        text = json.dumps(scores.to_dict(), indent=2, ensure_ascii=False) + "\n"
        (folder / "scores.json").write_text(text, encoding="utf-8")
    shutil.rmtree(checkpoint, ignore_errors=True)
    return {"mpp": list(mpp), "size_px": list(size), "device": str(model.device), "precision": model.precision}


def run_case(case: CohortCase, out_dir: str | Path, settings: CohortSettings) -> JSONDict:
    """Analyse and score one case into ``out_dir/<case_id>/`` (a Dask task; never raises for a bad slide).

    Returns the outcome: ``status`` "done", "skipped" (finished before with the same key) or
    "failed" with ``error`` (the message, naming the case). A failed case writes no done marker,
    so the next run tries it again.
    """
    folder = Path(out_dir) / case.case_id
    key = case_key(case, settings)
    outcome: JSONDict = {"case_id": case.case_id, "key": key, "worker_pid": os.getpid()}
    if is_done(folder, key):
        return {**outcome, "status": "skipped"}
    folder.mkdir(parents=True, exist_ok=True)
    for name in (DONE, *OUTPUTS):  # an earlier run's files (e.g. scores from since-removed regions) go
        (folder / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        info = _analyse(case, folder, settings)
    except CoreError as err:
        return {**outcome, "status": "failed", "error": f"{case.case_id}: {err}"}
    except Exception as err:  # noqa: BLE001 - one broken slide must not stop the cohort
        log.exception("case %s failed", case.case_id)
        return {**outcome, "status": "failed", "error": f"{case.case_id}: {type(err).__name__}: {err}"}
    seconds = time.perf_counter() - t0
    done: dict[str, object] = {  # JSON with str() of anything else (json.dumps(default=str) below)
        "key": key, "case": {**dataclasses.asdict(case), "slide": str(case.slide),
                             "regions": None if case.regions is None else str(case.regions)},
        "model_dir": str(settings.model_dir), "model_sha256": settings.model_sha256,
        "params": dataclasses.asdict(settings.params), "reference_csv": None if settings.reference_csv is None else str(settings.reference_csv),
        "im_half_width_um": settings.im_half_width_um, "seconds": seconds, **info,
    }
    tmp = folder / (DONE + ".tmp")
    tmp.write_text(json.dumps(done, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, folder / DONE)  # last: a case is done only when every file is written
    return {**outcome, "status": "done", "seconds": seconds}
