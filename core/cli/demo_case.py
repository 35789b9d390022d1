"""``python -m core demo-case --out DIR``: the whole pipeline, headless, on the synthetic demo slide.

Demo phantom (generated once) -> demo model -> analysis -> tumour outline -> CT/IM -> scores
against the demo cohort -> case store -> ``report.pdf``, ``scores.json``, ``regions.geojson``,
``cells.csv`` in DIR. Re-running re-uses the stored case and analysis and writes the same report
bytes (see :mod:`core.demo`); ``--reanalyse`` runs the model again.
"""

from __future__ import annotations

import argparse
import os
import time

from core.cli.args import (
    database_url,
    existing_dir,
    existing_file,
    image_file,
    non_negative_int,
    output_dir,
    positive_int,
)
from core.cli.demo import ProgressPrinter
from core.demo import (
    DEFAULT_SEED,
    DEFAULT_SIZE,
    DEMO_COHORT,
    DEMO_MODEL,
    DEMO_SETTINGS,
    DemoOptions,
    run_demo_case,
)
from core.models.precision import PRECISION_CHOICES
from core.progress import run_to_completion
from core.report import ReportSettings
from core.scores import format_scores


def add_report_options(p: argparse.ArgumentParser, defaults: ReportSettings) -> None:
    """--lab-name, --lab-address, --logo, --operator: the report's ReportSettings."""
    p.add_argument("--lab-name", default=defaults.lab_name, help=f"lab name in the header (default {defaults.lab_name!r})")
    p.add_argument("--lab-address", default=defaults.lab_address, help="second header line")
    p.add_argument("--logo", type=image_file, help="PNG or JPEG logo for the header (default: the HoechstScore mark)")
    p.add_argument("--operator", default="", help="name printed as 'Printed by'")


def report_settings(args: argparse.Namespace) -> ReportSettings:
    return ReportSettings(lab_name=args.lab_name, logo_path=args.logo, operator=args.operator,
                          lab_address=args.lab_address)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo-case", help="run the whole pipeline on the synthetic demo slide and write a report",
        description="Analyse the synthetic demo slide with the demo model, derive CT/IM, score against the "
        "demo reference cohort, store the case and write report.pdf, scores.json, regions.geojson and "
        "cells.csv. Everything is SYNTHETIC and labelled so.",
    )
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="folder for the output files")
    p.add_argument("--db", metavar="URL", type=database_url, default=os.environ.get("HOECHSTSCORE_DB_URL") or None,
                   help="case database URL, any SQLAlchemy URL (default: $HOECHSTSCORE_DB_URL, else cases.db "
                   "in the user's data folder)")
    p.add_argument("--size", type=positive_int, default=DEFAULT_SIZE, help=f"demo slide side in pixels (default {DEFAULT_SIZE})")
    p.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED, help=f"demo slide seed (default {DEFAULT_SEED})")
    p.add_argument("--data-dir", type=output_dir, help="folder holding demo/ (default: the user's data folder)")
    p.add_argument("--model", type=existing_dir, default=DEMO_MODEL, metavar="DIR", help=f"model folder (default {DEMO_MODEL})")
    p.add_argument("--reference", type=existing_file, default=DEMO_COHORT, help="reference cohort CSV (default: demo cohort)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA if available, else CPU")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="auto (default): fp32 on a CPU, bf16/fp16 on CUDA after a parity check with fp32")
    p.add_argument("--reanalyse", action="store_true", help="run the model even if a stored analysis fits")
    add_report_options(p, DEMO_SETTINGS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = DemoOptions(
        out_dir=args.out, db_url=args.db, size=args.size, seed=args.seed, data_dir=args.data_dir,
        model_dir=args.model, cohort_csv=args.reference, device=args.device, precision=args.precision,
        reanalyse=args.reanalyse, settings=report_settings(args),
    )
    t0 = time.perf_counter()
    result = run_to_completion(run_demo_case(options), ProgressPrinter())
    print(format_scores(result.scores))
    how = "analysed now" if result.analysed else "stored analysis re-used"
    print(f"\nDemo case {result.accession} (case id {result.case_id}; {how}; {result.n_cells:,} cells) "
          f"in {time.perf_counter() - t0:.0f} s. SYNTHETIC DATA.")
    for path in (result.report_pdf, result.scores_json, result.regions_geojson, result.cells_csv):
        print(f"  {path}")
    print(f"  report sha256 {result.report_sha256[:16]}")
    return 0
