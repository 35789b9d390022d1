"""The slide-vs-model check (core.models.domain) and its place in ``core analyse``: warnings in plain
words, in summary.json, and the --mpp refusal, on real phantom slides and the shipped demo model."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from core.cli import main as cli_main
from core.models import load_card
from core.models.domain import check_slide, image_stats, sample_tiles, summarise
from core.models.runtime import default_model_dir
from core.phantom import PhantomParams, generate_phantom
from core.progress import run_to_completion
from core.slides import open_slide


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    params = PhantomParams(size=768, seed=3, infiltration_ct=1.0, infiltration_im=1.0)
    return run_to_completion(generate_phantom(params, tmp_path_factory.mktemp("domain") / "p")).mif


def test_a_slide_like_the_training_data_gives_no_warning_and_unlike_ones_do(phantom: Path) -> None:
    demo = load_card(default_model_dir())
    with open_slide(phantom) as slide:
        stats = summarise(sample_tiles(slide, demo.mpp, demo.patch_size, 12, seed=1), demo.mpp)
        assert stats["images"] > 0 and stats["nuclei"] > 20 and stats["contrast"]["p50"] > 1
        card = dataclasses.replace(demo, synthetic=False, training={"data_statistics": {**stats, "source_mpp": 0.227}})
        assert check_slide(slide, card) == []
        # the same slide against training data with 3x bigger nuclei, 5x the contrast and 10x the intensity
        other = copy.deepcopy(stats)
        other["nucleus_area_um2"] = {k: v * 3 for k, v in stats["nucleus_area_um2"].items()}
        other["contrast"] = {k: v * 5 for k, v in stats["contrast"].items()}
        other["intensity_p99"] = {k: v * 10 for k, v in stats["intensity_p99"].items()}
        warned = check_slide(slide, dataclasses.replace(card, training={"data_statistics": other}))
        text = " ".join(warned)
        assert "smaller than in the training data" in text
        assert "stand out from the background less" in text
        assert "Hoechst intensities differ" in text


def test_synthetic_model_and_an_old_card_say_so(phantom: Path) -> None:
    demo = load_card(default_model_dir())
    assert demo.synthetic and demo.data_statistics is not None
    old = dataclasses.replace(demo, training={k: v for k, v in demo.training.items() if k != "data_statistics"})
    with open_slide(phantom) as slide:
        assert check_slide(slide, demo) == [check_slide(slide, old)[0]]  # only "synthetic": a slide like its data
        warned = check_slide(slide, old)
    assert any("synthetic phantom slides" in w for w in warned)
    assert sum("cannot be compared" in w for w in warned) == 1


def test_the_demo_model_warns_on_a_realistic_phantom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #11: `core analyse` with the demo model on a slide of another style (low contrast, dim
    nuclei, as real exports are) says so, beyond the synthetic-model warning."""
    params = PhantomParams(size=768, seed=5, realism="real")
    slide = run_to_completion(generate_phantom(params, tmp_path / "real")).hoechst
    assert cli_main(["analyse", str(slide), "--out", str(tmp_path / "a"), "--precision", "fp32",
                     "--tissue-min-area", "500"]) == 0
    warnings = json.loads((tmp_path / "a" / "summary.json").read_text())["warnings"]
    text = " ".join(warnings)
    # Low contrast is what sets this style apart. Its bright nuclei (p99 ~1560) are dimmer than the
    # demo model's training data (p5 ~2740) but within the factor of 2 the intensity check allows;
    # that check is tested above with statistics far off.
    assert "stand out from the background less" in text
    assert "synthetic phantom slides" in text
    assert "stand out from the background less" in capsys.readouterr().err


def test_analyse_refuses_mpp_over_a_recorded_one_and_records_a_forced_override(
    phantom: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "a"
    assert cli_main(["analyse", str(phantom), "--out", str(out), "--mpp", "0.3", "0.3"]) != 0
    err = capsys.readouterr().err
    assert "records its pixel size" in err and "--force-mpp" in err and not out.exists()
    assert cli_main(["analyse", str(phantom), "--out", str(out), "--mpp", "0.25", "0.25", "--force-mpp",
                     "--device", "cpu", "--precision", "fp32", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: The model 'hoechstscore-demo' was trained only on synthetic" in err
    summary = json.loads((out / "summary.json").read_text())
    assert any("synthetic" in w for w in summary["warnings"])
    assert summary["mpp_override"] == {"recorded": [pytest.approx(0.227)] * 2, "used": [0.25, 0.25], "forced": True}


def test_glass_is_not_taken_for_faint_nuclei() -> None:
    """Otsu splits pure noise in two; that split must not pass for nuclei (it once halved the nucleus size)."""
    glass = np.random.default_rng(0).normal(210, 15, (128, 128)).astype(np.uint16)
    assert image_stats(glass, 1.0) is None
    tissue = glass.copy()
    yy, xx = np.mgrid[:128, :128]
    for cy, cx in [(30, 30), (30, 90), (90, 60)]:
        tissue[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] += 800  # 7 µm nuclei at 1 µm/px
    stats = image_stats(tissue, 1.0)
    assert stats is not None and stats["contrast"] > 10 and len(stats["areas"]) == 3
    assert all(40 <= a <= 60 for a in stats["areas"])
