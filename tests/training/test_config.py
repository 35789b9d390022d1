"""The labelling config: TOML round trip, flags over the file, typos refused with the valid keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from training.config import LabelConfig, load_config, save_config


def test_round_trip(tmp_path: Path) -> None:
    cfg = LabelConfig().with_thresholds(cd20=4321.5, cd3_hi=3000)
    path = save_config(cfg, tmp_path / "labels.toml", comment="calibrated on batch 7")
    assert "calibrated on batch 7" in path.read_text()
    assert load_config(path) == cfg


def test_defaults_are_the_paper_thresholds() -> None:
    t = load_config(None).thresholds
    assert (t.cd20, t.cd8, t.cd3, t.cd3_hi) == (5000, 4000, 2200, 2200)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[thresholds]\ncd21 = 5000\n", "Valid keys: cd20, cd8, cd3, cd3_hi"),
        ("[treshold]\ncd20 = 1\n", "Valid keys: channels, segmentation, thresholds, tile_labels"),
        ("[segmentation]\nthreshold = 'triangle'\n", "valid: 'otsu', 'local'"),
        ("[thresholds]\ncd20 = 'high'\n", "[thresholds].cd20"),
        ("[tile_labels]\n\"1\" = 'CD9'\n", "valid classes are other, CD8_CD3LO"),
        ("[thresholds\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "labels.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
