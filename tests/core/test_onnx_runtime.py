"""ONNX Runtime (optional extra): same classes as PyTorch, refused where it cannot be used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.engine import AnalysisParams, analyse_slide
from core.errors import ModelLoadError
from core.models.onnx_runtime import onnxruntime_version, with_runtime
from core.models.runtime import LoadedModel, load_model
from core.progress import run_to_completion
from core.slides import open_slide
from tests.core import test_engine_run
from tests.core._engine_support import paint_blobs, seam_centres, write_slide

unet_dir = test_engine_run.unet_dir  # the tiny random U-Net fixture, shared
needs_ort = pytest.mark.skipif(onnxruntime_version() is None, reason="ONNX Runtime extra not installed")


@needs_ort
def test_onnxruntime_gives_the_classes_of_pytorch(unet_dir: Path, tmp_path: Path) -> None:
    model = load_model(unet_dir, device="cpu", precision="fp32")
    fast = with_runtime(model, "onnxruntime", threads=1)
    assert fast.runtime == "onnxruntime" and "ONNX Runtime" in fast.precision_reason
    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 64, 64)).astype(np.float32)
    cls, prob = model.predict_classes(x, crop=8)
    cls2, prob2 = fast.predict_classes(x, crop=8)
    assert np.mean(cls == cls2) >= 0.995 and np.abs(prob - prob2).max() < 1e-3
    img, _ = paint_blobs((192, 192), seam_centres((192, 192), 48))
    slide_path = write_slide(tmp_path / "s.ome.tif", img)
    with open_slide(slide_path) as slide:
        a = run_to_completion(analyse_slide(slide, fast, AnalysisParams(context_px=8, tissue_detection=False)))
        b = run_to_completion(analyse_slide(slide, fast, AnalysisParams(context_px=8, tissue_detection=False)))
    assert a.summary["runtime"] == "onnxruntime"
    assert a.cells.equals(b.cells)  # deterministic for one machine and setting


def test_runtime_choice_is_checked(unet_dir: Path) -> None:
    model = load_model(unet_dir, device="cpu", precision="fp32")
    assert with_runtime(model, "torch") is model
    with pytest.raises(ModelLoadError, match="runtime"):
        with_runtime(model, "tensorrt")
    bf16 = LoadedModel(model.module, model.card, model.device, "bf16", "test")
    assert with_runtime(bf16, "auto") is bf16  # auto: PyTorch where ONNX Runtime does not apply
    with pytest.raises(ModelLoadError, match="only on the CPU at fp32"):
        with_runtime(bf16, "onnxruntime")
