"""core.resources: the shipped files are found through importlib.resources, as package data."""

from __future__ import annotations

import importlib.resources

import pytest

import core.resources
from core.errors import ResourceError
from core.models import load_card
from core.resources import RESOURCE_PACKAGE, demo_cohort_csv, demo_model_dir, logo_png_path, resource_path
from core.scores import ReferenceCohort


def test_the_demo_model_and_cohort_are_found_and_load() -> None:
    card = load_card(demo_model_dir())
    assert card.synthetic and (demo_model_dir() / "model.safetensors").is_file()
    cohort = ReferenceCohort.from_csv(demo_cohort_csv())
    assert cohort.synthetic and cohort.n == 150
    assert logo_png_path().read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert resource_path("icons", "hoechstscore.png").is_file()


def test_they_come_from_the_installed_package_not_a_path_beside_the_code() -> None:
    root = importlib.resources.files(RESOURCE_PACKAGE)
    assert demo_model_dir() == root / "models" / "demo"
    assert demo_cohort_csv() == root / "reference" / "demo_cohort.csv"


def test_a_missing_package_is_a_core_error_with_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.resources, "RESOURCE_PACKAGE", "hoechstscore_resources_not_installed")
    with pytest.raises(ResourceError, match="not installed: install the package with 'pip install -e .'"):
        resource_path("models", "demo")
