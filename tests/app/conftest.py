"""Fixtures for app tests: small synthetic pyramidal OME-TIFFs and isolated settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

MPP = 0.5


def write_ome_tiff(path: Path, size: int = 1024, channels: tuple[str, ...] = ("Hoechst", "FITC", "Cy3", "AF750"),
                   seed: int = 0) -> Path:
    """A tiled, pyramidal, calibrated uint16 OME-TIFF with blobs ("nuclei") in every channel."""
    rng = np.random.default_rng(seed)
    c = len(channels)
    img = rng.normal(300, 40, (c, size, size)).clip(0, None).astype(np.float32)
    gy, gx = np.mgrid[0:size, 0:size]
    img[0] += 1500 * (((gx - size / 2) ** 2 + (gy - size / 2) ** 2) < (0.42 * size) ** 2)  # "tissue"
    yy, xx = np.mgrid[-8:9, -8:9]
    blob = np.exp(-(xx**2 + yy**2) / 20.0).astype(np.float32)
    for _ in range(size * size // 2000):
        cx, cy = rng.integers(8, size - 9, 2)
        sl = (slice(cy - 8, cy + 9), slice(cx - 8, cx + 9))
        img[(rng.integers(1, c) if c > 1 else 0, *sl)] += 6000 * blob
        img[(0, *sl)] += 8000 * blob
    data = img.clip(0, 65535).astype(np.uint16)
    levels = [data]
    while levels[-1].shape[1] > 256:
        levels.append(levels[-1][:, ::2, ::2].copy())
    res = (1e4 / MPP, 1e4 / MPP)
    meta = {"axes": "CYX", "Channel": {"Name": list(channels)}, "PhysicalSizeX": MPP, "PhysicalSizeY": MPP,
            "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
    with tifffile.TiffWriter(path, bigtiff=False, ome=True) as tif:
        tif.write(levels[0], tile=(256, 256), subifds=len(levels) - 1, metadata=meta,
                  resolution=res, resolutionunit="CENTIMETER", photometric="minisblack")
        for i, lv in enumerate(levels[1:], 1):
            tif.write(lv, tile=(256, 256), subfiletype=1, metadata=None,
                      resolution=(res[0] / 2**i, res[1] / 2**i), resolutionunit="CENTIMETER",
                      photometric="minisblack")
    return path


@pytest.fixture(scope="session")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("slides") / "small.ome.tif")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weights U-Net (resnet18) saved like a real model, at the test slides' mpp."""
    import torch

    from core.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    card = ModelCard(name="random-test", encoder="resnet18", mpp=MPP, patch_size=256, synthetic=True)
    out = tmp_path_factory.mktemp("model")
    module = build_model(card)
    with torch.no_grad():
        # Background wins on ~80% of the test slide's pixels, so random logits leave scattered
        # nucleus-sized blobs (~35 cells per 256² tile) rather than one slide-wide blob, which
        # the engine would rightly drop as no cell (cells are nuclei, not class fragments).
        module.segmentation_head[0].bias[0] += 1.25
    save_model(module, card, out)
    return out


@pytest.fixture
def settings_store(tmp_path: Path, model_dir: Path):  # noqa: ANN201 (SettingsStore; Qt import kept lazy)
    from PySide6.QtCore import QSettings

    from app.settings import AppSettings, SettingsStore

    store = SettingsStore(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings = AppSettings()
    settings.store.database_url = f"sqlite:///{tmp_path / 'cases.db'}"
    settings.analysis.model_dir = str(model_dir)
    settings.analysis.device = "cpu"
    store.save(settings)
    return store


@pytest.fixture
def window(qtbot, settings_store):  # noqa: ANN001, ANN201 (MainWindow; Qt import kept lazy)
    """The real main window, shown offscreen, with isolated settings and case store."""
    from app.errors import ErrorReporter
    from app.main_window import MainWindow

    w = MainWindow(settings_store, ErrorReporter())
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


@pytest.fixture
def view(qtbot, slide_path: Path):  # noqa: ANN001, ANN201 (SlideView)
    """A bare SlideView (400² px) showing the test slide."""
    from app.viewer.slide_view import SlideView
    from core.slides import open_slide

    v = SlideView()
    qtbot.addWidget(v)
    v.resize(400, 400)
    v.show()
    qtbot.waitExposed(v)
    slide = open_slide(slide_path)
    v.open_slide(slide)
    yield v
    v.close_slide()
    slide.close()


def grab_view(qtbot, view):  # noqa: ANN001, ANN201 (QImage)
    """The viewport as painted, once the background tiles at this zoom are in (a stable backdrop)."""
    qtbot.waitUntil(lambda: all(view.cache.get(k) for k in view._visible_keys(view.level_for_zoom())),
                    timeout=10000)
    return view.viewport().grab().toImage()
