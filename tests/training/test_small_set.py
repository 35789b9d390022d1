"""A small training set does not fool the user: warm-up and patience in patch-steps, too few validation
cells, cells per class beside the paper's, all in the card; and runs stored before all this resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.models import load_weights
from training.retrain import main as retrain_main
from training.small_set import (
    MIN_VAL_CELLS,
    PAPER_TRAIN_CELLS,
    WARMUP_FLOOR,
    SplitCells,
    cell_report,
    cell_warnings,
    choose_rule,
    plan_selection,
    warmup_for,
)

OLD_RUN = Path(__file__).parent / "data" / "run-before-config.json"


def test_warmup_is_a_fraction_of_the_plan_with_a_floor_and_never_past_it() -> None:
    assert warmup_for(593_000) == round(0.25 * 593_000)  # the paper's protocol
    assert warmup_for(2_000) == WARMUP_FLOOR
    assert warmup_for(300) == 300  # a plan shorter than the floor: its last epoch stays eligible


def test_old_patience_in_epochs_becomes_patch_steps() -> None:
    kw = {"planned_patches": 10_800, "patches_per_epoch": 108, "warmup_patches": None, "planned_by": "test"}
    assert plan_selection("f1", "", patience_patches=None, patience_epochs=15, **kw).patience_patches == 1_620
    assert plan_selection("f1", "", patience_patches=None, patience_epochs=0, **kw).patience_patches is None
    assert plan_selection("f1", "", patience_patches=500, patience_epochs=15, **kw).patience_patches == 500
    default = plan_selection("f1", "", patience_patches=None, patience_epochs=None, **kw)
    assert default.warmup_patches == 2_700 and default.patience_patches == 2_700  # at least the warm-up
    assert plan_selection("last", "", patience_patches=None, patience_epochs=15, **kw).patience_patches is None


def test_too_few_validation_cells_fall_back_to_the_last_epoch() -> None:
    enough = dict.fromkeys(PAPER_TRAIN_CELLS, MIN_VAL_CELLS)
    assert choose_rule("auto", enough)[0] == "f1"
    rule, why = choose_rule("auto", {**enough, "CD20": 2})
    assert rule == "last" and "CD20 2" in why and "too few" in why
    assert choose_rule("f1", {**enough, "CD20": 2})[0] == "f1"
    assert choose_rule("last", enough)[0] == "last"


def test_cell_report_and_warnings_in_plain_words() -> None:
    cells = SplitCells(train={"CD8_CD3LO": 263, "CD3": 600, "CD20": 7, "CD8_CD3HI": 22},
                       val={"CD8_CD3LO": 87, "CD3": 88, "CD20": 2, "CD8_CD3HI": 9},
                       test={"CD8_CD3LO": 59, "CD3": 49, "CD20": 0, "CD8_CD3HI": 4})
    table = cell_report(cells)
    assert "14,536" in table and "1,412" in table and "263" in table
    notes = cell_warnings(cells)
    assert any(n.startswith("CD20: only 7 training cells") and "cannot learn" in n for n in notes)
    assert any(n.startswith("CD8_CD3LO: 263 training cells, far below the paper's 14,536") for n in notes)
    assert not any(n.startswith("CD3:") for n in notes)  # 600 is enough not to be warned about
    assert any("too few cells to choose an epoch" in n and "CD20 2" in n for n in notes)
    assert any("test split holds few cells" in n for n in notes)


def test_no_model_from_before_the_warm_up_is_exported(
    train_phantom: Path, patch_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    """Epochs of 8 patches, a warm-up of 24 patch-steps: epochs 1 and 2 are never eligible, whatever their
    validation F1; the export, the log and the card say which epoch and why; the cell counts are printed."""
    out = tmp_path / "run"
    assert retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                         "--patches-per-epoch", "8", "--epochs", "4", "--warmup-patches", "24", "--select", "f1",
                         "--patience-patches", "0", "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert "Positive cells per class (each cell once) beside the paper's training set" in printed
    assert "14,536" in printed and "Warning: " in printed
    assert "far below the paper's" in printed or "cannot learn this class" in printed
    assert "warm-up 8/24 patch-steps, not eligible" in printed and "warm-up 16/24 patch-steps, not eligible" in printed
    log = json.loads((out / "log.json").read_text())
    assert [r["patches_seen"] for r in log] == [8, 16, 24, 32]
    assert [r["eligible"] for r in log] == [False, False, True, True]
    assert not any(r["best"] for r in log[:2])
    _, card = load_weights(out)
    sel = card.training["selection"]
    assert sel["rule"] == "f1" and sel["warmup_patches"] == 24 and sel["warmup_reason"] == "given by --warmup-patches"
    assert sel["exported_epoch"] in (3, 4) and sel["best_patches"] >= 24
    assert card.training["best_epoch"] == sel["exported_epoch"]
    cells = card.training["cells_per_split"]
    assert cells["paper_train"] == PAPER_TRAIN_CELLS and set(cells["train"]) == set(PAPER_TRAIN_CELLS)
    assert sum(cells["train"].values()) > 0 and cells["warnings"]
    assert cells["min_val_cells"] == MIN_VAL_CELLS


def test_a_run_that_ends_before_the_warm_up_exports_nothing_and_resumes(
    train_phantom: Path, patch_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    """Stopped at 32 patch-steps of a 48-step warm-up: no model (its weights are too little trained for
    any epoch to be chosen), the checkpoint kept, and --resume takes it past the warm-up to an export."""
    out = tmp_path / "run"
    assert retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                         "--patches-per-epoch", "16", "--epochs", "2", "--warmup-patches", "48",
                         "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert "No model exported" in err and "after 32 patch-steps, before the warm-up of 48" in err and "--resume" in err
    assert not (out / "model.json").exists() and (out / "checkpoint" / "checkpoint.json").is_file()
    assert retrain_main(["--out", str(out), "--resume", "--epochs", "3"]) == 0
    _, card = load_weights(out)
    assert card.training["selection"]["exported_epoch"] == 3 and card.training["selection"]["best_patches"] == 48
    assert card.training["selection"]["warmup_reason"] == "given by --warmup-patches"


def test_few_validation_cells_export_the_last_epoch_and_say_so(
    train_phantom: Path, patch_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    """The phantom's validation patches hold a handful of cells: auto selection falls back to the last
    epoch, never stops early, and writes the reason in the card."""
    out = tmp_path / "run"
    assert retrain_main(["--slides", str(train_phantom), "--cache", str(patch_cache), "--out", str(out), *tiny,
                         "--patches-per-epoch", "8", "--epochs", "3", "--patience", "1", "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    _, card = load_weights(out)
    val = card.training["cells_per_split"]["val"]
    assert min(val.values()) < MIN_VAL_CELLS  # the premise: this validation split is too small to rank
    sel = card.training["selection"]
    assert sel["rule"] == "last" and "too few for its F1 to rank epochs" in sel["rule_reason"]
    assert sel["patience_patches"] is None and card.training["stopped"] == "finished"
    assert sel["exported_epoch"] == 3 and card.training["epochs_run"] == 3
    assert "Selection: validation holds fewer than" in printed and "the last epoch is exported" in printed


def test_a_run_stored_before_the_change_resumes(
    train_phantom: Path, patch_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny: list[str],
) -> None:
    """run.json and checkpoint.json as the code before RetrainConfig and patch-steps wrote them (their
    settings kept in tests/training/data, made by that code): --resume reads them, derives the patch-steps
    from log.json, converts the stored --patience 3 (epochs) to 24 patch-steps and finishes."""
    out = tmp_path / "run"
    common = ["--slides", str(train_phantom), "--cache", str(patch_cache), *tiny, "--patches-per-epoch", "8"]
    assert retrain_main([*common, "--out", str(out), "--epochs", "1", "--patience", "3"]) == 0
    for name in ("model.json", "model.safetensors", "metrics.json"):
        (out / name).unlink()
    old = json.loads(OLD_RUN.read_text())
    old.update(slides=[str(train_phantom)], out=str(out), cache=str(patch_cache))
    (out / "run.json").write_text(json.dumps(old, indent=2))
    ckpt_path = out / "checkpoint" / "checkpoint.json"
    ckpt = json.loads(ckpt_path.read_text())
    for key in ("patches", "best_patches", "warmup_patches"):  # not in the old format
        del ckpt[key]
    ckpt["settings"] = old
    ckpt_path.write_text(json.dumps(ckpt, indent=2))
    log = json.loads((out / "log.json").read_text())
    (out / "log.json").write_text(json.dumps([{k: v for k, v in r.items() if k not in ("patches_seen", "eligible")}
                                              for r in log]))
    capsys.readouterr()

    # --select f1: rank by F1 although this validation split is small, so that patience applies
    assert retrain_main(["--out", str(out), "--resume", "--epochs", "3", "--select", "f1"]) == 0
    printed = capsys.readouterr().out
    assert "Resumed after epoch 1" in printed
    assert "--patience 3 epochs × 8 patches per epoch" in printed
    log = json.loads((out / "log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2, 3] and [r["patches_seen"] for r in log[1:]] == [16, 24]
    _, card = load_weights(out)
    assert card.training["early_stopping"] == {**card.training["early_stopping"], "patience": 3,
                                               "patience_patches": 24}
    assert json.loads((out / "run.json").read_text())["patience"] == 3

