"""``python -m training.label SLIDE ...``: label mIF slides on their own, calibrate thresholds, check QC.

Run this before training on a new slide batch: ``--calibrate`` prints a histogram of cell means per
marker with the current and suggested thresholds (Otsu on log10 cell means, see
:mod:`training.calibrate`) and writes QC mosaics (a PNG per class of sampled cells, Hoechst + the
three markers + the cell outline) for a visual check; ``--save-config labels.toml`` keeps the
thresholds for ``training.retrain --config labels.toml``. With ``--truth cells.csv`` (a phantom's
true cell table) it prints the labeller's per-class precision/recall.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.cli._args import existing_file, output_dir, output_file, positive_float, positive_int
from core.cli._failure import DEBUG_HELP, report_failure
from core.errors import CoreError, UncalibratedError
from core.slides import open_slide
from training.calibrate import calibration_report, write_qc_mosaics
from training.cli_common import add_label_args, config_from_args, drive, with_mpp_hint
from training.config import LabelConfig, save_config
from training.labelcheck import compare_to_truth, format_comparison, read_truth
from training.labeller import LabelResult, label_slide, resolve_channels


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.label",
        description="Label the cells of mIF slides from their marker channels (nuclei on Hoechst, "
        "1 µm cell expansion, mean intensity thresholds), calibrate the thresholds and check them.",
        epilog="Example: python -m training.label slide.ome.tif --calibrate --out qc/ --save-config labels.toml",
    )
    p.add_argument("slides", nargs="+", type=existing_file, metavar="SLIDE", help="mIF slide(s)")
    p.add_argument("--out", type=output_dir, default=Path("labels-out"),
                   help="output folder: <slide>-cells.csv, <slide>-labels.npy (level-0 class mask), "
                   "<slide>-labels.png preview, QC mosaics (default: labels-out)")
    p.add_argument("--mpp", type=positive_float, default=None, help="pixel size in µm for slides whose file lacks one")
    add_label_args(p)
    p.add_argument("--calibrate", action="store_true",
                   help="print histograms with suggested thresholds (Otsu on log10 cell means) and write QC mosaics")
    p.add_argument("--save-config", type=output_file, default=None, metavar="TOML",
                   help="write the config: with --calibrate the suggested thresholds (of the first slide), "
                   "otherwise the thresholds in effect")
    p.add_argument("--qc-cells", type=positive_int, default=24, help="cells per class in each QC mosaic (default 24)")
    p.add_argument("--truth", type=existing_file, default=None, metavar="CSV",
                   help="true cell table (a phantom's cells.csv): print per-class precision/recall of the labels")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    p.add_argument("--match-um", type=positive_float, default=3.0, help="max centroid distance for --truth matching (µm)")
    return p


def _preview(result: LabelResult, path: Path, max_size: int = 2048) -> None:
    """A small RGB picture of the class mask (class colours, nearest-neighbour downsampled)."""
    h, w = result.mask.shape
    step = max(1, int(np.ceil(max(h, w) / max_size)))
    small = np.asarray(result.mask[::step, ::step])
    lut = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in CLASS_COLOURS], dtype=np.uint8)
    lut[0] = 0
    Image.fromarray(lut[np.minimum(small, len(lut) - 1)]).save(path)


def label_one(path: Path, args: argparse.Namespace, cfg: LabelConfig) -> tuple[LabelConfig | None, int]:
    """Label one slide and write its outputs; returns (suggested config when calibrating, exit code)."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0]
    suggested = None
    with open_slide(path, mpp=(args.mpp, args.mpp) if args.mpp else None) as slide:
        try:
            slide.require_mpp()
        except UncalibratedError as err:
            raise with_mpp_hint(err) from None
        result = drive(label_slide(slide, cfg, mask_path=args.out / f"{stem}-labels.npy"), stem)
        cells = result.cells
        cells.to_csv(args.out / f"{stem}-cells.csv", index=False)
        _preview(result, args.out / f"{stem}-labels.png")
        counts = cells["class_name"].value_counts()
        print(f"{path.name}: {len(cells)} cells; " + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in CLASS_NAMES)
              + f"; nucleus threshold {result.hoechst_threshold:.4g}; channels {result.channels}")
        if args.calibrate:
            text, sugg = calibration_report(cells, cfg.thresholds)
            print(text)
            written = write_qc_mosaics(slide, cells, cfg, resolve_channels(slide, cfg), result.hoechst_threshold,
                                       args.out, per_class=args.qc_cells)
            print("QC mosaics: " + ", ".join(str(p) for p in written))
            suggested = cfg.with_thresholds(**{k: v for k, v in sugg.items() if v is not None})
    if args.truth is not None:
        table = compare_to_truth(cells, read_truth(args.truth), args.match_um)
        print(f"Labels of {path.name} against {args.truth} (nearest centroid within {args.match_um} µm):")
        print(format_comparison(table))
    return suggested, 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the one place every failure is reported
        return report_failure(err, debug=args.debug)


def _main(args: argparse.Namespace) -> int:
    code = 0
    cfg = config_from_args(args)
    first_suggestion = None
    for path in args.slides:
        try:
            suggested, _ = label_one(path, args, cfg)
            first_suggestion = first_suggestion or suggested
        except CoreError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2  # a batch logs the failing slide and goes on (STYLE §8)
    if args.save_config is not None:
        chosen = first_suggestion if args.calibrate and first_suggestion else cfg
        note = "Thresholds suggested by --calibrate (Otsu on log10 cell means); check the QC mosaics." if args.calibrate else ""
        save_config(chosen, args.save_config, comment=note)
        print(f"Wrote {args.save_config}")
    return code


if __name__ == "__main__":
    sys.exit(main())
