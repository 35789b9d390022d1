"""End-to-end validation on phantoms: slide → engine → scores, against the phantom's truth.

Why end to end: each stage can look right on its own (a good per-cell F1, exact density code)
while the numbers a pathologist signs are off, e.g. when touching nuclei merge in dense margins or
the invasive margin spills over glass. So each case is run as a user would run it:

- the Hoechst slide is analysed by the engine (cells and the engine's own tissue);
- the *true* tumour outline stands in for the one the user draws;
- CT/IM are derived from it and clipped to the engine's tissue, and scores computed with the same
  call as the app (:func:`core.scores.score_case`).

The truth is the same computation on the phantom's true cells and true tissue. Per case, marker
group and region it reports the density error, the IM area error, the Immunoscore-like and
T-and-B categories of both against one reference cohort, and how many true lymphocytes were split
into several calls or merged into a neighbour's.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from core.jsontypes import JSONDict
from core.progress import CancelToken, Progress

if TYPE_CHECKING:  # imported where a case runs: torch and the engine are heavy
    from core.models.runtime import LoadedModel
    from core.regions import Region
    from core.scores import CaseScores, ReferenceCohort

#: Regions and marker groups compared.
REGIONS = ("CT", "IM")
GROUPS = ("CD3+", "CD8+", "CD20+")
#: A density error is judged only where the truth has at least this many cells (Poisson noise).
MIN_TRUE_CELLS = 20
#: Radius (µm) within which a call is matched to a true lymphocyte (a nucleus radius).
MATCH_RADIUS_UM = 3.5
#: The engine's cell table and tissue mask, written into each case's work folder.
ENGINE_CELLS = "engine-cells.csv"
ENGINE_TISSUE = "engine-tissue.npz"


@dataclass(frozen=True)
class ValidationOptions:
    """What to validate: ``cases`` phantoms of ``size`` px from ``first_seed`` on, infiltration
    levels drawn uniformly in [0, 1] for CT and IM separately (cold to hot)."""

    cases: int = 20
    size: int = 2048
    first_seed: int = 5000
    model_dir: Path | None = None
    precision: str = "fp32"
    runtime: str = "auto"  # as `core analyse` and the app: core.models.inference
    #: "cpu" by default: the figures are meant to be a lab PC's; "cuda" measures the GPU path.
    device: str = "cpu"
    reference_csv: Path | None = None
    work_dir: Path = Path("validation-work")
    batch_size: int = 8


@dataclass
class CaseValidation:
    """One case: per (group, region) true and engine densities and counts; categories; split/merge."""

    seed: int
    infiltration_ct: float
    infiltration_im: float
    rows: list[JSONDict] = field(default_factory=list)  # one per (group, region): densities.csv
    im_area_mm2: tuple[float, float] = (0.0, 0.0)  # (truth, engine)
    is_category: tuple[str | None, str | None] = (None, None)
    is_level: tuple[int | None, int | None] = (None, None)
    tb_category: tuple[str | None, str | None] = (None, None)
    #: Whether the engine's category was flagged near a cut (core.scores.near_cut): a miss should be.
    is_near_cut: bool = False
    tb_near_cut: bool = False
    true_lymphocytes: int = 0
    split: int = 0
    merged: int = 0
    seconds: float = 0.0
    #: What counted: model name, weights sha256 (12), precision, runtime and device, so a table names its model.
    model: str = ""


def split_and_merged(calls: pd.DataFrame, truth: pd.DataFrame, radius_um: float = MATCH_RADIUS_UM) -> tuple[int, int]:
    """(split, merged): true lymphocytes with two or more calls within ``radius_um``, and true
    lymphocytes with none whose nearest call lies within reach of another true lymphocyte it
    matched (a neighbour absorbed them)."""
    lym = truth[truth["type"] != "other"]
    if len(lym) == 0 or len(calls) == 0:
        return 0, 0
    true_xy = lym[["x_um", "y_um"]].to_numpy()
    call_xy = calls[["x_um", "y_um"]].to_numpy()
    near = cKDTree(call_xy).query_ball_point(true_xy, radius_um)
    n_near = np.array([len(n) for n in near])
    split = int((n_near >= 2).sum())
    lonely = np.flatnonzero(n_near == 0)
    if lonely.size == 0:
        return split, 0
    d, j = cKDTree(call_xy).query(true_xy[lonely])
    # absorbed: the nearest call is within two nucleus radii and sits on another true lymphocyte
    owner_d, _ = cKDTree(true_xy).query(call_xy[j])
    merged = int(((d < 2.5 * radius_um) & (owner_d < radius_um)).sum())
    return split, merged


def _scores(cells: pd.DataFrame, regions: list[Region], bounds: tuple[float, float], cohort: ReferenceCohort | None,
            width: float) -> CaseScores:
    from core.regions import RegionSet
    from core.scores import score_case

    return score_case(cells, RegionSet(regions, bounds_um=bounds), cohort, im_half_width_um=width)


def validate_case(seed: int, levels: tuple[float, float], model: LoadedModel, options: ValidationOptions,
                  cohort: ReferenceCohort | None,
                  cancel: CancelToken) -> Generator[Progress, None, CaseValidation]:
    """Generate one phantom, analyse it, score engine and truth; see the module docstring."""
    import time

    from core.engine import AnalysisParams, analyse_slide
    from core.phantom import PhantomParams, generate_phantom
    from core.slides import open_slide

    t0 = time.perf_counter()
    out = options.work_dir / f"phantom-{options.size}-{seed}"
    params = PhantomParams(size=options.size, seed=seed, infiltration_ct=levels[0], infiltration_im=levels[1])
    if not (out / "phantom.json").is_file():
        yield from generate_phantom(params, out, cancel)
    meta = json.loads((out / "phantom.json").read_text(encoding="utf-8"))
    with open_slide(out / "hoechst.ome.tif") as slide:
        side_um = options.size * float(meta["mpp"])
        engine_params = AnalysisParams(batch_size=options.batch_size,
                                       tissue_min_area_um2=min(20_000.0, side_um**2 / 20))
        result = yield from analyse_slide(slide, model, engine_params, cancel=cancel)
    # kept beside the phantom: the same engine output can be compared again (another cell filter,
    # another cohort) with compare_case, without the minutes of model time
    result.cells.to_csv(out / ENGINE_CELLS, index=False)
    np.savez_compressed(out / ENGINE_TISSUE, mask=result.tissue_mask, raster_downsample=result.raster_downsample)
    case = compare_case(out, result.cells, result.tissue_mask, result.raster_downsample, cohort, seed, levels)
    case.seconds = time.perf_counter() - t0
    return case


def compare_case(out: Path, cells: pd.DataFrame, tissue_mask: np.ndarray, raster_downsample: float,
                 cohort: ReferenceCohort | None,
                 seed: int, levels: tuple[float, float]) -> CaseValidation:
    """The engine's ``cells`` and tissue mask of the phantom in ``out`` against its truth: no model
    involved, so the same engine output can be compared again (e.g. under another cell filter)."""
    from core.case import detected_tissue
    from core.classes import class_index
    from core.engine.summary import AnalysisSummary
    from core.regions import read_regions_geojson
    from core.tissue_mask import encode_mask

    meta = json.loads((out / "phantom.json").read_text(encoding="utf-8"))
    mpp = (float(meta["mpp"]), float(meta["mpp"]))
    bounds = (int(meta["size"]) * mpp[0], int(meta["size"]) * mpp[1])
    width = float(meta["im_half_width_um"])
    tumour = list(read_regions_geojson(out / "tumour.geojson", mpp, bounds_um=bounds).regions)
    true_tissue = list(read_regions_geojson(out / "tissue.geojson", mpp, bounds_um=bounds).regions)
    tissue = detected_tissue(AnalysisSummary(tissue_mask={**encode_mask(tissue_mask, raster_downsample)}), mpp)
    truth = pd.read_csv(out / "cells.csv")
    true_cells = truth[truth["type"] != "other"].rename(columns={"type": "class_name"})
    true_cells = true_cells.assign(class_id=[class_index(t) for t in true_cells["class_name"]])
    engine = _scores(cells, tumour + ([tissue] if tissue is not None else []), bounds, cohort, width)
    exact = _scores(true_cells, tumour + true_tissue, bounds, cohort, width)
    case = CaseValidation(seed, levels[0], levels[1])
    for region in REGIONS:
        t_region, e_region = exact.densities.get(region), engine.densities.get(region)
        for group in GROUPS:
            t = exact.densities.density(group, region)
            e = engine.densities.density(group, region)
            n_true = None if t_region is None else t_region.counts[group]
            n_engine = None if e_region is None else e_region.counts[group]
            err = None if not t or e is None else 100.0 * (e - t) / t
            case.rows.append({"seed": seed, "region": region, "group": group, "true_density": t, "engine_density": e,
                              "true_cells": n_true, "engine_cells": n_engine, "error_pct": err})
    im_true, im_engine = exact.densities.get("IM"), engine.densities.get("IM")
    case.im_area_mm2 = (im_true.area_mm2 if im_true else 0.0, im_engine.area_mm2 if im_engine else 0.0)
    case.is_category = (exact.immunoscore_like.category, engine.immunoscore_like.category)
    case.is_level = (exact.immunoscore_like.level, engine.immunoscore_like.level)
    case.tb_category = (exact.t_and_b.category, engine.t_and_b.category)
    case.is_near_cut, case.tb_near_cut = (r.category_range is not None and r.category_range.near_cut
                                          for r in (engine.immunoscore_like, engine.t_and_b))
    case.true_lymphocytes = len(true_cells)
    case.split, case.merged = split_and_merged(cells, truth)
    return case


def run_validation(options: ValidationOptions, cancel: CancelToken | None = None
                   ) -> Generator[Progress, None, list[CaseValidation]]:
    """Validate ``options.cases`` phantoms; yields progress, returns one CaseValidation per case."""
    from core.models.inference import load_for_inference
    from core.models.runtime import default_model_dir
    from core.resources import demo_cohort_csv
    from core.scores import ReferenceCohort

    cancel = cancel or CancelToken()
    model = load_for_inference(options.model_dir or default_model_dir(), options.device, options.precision, options.runtime)
    reference = options.reference_csv or demo_cohort_csv()
    cohort = ReferenceCohort.from_csv(reference)
    rng = np.random.default_rng(options.first_seed)
    levels = rng.uniform(0.0, 1.0, size=(options.cases, 2))
    about = f"{model.card.name} {model.card.weights_sha256[:12]} {model.precision} {model.runtime} {model.device.type}"
    cases = []
    for i in range(options.cases):
        cancel.check()
        seed = options.first_seed + i
        yield Progress(i, options.cases, f"Case {i + 1} of {options.cases} (seed {seed})")
        case = yield from validate_case(seed, (float(levels[i, 0]), float(levels[i, 1])), model, options, cohort, cancel)
        case.model = about
        cases.append(case)
    yield Progress(options.cases, options.cases, "Done")
    return cases


class DensityError(TypedDict):
    """Density errors (%) of one marker group in one region over the judged cases."""

    cases: int
    median_abs_error_pct: float
    max_abs_error_pct: float
    mean_error_pct: float


class JudgedError(TypedDict):
    """Density errors (%) pooled over every judged (group, region, case); None without any."""

    n: int
    median_abs_error_pct: float | None
    max_abs_error_pct: float | None


class AreaError(TypedDict):
    """IM area error (%) of the engine's tissue against the true tissue; None without an IM."""

    median_abs: float | None
    max_abs: float | None


class NearCutCount(TypedDict):
    """Engine categories flagged near a cut, the misses, and the misses that were flagged."""

    flagged: int
    misses: int
    misses_flagged: int


class ValidationSummary(TypedDict):
    """What :func:`summarise` reports (``summary.json``; :func:`format_table` prints it)."""

    cases: int
    model: str
    densities: dict[str, DensityError]
    all_judged: JudgedError
    im_area_error_pct: AreaError
    is_category_agreement: float | None
    is_evaluable_cases: int
    tb_category_agreement: float | None
    tb_evaluable_cases: int
    is_near_cut: NearCutCount
    tb_near_cut: NearCutCount
    true_lymphocytes: int
    split: int
    merged: int


def summarise(cases: list[CaseValidation]) -> ValidationSummary:
    """Pooled figures: per (group, region) median and max |error| where truth has ≥ MIN_TRUE_CELLS,
    IM area error, category agreement, split/merged counts."""
    rows = pd.DataFrame([r for c in cases for r in c.rows])
    judged = rows[(rows["true_cells"].fillna(0) >= MIN_TRUE_CELLS) & rows["error_pct"].notna()]
    per: dict[str, DensityError] = {}
    for (region, group), part in judged.groupby(["region", "group"], sort=False):
        err = part["error_pct"].abs()
        per[f"{group} {region}"] = {"cases": int(len(part)), "median_abs_error_pct": float(err.median()),
                                    "max_abs_error_pct": float(err.max()),
                                    "mean_error_pct": float(part["error_pct"].mean())}
    im = [(e - t) / t * 100 for c in cases for t, e in [c.im_area_mm2] if t > 0]
    is_pairs = [c.is_category for c in cases if c.is_category[0] is not None]
    tb_pairs = [c.tb_category for c in cases if c.tb_category[0] is not None]

    def near_cut(score: str) -> NearCutCount:
        """How many engine categories were flagged near a cut, and how many of the misses were."""
        judged = [c for c in cases if getattr(c, f"{score}_category")[0] is not None]
        misses = [c for c in judged if getattr(c, f"{score}_category")[0] != getattr(c, f"{score}_category")[1]]
        return {"flagged": sum(getattr(c, f"{score}_near_cut") for c in judged),
                "misses": len(misses), "misses_flagged": sum(getattr(c, f"{score}_near_cut") for c in misses)}

    return {
        "cases": len(cases),
        "model": cases[0].model if cases else "",
        "densities": per,
        "all_judged": {"n": int(len(judged)),
                       "median_abs_error_pct": float(judged["error_pct"].abs().median()) if len(judged) else None,
                       "max_abs_error_pct": float(judged["error_pct"].abs().max()) if len(judged) else None},
        "im_area_error_pct": {"median_abs": float(np.median(np.abs(im))) if im else None,
                              "max_abs": float(np.max(np.abs(im))) if im else None},
        "is_category_agreement": (sum(a == b for a, b in is_pairs) / len(is_pairs)) if is_pairs else None,
        "is_evaluable_cases": len(is_pairs),
        "tb_category_agreement": (sum(a == b for a, b in tb_pairs) / len(tb_pairs)) if tb_pairs else None,
        "tb_evaluable_cases": len(tb_pairs),
        "is_near_cut": near_cut("is"),
        "tb_near_cut": near_cut("tb"),
        "true_lymphocytes": sum(c.true_lymphocytes for c in cases),
        "split": sum(c.split for c in cases),
        "merged": sum(c.merged for c in cases),
    }


def write_outputs(cases: list[CaseValidation], out_dir: Path) -> dict[str, Path]:
    """``densities.csv`` (one row per case, group and region), ``cases.csv`` and ``summary.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"densities": out_dir / "densities.csv", "cases": out_dir / "cases.csv", "summary": out_dir / "summary.json"}
    pd.DataFrame([r for c in cases for r in c.rows]).to_csv(paths["densities"], index=False, float_format="%.3f")
    flat = []
    for c in cases:
        d = asdict(c)
        d.pop("rows")
        for key in ("im_area_mm2", "is_category", "is_level", "tb_category"):
            d[f"{key}_truth"], d[f"{key}_engine"] = d.pop(key)
        flat.append(d)
    pd.DataFrame(flat).to_csv(paths["cases"], index=False, float_format="%.4f")
    paths["summary"].write_text(json.dumps(summarise(cases), indent=2) + "\n", encoding="utf-8")
    return paths


def format_table(cases: list[CaseValidation]) -> str:
    """The summary as a Markdown table (printed by the CLI, pasted into docs/validation.md)."""
    s = summarise(cases)
    lines = ["| marker group, region | cases (≥ 20 true cells) | median abs. error | max abs. error | mean error |",
             "| --- | --- | --- | --- | --- |"]
    for name, v in s["densities"].items():
        lines.append(f"| {name} | {v['cases']} | {v['median_abs_error_pct']:.1f}% | {v['max_abs_error_pct']:.1f}% "
                     f"| {v['mean_error_pct']:+.1f}% |")
    im = s["im_area_error_pct"]
    agree = s["is_category_agreement"]
    tb = s["tb_category_agreement"]
    lines += [
        "",
        f"- IM area (engine tissue vs true tissue): median abs. error "
        f"{im['median_abs']:.2f}%, max {im['max_abs']:.2f}%" if im["median_abs"] is not None else "- IM area: no IM",
        f"- Immunoscore-like category equal to truth's: {agree:.0%} of {s['is_evaluable_cases']} cases"
        if agree is not None else "- Immunoscore-like: not evaluable",
        f"- T-and-B category equal to truth's: {tb:.0%} of {s['tb_evaluable_cases']} cases"
        if tb is not None else "- T-and-B: not evaluable",
        *(f"- {name} flagged near a category cut: {n['flagged']} of {cases} cases; misses flagged: "
          f"{n['misses_flagged']} of {n['misses']}" for name, n, cases in (
              ("Immunoscore-like", s["is_near_cut"], s["is_evaluable_cases"]),
              ("T-and-B", s["tb_near_cut"], s["tb_evaluable_cases"])) if cases),
        f"- True lymphocytes: {s['true_lymphocytes']:,}; split into several calls: {s['split']:,}; "
        f"merged into a neighbour: {s['merged']:,}",
        f"- Model: {s['model']}" if s["model"] else "- Model: not recorded",
    ]
    return "\n".join(lines)
