"""``python -m core saliency``: explain the model's call at one point of a slide with HiPe, headless.

Reads the 256 px Hoechst patch around the point at the model's pixel size, predicts it, and runs
Hierarchical Perturbation (paper section 5) for the chosen classes, on the whole patch or (with
``--cell``) on the cell under the point. The same :mod:`core.saliency.explain` calls as the app's
saliency dock. Writes into ``--out``:

- ``saliency_<class>.npy`` (S, S) float32 and ``depth_maps_<class>.npy`` (D, S, S) float32;
- ``hoechst.png`` (the patch as the model sees it, percentile-stretched), ``prediction.png``
  (class colours; the cell's outline in white with ``--cell``), ``saliency_<class>.png`` (overlay
  on the Hoechst patch) and ``saliency_<class>_depths.png`` (one small overlay per depth, each
  scaled to its own maximum, coarsest first);
- ``saliency.json``: the point, patch, model, targets with forward passes, seconds and the fraction
  of saliency mass inside the predicted nucleus (with ``--cell``) or inside the pixels predicted as
  the class (patch mode).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from core.classes import POSITIVE_CLASSES
from core.cli.args import (
    existing_dir,
    existing_file,
    finite_float,
    non_negative_float,
    output_dir,
    positive_float,
    positive_int,
)
from core.errors import CoreError
from core.jsontypes import JSONDict, JSONValue, as_list, as_mapping

if TYPE_CHECKING:  # torch-heavy modules are imported when the command runs, not for --help
    from core.saliency.explain import ExplainContext, Explanation

log = logging.getLogger(__name__)
#: Extra mass reported around the cell: the paper's cell expansion (SPEC, labels: 1 µm).
DILATE_UM = 1.0
STRIP_SIZE = 128
#: Same as core.saliency.hipe.PERTURBATIONS (not imported here: it needs torch; a test checks they agree).
PERTURBATION_CHOICES = ("fade", "mean", "blur")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "saliency", help="explain the model's call at a point with HiPe saliency maps",
        description="Hierarchical Perturbation (HiPe) saliency of the model's output around one point of a "
        "slide: which pixels of the Hoechst patch made the model call this class here.",
    )
    p.add_argument("slide", type=existing_file, metavar="SLIDE", help="slide file (OME-TIFF, TIFF, SVS, CZI)")
    p.add_argument("--x", type=finite_float, required=True, help="x of the point in level-0 pixels")
    p.add_argument("--y", type=finite_float, required=True, help="y of the point in level-0 pixels")
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="NAME",
                   help="class to explain (repeatable; 'all' = every positive class; default: the "
                   "predicted class at the point)")
    p.add_argument("--cell", action="store_true",
                   help="explain the cell under the point (its mean probability) rather than the whole patch")
    p.add_argument("--model", type=existing_dir, default=None, metavar="DIR",
                   help="model directory (default: the demo model, resources/models/demo)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA if available")
    p.add_argument("--perturbation", choices=PERTURBATION_CHOICES, default="fade",
                   help="what replaces an occluded window: zero (fade, the paper's), the patch mean, a blur")
    p.add_argument("--initial-cells", type=positive_int, default=4, metavar="N", help="HiPe's initial grid (default 4)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                   help="perturbed patches per forward pass (default: 32 on a GPU, 8 on a CPU)")
    p.add_argument("--search-radius", type=non_negative_float, default=2.0, metavar="UM",
                   help="with --cell: snap to the nearest cell within this distance (µm, default 2)")
    p.add_argument("--mpp", type=positive_float, nargs="+", default=None, metavar="UM",
                   help="slide pixel size in µm (one value, or x and y) for a file without one")
    p.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def _mpp(values: list[float] | None) -> tuple[float, float] | None:
    if values is None:
        return None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise CoreError(f"--mpp takes one or two positive numbers (µm per pixel), got {values}.")
    return (values[0], values[-1])


def _targets(names: list[str], context: ExplainContext) -> list[int]:
    """Class indices from ``--class`` values (names, case-insensitive, or 'all')."""
    from core.saliency.explain import default_target

    if not names:
        try:
            return [default_target(context)]
        except CoreError as err:
            raise CoreError(f"{err} Give it with --class NAME (or --class all).") from None
    lookup = {n.lower(): i for i, n in enumerate(context.class_names)}
    out: list[int] = []
    for name in names:
        if name.lower() == "all":
            wanted = [c for c in POSITIVE_CLASSES if c < len(context.class_names)]
        elif name.lower() in lookup:
            wanted = [lookup[name.lower()]]
        else:
            raise CoreError(f"Unknown class {name!r}; choose one of {', '.join(context.class_names)} or 'all'.")
        out += [c for c in wanted if c not in out]
    return out


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def _depth_strip(base: np.ndarray, depth_maps: np.ndarray, size: int = STRIP_SIZE, gap: int = 4) -> np.ndarray:
    """One overlay per depth side by side, each scaled to its own maximum, ``size`` px high."""
    from core.saliency.explain import saliency_rgb

    small = np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR))
    tiles = []
    for d in depth_maps:
        m = np.asarray(Image.fromarray(d.astype(np.float32)).resize((size, size), Image.Resampling.BOX))
        tiles.append(saliency_rgb(small, m))
        tiles.append(np.full((size, gap, 3), 255, dtype=np.uint8))
    return np.concatenate(tiles[:-1], axis=1) if tiles else small


def write_outputs(expl: Explanation, out: Path, meta: JSONDict) -> JSONDict:
    """Write the arrays, PNGs and ``saliency.json`` (see module docstring); returns the JSON dict."""
    from core.saliency.explain import classes_rgb, hoechst_rgb, outline, saliency_rgb

    ctx = expl.context
    out.mkdir(parents=True, exist_ok=True)
    base = hoechst_rgb(ctx.patch.hoechst)
    _save_png(base, out / "hoechst.png")
    pred = classes_rgb(ctx.classes, ctx.class_colours)
    if ctx.cell_mask is not None:
        pred[outline(ctx.cell_mask)] = 255
    _save_png(pred, out / "prediction.png")
    targets: list[JSONValue] = []
    for target, res in expl.maps.items():
        name = ctx.class_names[target]
        np.save(out / f"saliency_{name}.npy", res.saliency.astype(np.float32))
        np.save(out / f"depth_maps_{name}.npy", res.depth_maps.astype(np.float32))
        overlay = saliency_rgb(base, res.saliency)
        if ctx.cell_mask is not None:
            overlay[outline(ctx.cell_mask)] = (0, 255, 255)
        _save_png(overlay, out / f"saliency_{name}.png")
        _save_png(_depth_strip(base, res.depth_maps), out / f"saliency_{name}_depths.png")
        inside = expl.inside_fraction(target)
        grown = expl.inside_fraction(target, DILATE_UM)
        rank = expl.rank_fraction(target)
        targets.append({
            "class": name, "class_id": target, "n_masks": res.n_masks, "depths": int(res.depth_maps.shape[0]),
            "seconds": round(expl.seconds[target], 3),
            "inside_fraction": None if np.isnan(inside) else round(inside, 4),
            f"inside_fraction_dilated_{DILATE_UM:g}um": None if np.isnan(grown) else round(grown, 4),
            "top_pixels_inside": None if np.isnan(rank) else round(rank, 4),
        })
    cell: JSONDict | None = None
    if ctx.cell_mask is not None and ctx.cell_class is not None:
        rows, cols = np.nonzero(ctx.cell_mask)
        cx, cy = ctx.patch.to_level0(cols.mean() + 0.5, rows.mean() + 0.5)
        cell = {"class": ctx.class_names[ctx.cell_class], "area_px": int(rows.size),
                "area_um2": round(rows.size * ctx.patch.mpp**2, 2), "centroid_px": [round(cx, 2), round(cy, 2)],
                "mean_probability": round(float(ctx.probabilities[ctx.cell_class][ctx.cell_mask].mean()), 4)}
    doc: JSONDict = {
        **meta,
        "mode": "cell" if ctx.is_cell else "patch",
        "inside_fraction_means": "saliency mass inside the cell's predicted pixels / mass in the whole patch"
        if ctx.is_cell else "saliency mass inside the pixels predicted as the class / mass in the whole patch",
        "top_pixels_inside_means": "of the K most salient pixels (K = the pixels of that same mask), the fraction "
        "inside it (relevance rank accuracy)",
        "patch_location_px": [round(v, 3) for v in ctx.patch.location],
        "patch_size": int(ctx.patch.image.shape[0]), "patch_mpp": ctx.patch.mpp,
        "point_class": ctx.class_names[ctx.point_class], "cell": cell,
        "perturbation": expl.perturbation, "initial_cells": expl.initial_cells, "targets": targets,
    }
    (out / "saliency.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return doc


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.models.runtime import default_model_dir, load_model
    from core.progress import Progress
    from core.saliency.explain import explain_job, prepare
    from core.slides import open_slide

    model_dir = args.model or default_model_dir()
    # fp32: HiPe's evidence is small probability drops (see core.saliency.explain).
    model = load_model(model_dir, device=args.device, precision="fp32")
    with open_slide(args.slide, mpp=_mpp(args.mpp)) as slide:
        context = prepare(model, slide, args.x, args.y, cell=args.cell, search_radius_um=args.search_radius)
    targets = _targets(args.classes, context)
    names = ", ".join(context.class_names[t] for t in targets)
    log.info("Point (%g, %g) px is predicted %r; explaining %s (%s) on %s", args.x, args.y,
             context.class_names[context.point_class], names, "cell" if args.cell else "patch", model.device)
    job = explain_job(model, context, targets, args.perturbation, args.initial_cells, args.batch_size)
    with tqdm(total=len(targets) * 100, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| "
              "[{elapsed}<{remaining}]", dynamic_ncols=True, mininterval=0.5) as bar:
        while True:
            try:
                p: Progress = next(job)
            except StopIteration as stop:
                expl: Explanation = stop.value
                break
            bar.set_description_str(p.message, refresh=False)
            bar.update(round(p.fraction * bar.total) - bar.n)
    meta: JSONDict = {"slide": str(args.slide), "point_px": [args.x, args.y],
            "model": {"name": model.card.name, "sha256": model.card.weights_sha256,
                      "synthetic": model.card.synthetic, "device": str(model.device)}}
    doc = write_outputs(expl, args.out, meta)
    for t in map(as_mapping, as_list(doc["targets"])):
        inside = "" if t["inside_fraction"] is None else (
            f", {t['inside_fraction']:.1%} of the mass inside, {t['top_pixels_inside']:.1%} of the top pixels inside")
        print(f"{t['class']}: {t['n_masks']} forward passes in {t['seconds']:.1f} s{inside}")
    print(f"Wrote {args.out}")
    return 0
