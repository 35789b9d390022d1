"""``benchmarks/gpu_suite.py --tiny``: the prepared GPU run rehearsed end to end on the CPU, so it cannot rot
between GPU runs; and ``--assemble`` rebuilding the trained model from its pieces, refusing a damaged one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.models import load_weights

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "benchmarks" / "gpu_suite.py"
CLASSES = ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SUITE), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gpu-suite")
    out, work = root / "out", root / "work"
    done = _run("--tiny", "--out", str(out), "--work", str(work))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, work


def test_tiny_suite_runs_every_stage_and_reports_every_figure(tiny_run: tuple[Path, Path]) -> None:
    out, work = tiny_run
    report = json.loads((out / "gpu_suite.json").read_text())
    stages = report["stages"]
    assert list(stages) == ["phantoms", "label", "train", "pack", "bench", "validate"]
    assert {s["status"] for s in stages.values()} == {"ok"}, {k: v.get("error") for k, v in stages.items()}
    assert all(s["seconds"] >= 0 and s["budget_s"] > 0 for s in stages.values())
    assert report["tiny"] and report["environment"]["torch"] and report["environment"]["missing_modules"] == []

    # the paper's shape in miniature: training, validation and held-out slides, both styles
    roles = [(s["role"], s["realism"]) for s in report["plan"]["slides"]]
    assert {r for r, _ in roles} == {"train", "val", "heldout"} and {m for _, m in roles} == {"real", "clean"}
    assert stages["label"]["train_patches"] > 0 and set(stages["label"]["train_cells"]) == set(CLASSES)

    train = stages["train"]
    assert train["patches_per_s"] > 0 and 0.0 <= train["data_wait_share"] <= 1.0
    assert train["epochs_done"] >= 1 and train["steps"] == 6 and train["batch_source"] == "resident"
    assert train["schedule"]["lr_scale"] == "sqrt" and train["schedule"]["peak_lr"] == pytest.approx(1e-3 * 0.5)
    held = train["held_out"]
    assert held["split"] == "test" and held["cells"] > 0 and set(held["per_class_hard"]) == set(CLASSES)
    for figures in held["per_class_hard"].values():
        assert 0.0 <= figures["f1"] <= 1.0 and figures["ci95"] is not None and len(figures["ci95"]) == 2

    assert stages["bench"]["result"]["pipeline_tiles_per_s"] > 0 and stages["bench"]["model"] == "trained"

    val = stages["validate"]
    assert val["cases_done"] == 2 and val["summary"]["cases"] == 2 and val["model"] == "trained"
    for seed, ct, im in val["levels"]:  # the cases ran on the phantoms generated for them in the background
        params = json.loads((work / "validate" / f"phantom-512-{seed}" / "phantom.json").read_text())["params"]
        assert (params["infiltration_ct"], params["infiltration_im"]) == (ct, im)

    figures = report["figures"]
    for key in ("training_patches_per_s", "gpu_wait_share", "epochs_done", "held_out_f1_hard", "validate_cases",
                "bench_pipeline_tiles_per_s", "stage_seconds", "device", "torch"):
        assert figures[key] is not None, key

    # what comes back from the device machine: at most 8 plain files of at most 16 MiB
    files = sorted(p for p in out.iterdir())
    assert len(files) <= 8 and all(p.is_file() and p.stat().st_size <= 16 * 2**20 for p in files)
    assert all(p["bytes"] <= 15 * 2**20 for p in stages["pack"]["pieces"])


def test_assemble_rebuilds_the_same_model_and_refuses_a_damaged_piece(tiny_run: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    out, work = tiny_run
    pack = json.loads((out / "gpu_suite.json").read_text())["stages"]["pack"]
    assert len(pack["pieces"]) >= 2  # the tiny model is over 15 MiB, so joining is really tested
    done = _run("--assemble", str(out), "--to", str(tmp_path / "model"), timeout=300)
    assert done.returncode == 0, done.stderr
    rebuilt = (tmp_path / "model" / "model.safetensors").read_bytes()
    original = (work / "run" / "model.safetensors").read_bytes()
    assert rebuilt == original and hashlib.sha256(rebuilt).hexdigest() == pack["sha256"]
    _, card = load_weights(tmp_path / "model")
    assert card.name == "gpu-suite" and card.weights_sha256 == pack["sha256"]

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for p in out.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    piece = damaged / pack["pieces"][1]["file"]
    data = bytearray(piece.read_bytes())
    data[100] ^= 0xFF
    piece.write_bytes(bytes(data))
    done = _run("--assemble", str(damaged), "--to", str(tmp_path / "bad"), timeout=300)
    assert done.returncode == 2 and pack["pieces"][1]["file"] in done.stderr
    assert not (tmp_path / "bad" / "model.json").exists()
