"""core.slides on Zeiss CZI files written for real with pylibCZIrw."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from pylibCZIrw import czi as pyczi

from core.errors import SlideOpenError
from core.slides import open_slide

MakePixels = Callable[..., np.ndarray]

MIF_NAMES = ("Hoechst", "FITC", "Cy3", "AF750")

ORIGIN = (100, 40)  # CZI planes need not start at (0, 0)


def write_czi(
    path: Path, data: np.ndarray, names: tuple[str, ...] | None = MIF_NAMES, mpp_um: float | None = 0.227,
    block: int = 512,
) -> Path:
    """Write (C, Y, X) as a CZI mosaic of ``block``-sized sub-blocks starting at ORIGIN."""
    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for c in range(data.shape[0]):
            for y in range(0, data.shape[1], block):
                for x in range(0, data.shape[2], block):
                    tile = np.ascontiguousarray(data[c, y : y + block, x : x + block])
                    czi.write(data=tile, plane={"C": c}, location=(ORIGIN[0] + x, ORIGIN[1] + y))
        scale = (mpp_um or 0.0) * 1e-6  # CZI stores metres per pixel
        channel_names = dict(enumerate(names)) if names else None
        czi.write_metadata(channel_names=channel_names, scale_x=scale, scale_y=scale)
    return path


@pytest.fixture(scope="module")
def czi_data(make_pixels: MakePixels) -> np.ndarray:
    return make_pixels(1200, 1100, seed=3)


@pytest.fixture(scope="module")
def czi_path(tmp_path_factory: pytest.TempPathFactory, czi_data: np.ndarray) -> Path:
    return write_czi(tmp_path_factory.mktemp("czi") / "scan.czi", czi_data)


def test_czi_roundtrip(czi_path: Path, czi_data: np.ndarray) -> None:
    with open_slide(czi_path) as s:
        assert s.format == "czi" and s.dimensions == (1200, 1100)
        assert s.channel_names == list(MIF_NAMES) and s.dtype == np.uint16
        assert s.mpp == pytest.approx((0.227, 0.227))
        np.testing.assert_array_equal(s.read_region((0, 0), 0, (1200, 1100)), czi_data)
        np.testing.assert_array_equal(s.read_region((500, 300), 0, (256, 256), channels="cd3"),
                                      czi_data[3:4, 300:556, 500:756])  # fmt: skip
        edge = s.read_region((1100, -20), 0, (200, 50), channels=[0])
        np.testing.assert_array_equal(edge[0, 20:, :100], czi_data[0, :30, 1100:])
        assert not edge[0, :20].any() and not edge[0, :, 100:].any()


def test_czi_levels_average_level0(czi_path: Path, czi_data: np.ndarray) -> None:
    with open_slide(czi_path) as s:
        assert s.level_count == 2 and s.level_downsamples == [1.0, 2.0]
        lvl1 = s.read_region((200, 100), 1, (64, 32), channels=[1]).astype(np.float64)
        ref = czi_data[1, 100:164, 200:328].reshape(32, 2, 64, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(lvl1[0], ref, atol=0.5)
        at_mpp = s.read_region_at_mpp((200, 100), (64, 32), mpp=0.454, channels=[1])
        np.testing.assert_allclose(at_mpp[0], ref, atol=0.5)
        thumb = s.thumbnail(max_size=300)
        assert thumb.shape == (4, 275, 300) and thumb.dtype == np.uint16


def test_czi_threaded_reads(czi_path: Path) -> None:
    locations = [((i * 131) % 1000, (i * 71) % 900) for i in range(24)]
    with open_slide(czi_path) as s:
        single = [s.read_region(loc, 0, (128, 128)) for loc in locations]
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(lambda loc: s.read_region(loc, 0, (128, 128)), locations))
    for a, b in zip(single, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_czi_uncalibrated_unnamed(tmp_path: Path, make_pixels: MakePixels) -> None:
    data = make_pixels(64, 48, channels=2, seed=4)
    with open_slide(write_czi(tmp_path / "raw.czi", data, names=None, mpp_um=None)) as s:
        assert s.mpp is None and len(s.channel_names) == 2
    with open_slide(tmp_path / "raw.czi", mpp=(0.3, 0.3)) as s:
        assert s.mpp == (0.3, 0.3)


def test_czi_z_stack_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "zstack.czi"
    data = np.zeros((1, 32, 32), np.uint16)
    with pyczi.create_czi(str(path), exist_ok=True) as czi:
        for z in range(3):
            czi.write(data=data[0], plane={"C": 0, "Z": z})
        czi.write_metadata()
    with pytest.raises(SlideOpenError, match=r"zstack\.czi.*Z=3"):
        open_slide(path)


def test_czi_truncated(tmp_path: Path, czi_path: Path) -> None:
    cut = tmp_path / "cut.czi"
    cut.write_bytes(czi_path.read_bytes()[: czi_path.stat().st_size // 3])
    with pytest.raises(SlideOpenError, match=r"cut\.czi.*(damaged|incomplete)"):
        with open_slide(cut) as s:
            s.read_region((0, 0), 0, (1200, 1100))


def test_czi_coarse_levels_use_zoom(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:600, 0:2100]
    data = (xx * 20 + yy * 10).astype(np.uint16)[None]
    with open_slide(write_czi(tmp_path / "wide.czi", data, names=("DAPI",), block=1024)) as s:
        assert s.level_downsamples == [1.0, 2.0, 4.0] and s.level_dimensions[2] == (525, 150)
        lvl2 = s.read_region((400, 200), 2, (100, 50)).astype(np.float64)
        ref = data[0, 200:400, 400:800].astype(np.float64).reshape(50, 4, 100, 4).mean(axis=(1, 3))
        np.testing.assert_allclose(lvl2[0], ref, atol=60)  # picked, not averaged: within one 4x4 block
        assert s.thumbnail(max_size=256).shape == (1, 73, 256)
