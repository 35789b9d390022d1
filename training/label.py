"""``python -m training.label SLIDE|TILE ...``: label mIF slides or exported tiles, calibrate thresholds, check QC.

Run this before training on a new batch: ``--calibrate`` suggests thresholds from the cells of ALL
the given slides/tiles pooled (per-slide values shown beside them; method in
:mod:`training.calibrate`), prints text histograms, writes a histogram PNG per marker and QC mosaics
per slide and class; ``--save-config labels.toml`` keeps the pooled thresholds for ``--config``.
A slide with low nuclear contrast, or none, is labelled with a warning (printed and in the QC
summary), never refused. With ``--truth cells.csv`` (a phantom's true cell table) it prints the
labels' per-class precision/recall and the macro-F1 of the lymphocyte classes, per slide and pooled;
QuPath TileExporter tiles are placed on their slide by their names (``[x=…,y=…,w=…,h=…]``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.cli.args import existing_file, output_dir, output_file, positive_float, positive_int
from core.cli.failure import DEBUG_HELP, report_failure
from core.errors import CoreError, UncalibratedError
from core.slides import open_slide
from training.calibrate import (
    calibration_report,
    suggested_values,
    unique_path,
    write_histograms,
    write_qc_mosaics,
)
from training.cli_common import add_label_args, config_from_args, drive, with_mpp_hint
from training.config import LabelConfig, save_config
from training.labelcheck import compare_to_truth, format_comparison, macro_f1, read_truth, tile_truth
from training.labeller import LabelResult, classify, label_slide, resolve_channels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.label",
        description="Label the cells of mIF slides or QuPath TileExporter tiles from their marker channels "
        "(nuclei on Hoechst, 1 µm cell expansion, mean intensity thresholds), calibrate the thresholds on the "
        "whole batch and check them.",
        epilog="Example: python -m training.label tiles/*.tif --calibrate --out qc/ --save-config labels.toml; "
        "then: python -m training.label tiles/*.tif --config labels.toml --out labels/",
    )
    p.add_argument("slides", nargs="+", type=existing_file, metavar="SLIDE", help="mIF slide(s) or exported tile TIFF(s)")
    p.add_argument("--out", type=output_dir, default=Path("labels-out"),
                   help="output folder: <slide>-cells.csv, <slide>-labels.npy (level-0 class mask), "
                   "<slide>-labels.png preview, QC pictures and qc-summary.csv (default: labels-out)")
    p.add_argument("--mpp", type=positive_float, default=None, help="pixel size in µm for slides whose file lacks one")
    add_label_args(p)
    p.add_argument("--calibrate", action="store_true",
                   help="suggest thresholds from all slides pooled (negative population + mixture on log10 cell "
                   "means), print histograms with per-slide values, write hist-<marker>.png and QC mosaics")
    p.add_argument("--save-config", type=output_file, default=None, metavar="TOML",
                   help="write the config: with --calibrate the pooled suggested thresholds, otherwise the "
                   "thresholds in effect")
    p.add_argument("--qc-cells", type=positive_int, default=24, help="cells per class in each QC mosaic (default 24)")
    p.add_argument("--truth", type=existing_file, default=None, metavar="CSV",
                   help="true cell table (a phantom's cells.csv): per-class precision/recall and macro-F1 of the "
                   "labels; tiles are placed on the slide by their TileExporter names")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    p.add_argument("--match-um", type=positive_float, default=3.0, help="max centroid distance for --truth matching (µm)")
    return p


@dataclass
class SlideLabels:
    """What one slide's run left for the batch steps (calibration, QC, truth)."""

    path: Path
    name: str
    result: LabelResult
    dimensions: tuple[int, int]
    warnings: list[str] = field(default_factory=list)


def _preview(result: LabelResult, path: Path, max_size: int = 2048) -> None:
    """A small RGB picture of the class mask (class colours, nearest-neighbour downsampled)."""
    h, w = result.mask.shape
    step = max(1, int(np.ceil(max(h, w) / max_size)))
    small = np.asarray(result.mask[::step, ::step])
    lut = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in CLASS_COLOURS], dtype=np.uint8)
    lut[0] = 0
    Image.fromarray(lut[np.minimum(small, len(lut) - 1)]).save(path)


def stem_of(path: Path) -> str:
    """Output name of a slide: the file name up to its first '.', except that a TileExporter name
    (``Slide [x=…,y=…].tif``) keeps its brackets whole."""
    name = path.name
    if "]" in name:
        return name[: name.rindex("]") + 1]
    return name.split(".")[0]


def label_one(path: Path, args: argparse.Namespace, cfg: LabelConfig) -> SlideLabels:
    """Label one slide and write its outputs (cells, mask, preview); warnings are printed, not raised."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = stem_of(path)
    with open_slide(path, mpp=(args.mpp, args.mpp) if args.mpp else None) as slide:
        try:
            slide.require_mpp()
        except UncalibratedError as err:
            raise with_mpp_hint(err) from None
        result = drive(label_slide(slide, cfg, mask_path=args.out / f"{stem}-labels.npy"), stem)
        dims = slide.dimensions
    cells = result.cells
    cells.to_csv(args.out / f"{stem}-cells.csv", index=False)
    if result.mask_path is not None:
        _preview(result, args.out / f"{stem}-labels.png")
    counts = cells["class_name"].value_counts()
    lv = result.levels
    print(f"{path.name}: {len(cells)} cells; " + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in CLASS_NAMES)
          + (f"; nuclear contrast {lv.contrast:.1f} background SDs" if lv else "") + f"; channels {result.channels}")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return SlideLabels(path, stem, result, dims, list(result.warnings))


def _calibrate(done: list[SlideLabels], args: argparse.Namespace, cfg: LabelConfig) -> LabelConfig:
    """Pooled suggestions, report, histograms and per-slide QC mosaics (classes under the suggestion)."""
    per = {s.name: s.result.cells for s in done if len(s.result.cells)}
    pooled = pd.concat(list(per.values()), ignore_index=True) if per else pd.DataFrame()
    if pooled.empty:
        print("warning: no cells in any slide; nothing to calibrate.", file=sys.stderr)
        return cfg
    text, sugg = calibration_report(pooled, cfg.thresholds, per)
    print(text)
    suggested = cfg.with_thresholds(**suggested_values(sugg))
    hists = write_histograms(pooled, cfg.thresholds, sugg, args.out, per)
    print("Histograms: " + ", ".join(str(p) for p in hists))
    t = suggested.thresholds
    for s in done:
        cells = s.result.cells
        if cells.empty:
            continue
        cells = cells.copy()
        cells["class_id"] = classify(cells["mean_cd20"].to_numpy(), cells["mean_cd8"].to_numpy(),
                                     cells["mean_cd3"].to_numpy(), t).astype(np.int64)
        note = "; ".join(w.split(": ", 1)[-1] for w in s.warnings)
        with open_slide(s.path, mpp=(args.mpp, args.mpp) if args.mpp else None) as slide:
            levels = s.result.levels
            written = write_qc_mosaics(slide, cells, suggested, resolve_channels(slide, suggested),
                                       levels.threshold if levels else float("inf"), args.out,
                                       per_class=args.qc_cells, slide_name=s.name,
                                       note=("WARNING " + note) if note else "")
        print(f"QC mosaics of {s.name} (classes under the suggested thresholds): "
              + ", ".join(p.name for p in written))
    return suggested


def _qc_summary(done: list[SlideLabels], failed: dict[str, str], out: Path) -> Path:
    rows = []
    for s in done:
        counts = s.result.cells["class_name"].value_counts()
        rows.append({"slide": s.name, "cells": len(s.result.cells),
                     "contrast_sd": round(s.result.levels.contrast, 2) if s.result.levels else None,
                     **{c: int(counts.get(c, 0)) for c in CLASS_NAMES},
                     "labels_written": s.result.mask_path is not None, "warnings": " | ".join(s.warnings)})
    rows += [{"slide": name, "cells": 0, "labels_written": False, "warnings": f"failed: {msg}"}
             for name, msg in failed.items()]
    path = unique_path(out / "qc-summary.csv")
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _check_truth(done: list[SlideLabels], args: argparse.Namespace) -> None:
    truth = read_truth(args.truth)
    pooled = []
    for s in done:
        cells, tr = tile_truth(s.result.cells, truth, s.name, s.dimensions, s.result.mpp)
        table = compare_to_truth(cells, tr, args.match_um)
        pooled.append((cells, tr))
        print(f"Labels of {s.name} against {args.truth} (nearest centroid within {args.match_um} µm): "
              f"macro-F1 (lymphocyte classes) {macro_f1(table):.3f}")
        print(format_comparison(table))
    if len(done) > 1:
        tables = [compare_to_truth(c, t, args.match_um) for c, t in pooled]
        total = sum(tab[["labelled", "true", "correct"]] for tab in tables)
        total["precision"] = total["correct"] / total["labelled"].where(total["labelled"] > 0)
        total["recall"] = total["correct"] / total["true"].where(total["true"] > 0)
        total["f1"] = 2 * total["correct"] / (total["labelled"] + total["true"]).where(total["labelled"] + total["true"] > 0)
        print(f"Pooled over {len(done)} slides/tiles: macro-F1 (lymphocyte classes) {macro_f1(total):.3f}; "
              f"nucleus recall {total.loc['detection', 'correct'] / max(1, total.loc['detection', 'true']):.3f}")
        print(format_comparison(total))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the one place every failure is reported
        return report_failure(err, debug=args.debug)


def _main(args: argparse.Namespace) -> int:
    code = 0
    cfg = config_from_args(args)
    done: list[SlideLabels] = []
    failed: dict[str, str] = {}
    for path in args.slides:
        try:
            done.append(label_one(path, args, cfg))
        except CoreError as err:
            print(f"error: {err}", file=sys.stderr)
            failed[path.name] = str(err)
            code = 2  # a batch logs the failing slide and goes on (STYLE §8)
    chosen = cfg
    if args.calibrate and done:
        chosen = _calibrate(done, args, cfg)
    if args.truth is not None and done:
        _check_truth(done, args)
    summary = _qc_summary(done, failed, args.out)
    warned = [s.name for s in done if s.warnings]
    print(f"QC summary: {summary}" + (f" ({len(warned)} slide(s) with warnings: {', '.join(warned[:5])})" if warned else ""))
    if args.save_config is not None:
        note = ("Thresholds suggested by --calibrate from all slides pooled (negative population + mixture on "
                "log10 cell means); check the QC mosaics and histograms." if args.calibrate else "")
        save_config(chosen, args.save_config, comment=note)
        print(f"Wrote {args.save_config}")
    return code


if __name__ == "__main__":
    sys.exit(main())
