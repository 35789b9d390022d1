"""``python -m training.retrain``: label mIF slides, train the U-Net, evaluate, export and install it.

Single process (CPU or one GPU)::

    python -m training.retrain --slides A.ome.tif B.ome.tif C.ome.tif --holdout-slides C --out runs/m1

Tiles of one slide held out by name, without renaming (QuPath TileExporter names)::

    python -m training.retrain --tiles export/ --holdout-tiles "Lung 3 [x=2048,*" --split-by tile --out runs/m2

Several GPUs (DistributedDataParallel; same flags, ``--batch-size`` stays the global batch)::

    torchrun --nproc_per_node 4 -m training.retrain --slides ... --out runs/m1

Ctrl-C (or a crash) keeps the checkpoint of the last finished epoch; ``--resume`` continues it
exactly. ``--time-limit MIN`` stops gracefully and exports the best model so far.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from core.classes import CLASS_NAMES
from core.cli.args import (
    float_range,
    fractions,
    int_range,
    non_negative_float,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
    prog_name,
)
from core.cli.failure import DEBUG_HELP, report_failure
from core.models import ModelCard, build_model
from training.checkpoint import read_settings
from training.cli_common import (
    add_input_args,
    add_label_args,
    choose_model_mpp,
    config_from_args,
    drive,
    input_mpps,
    prepare_inputs,
    training_statistics,
)
from training.dataset import PatchDataset, PatchSet, make_splits, split_summary
from training.device import PRECISIONS, choose_device, choose_precision
from training.errors import TrainingError
from training.evaluate import add_bootstrap_args, evaluate
from training.export import check_out_dir, export_model, summary_metrics
from training.init_weights import resolve_init
from training.patches import PatchParams
from training.resident import RESIDENT_CHOICES
from training.retrain_config import CURRENT, RESUMABLE, RetrainConfig
from training.small_set import (
    MIN_VAL_CELLS,
    PAPER_TRAIN_CELLS,
    SELECT_RULES,
    WARMUP_FLOOR,
    WARMUP_FRACTION,
    cell_report,
    cell_warnings,
    choose_rule,
    split_cells,
)
from training.train import BALANCE, LR_SCALES, LR_SCHEDULES, DistInfo, FitResult, TrainSettings, fit

#: Why each --balance choice, for the model card.
BALANCE_WHY = {
    "none": "plain pixel cross-entropy, as the paper (which had ~6000 patches)",
    "sampling": "patches drawn in proportion to 1/(patches holding their rarest class), so each class is seen "
                "about equally often on a small imbalanced set",
    "loss": "pixel loss weighted per class by sqrt(median frequency / frequency)",
    "both": "class-balanced patch sampling and a class-weighted loss",
}
__all__ = ["CURRENT", "RESUMABLE", "RetrainConfig", "build_parser", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog_name("python -m training.retrain"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n", 1)[1] + """
Pipeline: label each slide (nuclei on Hoechst, 1 µm cell expansion, thresholds on cell means of the
marker channels; calibrate first with `python -m training.label SLIDE --calibrate`), cut Hoechst
patches (--patch-size, --overlap) at the model pixel size (default: the training data's), split
80/10/10 by patch, tile or spatial block (or hold out named slides, tiles or regions), train with
the 8 rotations/flips and class balancing, keep the best validation per-cell F1 after a warm-up
(stopping early after --patience without progress; both counted in patch-steps, and the last epoch
when validation holds too few cells to choose), evaluate on the test split (per cell, each cell once,
with bootstrap 95% intervals) and write OUT/model.safetensors + model.json (+ metrics.json,
log.csv/json, checkpoint/, cache/).""",
        epilog="Example (demo model, CPU): python -m training.retrain --slides p1/mif.ome.tif p2/mif.ome.tif "
        "--out runs/demo --encoder resnet18 --time-limit 120 --weights-dtype float16 --install",
    )
    add_input_args(p)
    add_label_args(p)
    s = p.add_argument_group("data split")
    s.add_argument("--holdout-slides", nargs="+", default=[], metavar="NAME",
                   help="slides (file name up to the first '.') kept whole for the test set")
    s.add_argument("--val-slides", nargs="+", default=[], metavar="NAME", help="slides kept whole for validation")
    s.add_argument("--holdout-tiles", nargs="+", default=[], metavar="GLOB",
                   help="tiles whose name matches a pattern go to the test set, e.g. 'Lung 3 [x=2048,*' "
                   "(QuPath names; * and ? as in file names; quote it)")
    s.add_argument("--val-tiles", nargs="+", default=[], metavar="GLOB", help="tiles kept for validation, by pattern")
    s.add_argument("--holdout-region", nargs="+", default=[], metavar="SLIDE:X0,Y0,X1,Y1",
                   help="rectangles of a slide (level-0 px) whose patches go to the test set")
    s.add_argument("--val-region", nargs="+", default=[], metavar="SLIDE:X0,Y0,X1,Y1",
                   help="rectangles of a slide (level-0 px) kept for validation")
    s.add_argument("--split-by", choices=("patch", "tile", "block"), default="patch",
                   help="unit of the random split of the rest: patch (the paper's; neighbours share pixels, so "
                   "optimistic), tile (whole tiles) or block (squares of --block-um of each slide)")
    s.add_argument("--block-um", type=positive_float, default=500.0, help="block side for --split-by block, µm (default 500)")
    s.add_argument("--split", type=fractions(3), default="0.8,0.1,0.1", help="train,val,test fractions of the remaining patches or units (default 0.8,0.1,0.1)")
    s.add_argument("--patch-size", type=int_range(32), default=256, help="patch size in px, a multiple of 32 (default 256)")
    s.add_argument("--overlap", type=float_range(0.0, 0.9), default=0.5, help="overlap of neighbouring patches, 0-0.9 (default 0.5)")
    s.add_argument("--model-mpp", type=positive_float, default=None,
                   help="pixel size the model works at, µm (default: the training data's, so nothing is upsampled)")
    t = p.add_argument_group("training")
    t.add_argument("--out", type=output_dir, required=True, help="output folder (refused if it holds a model, unless --force)")
    t.add_argument("--cache", type=output_dir, default=None,
                   help="patch cache folder (default OUT/cache); share one between runs on the same slides")
    t.add_argument("--name", default=None, help="model name in the card and when installed (default: the --out folder name)")
    t.add_argument("--encoder", default="resnet34", help="U-Net encoder (default resnet34 as the paper; resnet18 is ~2x faster)")
    t.add_argument("--init", type=Path, default=None, metavar="MODEL",
                   help="fine-tune: start from this model's weights (a model folder, an installed model's name, or "
                   "'demo'); its encoder and pixel size are kept. Often better than training from scratch on a "
                   "small set")
    t.add_argument("--description", default=None, metavar="TEXT",
                   help="model card description (default: the encoder and the slides that trained, chose and "
                   "tested the model)")
    t.add_argument("--epochs", type=positive_int, default=100, help="epochs (default 100)")
    t.add_argument("--batch-size", type=positive_int, default=32, help="global batch size, split over DDP processes (default 32)")
    t.add_argument("--lr", type=positive_float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="constant (default, the paper's) or cosine: from --lr down to 1%% of it over the planned "
                   "steps (--epochs x patches per epoch, or --max-steps; a --time-limit cuts it short). Use "
                   "cosine with --init")
    t.add_argument("--lr-scale", choices=LR_SCALES, default="none",
                   help="how --lr (the rate for the paper's batch of 32) follows --batch-size: none (default), "
                   "linear (x batch/32) or sqrt (x sqrt(batch/32), the usual rule for AdamW); the card records "
                   "the rate used")
    t.add_argument("--lr-warmup-steps", type=non_negative_int, default=0, metavar="STEPS",
                   help="raise the learning rate linearly over the first STEPS optimiser steps (default 0); "
                   "large scaled batches want a few hundred")
    t.add_argument("--weight-decay", type=non_negative_float, default=1e-2, help="AdamW weight decay (default 0.01)")
    t.add_argument("--loss", choices=("ce", "focal"), default="ce", help="pixel cross-entropy (default) or focal loss (gamma 2)")
    t.add_argument("--balance", choices=BALANCE, default="both",
                   help="against class imbalance: draw patches with rare classes more often (sampling), weight "
                   "the loss per class (loss), both (default: best measured on a small phantom tile set, see "
                   "training/README.md), or none (the paper's plain loss, which had ~6000 patches)")
    t.add_argument("--patience", type=non_negative_int, default=None, metavar="EPOCHS",
                   help="stop after this many epochs' worth of patch-steps (EPOCHS x patches per epoch) without a "
                   "better validation F1; 0: never. Default: 15 epochs' worth, and at least the warm-up")
    t.add_argument("--patience-patches", type=non_negative_int, default=None, metavar="N",
                   help="the same in patch-steps (patches trained on), whatever the epoch length; wins over "
                   "--patience; 0: never stop early")
    t.add_argument("--warmup-patches", type=non_negative_int, default=None, metavar="N",
                   help=f"no epoch is exported before N patch-steps (default: max({WARMUP_FLOOR:,}, "
                   f"{WARMUP_FRACTION:g} x the planned patch-steps), at most the plan; with --time-limit, planned on "
                   "3/4 of the first epoch's pace). Early epochs of barely trained weights can score by luck on a few "
                   "validation cells (a real 18-tile run once exported epoch 1 this way)")
    t.add_argument("--select", choices=SELECT_RULES, default="auto",
                   help="which epoch is exported: auto (default: the best validation per-cell F1 after the warm-up "
                   f"when validation holds at least {MIN_VAL_CELLS} cells of every positive class, else the last "
                   "epoch), f1 (always by F1) or last (the last epoch, no early stopping)")
    t.add_argument("--seed", type=non_negative_int, default=0, help="seed of the split, initial weights, order and augmentation")
    t.add_argument("--patches-per-epoch", type=positive_int, default=None, help="draw only this many training patches per epoch")
    t.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimiser steps in all")
    t.add_argument("--time-limit", type=positive_float, default=None, metavar="MIN",
                   help="stop gracefully after MIN minutes and export the epoch chosen so far (none before the "
                   "warm-up: then the checkpoint is kept for --resume)")
    t.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    t.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto (default): fp32 on a CPU, bf16 (fp16 without bf16) autocast on CUDA; bf16 on a CPU only if asked")
    t.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads per training process (default: torch's choice; under torchrun on CPUs, "
                   "cores / processes). 1 is much faster on a busy shared machine")
    t.add_argument("--resident", choices=RESIDENT_CHOICES, default="auto",
                   help="hold the training patches on the device and normalise/rotate them there per batch: auto "
                   "(default: on for CUDA when they fit, off on a CPU), on (also on a CPU) or off (DataLoader "
                   "workers); the batches are the same either way")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the network for training (CUDA; the first steps take a minute longer)")
    t.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader worker processes per training process (default 2)")
    t.add_argument("--eval-batch-size", type=positive_int, default=16, help="batch size for validation and test (default 16)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    t.add_argument("--force", action="store_true",
                   help="replace a model or run already in --out (and, with --install, an installed model of that name)")
    t.add_argument("--weights-dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="dtype of the exported weights (float16 halves the file)")
    t.add_argument("--install", nargs="?", const="", default=None, metavar="NAME",
                   help="install the exported model into the user's models folder (optionally under NAME)")
    t.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    t.add_argument("--debug-record-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_bootstrap_args(p)
    return p


def _explicit(argv: Sequence[str] | None) -> set[str]:
    """Names of the options given on the command line (not left at their default)."""
    p = build_parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def init_distributed(device: str) -> DistInfo:
    """DDP from torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK); one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = torch.cuda.is_available() and device != "cpu"
    if use_nccl:
        torch.cuda.set_device(local)
    # Long timeout: rank 0 labels every slide while the others wait at the first barrier.
    dist.init_process_group("nccl" if use_nccl else "gloo", timeout=dt.timedelta(hours=12))
    return DistInfo(rank, world, local)


def _is_synthetic(paths: list[Path]) -> bool:
    """A phantom writes phantom.json with "synthetic": true beside its slides (or its tile export folders)."""
    for p in paths:
        for meta in (p.parent / "phantom.json", p / "phantom.json"):
            try:
                if meta.is_file() and json.loads(meta.read_text()).get("synthetic"):
                    return True
            except (OSError, ValueError):
                continue
    return False


def run(args: RetrainConfig, dinfo: DistInfo) -> int:
    """One training run from its settings (checked when ``args`` was built); returns the exit status."""
    say = print if dinfo.main else (lambda *a, **k: None)
    out: Path = args.out
    if dinfo.main:
        out.mkdir(parents=True, exist_ok=True)
        check_out_dir(out, args.force, args.resume)
    if dinfo.world > 1:
        dist.barrier()
    cfg = args.label_config or config_from_args(args)
    spec = args.split_spec()
    fractions = args.fractions
    source_mpps = input_mpps(args)
    init = resolve_init(args.init) if args.init is not None else None
    given_by = "--model-mpp"
    model_mpp = args.model_mpp
    if init is not None:
        args = args.replace(encoder=init.card.encoder)
        if model_mpp is None:
            model_mpp, given_by = init.card.mpp, f"{init.card.name}, whose weights this run starts from"
    model_mpp, mpp_reason = choose_model_mpp(model_mpp, source_mpps, given_by)
    args = args.replace(model_mpp=model_mpp, label_config=cfg)
    say(f"Model pixel size {model_mpp:.4g} µm: {mpp_reason}")
    params = PatchParams(size=args.patch_size, overlap=args.overlap, mpp=model_mpp)
    cache = args.cache or out / "cache"
    say(f"Preparing {len(args.slides)} slide(s) and {len(args.tiles)} tile folder(s) (cache: {cache})")
    if dinfo.main:
        entries = prepare_inputs(args, cfg, params, cache)
    if dinfo.world > 1:
        dist.barrier()
        if not dinfo.main:
            entries = prepare_inputs(args, cfg, params, cache, show=False)
    patches = PatchSet(entries)
    splits = make_splits(patches, args.seed, spec=spec)
    summary = split_summary(patches, splits)
    say(f"Split: {spec.describe()}")
    for name, s in summary.items():
        tiles = f" ({len(s['tiles'])} tiles)" if s["tiles"] else ""
        say(f"  {name}: {s['patches']} patches from {', '.join(s['slides']) or '-'}{tiles}"
            + (" [training patches overlapping a held-out one]" if name == "dropped" else ""))
    cells = split_cells(patches, splits)
    test_split = "test" if len(splits["test"]) else "val"
    cell_notes = cell_warnings(cells, test_split)
    rule, rule_reason = choose_rule(args.select, cells.val)
    say(cell_report(cells))
    for note in cell_notes:
        say(f"Warning: {note}")
    device = choose_device(args.device, dinfo.local_rank)
    prec = choose_precision(device, args.precision)
    threads = args.threads or (max(1, (os.cpu_count() or 1) // dinfo.world) if dinfo.world > 1 and device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    say(f"Device {device}, precision {prec.name} ({prec.reason}); {dinfo.world} process(es) x "
        f"{torch.get_num_threads()} thread(s); encoder {args.encoder}")
    torch.manual_seed(args.seed)
    name = args.name or out.resolve().name
    model = build_model(ModelCard(name=name, encoder=args.encoder, patch_size=args.patch_size, mpp=model_mpp))
    if init is not None:
        model.load_state_dict(init.state)
        say(f"Starting from the weights of {init.card.name} ({init.path}, sha256 {init.card.weights_sha256[:12]}…; "
            f"its encoder {init.card.encoder} is kept)")
    settings = TrainSettings(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, loss=args.loss,
        seed=args.seed, workers=args.workers, patches_per_epoch=args.patches_per_epoch, max_steps=args.max_steps,
        time_limit_min=args.time_limit, eval_batch_size=args.eval_batch_size, balance=args.balance,
        patience=args.patience, patience_patches=args.patience_patches, warmup_patches=args.warmup_patches,
        select=rule, select_reason=rule_reason, lr_schedule=args.lr_schedule,
        resident=args.resident, compile=args.compile, lr_scale=args.lr_scale, lr_warmup_steps=args.lr_warmup_steps,
    )
    stored = {**args.to_json(), "resume": False}
    if dinfo.main:
        (out / "run.json").write_text(json.dumps(stored, indent=2))
    train_data = PatchDataset(patches, splits["train"])
    val_data = PatchDataset(patches, splits["val"])
    job = fit(model, train_data, val_data, settings, device, prec, out, stored, dinfo, resume=args.resume,
              log=say, record_dir=args.debug_record_dir)
    result = drive(job, "training", show=dinfo.main)
    if not dinfo.main:
        return 0
    if result.best is None:
        raise _before_warmup(result, out)
    model.load_state_dict({k: v.to(device) for k, v in result.best.items()})
    exported_epoch, exported_why = _exported(result)
    say(f"Evaluating the exported model, epoch {exported_epoch} ({exported_why}), on the {test_split} split "
        f"({len(splits[test_split])} patches)")
    evaluation = drive(evaluate(model, PatchDataset(patches, splits[test_split]), device, prec.dtype,
                                args.eval_batch_size), "evaluating")
    boot = (args.bootstrap, args.bootstrap_seed, args.bootstrap_unit)
    metrics = {"split": test_split, **evaluation.to_dict(*boot)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(evaluation.report(*boot))
    stats = training_statistics(patches, splits["train"], params.mpp, args.seed)
    stats["source_mpp"] = float(sorted(source_mpps.values())[len(source_mpps) // 2]) if source_mpps else None
    training = {
        "slides": patches.slide_names,
        "inputs": [str(p.name) for p in [*args.slides, *args.tiles]],
        "split": {"mode": spec.describe(), "by": spec.by, "block_um": spec.block_um, "seed": args.seed,
                  "fractions": list(fractions), "holdout_slides": list(args.holdout_slides),
                  "val_slides": list(args.val_slides), "holdout_tiles": list(args.holdout_tiles),
                  "val_tiles": list(args.val_tiles), "holdout_regions": list(args.holdout_region),
                  "val_regions": list(args.val_region), **summary},
        "pixel_size": {"model_mpp": params.mpp, "reason": mpp_reason, "inputs": source_mpps},
        "balance": {"mode": args.balance, "why": BALANCE_WHY[args.balance]},
        "early_stopping": {"metric": "validation macro-F1 of the positive classes, per cell (hard); per pixel "
                           "when validation holds no cells",
                           "patience_patches": result.plan.patience_patches if result.plan else None,
                           "patience": args.patience},
        "selection": {**(result.plan.to_dict() if result.plan else {}), "exported_epoch": exported_epoch,
                      "exported_why": exported_why, "patches_seen": result.state.patches,
                      "best_patches": result.state.best_patches if result.best is not None else None},
        "cells_per_split": {**cells.to_dict(), "paper_train": dict(PAPER_TRAIN_CELLS),
                            "min_val_cells": MIN_VAL_CELLS, "warnings": cell_notes},
        "data_statistics": stats,
        "cells": {e.name: e.meta.get("cells", {}) for e in entries},
        "label_config": cfg.to_dict(),
        "schedule": result.schedule, "batch_source": result.batch_source,
        "settings": {k: stored[k] for k in ("epochs", "batch_size", "lr", "lr_schedule", "weight_decay", "loss", "overlap",
                                            "patches_per_epoch", "max_steps", "time_limit")},
        "precision": prec.name, "device": str(device), "processes": dinfo.world,
        "init": None if init is None else {"name": init.card.name, "weights_sha256": init.card.weights_sha256,
                                           "synthetic": init.card.synthetic},
        "epochs_run": result.state.epoch, "steps": result.state.step, "best_epoch": result.state.best_epoch,
        "best_val_f1": result.state.best_f1, "stopped": result.stopped,
    }
    card_metrics = summary_metrics(metrics, test_split)
    card = export_model(
        model, out, name, args.encoder, args.patch_size, model_mpp, args.weights_dtype,
        synthetic=_is_synthetic([*args.slides, *args.tiles]) or bool(init and init.card.synthetic), training=training, metrics=card_metrics,
        description=args.description or _describe(args.encoder, summary, test_split),
    )
    say(f"Exported {out / 'model.safetensors'} ({card.weights_dtype}, sha256 {card.weights_sha256[:12]}…)")
    if args.install is not None:
        from core.models.installed import install_model

        target = install_model(out, name=args.install or None, force=args.force)
        say(f"Installed as {target}")
    return 0


def _before_warmup(result: FitResult, out: Path) -> TrainingError:
    """The refusal when training ended before the warm-up: its weights are too little trained for any
    epoch to be chosen, and exporting them would put a model from before the warm-up into the app."""
    warm = result.plan.warmup_patches if result.plan else 0
    return TrainingError(
        f"No model exported: training stopped ({result.stopped}) after {result.state.patches:,} patch-steps, before "
        f"the warm-up of {warm:,}, and no epoch before it may be chosen. The last epoch is kept in "
        f"{out / 'checkpoint'}: continue it with --out {out} --resume (and a longer --time-limit or more --epochs), "
        "or start again with a smaller --warmup-patches."
    )


def _exported(result: FitResult) -> tuple[int, str]:
    """Which epoch's weights are exported and why, in words for the log and the card."""
    state, plan = result.state, result.plan
    if plan is not None and plan.rule == "last":
        return state.best_epoch, (f"the last epoch, past the warm-up of {plan.warmup_patches:,} patch-steps: "
                                  f"{plan.rule_reason}")
    warm = f"the warm-up of {plan.warmup_patches:,} patch-steps" if plan else "the warm-up"
    return state.best_epoch, (f"best validation F1 {state.best_f1:.3f} after {warm}, at "
                              f"{state.best_patches:,} patch-steps")


def _describe(encoder: str, summary: dict[str, dict], test_split: str) -> str:
    """The card's default description: which slides trained, chose and tested the model (listing every
    input as 'trained on' would count the held-out test slides as training data)."""
    def names(split: str) -> str:
        return ", ".join(summary.get(split, {}).get("slides", [])) or "none"

    tested = "tested on the validation split (no test split)" if test_split == "val" else f"tested on {names('test')}"
    return (f"U-Net {encoder}, {len(CLASS_NAMES)} classes; trained on {names('train')}; "
            f"epoch chosen on {names('val')}; {tested}.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parsed = parser.parse_args(argv)
    dinfo = DistInfo()
    args: argparse.Namespace | RetrainConfig = parsed  # what the failure report reads (--out, --debug)
    try:
        args = config = RetrainConfig.from_args(parsed)
        if config.resume:
            args = config = RetrainConfig.from_json(read_settings(config.out)).resumed(config, _explicit(argv))
        dinfo = init_distributed(config.device)
        return run(config, dinfo)
    except KeyboardInterrupt:
        if dinfo.main:
            print(f"\ninterrupted: the last finished epoch is saved in {args.out / 'checkpoint'}; "
                  "continue with the same command and --resume", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the one place every failure is reported (message + hint)
        return report_failure(err, debug=getattr(args, "debug", False))
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())

