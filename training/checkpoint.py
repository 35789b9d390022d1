"""Checkpoints without pickle: safetensors for every tensor, JSON for every scalar.

A checkpoint directory holds ``model.safetensors`` (float32 weights and buffers),
``optimizer.safetensors`` (AdamW's per-parameter moments and step counts, flattened as
``state.<param>.<name>``, plus the torch RNG state), ``best.safetensors`` (the weights with the
best validation F1 so far) and ``checkpoint.json`` (epoch, step, best score, optimizer
hyper-parameters, grad-scaler scale, run settings). Nothing is ever unpickled, so a checkpoint
from an untrusted source cannot run code; ``torch.load`` is not used at all. A checkpoint is
written to a temporary folder and swapped in, so an interruption while saving leaves the
previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from training.errors import TrainingError

CHECKPOINT_DIR = "checkpoint"


@dataclass
class TrainState:
    """Where training stands: epochs and optimiser steps completed, the best validation F1 and its epoch.

    ``patches``: patch-steps (patches trained on, all processes) so far; ``best_patches``: at the best
    epoch; ``warmup_patches``: the warm-up this run fixed (0: not fixed yet). A checkpoint written before
    patch-steps were counted reads as -1 for the first two; :func:`training.train.fit` then derives them
    from ``log.json``.
    """

    epoch: int = 0
    step: int = 0
    best_f1: float = -1.0
    best_epoch: int = 0
    patches: int = 0
    best_patches: int = 0
    warmup_patches: int = 0


def state_dict_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the (unwrapped) model's tensors."""
    inner: torch.nn.Module = getattr(model, "module", model)  # the network inside a DDP wrapper
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in inner.state_dict().items()}


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = val.detach().to("cpu").contiguous()
            else:
                scalars[f"{pid}.{key}"] = val
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "state_scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if not name.startswith("state."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = val
    for name, val in meta.get("state_scalars", {}).items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = val
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    settings: dict[str, Any],
    best: dict[str, torch.Tensor] | None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write the checkpoint of a finished epoch atomically; returns its directory."""
    final = out_dir / CHECKPOINT_DIR
    tmp = out_dir / f"{CHECKPOINT_DIR}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(state_dict_of(model), str(tmp / "model.safetensors"))
    tensors, meta = _flatten_optimizer(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    if best is not None:
        save_file(best, str(tmp / "best.safetensors"))
    elif (final / "best.safetensors").is_file():
        shutil.copy2(final / "best.safetensors", tmp / "best.safetensors")
    info = {
        "epoch": state.epoch, "step": state.step, "best_f1": state.best_f1, "best_epoch": state.best_epoch,
        "patches": state.patches, "best_patches": state.best_patches, "warmup_patches": state.warmup_patches,
        "optimizer": meta, "scaler_scale": float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else None,
        "settings": settings,
    }
    (tmp / "checkpoint.json").write_text(json.dumps(info, indent=2, default=str))
    old = out_dir / f"{CHECKPOINT_DIR}.old"
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)
    return final


def has_checkpoint(out_dir: Path) -> bool:
    return (out_dir / CHECKPOINT_DIR / "checkpoint.json").is_file()


def read_settings(out_dir: Path) -> dict[str, Any]:
    """The run settings stored with the checkpoint (to resume with the same data and model)."""
    path = out_dir / CHECKPOINT_DIR / "checkpoint.json"
    if not path.is_file():
        raise TrainingError(f"--resume: no checkpoint in {out_dir} (expected {path}). Start without --resume.")
    return json.loads(path.read_text())["settings"]


def load_checkpoint(
    out_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[TrainState, dict[str, torch.Tensor] | None]:
    """Restore model, optimizer, RNG and counters in place; returns (state, best weights or None)."""
    d = out_dir / CHECKPOINT_DIR
    try:
        info = json.loads((d / "checkpoint.json").read_text())
        weights = load_file(str(d / "model.safetensors"))
        tensors = load_file(str(d / "optimizer.safetensors"))
    except (OSError, ValueError) as err:
        raise TrainingError(f"The checkpoint in {d} is unreadable ({err}); start again with --force.") from None
    inner: torch.nn.Module = getattr(model, "module", model)  # the network inside a DDP wrapper
    device = next(inner.parameters()).device
    inner.load_state_dict({k: v.to(device) for k, v in weights.items()})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, info["optimizer"]))
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if scaler is not None and info.get("scaler_scale") is not None:
        scaler.update(info["scaler_scale"])
    best = load_file(str(d / "best.safetensors")) if (d / "best.safetensors").is_file() else None
    state = TrainState(int(info["epoch"]), int(info["step"]), float(info["best_f1"]), int(info["best_epoch"]),
                       int(info.get("patches", -1)), int(info.get("best_patches", -1)),
                       int(info.get("warmup_patches", 0)))
    return state, best
