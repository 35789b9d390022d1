"""core.models.installed: the user's models folder, install, list (broken folders reported)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import CoreError, ModelLoadError
from core.models import ModelCard, save_model
from core.models.installed import find_models, install_model, list_models, models_dir


@pytest.fixture(autouse=True)
def user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def _model(d: Path, name: str = "m1") -> Path:
    # A model folder needs only a valid card and its weights; a 1x1 conv keeps the test fast.
    save_model(torch.nn.Conv2d(1, 5, 1), ModelCard(name=name), d)
    return d


def test_models_dir_follows_platformdirs(user_data: Path) -> None:
    assert models_dir() == user_data / "HoechstScore" / "models"


def test_install_and_list(tmp_path: Path) -> None:
    src = _model(tmp_path / "run")
    target = install_model(src)
    assert target == models_dir() / "m1" and (target / "model.safetensors").is_file()
    assert [(p.name, c.name) for p, c in list_models()] == [("m1", "m1")]
    with pytest.raises(CoreError, match="already installed"):
        install_model(src)
    install_model(src, force=True)
    install_model(src, name="copy 2")
    extra = _model(tmp_path / "elsewhere", name="x")
    assert sorted(c.name for _, c in list_models(extra_dirs=[extra])) == ["m1", "m1", "x"]
    with pytest.raises(CoreError, match="cannot be a folder name"):
        install_model(src, name="../evil")


def test_broken_folders_are_reported_not_fatal(tmp_path: Path) -> None:
    install_model(_model(tmp_path / "run"))
    (models_dir() / "empty").mkdir()
    bad = models_dir() / "bad-card"
    bad.mkdir()
    (bad / "model.json").write_text("{not json")
    valid, broken = find_models()
    assert [p.name for p, _ in valid] == ["m1"]
    assert sorted(p.name for p, _ in broken) == ["bad-card", "empty"]
    assert len(list_models()) == 1


def test_install_refuses_altered_weights(tmp_path: Path) -> None:
    src = _model(tmp_path / "run")
    with open(src / "model.safetensors", "ab") as f:
        f.write(b"x")
    with pytest.raises(ModelLoadError, match="do not match"):
        install_model(src)
