"""``python -m core score``: densities, Immunoscore-like and T-and-B scores of one slide, headless.

Reads a cell table (CSV with x_um, y_um, class_name, or x_px, y_px with --mpp; or QuPath
detections GeoJSON) and the slide's regions (QuPath GeoJSON: a tumour outline, from which CT and
IM are derived, or CT and IM directly, plus any exclusions), writes the scores as JSON and prints
a readable table. The same :func:`core.scores.score_case` call as the app.

The reference cohort is always chosen, never defaulted: ``--reference CSV`` (the lab's imported
table; ``--reference demo`` for the SYNTHETIC demo cohort) or ``--reference-store`` (the cases
flagged as reference in the case database ``--db``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from core.cli.args import existing_file, output_file, positive_float, positive_int
from core.errors import RegionError, ScoreError
from core.regions import (
    DEFAULT_IM_HALF_WIDTH_UM,
    RegionKind,
    RegionSet,
    read_cells_geojson,
    read_regions_geojson,
)
from core.scores import TB_PARAMETERS, ReferenceCohort, format_scores, score_case

log = logging.getLogger(__name__)
#: Accepted spellings of the class column (the phantom's cells.csv calls it "type").
CLASS_COLUMNS = ("class_name", "type", "class")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score", help="score one slide's cells in its regions",
        description="Cell densities (cells/mm²) in the tumour centre (CT) and invasive margin (IM), the "
        "Immunoscore-like (IS) and the T-and-B score, against a reference cohort.",
    )
    p.add_argument("--cells", type=existing_file, required=True,
                   help="cells: CSV (x_um,y_um,class_name or x_px,y_px) or QuPath detections GeoJSON")
    p.add_argument("--regions", type=existing_file, nargs="+", required=True, metavar="GEOJSON",
                   help="QuPath GeoJSON file(s): tumour outline, or CT and IM; tissue, exclusions optional")
    p.add_argument("--mpp", type=positive_float, nargs="+", required=True, metavar="UM",
                   help="slide pixel size in µm per pixel: one value, or x and y")
    p.add_argument("--tumour-class", action="append", default=[], metavar="NAME",
                   help="QuPath class that is the tumour outline (default: Tumor/Tumour); repeatable")
    p.add_argument("--im-width", type=positive_float, default=DEFAULT_IM_HALF_WIDTH_UM, metavar="UM",
                   help=f"IM half-width in µm when CT/IM are derived (default {DEFAULT_IM_HALF_WIDTH_UM:g})")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--reference", type=Path, metavar="CSV",
                     help="reference cohort table (CSV of CD3_CT ... CD20_IM in cells/mm²); "
                     "'demo' = the SYNTHETIC demo cohort")
    ref.add_argument("--reference-store", action="store_true",
                     help="use the cases flagged as reference in the case database (--db)")
    p.add_argument("--db", metavar="URL", default=os.environ.get("HOECHSTSCORE_DB_URL") or None,
                   help="case database for --reference-store (default: $HOECHSTSCORE_DB_URL, else cases.db in "
                   "the user's data folder)")
    p.add_argument("--signed-only", action="store_true", help="with --reference-store: only signed cases")
    p.add_argument("--cutoff", action="append", default=[], metavar="PARAM=VALUE",
                   help=f"explicit T-and-B cut-off in cells/mm², PARAM one of {', '.join(TB_PARAMETERS)}")
    p.add_argument("--slide-size", type=positive_int, nargs=2, metavar=("W", "H"),
                   help="slide size in level-0 pixels: regions are clipped to it")
    p.add_argument("--model-name", help="model that found the cells (recorded in provenance)")
    p.add_argument("--model-sha256", help="sha256 of that model's weights (recorded in provenance)")
    p.add_argument("--out", type=output_file, required=True, help="scores JSON to write")
    p.set_defaults(func=run)


def _mpp(values: list[float]) -> tuple[float, float]:
    if len(values) not in (1, 2) or min(values) <= 0:
        raise RegionError(f"--mpp takes one or two positive numbers (µm per pixel), got {values}.")
    return (values[0], values[-1])


def _class_name(classification: object) -> str:
    """The class name of an imported region's QuPath classification (a {name, color} object or a bare name)."""
    if isinstance(classification, dict):
        classification = classification.get("name")
    return "(none)" if classification is None else str(classification)


def read_cells(path: Path, mpp: tuple[float, float]) -> pd.DataFrame:
    """A cell table from CSV or QuPath GeoJSON, with x_um, y_um and class_name."""
    if path.suffix.lower() in (".geojson", ".json"):
        return read_cells_geojson(path, mpp)
    try:
        cells = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ScoreError(f"Cannot read cells from {path.name}: {err}.") from err
    name_col = next((c for c in CLASS_COLUMNS if c in cells.columns), None)
    if name_col is None:
        raise ScoreError(f"{path.name} needs a class_name column; it has {', '.join(cells.columns)}.")
    cells = cells.rename(columns={name_col: "class_name"})
    if not {"x_um", "y_um"} <= set(cells.columns):
        if not {"x_px", "y_px"} <= set(cells.columns):
            have = ", ".join(map(str, cells.columns))
            raise ScoreError(f"{path.name} needs x_um,y_um or x_px,y_px columns; it has {have}.")
        cells["x_um"] = pd.to_numeric(cells["x_px"], errors="coerce") * mpp[0]
        cells["y_um"] = pd.to_numeric(cells["y_px"], errors="coerce") * mpp[1]
    for col in ("x_um", "y_um"):
        values = pd.to_numeric(cells[col], errors="coerce")
        bad = ~np.isfinite(values.to_numpy(float))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ScoreError(f"{path.name}: {int(bad.sum())} cell(s) have no valid position; the first is data row "
                             f"{row + 1} ({col} = {cells[col].iloc[row]!r}). Fix or remove those rows.")  # fmt: skip
        cells[col] = values
    return cells


def _cutoffs(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ScoreError(f"--cutoff {item!r}: expected PARAM=VALUE, e.g. CD8_CT=250.") from None
    return out


def reference_cohort(args: argparse.Namespace) -> ReferenceCohort:
    """The cohort the user chose: a CSV, the demo cohort (named explicitly) or the store's reference cases."""
    if args.reference is not None:
        if str(args.reference) == "demo":
            from core.demo import DEMO_COHORT

            return ReferenceCohort.from_csv(DEMO_COHORT)
        return ReferenceCohort.from_csv(args.reference)
    if not args.reference_store:
        raise ScoreError("Choose the reference cohort: --reference CSV (the lab's table), --reference-store "
                         "(cases flagged as reference in --db) or --reference demo (SYNTHETIC, demonstration only).")
    from core.scores.reference import cohort_from_store
    from core.store import CaseStore

    with CaseStore.open(args.db) as store:
        cohort = cohort_from_store(store, signed_only=args.signed_only)
        url = store.url
    if cohort is None:
        raise ScoreError(f"No case flagged as reference in {url} has saved scores: flag reference cases "
                         "(the app's case menu) or give --reference CSV.")
    return cohort


def run(args: argparse.Namespace) -> int:
    mpp = _mpp(args.mpp)
    bounds = (args.slide_size[0] * mpp[0], args.slide_size[1] * mpp[1]) if args.slide_size else None
    class_map = dict.fromkeys(args.tumour_class, "tumour")
    imports = [read_regions_geojson(p, mpp, class_map=class_map, bounds_um=bounds) for p in args.regions]
    regions = RegionSet([r for i in imports for r in i.regions], bounds_um=bounds)
    scored = {RegionKind.TUMOUR, RegionKind.TUMOUR_CENTRE, RegionKind.INVASIVE_MARGIN}
    if not any(r.kind in scored for r in regions):
        classes = sorted({_class_name(r.extra.get("classification")) for r in regions})
        raise RegionError(
            f"{', '.join(p.name for p in args.regions)}: no tumour, CT or IM region "
            f"(classes found: {', '.join(classes)}). Name the tumour's class with --tumour-class NAME."
        )
    cohort = reference_cohort(args)
    cells = read_cells(args.cells, mpp)
    log.info("%d cells, %d regions, reference cohort %r (n=%d, version %s)",
             len(cells), len(regions), cohort.name, cohort.n, cohort.version)
    scores = score_case(
        cells, regions, cohort, im_half_width_um=args.im_width, cutoffs=_cutoffs(args.cutoff),
        model_name=args.model_name, model_sha256=args.model_sha256,
    )
    for warning in (*(w for i in imports for w in i.warnings), *regions.warnings):
        log.warning("%s", warning)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(scores.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_scores(scores))
    print(f"\nWrote {args.out}")
    return 0
