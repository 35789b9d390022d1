"""``python -m training.retrain`` for real on phantom slides: export, install, evaluate, resume, refuse."""

from __future__ import annotations

import _thread
import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.models import load_weights
from core.models.installed import list_models
from core.normalise import normalise_patch
from core.slides import open_slide
from training.evaluate import main as evaluate_main
from training.retrain import main as retrain_main


def _weights_equal(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a)), load_file(str(b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_end_to_end_export_install_evaluate(
    train_phantom: Path, eval_phantom: Path, patch_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    out = tmp_path / "run"
    args = ["--slides", str(train_phantom), "--out", str(out), "--cache", str(patch_cache), *tiny,
            "--epochs", "2", "--patches-per-epoch", "16", "--weights-dtype", "float16", "--install", "tiny-test"]
    assert retrain_main(args) == 0
    text = capsys.readouterr().out
    assert "precision fp32" in text or "precision bf16" in text
    assert "waiting for data" in text and "Per centroid" in text

    module, card = load_weights(out)
    assert card.synthetic and card.encoder == "resnet18" and card.patch_size == 64
    assert card.weights_dtype == "float16"
    assert card.training["slides"] == ["mif"] and card.training["split"]["train"]["patches"] > 0
    assert card.description == "U-Net resnet18, 5 classes; trained on mif; epoch chosen on mif; tested on mif."
    cd3 = card.metrics["pixel"]["soft"]["CD3"]
    assert set(cd3) == {"precision", "recall", "f1", "count_error"}
    assert cd3["count_error"] == pytest.approx(cd3["recall"] / cd3["precision"] - 1, rel=0.02, abs=2e-3)  # 4-digit rounding
    with open_slide(eval_phantom) as slide:
        patch = slide.read_region((600, 600), 0, (64, 64), channels=["hoechst"])
    with torch.inference_mode():
        probs = torch.softmax(module(torch.from_numpy(normalise_patch(patch))[None]), 1)
    assert probs.shape == (1, 5, 64, 64) and torch.allclose(probs.sum(1), torch.ones(1, 64, 64), atol=1e-5)
    log = json.loads((out / "log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2] and all(r["patches"] == 16 for r in log)
    assert (out / "log.csv").read_text().startswith("epoch,")
    assert [c.name for _, c in list_models()] == [card.name]

    # An out dir holding a model is refused unless --force.
    assert retrain_main(args) == 2
    assert "already holds a model" in capsys.readouterr().err

    ev = tmp_path / "eval"
    assert evaluate_main(["--model", str(out), "--slides", str(eval_phantom), "--out", str(ev),
                          "--batch-size", "32", "--precision", "fp32", "--bootstrap", "100"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["pixel"]["count"] > 0 and metrics["centroid"]["count"] > 0
    assert "mif" in metrics["per_slide"]
    lo, hi = metrics["centroid_ci"]["hard"]["average"]
    assert 0 <= lo <= hi <= 1 and metrics["per_slide"]["mif"]["centroid_ci"]["units"] == metrics["centroid"]["count"]


def test_resume_continues_exactly(train_phantom: Path, patch_cache: Path, tmp_path: Path, tiny: list[str]) -> None:
    common = ["--slides", str(train_phantom), "--cache", str(patch_cache), *tiny, "--patches-per-epoch", "8"]
    assert retrain_main([*common, "--out", str(tmp_path / "a"), "--epochs", "2"]) == 0
    assert retrain_main([*common, "--out", str(tmp_path / "b"), "--epochs", "1"]) == 0
    assert retrain_main(["--out", str(tmp_path / "b"), "--resume", "--epochs", "2"]) == 0
    assert _weights_equal(tmp_path / "a/checkpoint/model.safetensors", tmp_path / "b/checkpoint/model.safetensors")
    log = json.loads((tmp_path / "b/log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2]


def test_interrupted_run_resumes(train_phantom: Path, patch_cache: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str], tiny: list[str]) -> None:
    """Ctrl-C (a real KeyboardInterrupt in the main thread) after the first checkpoint, then --resume."""
    out = tmp_path / "run"
    ckpt = out / "checkpoint" / "checkpoint.json"

    running = threading.Event()
    running.set()

    def interrupt_after_first_epoch() -> None:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        while running.is_set() and time.monotonic() < deadline:  # again if one lands where it is lost
            _thread.interrupt_main()
            time.sleep(1.0)

    # Ctrl-C as a terminal delivers it: Python's own SIGINT handler (an earlier test in the same
    # process may have left another one, and interrupt_main does nothing under SIG_IGN/SIG_DFL).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_after_first_epoch, daemon=True)
    watcher.start()
    try:
        code = retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                             "--patches-per-epoch", "8", "--epochs", "1000", "--patience", "0"])
    finally:
        running.clear()
        watcher.join()
        signal.signal(signal.SIGINT, previous)
    assert code == 130
    assert "--resume" in capsys.readouterr().err
    assert not (out / "model.json").exists()
    assert retrain_main(["--slides", str(train_phantom), "--out", str(out)]) == 2
    assert "unfinished training run" in capsys.readouterr().err
    done = json.loads(ckpt.read_text())["epoch"]
    assert retrain_main(["--out", str(out), "--resume", "--epochs", str(done + 1)]) == 0
    assert (out / "model.json").is_file()
    assert f"Resumed after epoch {done}" in capsys.readouterr().out


def test_time_limit_exports_best_so_far(train_phantom: Path, patch_cache: Path, tmp_path: Path, tiny: list[str]) -> None:
    out = tmp_path / "run"
    assert retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                         "--patches-per-epoch", "8", "--epochs", "1000", "--time-limit", "0.001"]) == 0
    _, card = load_weights(out)
    assert card.training["stopped"] == "time-limit" and card.training["epochs_run"] == 1
    assert np.isfinite(card.training["best_val_f1"])


def test_init_fine_tunes_from_a_model(train_phantom: Path, patch_cache: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str], tiny: list[str]) -> None:
    """--init starts from a model's verified weights (a near-zero learning rate leaves them as they
    were), keeps its encoder and pixel size, and records it in the card; a bad --init is refused."""
    common = ["--slides", str(train_phantom), "--cache", str(patch_cache), *tiny, "--patches-per-epoch", "4",
              "--epochs", "1", "--bootstrap", "0"]
    assert retrain_main([*common, "--out", str(tmp_path / "base")]) == 0
    _, base = load_weights(tmp_path / "base")
    args = [*common, "--out", str(tmp_path / "tuned"), "--init", str(tmp_path / "base"), "--lr", "1e-12",
            "--encoder", "resnet34"]
    assert retrain_main(args) == 0
    printed = capsys.readouterr().out
    assert "Starting from the weights of base" in printed and "base, whose weights this run starts from" in printed
    tuned_module, tuned = load_weights(tmp_path / "tuned")
    base_module, _ = load_weights(tmp_path / "base")
    assert tuned.encoder == base.encoder == "resnet18" and tuned.mpp == base.mpp
    assert tuned.training["init"]["weights_sha256"] == base.weights_sha256
    a, b = base_module.state_dict(), tuned_module.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in a if "running" not in k and "num_batches" not in k)

    assert retrain_main([*common, "--out", str(tmp_path / "bad"), "--init", str(tmp_path / "nowhere")]) == 2
    assert "no such model folder" in capsys.readouterr().err


def test_cosine_schedule_decays_to_the_floor_and_is_recorded(train_phantom: Path, patch_cache: Path, tmp_path: Path,
                                                            tiny: list[str]) -> None:
    """A fine-tune's learning rate falls from --lr to 1% of it over the planned steps, step by step
    (so --resume, which restores the step, continues the same curve), and the card says so."""
    from training.train import COSINE_FLOOR, TrainSettings, lr_at

    cosine = TrainSettings(lr=1e-3, lr_schedule="cosine")
    lrs = [lr_at(cosine, s, 10) for s in range(10)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3 * COSINE_FLOOR)
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert lr_at(TrainSettings(lr=1e-3), 7, 10) == 1e-3

    out = tmp_path / "run"
    assert retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                         "--patches-per-epoch", "8", "--epochs", "3", "--lr", "2e-4", "--lr-schedule", "cosine"]) == 0
    log = json.loads((out / "log.json").read_text())
    epoch_lrs = [r["lr"] for r in log]  # the rate of each epoch's last step
    assert epoch_lrs[0] < 2e-4 and epoch_lrs == sorted(epoch_lrs, reverse=True)
    assert epoch_lrs[-1] == pytest.approx(2e-4 * COSINE_FLOOR)
    _, card = load_weights(out)
    assert card.training["settings"]["lr_schedule"] == "cosine"


def test_description_keeps_held_out_slides_out_of_training() -> None:
    from training.retrain import _describe

    summary = {"train": {"slides": ["a", "b"]}, "val": {"slides": ["v"]}, "test": {"slides": ["t1", "t2"]}}
    text = _describe("resnet34", summary, "test")
    assert "trained on a, b;" in text and "epoch chosen on v;" in text and "tested on t1, t2." in text
    assert "tested on the validation split" in _describe("resnet34", {**summary, "test": {"slides": []}}, "val")
