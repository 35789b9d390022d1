"""``python -m core analyse SLIDE --out DIR``: find and classify every cell of a slide.

Writes ``cells.csv``, ``cells.geojson`` (QuPath detections), ``summary.json`` and
``class_map.png`` into ``--out``. Finished blocks are checkpointed under ``--out`` (or
``--checkpoint-dir``): after an interruption, the same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.args import (
    existing_dir,
    existing_file,
    non_negative_float,
    output_dir,
    positive_float,
    positive_int,
)
from core.engine.params import AnalysisParams
from core.errors import CoreError
from core.models.precision import PRECISION_CHOICES, RUNTIMES

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    d = AnalysisParams()
    p = subparsers.add_parser(
        "analyse",
        help="find and classify cells in a slide with the model",
        description="Run the model over a slide (or regions of it) and write cells.csv, cells.geojson "
        "(QuPath detections), summary.json and class_map.png.",
    )
    p.add_argument("slide", type=existing_file, help="slide file (OME-TIFF, TIFF, SVS, CZI)")
    p.add_argument("--out", type=output_dir, required=True, help="output directory (created)")
    p.add_argument("--model", type=existing_dir, default=None, help="model directory (default: the demo model)")
    p.add_argument("--regions", type=existing_file, default=None,
                   help="QuPath GeoJSON annotations (level-0 px): analyse only inside them, minus exclusions")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA if available")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="auto (default): fp32 on a CPU, bf16/fp16 on CUDA after a parity check with fp32")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"tiles per model call (default {d.batch_size})")
    p.add_argument("--channel", default=None, help="channel name or index to analyse (default: the Hoechst/DAPI channel)")
    p.add_argument("--mpp", type=positive_float, nargs=2, metavar=("X", "Y"), default=None,
                   help="pixel size in µm for a slide that does not record it (a recorded one needs --force-mpp)")
    p.add_argument("--force-mpp", action="store_true",
                   help="let --mpp replace a pixel size the slide records (the override is kept in summary.json)")
    p.add_argument("--no-domain-check", action="store_true",
                   help="skip comparing the slide with the model's training data (warnings)")
    p.add_argument("--no-tissue-detection", action="store_true", help="analyse every tile, glass included")
    p.add_argument("--tissue-min-area", type=non_negative_float, default=d.tissue_min_area_um2, metavar="UM2",
                   help=f"ignore tissue pieces smaller than this, in µm² (default {d.tissue_min_area_um2:g})")
    p.add_argument("--nucleus-stain-ratio", type=non_negative_float, default=d.nucleus_stain_ratio, metavar="R",
                   help="keep a cell only if its nucleus's mean stain is at least R times the slide's stroma level "
                   f"(default {d.nucleus_stain_ratio:g}; 0 = keep calls without stain, e.g. for a very faint stain)")
    p.add_argument("--threads", type=positive_int, default=None, help="PyTorch CPU threads (default: PyTorch's choice)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="CPU inference runtime (default auto: ONNX Runtime at fp32 when installed, else PyTorch)")
    p.add_argument("--checkpoint-dir", type=output_dir, default=None,
                   help="where finished blocks are kept for resuming (default: OUT/.checkpoint, removed on success)")
    p.set_defaults(func=run)


def _regions(path: Path, mpp: tuple[float, float], size_um: tuple[float, float]) -> BaseGeometry:
    """Union of the annotations to analyse minus the exclusions, in slide µm."""
    import shapely

    from core.regions import RegionKind, read_regions_geojson

    imported = read_regions_geojson(path, mpp)
    for warning in imported.warnings:
        log.warning("%s", warning)
    include = [r.geometry for r in imported.regions if r.kind is not RegionKind.EXCLUSION]
    exclude = [r.geometry for r in imported.regions if r.kind is RegionKind.EXCLUSION]
    area = shapely.union_all(include) if include else shapely.box(0, 0, *size_um)
    return area.difference(shapely.union_all(exclude)) if exclude else area


def _recorded_mpp(path: Path) -> tuple[float, float] | None:
    """The pixel size the slide file itself records, or None (errors opening it surface later)."""
    from core.slides import open_slide

    try:
        with open_slide(path) as slide:
            return slide.mpp
    except CoreError:
        return None


def run(args: argparse.Namespace) -> int:
    # Heavy imports live here so that `python -m core --help` answers at once.
    from dataclasses import replace

    import torch
    from tqdm import tqdm

    from core.engine import analyse_slide
    from core.engine.export import write_analysis
    from core.engine.summary import MppOverride
    from core.models.domain import check_slide
    from core.models.inference import load_for_inference
    from core.models.runtime import default_model_dir
    from core.progress import Progress, run_to_completion
    from core.slides import open_slide

    recorded = _recorded_mpp(args.slide) if args.mpp else None
    same = recorded is not None and all(abs(g - r) <= 1e-3 * r for g, r in zip(args.mpp, recorded, strict=True))
    if recorded is not None and not same and not args.force_mpp:
        raise CoreError(
            f"{args.slide.name} records its pixel size ({recorded[0]:.4g} x {recorded[1]:.4g} µm); --mpp "
            f"{args.mpp[0]:g} {args.mpp[1]:g} would replace it and change every size and density. Leave out --mpp, "
            "or add --force-mpp if the recorded value is known to be wrong."
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_for_inference(args.model or default_model_dir(), device=args.device, precision=args.precision,
                               runtime=args.runtime)
    print(f"model {model.card.name} on {model.device} ({model.precision_reason})", file=sys.stderr)
    params = AnalysisParams(
        batch_size=args.batch_size,
        channel=int(args.channel) if args.channel is not None and args.channel.isdigit() else args.channel,
        tissue_detection=not args.no_tissue_detection,
        tissue_min_area_um2=args.tissue_min_area,
        nucleus_stain_ratio=args.nucleus_stain_ratio,
    )
    checkpoint = args.checkpoint_dir or (args.out / ".checkpoint")
    with open_slide(args.slide, mpp=tuple(args.mpp) if args.mpp else None) as slide:
        mpp = slide.require_mpp()
        warnings: list[str] = []
        if not args.no_domain_check:
            try:
                warnings = check_slide(slide, model.card, channel=params.channel if params.channel is not None else "hoechst")
            except CoreError as err:  # the analysis itself will say what is wrong with the slide, if anything
                warnings = [f"The slide could not be compared with the model's training data: {err}"]
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        regions = None
        if args.regions is not None:
            width, height = slide.dimensions
            regions = _regions(args.regions, mpp, (width * mpp[0], height * mpp[1]))
        with tqdm(total=0, unit="tile", file=sys.stderr, desc=args.slide.name, dynamic_ncols=True) as bar:

            def show(p: Progress) -> None:
                bar.total = p.total
                bar.n = p.done
                bar.set_postfix_str(p.message, refresh=False)
                bar.refresh()

            job = analyse_slide(slide, model, params, regions_um=regions, checkpoint_dir=checkpoint)
            result = run_to_completion(job, show)
        override = None
        if args.mpp:
            override = MppOverride(recorded=(recorded[0], recorded[1]) if recorded else None,
                                   used=(args.mpp[0], args.mpp[1]), forced=bool(recorded and not same))
        result.summary = replace(result.summary, warnings=tuple(warnings), mpp_override=override)
        paths = write_analysis(result, args.out, mpp, model.card.class_colours)
    if args.checkpoint_dir is None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    s = result.summary
    counts = ", ".join(f"{k} {v}" for k, v in s.counts.items())
    print(
        f"{s.total_cells} cells ({counts}) in {s.tissue_area_mm2:.2f} mm² tissue; "
        f"{s.tiles_analysed} tiles ({s.tiles_skipped_background} background skipped) in {s.seconds:.1f} s"
    )
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
