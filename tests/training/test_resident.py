"""The device-resident batch source (training.resident) against the DataLoader, on real phantom patches.

The resident path is meant for CUDA; ``--resident on`` runs it on the CPU here, where it must give the
DataLoader's batches bit for bit and therefore train to the same weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.models import load_weights
from core.normalise import normalise_batch
from core.progress import run_to_completion
from training.config import LabelConfig
from training.dataset import N_TRANSFORMS, EpochSampler, PatchDataset, PatchSet, balanced_weights, dihedral
from training.patches import PatchParams, slide_patches
from training.resident import (
    LoaderBatches,
    ResidentBatches,
    ResidentPatches,
    choose_resident,
    dihedral_table,
    normalise_rows,
)
from training.retrain import main as retrain_main
from training.train import TrainSettings, lr_at, scaled_lr

CPU = torch.device("cpu")


def _weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("mpp", [0.227, 0.3], ids=["uint16-as-cut", "float32-resampled"])
@pytest.mark.parametrize("balanced", [False, True], ids=["permutation", "weighted-draws"])
def test_resident_batches_equal_the_dataloader_batches(train_phantom: Path, patch_cache: Path, mpp: float,
                                                       balanced: bool) -> None:
    """Same sampler state, same batches: images (normalised, rotated/flipped) and labels equal exactly,
    for raw uint16 patches and for resampled float32 ones, epoch after epoch, partial last batch included."""
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), PatchParams(size=64, overlap=0.0, mpp=mpp),
                                            patch_cache, name="mif"))
    patches = PatchSet([entry])
    data = PatchDataset(patches, np.arange(len(patches))[1::2])  # a subset, so positions ≠ global indices
    weights = balanced_weights(patches.pixels[data.indices]) if balanced else None
    loader = LoaderBatches(data, EpochSampler(len(data.indices), 5, per_epoch=37, weights=weights), 8, 0, CPU)
    resident = ResidentBatches(ResidentPatches(data, CPU), EpochSampler(len(data.indices), 5, per_epoch=37,
                                                                          weights=weights), 8)
    assert resident.patches.codec == ("uint16-as-int16" if mpp == 0.227 else "float32")
    assert len(resident) == len(loader) == 5
    for epoch in (1, 2, 7):
        pairs = list(zip(loader.epoch(epoch), resident.epoch(epoch), strict=True))
        assert [len(x) for (x, _), _ in pairs] == [8, 8, 8, 8, 5]
        for (x, y), (rx, ry) in pairs:
            assert rx.dtype == x.dtype == torch.float32 and ry.dtype == y.dtype == torch.int64
            assert torch.equal(rx, x) and torch.equal(ry, y)
        assert 0.0 <= float(pairs[0][1][0].min()) and float(pairs[0][1][0].max()) == 1.0


def test_dihedral_table_is_the_numpy_transform() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65535, size=(3, 6, 6)).astype(np.int64)
    table = dihedral_table(6, CPU)
    flat = torch.from_numpy(a.reshape(3, 36))
    for k in range(N_TRANSFORMS):
        moved = flat.gather(1, table[k].expand(3, 36)).reshape(3, 6, 6).numpy()
        assert np.array_equal(moved, dihedral(a, k))
    assert len({tuple(r) for r in table.tolist()}) == N_TRANSFORMS  # eight different transforms


def test_normalise_rows_equals_the_cpu_normalisation() -> None:
    """Per-patch min-max on the device equals core.normalise exactly, flat (empty-glass) patches included."""
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 65535, size=(5, 32 * 32)).astype(np.float32)
    raw[2] = 1234.0
    raw[4] = rng.normal(100.0, 3.0, size=32 * 32).astype(np.float32)
    out = normalise_rows(torch.from_numpy(raw)).numpy()
    assert np.array_equal(out, normalise_batch(raw)) and not out[2].any()


def test_auto_keeps_the_cpu_on_the_dataloader(train_phantom: Path, patch_cache: Path) -> None:
    entry = run_to_completion(slide_patches(train_phantom, LabelConfig(), PatchParams(size=64, overlap=0.0, mpp=0.227),
                                            patch_cache, name="mif"))
    data = PatchDataset(PatchSet([entry]), np.arange(4))
    assert choose_resident("auto", CPU, data)[0] is False
    assert choose_resident("on", CPU, data)[0] is True
    assert choose_resident("off", CPU, data)[0] is False


def test_lr_scale_and_warmup_are_pure_functions_of_the_step() -> None:
    s = TrainSettings(batch_size=256, lr=1e-3, lr_scale="sqrt", lr_warmup_steps=4)
    assert scaled_lr(s) == pytest.approx(1e-3 * 8**0.5)
    assert [lr_at(s, i, 100) for i in range(5)] == pytest.approx([scaled_lr(s) * f for f in (0.25, 0.5, 0.75, 1, 1)])
    assert scaled_lr(TrainSettings(batch_size=256, lr_scale="linear")) == pytest.approx(8e-3)
    assert scaled_lr(TrainSettings(batch_size=256)) == 1e-3  # 'none': the paper's rate whatever the batch


def test_resident_run_trains_the_same_weights_and_writes_a_card(train_phantom: Path, patch_cache: Path,
                                                                tmp_path: Path, tiny: list[str]) -> None:
    """A resident run on the CPU finishes, exports a card recording its batches and schedule, and its
    weights equal the DataLoader run's (the same batches through the same loop)."""
    common = ["--slides", str(train_phantom), "--cache", str(patch_cache), *tiny, "--patches-per-epoch", "12",
              "--epochs", "2", "--lr-scale", "sqrt", "--lr-warmup-steps", "2", "--bootstrap", "0"]
    assert retrain_main([*common, "--out", str(tmp_path / "loader"), "--resident", "off"]) == 0
    assert retrain_main([*common, "--out", str(tmp_path / "resident"), "--resident", "on"]) == 0
    assert _weights_equal(tmp_path / "loader/checkpoint/model.safetensors",
                          tmp_path / "resident/checkpoint/model.safetensors")
    _, card = load_weights(tmp_path / "resident")
    assert card.training["batch_source"] == "resident"
    schedule = card.training["schedule"]
    assert schedule["lr_scale"] == "sqrt" and schedule["peak_lr"] == pytest.approx(1e-3 * (4 / 32) ** 0.5)
    assert schedule["reference_batch"] == 32 and schedule["lr_warmup_steps"] == 2
    rows = json.loads((tmp_path / "resident/log.json").read_text())
    assert [r["batch_source"] for r in rows] == ["resident", "resident"]
    assert all(0.0 <= r["data_wait_share"] <= 1.0 and r["patches_per_s"] > 0 for r in rows)
    assert rows[-1]["lr"] == pytest.approx(schedule["peak_lr"])


def test_resident_resume_continues_exactly(train_phantom: Path, patch_cache: Path, tmp_path: Path,
                                           tiny: list[str]) -> None:
    common = ["--slides", str(train_phantom), "--cache", str(patch_cache), *tiny, "--patches-per-epoch", "8",
              "--resident", "on", "--bootstrap", "0"]
    assert retrain_main([*common, "--out", str(tmp_path / "a"), "--epochs", "2"]) == 0
    assert retrain_main([*common, "--out", str(tmp_path / "b"), "--epochs", "1"]) == 0
    assert retrain_main(["--out", str(tmp_path / "b"), "--resume", "--epochs", "2", "--resident", "on"]) == 0
    assert _weights_equal(tmp_path / "a/checkpoint/model.safetensors", tmp_path / "b/checkpoint/model.safetensors")
    assert [r["epoch"] for r in json.loads((tmp_path / "b/log.json").read_text())] == [1, 2]
