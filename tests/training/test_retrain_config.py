"""RetrainConfig: the typed settings of a retrain run, built from the command line or a stored run.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.errors import CoreError
from training.errors import TrainingError
from training.retrain import build_parser
from training.retrain_config import CURRENT, RESUMABLE, RetrainConfig

OLD_RUN = Path(__file__).parent / "data" / "run-before-config.json"


def test_every_flag_is_a_field_with_the_same_default() -> None:
    """A flag added to the parser but not to RetrainConfig (or with another default) fails here,
    not silently in a resumed run."""
    parsed = vars(build_parser().parse_args(["--out", "x"]))
    cfg = RetrainConfig(out=Path("x"))
    assert set(parsed) == set(RetrainConfig.keys()) - {"label_config"}
    for key, value in parsed.items():
        if key != "out":
            mine = getattr(cfg, key)
            assert (list(mine) if isinstance(mine, tuple) else mine) == value, key
    assert set(RESUMABLE) <= set(parsed) and set(CURRENT) <= set(parsed)


def test_from_args_and_json_round_trip(tmp_path: Path) -> None:
    slide = tmp_path / "s.ome.tif"
    slide.write_bytes(b"")
    ns = build_parser().parse_args(["--out", str(tmp_path / "run"), "--slides", str(slide), "--patch-size", "128",
                                    "--holdout-region", "s:0,0,100,100", "--patience-patches", "500"])
    cfg = RetrainConfig.from_args(ns)
    assert cfg.slides == (slide,) and cfg.patch_size == 128 and cfg.patience_patches == 500
    assert cfg.regions[0][0].x1 == 100 and cfg.split_spec().holdout_regions == cfg.regions[0]
    stored = json.loads(json.dumps(cfg.to_json()))
    assert stored["slides"] == [str(slide)] and stored["holdout_region"] == ["s:0,0,100,100"]
    assert RetrainConfig.from_json(stored) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.__setattr__("epochs", 3)  # frozen: a run's settings never change under it


def test_a_run_json_from_before_the_config_loads() -> None:
    """run.json as retrain wrote it before RetrainConfig (an argparse.Namespace dumped whole, --patience in
    epochs, default 15): every key loads, newer settings take their defaults, and it writes back the same."""
    old = json.loads(OLD_RUN.read_text())
    cfg = RetrainConfig.from_json(old)
    assert cfg.patience == 3 and cfg.patch_size == 64 and cfg.slides == (Path("old/ph/mif.ome.tif"),)
    assert cfg.label_config is not None and cfg.label_config.thresholds.cd20 == 5000.0
    assert cfg.select == "auto" and cfg.warmup_patches is None
    again = cfg.to_json()
    assert {k: again[k] for k in old} == old
    assert RetrainConfig.from_json(again) == cfg


def test_resumed_takes_only_resumable_and_current_settings(tmp_path: Path) -> None:
    stored = RetrainConfig.from_json(json.loads(OLD_RUN.read_text()))
    now = RetrainConfig(out=tmp_path / "moved", epochs=9, patch_size=256, workers=5, seed=7)
    merged = stored.resumed(now, explicit={"epochs", "patch_size", "seed"})
    assert merged.epochs == 9 and merged.workers == 5 and merged.resume and merged.out == tmp_path / "moved"
    assert merged.patch_size == 64 and merged.seed == 0  # data and model come from the stored run


@pytest.mark.parametrize(("key", "value", "words"), [
    ("patch_size", 100, "--patch-size must be a multiple of 32"),
    ("split", "0.8,0.2", "--split '0.8,0.2'"),
    ("balance", "more", "--balance 'more'; valid: none, sampling, loss, both"),
    ("epochs", 0, "--epochs must be at least 1"),
    ("holdout_region", ["s:1,2"], "--holdout-region 's:1,2'"),
    ("surprise", 1, "setting(s) surprise that this version does not know"),
])
def test_bad_stored_values_are_refused_by_name(key: str, value: object, words: str) -> None:
    data = {**json.loads(OLD_RUN.read_text()), key: value}
    with pytest.raises(CoreError) as err:  # TrainingError, or DatasetError for a region
        RetrainConfig.from_json(data)
    assert words in str(err.value)


def test_a_namespace_with_an_unknown_flag_is_refused() -> None:
    ns = build_parser().parse_args(["--out", "x"])
    ns.brand_new_flag = True
    with pytest.raises(TrainingError, match="brand_new_flag"):
        RetrainConfig.from_args(ns)
