"""The headless demo: a synthetic slide through the whole pipeline to a stored case and a PDF report.

``run_demo_case`` makes sure the demo phantom exists (generated once into the user's data folder
and re-used), loads the demo model, analyses the Hoechst slide, derives CT and IM from the
phantom's tumour outline (IM half-width as recorded in ``phantom.json``, clipped to the phantom's
tissue outline), scores against the demo reference cohort, stores the case and writes
``report.pdf``, ``scores.json``, ``regions.geojson`` and ``cells.csv``.

Re-running gives the same report bytes. The choice: the demo case is *re-used*, not re-created.
Its accession is fixed (``DEMO-<size>-<seed>``); a finished analysis of the same slide with the
same model and parameters is re-used (``reanalyse=True`` runs it again); regions, scores and the
report are written only when they differ from what is stored. The dates the report prints come
from the store (case created, analysis finished, last change) and so stay the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from core.case import jsonable, jsonable_dict
from core.errors import CoreError, StoreError
from core.jsontypes import JSONDict, JSONMapping, as_float, as_int, as_mapping
from core.progress import CancelToken, Progress
from core.report import ReportSettings, render_report
from core.resources import demo_cohort_csv, demo_model_dir

if TYPE_CHECKING:
    import pandas as pd

    from core.engine import AnalysisParams
    from core.engine.summary import AnalysisSummary
    from core.regions import RegionSet
    from core.scores import CaseScores
    from core.store import CaseRecord, CaseStore, SlideRecord

DEFAULT_SIZE = 4096
DEFAULT_SEED = 7
DEMO_COHORT = demo_cohort_csv()
DEMO_MODEL = demo_model_dir()
#: Demo cases are named DEMO-<size>-<seed>; only they are scored against the SYNTHETIC demo cohort.
DEMO_ACCESSION_PREFIX = "DEMO-"
DEMO_SETTINGS = ReportSettings(lab_name="HoechstScore demonstration laboratory",
                               lab_address="Synthetic data – for demonstration and training only")
_SLIDE_FILES = ("hoechst.ome.tif", "mif.ome.tif", "cells.csv", "tumour.geojson", "phantom.json")


def user_data_dir() -> Path:
    """HoechstScore's folder in the user's data directory (where the case store lives too)."""
    return Path(platformdirs.user_data_dir("HoechstScore", appauthor=False))


def demo_dir(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED, base: Path | None = None) -> Path:
    """Folder of a demo phantom: ``<data>/demo`` for the default one, a sub-folder for others."""
    root = (base or user_data_dir()) / "demo"
    return root if (size, seed) == (DEFAULT_SIZE, DEFAULT_SEED) else root / f"{size}px-seed{seed}"


@dataclass(frozen=True)
class DemoSlide:
    """A demo phantom on disk; ``generated`` is True when this call made it."""

    directory: Path
    hoechst: Path
    tumour_geojson: Path
    metadata: JSONDict
    generated: bool

    @property
    def mpp(self) -> tuple[float, float]:
        return (as_float(self.metadata["mpp"]), as_float(self.metadata["mpp"]))

    @property
    def im_half_width_um(self) -> float:
        return as_float(self.metadata["im_half_width_um"])


def _read_slide(directory: Path, generated: bool) -> DemoSlide:
    meta = json.loads((directory / "phantom.json").read_text(encoding="utf-8"))
    return DemoSlide(directory, directory / "hoechst.ome.tif", directory / "tumour.geojson", meta, generated)


def existing_demo_slide(directory: Path, size: int, seed: int) -> DemoSlide | None:
    """The phantom in ``directory`` if it is complete and was made with ``size`` and ``seed``."""
    if not all((directory / name).is_file() for name in _SLIDE_FILES):
        return None
    try:
        slide = _read_slide(directory, generated=False)
    except (OSError, json.JSONDecodeError):
        return None
    return slide if (slide.metadata.get("size"), slide.metadata.get("seed")) == (size, seed) else None


def ensure_demo_slide(directory: Path, size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED,
                      cancel: CancelToken | None = None) -> Generator[Progress, None, DemoSlide]:
    """The demo phantom in ``directory``, generated first when missing (a long job).

    It is written into a temporary sibling folder and moved into place only when complete, so
    an interrupted run never leaves a half-written slide that a later run would re-use.
    """
    found = existing_demo_slide(directory, size, seed)
    if found is not None:
        return found
    from core.phantom import PhantomParams, generate_phantom

    tmp = directory.parent / f".{directory.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    yield from generate_phantom(PhantomParams(size=size, seed=seed), tmp, cancel)
    directory.mkdir(parents=True, exist_ok=True)
    for name in sorted(p.name for p in tmp.iterdir()):
        (tmp / name).replace(directory / name)
    shutil.rmtree(tmp, ignore_errors=True)
    return _read_slide(directory, generated=True)


def is_demo_case(accession: str) -> bool:
    """True for the cases the demo pipeline makes (the only ones the demo cohort may score)."""
    return accession.startswith(DEMO_ACCESSION_PREFIX)


def require_demo_model(model_dir: Path) -> None:
    """CoreError with the way out when the demo model has not been made yet."""
    if not (model_dir / "model.json").is_file() or not (model_dir / "model.safetensors").is_file():
        raise CoreError(
            f"No demo model in {model_dir} (model.json + model.safetensors are needed). The demo model is "
            "trained on phantom slides by the training tools, e.g. `python -m training.retrain --slides "
            f"P1/mif.ome.tif P2/mif.ome.tif --out {model_dir} --encoder resnet18 --weights-dtype float16` "
            "(phantoms from `python -m core phantom`; see `python -m training.retrain --help`), "
            "or pass --model DIR to use another model folder."
        )


@dataclass(frozen=True)
class DemoOptions:
    """What ``run_demo_case`` does. None picks the default (see the module docstring).

    db_url: SQLAlchemy URL of the case store (None: ``cases.db`` in the user's data folder);
    data_dir: folder holding ``demo/`` (None: the user's data folder); device/precision: as
    :func:`core.models.runtime.load_model`; reanalyse: run the model even if a stored analysis fits.
    """

    out_dir: Path
    db_url: str | None = None
    size: int = DEFAULT_SIZE
    seed: int = DEFAULT_SEED
    data_dir: Path | None = None
    model_dir: Path = DEMO_MODEL
    cohort_csv: Path = DEMO_COHORT
    device: str | None = None
    precision: str | None = None
    reanalyse: bool = False
    settings: ReportSettings = field(default_factory=lambda: DEMO_SETTINGS)


@dataclass(frozen=True)
class DemoResult:
    """What the demo made: the stored case, the output files, and whether the model ran."""

    case_id: int
    accession: str
    slide: DemoSlide
    report_pdf: Path
    scores_json: Path
    regions_geojson: Path
    cells_csv: Path
    n_cells: int
    analysed: bool
    report_sha256: str
    scores: CaseScores = field(repr=False)


@dataclass(frozen=True)
class _Run:
    analysis_id: int
    cells: pd.DataFrame
    analysed: bool


def _demo_slide_record(store: CaseStore, case: CaseRecord, slide: DemoSlide) -> SlideRecord:
    """The slide record of the demo slide in the case (added to a draft case when missing)."""
    from core.fingerprint import slide_fingerprint

    identity = slide_fingerprint(slide.hoechst)
    for record in store.list_slides(case.id):
        if record.fingerprint == identity.sha256:
            return record
    if case.is_signed:
        raise CoreError(f"Demo case {case.accession} is signed and holds another demo slide; "
                        "use another database (--db) or a new version of the case.")
    return store.add_slide(case.id, slide.hoechst, mpp=slide.mpp, channels=["Hoechst"], is_synthetic=True,
                           fingerprint=identity.sha256, size_bytes=identity.size)


def analyse_or_reuse(store: CaseStore, case: CaseRecord, slide: DemoSlide, options: DemoOptions,
                     cancel: CancelToken) -> Generator[Progress, None, _Run]:
    """The cells of the demo slide: from a stored analysis that fits, else from a new one."""
    from core.case import close_interrupted, finished_analyses
    from core.models.card import load_card

    record = _demo_slide_record(store, case, slide)
    if not case.is_signed:
        close_interrupted(store, case.id)  # a demo run killed half-way must not block signing
    card = load_card(options.model_dir)
    engine_params = demo_analysis_params(slide)
    result_key = jsonable_dict(engine_params.result_key())  # fields that change the cells (not speed)

    def same_cells(stored: JSONMapping) -> bool:
        engine = as_mapping(stored.get("engine"))
        return all(k in engine and engine[k] == v for k, v in result_key.items())

    fits = [a for a in finished_analyses(store, case.id)
            if a.slide_id == record.id and a.model_sha256 == card.weights_sha256 and same_cells(a.parameters)]
    if fits and not options.reanalyse:
        yield Progress(1, 1, f"Re-using the stored analysis of {case.accession}")
        return _Run(fits[-1].id, store.load_cells(fits[-1].id), analysed=False)
    if case.is_signed:
        raise CoreError(f"Demo case {case.accession} is signed: it cannot take a new analysis.")
    analysis_id = yield from _analyse(store, case.id, record.id, slide, options, engine_params, cancel)
    return _Run(analysis_id, store.load_cells(analysis_id), analysed=True)


def _analyse(store: CaseStore, case_id: int, slide_id: int, slide: DemoSlide, options: DemoOptions,
             engine_params: AnalysisParams, cancel: CancelToken) -> Generator[Progress, None, int]:
    """Run the engine on the demo slide and store the analysis (core's load-analyse-record); returns its id."""
    from core.case import analyse_case_slide
    from core.slides import open_slide

    with open_slide(slide.hoechst, mpp=slide.mpp) as opened:
        recorded = yield from analyse_case_slide(
            store, case_id, slide_id, opened, options.model_dir, engine_params, device=options.device,
            precision=options.precision, cancel=cancel, checkpoint_dir=slide.directory / "checkpoints",
        )
    return recorded.analysis_id


def store_regions(store: CaseStore, case: CaseRecord, slide: DemoSlide, summary: AnalysisSummary) -> RegionSet:
    """The phantom's tumour outline (as a user would draw it), the tissue the analysis found
    (``summary``: the stored analysis's), CT and IM derived with the IM half-width (RegionSet).

    Region ids are fixed (``demo-tumour-1`` ...), so saving the same regions again changes nothing.
    """
    from core.case import detected_tissue
    from core.regions import RegionSet, read_regions_geojson

    size = as_int(slide.metadata["size"])
    bounds = (size * slide.mpp[0], size * slide.mpp[1])
    found = list(read_regions_geojson(slide.tumour_geojson, slide.mpp, bounds_um=bounds).regions)
    tissue = detected_tissue(summary, slide.mpp, author="HoechstScore demo")
    if tissue is not None:  # the engine's tissue clips the IM, as for any slide (not the phantom's truth)
        found.append(tissue)
    derived = RegionSet(found, bounds_um=bounds)
    derived.replace_ct_im_by_derived(slide.im_half_width_um, author="HoechstScore demo")
    counter: dict[str, int] = {}
    stable = []
    for region in derived:
        counter[region.kind.value] = counter.get(region.kind.value, 0) + 1
        stable.append(dataclasses.replace(region, id=f"demo-{region.kind.value}-{counter[region.kind.value]}"))
    regions = RegionSet(stable, bounds_um=bounds)
    if not case.is_signed:
        store.save_regions(case.id, list(regions))
    return regions


def store_scores(store: CaseStore, case: CaseRecord, run: _Run, regions: RegionSet, cohort_csv: Path,
                 slide: DemoSlide) -> CaseScores:
    """Score the cells in the regions against the demo cohort; store them when they changed."""
    from core.case import score_and_record
    from core.scores import ReferenceCohort

    analysis = store.get_analysis(run.analysis_id)
    recorded = score_and_record(store, case.id, run.cells, regions, ReferenceCohort.from_csv(cohort_csv),
                                slide.im_half_width_um, model_name=analysis.model_name,
                                model_sha256=analysis.model_sha256, analysis_id=run.analysis_id,
                                editable=not case.is_signed)
    return recorded.scores


def write_outputs(out_dir: Path, pdf: bytes, scores: CaseScores, regions: RegionSet, cells: pd.DataFrame,
                  mpp: tuple[float, float], im_half_width_um: float) -> dict[str, Path]:
    """``report.pdf``, ``scores.json``, ``regions.geojson`` and ``cells.csv`` (with each cell's
    scored region, as the app exports it) in ``out_dir``."""
    from core.case import write_case_cells_csv
    from core.regions import write_regions_geojson

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": out_dir / "report.pdf", "scores": out_dir / "scores.json",
             "regions": out_dir / "regions.geojson", "cells": out_dir / "cells.csv"}
    paths["report"].write_bytes(pdf)
    paths["scores"].write_text(json.dumps(jsonable(scores.to_dict()), indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                               encoding="utf-8")
    write_regions_geojson(list(regions), paths["regions"], mpp)
    write_case_cells_csv(cells, regions, im_half_width_um, paths["cells"])
    return paths


def demo_analysis_params(slide: DemoSlide) -> AnalysisParams:
    """Default engine parameters; on a small demo slide, smaller tissue pieces are kept as tissue
    (the default minimum, 20,000 µm², is more than a 1024² phantom's largest piece)."""
    from core.engine import AnalysisParams

    side_um = as_float(slide.metadata["size"]) * slide.mpp[0]
    default = AnalysisParams()
    return dataclasses.replace(default, tissue_min_area_um2=min(default.tissue_min_area_um2, side_um**2 / 20))


@dataclass(frozen=True)
class DemoSlideReady(Progress):
    """Progress of :func:`run_demo_case` once the slide file exists (made or found), before it is
    analysed: a viewer can show the slide (``path``, ``mpp`` in µm/px) while the rest runs."""

    path: Path | None = None
    mpp: tuple[float, float] | None = None


def run_demo_case(options: DemoOptions, cancel: CancelToken | None = None
                  ) -> Generator[Progress, None, DemoResult]:
    """Run the whole demo pipeline (see the module docstring); yields progress, returns DemoResult."""
    from core.case.opened import analysis_summary
    from core.report.from_store import report_data_from_store
    from core.store import CaseStore

    cancel = cancel or CancelToken()
    require_demo_model(options.model_dir)
    yield Progress(0, 0, "Preparing the demo slide")
    slide = yield from ensure_demo_slide(demo_dir(options.size, options.seed, options.data_dir),
                                         options.size, options.seed, cancel)
    yield DemoSlideReady(0, 0, "The demo slide is ready", path=slide.hoechst, mpp=slide.mpp)
    accession = f"{DEMO_ACCESSION_PREFIX}{options.size}-{options.seed}"
    with CaseStore.open(options.db_url) as store:
        try:
            case = store.get_case_by_accession(accession)
        except StoreError:
            case = store.create_case(accession, notes="Synthetic demo case made by `python -m core demo-case`.")
        run = yield from analyse_or_reuse(store, case, slide, options, cancel)
        yield Progress(0, 0, "Deriving CT and IM, scoring")
        regions = store_regions(store, case, slide, analysis_summary(store.get_analysis(run.analysis_id)))
        scores = store_scores(store, case, run, regions, options.cohort_csv, slide)
        yield Progress(0, 0, "Writing the report")
        pdf = render_report(report_data_from_store(store, case.id), options.settings)
        sha = hashlib.sha256(pdf).hexdigest()
        out = write_outputs(options.out_dir, pdf, scores, regions, run.cells, slide.mpp, slide.im_half_width_um)
        reports = store.list_reports(case.id)
        if not reports or reports[-1].sha256 != sha:
            store.save_report(case.id, pdf=pdf, path=out["report"])
    return DemoResult(
        case_id=case.id, accession=accession, slide=slide, report_pdf=out["report"], scores_json=out["scores"],
        regions_geojson=out["regions"], cells_csv=out["cells"], n_cells=len(run.cells), analysed=run.analysed,
        report_sha256=sha, scores=scores,
    )
