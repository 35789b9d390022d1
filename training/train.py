"""The training loop: AdamW on pixel cross-entropy (or focal loss), one process or many under DDP.

Paper optimiser (AdamW, lr 1e-3, batch 32, 100 epochs). The paper's unweighted cross-entropy had
~6000 patches; on a small imbalanced set ``balance`` draws patches with rare classes more often
('sampling') and/or weights the loss per class ('loss'). The loop checkpoints after every epoch
(:mod:`training.checkpoint`), keeps the weights with the best validation macro-F1 of the positive
classes (per cell, hard; per pixel when validation has no cells), and stops early after
``patience`` without improvement. Warm-up and patience are counted in patch-steps (patches trained
on), not epochs, and no epoch before the warm-up is eligible; when validation holds too few cells
to rank epochs the last epoch is kept instead (:mod:`training.small_set`). Epoch order and augmentation
come from ``(seed, epoch)`` (:class:`training.dataset.EpochSampler`), so ``--resume`` continues
exactly where an uninterrupted run would be. ``--batch-size`` is the global batch: under torchrun
each of the N processes takes batch/N, and DDP averages gradients, so the optimisation is the
same whatever the number of GPUs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from core.classes import CLASS_NAMES, POSITIVE_CLASSES
from core.progress import CancelToken, Progress
from training.checkpoint import TrainState, load_checkpoint, save_checkpoint, state_dict_of
from training.dataset import EpochSampler, PatchDataset, balanced_weights, class_weights
from training.device import Precision
from training.errors import TrainingError
from training.evaluate import evaluate, reduce_sum
from training.history import History
from training.resident import make_batch_source
from training.small_set import SelectionPlan, plan_selection, warmup_for


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters and run limits; ``time_limit_min``: stop gracefully after this many minutes."""

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    loss: str = "ce"
    focal_gamma: float = 2.0
    seed: int = 0
    workers: int = 2
    patches_per_epoch: int | None = None
    max_steps: int | None = None
    time_limit_min: float | None = None
    eval_batch_size: int = 16
    balance: str = "none"
    #: Older --patience: epochs without a better validation F1, converted to patch-steps at fit time.
    patience: int | None = None
    lr_schedule: str = "constant"
    #: Patch-steps (patches trained on) without a better F1 before stopping; None: from ``patience`` or
    #: the default (training.small_set); 0: never.
    patience_patches: int | None = None
    #: Patch-steps before any epoch is eligible for selection; None: training.small_set.warmup_for the plan.
    warmup_patches: int | None = None
    #: 'f1' (best validation per-cell F1 after the warm-up) or 'last' (the last epoch), and why.
    select: str = "f1"
    select_reason: str = "best validation per-cell macro-F1 after the warm-up"
    #: Where batches come from (training.resident): 'auto' (resident on CUDA when the set fits, a
    #: DataLoader on a CPU), 'on' (resident, on a CPU too) or 'off' (DataLoader).
    resident: str = "auto"
    #: torch.compile the network for training (CUDA; a first step of a minute or so).
    compile: bool = False
    #: How ``lr`` (given for the paper's batch of 32) follows ``batch_size``: 'none', 'linear' or 'sqrt'.
    lr_scale: str = "none"
    #: Optimiser steps over which the learning rate rises linearly to its value (0: none).
    lr_warmup_steps: int = 0


#: Learning-rate schedules: 'constant' (the paper's), or 'cosine' from ``lr`` down to
#: ``lr * COSINE_FLOOR`` over the run's planned steps. Cosine is what a fine-tune (``--init``) wants:
#: a constant rate keeps knocking a good starting model off its optimum (measured on the demo model:
#: validation F1 swinging 0.856-0.894 epoch to epoch at a constant 3e-4).
LR_SCHEDULES = ("constant", "cosine")
COSINE_FLOOR = 0.01


#: The paper's batch: ``--lr`` is the rate for it, and ``--lr-scale`` scales it for a larger global batch.
REFERENCE_BATCH = 32
LR_SCALES = ("none", "linear", "sqrt")


def scaled_lr(settings: TrainSettings) -> float:
    """The peak learning rate for the global batch: ``lr`` as given ('none'), times batch/32 ('linear',
    Goyal et al. 2017, for SGD) or times sqrt(batch/32) ('sqrt', the usual rule for Adam-type optimisers)."""
    ratio = settings.batch_size / REFERENCE_BATCH
    factor = {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[settings.lr_scale]
    return settings.lr * factor


def lr_at(settings: TrainSettings, step: int, total: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based) of ``total``: a pure function of the step,
    so ``--resume`` continues the schedule exactly."""
    peak = scaled_lr(settings)
    if settings.lr_warmup_steps and step < settings.lr_warmup_steps:
        peak *= (step + 1) / settings.lr_warmup_steps
    if settings.lr_schedule == "constant" or total <= 1:
        return peak
    frac = min(1.0, step / (total - 1))
    return peak * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * frac)))


def schedule_summary(settings: TrainSettings, total_steps: int | None = None) -> dict[str, Any]:
    """The learning-rate schedule as run, for the run settings and the model card."""
    return {
        "lr": settings.lr, "reference_batch": REFERENCE_BATCH, "batch_size": settings.batch_size,
        "lr_scale": settings.lr_scale, "peak_lr": scaled_lr(settings), "lr_schedule": settings.lr_schedule,
        "lr_warmup_steps": settings.lr_warmup_steps, "cosine_floor": COSINE_FLOOR if settings.lr_schedule == "cosine" else None,
        "planned_steps": total_steps,
    }


def make_optimizer(net: torch.nn.Module, settings: TrainSettings, device: torch.device) -> torch.optim.AdamW:
    """AdamW at the scaled rate; the fused kernel on CUDA (one launch for all parameters), the
    default one elsewhere (so a CPU run is what it always was)."""
    return torch.optim.AdamW(net.parameters(), lr=scaled_lr(settings), weight_decay=settings.weight_decay,
                             fused=True if device.type == "cuda" else None)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


@dataclass
class FitResult:
    state: TrainState
    best: dict[str, torch.Tensor] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "finished"
    plan: SelectionPlan | None = None
    #: 'resident' or 'loader' (training.resident) and the learning-rate schedule as run, for the card
    batch_source: str = ""
    schedule: dict[str, Any] = field(default_factory=dict)


BALANCE = ("none", "sampling", "loss", "both")
#: On a GPU the running loss shown in the progress line is read back every this many steps.
LOSS_SYNC_STEPS = 25


def _quiet(_: str) -> None:
    """The log of DDP ranks other than the first."""


def pixel_loss(logits: torch.Tensor, target: torch.Tensor, kind: str, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean pixel cross-entropy, or focal loss (Lin et al.): CE · (1 − p_true)^gamma; ``weight`` per class."""
    if kind == "ce":
        return F.cross_entropy(logits.float(), target, weight=weight)
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    focal = (1.0 - torch.exp(-ce)) ** gamma * ce
    if weight is None:
        return focal.mean()
    w = weight[target]
    return (focal * w).sum() / w.sum()


def selection_f1(val: Any) -> tuple[float, str]:
    """The number the best epoch is chosen by: per-cell hard macro-F1, or per-pixel without cells."""
    if val.centroid.total:
        return float(val.centroid.scores()["hard"]["average"]["f1"]), "cell"
    return float(val.pixel.scores()["hard"]["average"]["f1"]), "pixel"


#: A time-limited run plans its warm-up on this share of the patch-steps the first epoch's pace allows.
TIME_PLAN_SHARE = 0.75


def _start_selection(settings: TrainSettings, state: TrainState, best: dict[str, torch.Tensor] | None,
                     rows: list[dict[str, Any]], per_epoch_patches: int, log: Callable[[str], None],
                     ) -> tuple[SelectionPlan, dict[str, torch.Tensor] | None]:
    """The run's selection plan in patch-steps; on resume, fills the patch-steps of a checkpoint written
    before they were counted (from log.json) and drops a best epoch from before the warm-up."""
    if state.patches < 0:
        per = {int(r["epoch"]): int(r.get("patches", 0)) for r in rows if int(r["epoch"]) <= state.epoch}
        state.patches = sum(per.values()) if len(per) == state.epoch else state.step * settings.batch_size
        state.best_patches = (sum(v for e, v in per.items() if e <= state.best_epoch) if len(per) == state.epoch
                              else state.patches * state.best_epoch // max(1, state.epoch))
    planned = settings.epochs * per_epoch_patches
    planned_by = f"--epochs {settings.epochs} × {per_epoch_patches:,} patches"
    if settings.max_steps is not None and settings.max_steps * settings.batch_size < planned:
        planned, planned_by = settings.max_steps * settings.batch_size, f"--max-steps {settings.max_steps} × batch {settings.batch_size}"
    warmup = settings.warmup_patches
    if warmup is None and state.warmup_patches > 0:  # resumed: the run's own warm-up, unless the plan shrank
        warmup = min(state.warmup_patches, warmup_for(planned))
    plan = plan_selection(settings.select, settings.select_reason, planned_patches=planned,
                          patches_per_epoch=per_epoch_patches, warmup_patches=warmup,
                          patience_patches=settings.patience_patches, patience_epochs=settings.patience,
                          planned_by=planned_by)
    if warmup is not None and settings.warmup_patches is None:
        why = ("fixed when this run started" if warmup == state.warmup_patches else
               f"lowered on --resume from {state.warmup_patches:,} to the default of the shorter plan, "
               f"{planned:,} patch-steps ({planned_by})")
        plan = replace(plan, warmup_reason=why)
    if state.best_epoch and state.best_patches < plan.warmup_patches:
        log(f"The stored best epoch {state.best_epoch} came after {state.best_patches:,} patch-steps, before the "
            f"warm-up of {plan.warmup_patches:,}; it is no longer eligible.")
        state.best_f1, state.best_epoch, state.best_patches, best = -1.0, 0, 0, None
    return plan, best


def _replan_for_time(settings: TrainSettings, state: TrainState, plan: SelectionPlan, elapsed_s: float,
                     patches_before: int) -> SelectionPlan:
    """The plan again once the first epoch has shown how many patch-steps the time limit allows.

    Planned at :data:`TIME_PLAN_SHARE` of that pace: a shared machine that slows down later (measured:
    0.9 patches/s in the first epoch of an 18-tile CPU run, 0.6 in the next) still reaches the warm-up.
    """
    done = state.patches - patches_before
    if settings.time_limit_min is None or done <= 0 or elapsed_s <= 0:
        return plan
    rate = done / elapsed_s
    affordable = patches_before + int(TIME_PLAN_SHARE * rate * settings.time_limit_min * 60)
    if affordable >= plan.planned_patches:
        return plan
    return plan_selection(plan.rule, plan.rule_reason, planned_patches=affordable,
                          patches_per_epoch=plan.patches_per_epoch, warmup_patches=None,
                          patience_patches=settings.patience_patches, patience_epochs=settings.patience,
                          planned_by=f"{TIME_PLAN_SHARE:g} × what --time-limit {settings.time_limit_min:g} min allows "
                          f"at the first epoch's {rate:.2f} patches/s")


def _average_buffers(model: torch.nn.Module, world: int) -> None:
    """Average BatchNorm running statistics over ranks, so every rank ends with identical state."""
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf /= world


def _any_rank(flag: bool, device: torch.device, world: int) -> bool:
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def fit(
    model: torch.nn.Module,
    train_data: PatchDataset,
    val_data: PatchDataset,
    settings: TrainSettings,
    device: torch.device,
    precision: Precision,
    out_dir: Path,
    run_settings: dict[str, Any],
    dinfo: DistInfo = DistInfo(),
    resume: bool = False,
    log: Callable[[str], None] = print,
    record_dir: Path | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, FitResult]:
    """Train ``model`` in place; yields Progress per optimiser step (message: epoch and running loss)."""
    cancel = cancel or CancelToken()
    if settings.loss not in ("ce", "focal"):
        raise TrainingError(f"--loss {settings.loss!r}; valid: ce, focal.")
    if settings.lr_schedule not in LR_SCHEDULES:
        raise TrainingError(f"--lr-schedule {settings.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}.")
    if settings.balance not in BALANCE:
        raise TrainingError(f"--balance {settings.balance!r}; valid: {', '.join(BALANCE)}.")
    if settings.lr_scale not in LR_SCALES:
        raise TrainingError(f"--lr-scale {settings.lr_scale!r}; valid: {', '.join(LR_SCALES)}.")
    if settings.batch_size % dinfo.world:
        raise TrainingError(f"--batch-size {settings.batch_size} is the global batch; it must divide by {dinfo.world} processes.")
    model = model.to(device).to(memory_format=torch.channels_last)
    if device.type == "cuda":  # fixed patch shapes: let cuDNN time its convolution algorithms once and keep the fastest
        torch.backends.cudnn.benchmark = True
    net: torch.nn.Module = model
    if dinfo.world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = make_optimizer(net, settings, device)
    if settings.compile:
        net = cast(torch.nn.Module, torch.compile(net))  # same module, compiled forward
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    history = History(out_dir)
    state, best = TrainState(), None
    if resume:
        state, best = load_checkpoint(out_dir, model, opt, scaler)
        history.truncate(state.epoch)
        log(f"Resumed after epoch {state.epoch} (step {state.step}, best validation F1 {state.best_f1:.3f}).")
    train_pixels = train_data.patches.pixels[train_data.indices]
    weights = balanced_weights(train_pixels) if settings.balance in ("sampling", "both") else None
    sampler = EpochSampler(len(train_data.indices), settings.seed, dinfo.rank, dinfo.world, settings.patches_per_epoch,
                           weights=weights)
    loss_weight = (torch.as_tensor(class_weights(train_pixels), dtype=torch.float32, device=device)
                   if settings.balance in ("loss", "both") else None)
    source = make_batch_source(settings.resident, train_data, sampler, settings.batch_size // dinfo.world,
                               settings.workers, device, log if dinfo.main else _quiet)
    per_epoch = len(source)
    total = settings.epochs * per_epoch
    if settings.max_steps is not None:
        total = min(total, settings.max_steps)
    plan, best = _start_selection(settings, state, best, history.rows, len(sampler) * dinfo.world, log)
    replan = settings.warmup_patches is None and state.warmup_patches == 0 and settings.time_limit_min is not None
    if not replan:
        state.warmup_patches = plan.warmup_patches
    if dinfo.main:
        log(f"Selection: {plan.rule_reason}. Warm-up {plan.warmup_patches:,} patch-steps ({plan.warmup_reason}); "
            f"patience {'none' if plan.patience_patches is None else f'{plan.patience_patches:,} patch-steps'} "
            f"({plan.patience_reason}).")
    start_time = time.perf_counter()
    patches_before = state.patches
    seen: dict[int, list[int]] = {}
    stopped = "finished"
    amp_dtype, amp_on = precision.dtype or torch.float32, precision.dtype is not None
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        if settings.max_steps is not None and state.step >= settings.max_steps:
            stopped = "max-steps"
            break
        sampler.set_epoch(epoch)
        if record_dir is not None:
            seen[epoch] = [i // 8 for i in sampler]
        net.train()
        t_epoch = time.perf_counter()
        wait = compute = loss_sum = 0.0
        # the loss is summed on the device and read back every `sync_every` steps: reading it each
        # step would make the host wait for the GPU and leave it idle while the next step is queued
        loss_acc = torch.zeros((), dtype=torch.float64, device=device)
        sync_every = 1 if device.type == "cpu" else LOSS_SYNC_STEPS
        n_items = n_batches = n_synced = 0
        truncated = False
        t0 = time.perf_counter()
        for x, y in source.epoch(epoch):
            t1 = time.perf_counter()
            wait += t1 - t0
            cancel.check()
            x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_on):
                logits = net(x)
            loss = pixel_loss(logits, y, settings.loss, settings.focal_gamma, loss_weight)
            lr = lr_at(settings, state.step, total)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            loss_acc += loss.detach().to(torch.float64) * len(x)
            n_items += len(x)
            n_batches += 1
            state.step += 1
            if n_batches % sync_every == 0:
                loss_sum, n_synced = float(loss_acc.item()), n_items
            t0 = time.perf_counter()
            compute += t0 - t1
            yield Progress(min(state.step, total), total,
                           f"epoch {epoch}/{settings.epochs} loss {loss_sum / max(1, n_synced):.4f}")
            over_time = settings.time_limit_min is not None and (t0 - start_time) / 60 >= settings.time_limit_min
            at_max = settings.max_steps is not None and state.step >= settings.max_steps
            if _any_rank(over_time, device, dinfo.world):
                stopped, truncated = "time-limit", n_batches < per_epoch
                break
            if at_max:
                stopped, truncated = "max-steps", n_batches < per_epoch
                break
        t_sync = time.perf_counter()
        loss_sum = float(loss_acc.item())  # waits for the last queued steps: their time is computing
        compute += time.perf_counter() - t_sync
        sums = torch.tensor([loss_sum, float(n_items), wait, compute], dtype=torch.float64)
        if dinfo.world > 1:
            _average_buffers(model, dinfo.world)
            sums = reduce_sum(sums, device)
        train_loss = float(sums[0] / max(1.0, float(sums[1])))
        val = yield from evaluate(model, val_data, device, precision.dtype, settings.eval_batch_size,
                                  dinfo.rank, dinfo.world, per_slide=False, cancel=cancel)
        scores = val.pixel.scores()
        f1, basis = selection_f1(val)
        state.patches += int(sums[1])
        if replan:  # the time limit, not the epochs, bounds this run: plan at the first epoch's pace
            plan = _replan_for_time(settings, state, plan, time.perf_counter() - start_time, patches_before)
            state.warmup_patches, replan = plan.warmup_patches, False
            if dinfo.main:
                log(f"Warm-up {plan.warmup_patches:,} patch-steps ({plan.warmup_reason}).")
        eligible = state.patches >= plan.warmup_patches
        improved = eligible and (plan.rule == "last" or f1 > state.best_f1)
        if improved:
            state.best_f1, state.best_epoch, state.best_patches = f1, epoch, state.patches
            best = state_dict_of(model)
        state.epoch = epoch
        seconds = time.perf_counter() - t_epoch
        row = {
            "epoch": epoch, "step": state.step, "train_loss": train_loss, "val_loss": val.loss,
            "val_f1": f1, "val_f1_basis": basis, "val_f1_pixel": float(scores["hard"]["average"]["f1"]),
            "val_f1_soft": float(scores["soft"]["average"]["f1"]),
            **{f"val_f1_{CLASS_NAMES[c]}": float(scores["hard"][CLASS_NAMES[c]]["f1"]) for c in POSITIVE_CLASSES},
            "patches": int(sums[1]), "seconds": seconds, "data_wait_s": float(sums[2]) / dinfo.world,
            "compute_s": float(sums[3]) / dinfo.world, "patches_per_s": float(sums[1]) / max(1e-9, float(sums[2] + sums[3]) / dinfo.world),
            "data_wait_share": float(sums[2]) / max(1e-9, float(sums[2] + sums[3])), "batch_source": source.name,
            "lr": opt.param_groups[0]["lr"], "precision": precision.name, "truncated": truncated, "best": improved,
            "patches_seen": state.patches, "eligible": eligible,
        }
        if dinfo.main:
            save_checkpoint(out_dir, model, opt, state, run_settings, best if improved else None, scaler)
            history.append(row)
            chosen = (f"warm-up {state.patches:,}/{plan.warmup_patches:,} patch-steps, not eligible" if not eligible
                      else f"kept: epoch {state.best_epoch}" + (f", best {state.best_f1:.3f}" if plan.rule == "f1" else ", the last"))
            log(
                f"epoch {epoch}/{settings.epochs}: train loss {train_loss:.4f}, val loss {val.loss:.4f}, "
                f"val F1 per {basis} {f1:.3f} ({chosen}); {row['patches']} patches, "
                f"{row['patches_per_s']:.1f} patches/s; waiting for data {row['data_wait_s']:.1f} s "
                f"({row['data_wait_share']:.0%}, {source.name}), "
                f"computing {row['compute_s']:.1f} s" + (" [stopped early]" if truncated else "")
            )
        if dinfo.world > 1:
            dist.barrier()
        if stopped != "finished":
            break
        if (plan.patience_patches is not None and eligible and state.best_epoch
                and state.patches - state.best_patches >= plan.patience_patches):
            stopped = "early-stop"
            log(f"Early stop: no better validation F1 for {state.patches - state.best_patches:,} patch-steps "
                f"(patience {plan.patience_patches:,}; best {state.best_f1:.3f} at epoch {state.best_epoch}, "
                f"after {state.best_patches:,} patch-steps).")
            break
    if record_dir is not None:
        record_dir.mkdir(parents=True, exist_ok=True)
        (record_dir / f"rank{dinfo.rank}-indices.json").write_text(json.dumps(seen))
        save_file(state_dict_of(model), str(record_dir / f"rank{dinfo.rank}.safetensors"))
    if stopped == "time-limit" and dinfo.main:
        log(f"Time limit of {settings.time_limit_min} min reached after epoch {state.epoch} ({state.patches:,} patch-steps); "
            "exporting the epoch chosen so far, if any is past the warm-up.")
    return FitResult(state, best, history.rows, stopped, plan, batch_source=source.name,
                     schedule=schedule_summary(settings, total))
