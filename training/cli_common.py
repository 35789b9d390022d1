"""Command-line pieces shared by ``training.label``, ``training.retrain`` and ``training.evaluate``.

One definition of the input and labelling flags keeps the three commands consistent: a flag means
the same thing, with the same default, wherever it appears. Flags override the TOML config.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm import tqdm

from core.cli.args import existing_dir, existing_file, non_negative_float, positive_float
from core.errors import UncalibratedError
from core.models.domain import summarise
from core.progress import Progress
from core.slides import open_slide
from training.config import CHANNEL_ROLES, MARKER_ROLES, LabelConfig, load_config
from training.errors import DatasetError
from training.patches import CacheEntry, PatchParams, slide_patches, tile_patches, unique_names
from training.tiles import find_tiles

T = TypeVar("T")


class InputSettings(Protocol):
    """What the input helpers read: an ``argparse.Namespace`` of these flags or a
    :class:`training.retrain_config.RetrainConfig`."""

    @property
    def slides(self) -> Sequence[Path]: ...
    @property
    def tiles(self) -> Sequence[Path]: ...
    @property
    def mpp(self) -> float | None: ...


class LabelSettings(Protocol):
    """The labelling flags (``--config``; ``--channel-*`` and ``--threshold-*`` are read by name)."""

    @property
    def config(self) -> Path | None: ...


def add_input_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inputs")
    g.add_argument("--slides", nargs="+", type=existing_file, default=[], metavar="SLIDE",
                   help="mIF slides (OME-TIFF, TIFF, CZI, ...) with Hoechst and marker channels")
    g.add_argument("--tiles", nargs="+", type=existing_dir, default=[], metavar="DIR",
                   help="QuPath TileExporter folders: <name>.tif beside <name>-labelled.png")
    g.add_argument("--mpp", type=positive_float, default=None,
                   help="pixel size in µm for inputs whose files lack one (uncalibrated slides/tiles)")


def add_label_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("labelling (override the --config file)")
    g.add_argument("--config", type=existing_file, default=None, metavar="TOML",
                   help="labelling config (thresholds, channel map, segmentation, tile labels); "
                   "write one with `python -m training.label SLIDE --calibrate --save-config labels.toml`")
    for role in CHANNEL_ROLES:
        g.add_argument(f"--channel-{role}", default=None, metavar="NAME",
                       help=f"channel name or 0-based index of the {role} channel (default: found by alias)")
    defaults = LabelConfig().thresholds
    for key in (*MARKER_ROLES, "cd3_hi"):
        g.add_argument(f"--threshold-{key.replace('_', '-')}", type=non_negative_float, default=None, metavar="VALUE",
                       help=f"cell-mean threshold for {key} (default {getattr(defaults, key):.0f})")


def config_from_args(args: LabelSettings) -> LabelConfig:
    """The config file (or defaults) with any channel/threshold flags applied on top."""
    cfg = load_config(args.config)
    chans = {r: str(getattr(args, f"channel_{r}")) for r in CHANNEL_ROLES if getattr(args, f"channel_{r}", None) is not None}
    if chans:
        cfg = dataclasses.replace(cfg, channels=dataclasses.replace(cfg.channels, **chans))
    thr = {k: getattr(args, f"threshold_{k}") for k in (*MARKER_ROLES, "cd3_hi") if getattr(args, f"threshold_{k}", None) is not None}
    if thr:
        cfg = cfg.with_thresholds(**thr)
    return cfg


def drive(job: Generator[Progress, None, T], desc: str, show: bool = True) -> T:
    """Run a job generator with a tqdm bar (or silently, e.g. on DDP ranks other than 0)."""
    bar = tqdm(desc=desc, unit="", leave=False, disable=not show or not sys.stderr.isatty(), dynamic_ncols=True)
    try:
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                return stop.value
            bar.total = p.total
            bar.n = p.done
            bar.set_postfix_str(p.message, refresh=True)
    finally:
        bar.close()


def with_mpp_hint(err: UncalibratedError) -> UncalibratedError:
    """The same error, telling the command-line user which flag supplies the pixel size."""
    new = UncalibratedError(err.path)
    new.args = (f"{err} On the command line: --mpp MICRONS (e.g. --mpp 0.227).",)
    return new


def prepare_inputs(
    args: InputSettings, cfg: LabelConfig, params: PatchParams, cache: Path, show: bool = True
) -> list[CacheEntry]:
    """Label and cut every input (cached); prints one line per input."""
    if not args.slides and not args.tiles:
        raise DatasetError("No inputs: give mIF slides with --slides and/or tile folders with --tiles.")
    entries = []
    try:
        for path, name in zip(args.slides, unique_names(list(args.slides)), strict=True):
            e = drive(slide_patches(path, cfg, params, cache, mpp=args.mpp, name=name), name, show)
            cells = e.meta.get("cells", {})
            if show:
                print(f"  {e.name}: {sum(cells.values())} cells "
                      f"({', '.join(f'{k} {v}' for k, v in cells.items())}), {e.n} patches with tissue")
            entries.append(e)
        for folder in args.tiles:
            e = drive(tile_patches(folder, cfg, params, cache, mpp=args.mpp), f"{folder.name}", show)
            if show:
                print(f"  {e.name}: {e.meta.get('tiles')} tiles from {len(e.slides)} slide(s), {e.n} patches")
            entries.append(e)
    except UncalibratedError as err:
        raise with_mpp_hint(err) from None
    return entries


def input_mpps(args: InputSettings) -> dict[str, float]:
    """Pixel size (µm) of each input: every slide, and the first tile of each tile folder."""
    out: dict[str, float] = {}
    mpp = args.mpp
    override = (mpp, mpp) if mpp else None
    try:
        for path, name in zip(args.slides, unique_names(list(args.slides)), strict=True):
            with open_slide(path, mpp=override) as slide:
                out[name] = float(np.mean(slide.require_mpp()))
        for folder in args.tiles:
            with open_slide(find_tiles(folder)[0][0], mpp=override) as slide:
                out[folder.name] = float(np.mean(slide.require_mpp()))
    except UncalibratedError as err:
        raise with_mpp_hint(err) from None
    return out


def choose_model_mpp(requested: float | None, inputs: dict[str, float],
                     given_by: str = "--model-mpp") -> tuple[float, str]:
    """The model's pixel size and why: the requested one (``given_by`` says who asked: the flag, or the
    model a fine-tuning run starts from), else the coarsest input's (nothing upsampled)."""
    if requested is not None:
        finest_up = [n for n, m in inputs.items() if m > requested * 1.01]
        if finest_up:
            worst = max(inputs[n] for n in finest_up)
            return requested, (f"given by {given_by}; input(s) {', '.join(finest_up)} are upsampled up to "
                               f"{worst / requested:.1f}x, which invents detail the model will not see on real slides")
        return requested, f"given by {given_by}"
    if not inputs:
        return 0.227, "default (no inputs)"
    coarsest = max(inputs.values())
    listing = ", ".join(f"{n} {m:.4g}" for n, m in inputs.items())
    if len({round(m, 4) for m in inputs.values()}) == 1:
        return coarsest, f"the training data's own pixel size ({listing} µm), so nothing is resampled"
    return coarsest, (f"the coarsest input's ({listing} µm), so nothing is upsampled; finer inputs are "
                      "downsampled to it. Give --model-mpp to choose another")


def training_statistics(patches: Any, indices: np.ndarray, mpp: float, seed: int, n: int = 64) -> dict[str, Any]:
    """:func:`core.models.domain.summarise` of up to ``n`` training patches (raw Hoechst, seeded sample)."""
    idx = np.asarray(indices)
    if len(idx) > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
    images = []
    for i in idx:
        entry, local = patches.locate(int(i))
        images.append(np.asarray(np.load(entry.path / "images.npy", mmap_mode="r")[local]))
    return summarise(images, mpp)
