"""core.slides on real files written with tifffile: OME-TIFF, flat TIFF, SVS-like RGB, ImageJ."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile

from core.errors import ChannelNotFoundError, SlideError, UncalibratedError
from core.slides import CHANNEL_ALIASES, Slide, open_slide

WriteOme = Callable[..., Path]

MIF_NAMES = ("Hoechst", "FITC", "Cy3", "AF750")


@pytest.fixture
def slide(mif_ome: Path) -> Slide:
    with open_slide(mif_ome) as s:
        yield s


def test_ome_pyramid_metadata(slide: Slide) -> None:
    assert slide.format == "ome-tiff"
    assert slide.dimensions == (1100, 900)
    assert slide.level_count >= 3
    assert slide.level_dimensions[:3] == [(1100, 900), (550, 450), (275, 225)]
    assert slide.level_downsamples[:3] == pytest.approx([1.0, 2.0, 4.0])
    assert slide.mpp == pytest.approx((0.227, 0.227))
    assert slide.is_calibrated and slide.require_mpp() == pytest.approx((0.227, 0.227))
    assert slide.channel_names == list(MIF_NAMES)
    assert slide.n_channels == 4 and slide.dtype == np.uint16
    assert slide.best_level_for_downsample(3.0) == 1
    assert slide.best_level_for_downsample(0.5) == 0


def test_ome_read_region_levels_and_channels(slide: Slide, mif_data: np.ndarray) -> None:
    region = slide.read_region((300, 200), 0, (256, 128))
    assert region.shape == (4, 128, 256) and region.dtype == np.uint16
    np.testing.assert_array_equal(region, mif_data[:, 200:328, 300:556])
    sub = slide.read_region((300, 200), 0, (50, 40), channels=["cd3", 0])
    np.testing.assert_array_equal(sub, mif_data[[3, 0], 200:240, 300:350])
    lvl1 = slide.read_region((200, 100), 1, (64, 32), channels="Cy3")
    expected = mif_data[2, :900, :1100].reshape(450, 2, 550, 2).mean(axis=(1, 3)).astype(np.uint16)
    np.testing.assert_array_equal(lvl1[0], expected[50:82, 100:164])


def test_zero_fill_outside(slide: Slide, mif_data: np.ndarray) -> None:
    region = slide.read_region((-10, 880), 0, (30, 40), channels=[1])
    assert region.shape == (1, 40, 30)
    np.testing.assert_array_equal(region[0, :20, 10:], mif_data[1, 880:900, 0:20])
    assert not region[:, :, :10].any() and not region[:, 20:, :].any()
    assert not slide.read_region((5000, 5000), 2, (8, 8)).any()


def test_channel_roles_and_missing(mif_ome: Path) -> None:
    with open_slide(mif_ome) as s:
        assert [s.channel_index(r) for r in ("hoechst", "cd20", "cd8", "cd3")] == [0, 1, 2, 3]
        assert s.channel_index("af750") == 3 and s.channel_index(2) == 2
        with pytest.raises(ChannelNotFoundError) as err:
            s.channel_index("CD45")
        assert "'Hoechst', 'FITC', 'Cy3', 'AF750'" in str(err.value) and "mif.ome.tif" in str(err.value)
        with pytest.raises(ChannelNotFoundError):
            s.read_region((0, 0), 0, (4, 4), channels=[7])
    with open_slide(mif_ome, channel_aliases={"hoechst": ["Cy3"]}) as s:
        assert s.channel_index("hoechst") == 2
    assert CHANNEL_ALIASES["cd8"] == ("Cy3",)


def test_read_region_at_mpp_area_average(slide: Slide, mif_data: np.ndarray) -> None:
    out = slide.read_region_at_mpp((100, 60), (64, 48), mpp=0.454, channels=[0, 3])
    assert out.shape == (2, 48, 64) and out.dtype == np.float32
    ref = mif_data[[0, 3], 60:156, 100:228].astype(np.float64).reshape(2, 48, 2, 64, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out, ref, atol=1.0)  # level 1 is the truncated block mean
    same = slide.read_region_at_mpp((7, 9), (20, 10), mpp=0.227, channels="hoechst")
    np.testing.assert_array_equal(same[0], mif_data[0, 9:19, 7:27])


def test_read_region_at_mpp_fractional_factors(
    tmp_path: Path, mif_data: np.ndarray, write_ome: WriteOme
) -> None:
    data = mif_data[:1, :300, :300]
    with open_slide(write_ome(tmp_path / "flat.ome.tif", data, levels=1, names=["DAPI"])) as s:
        odd = s.read_region_at_mpp((100, 60), (30, 20), mpp=0.227 * 3)
        ref3 = data[0, 60:120, 100:190].astype(np.float64).reshape(20, 3, 30, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(odd[0], ref3, rtol=1e-5)
        # 1.5x from a half-pixel offset: each output pixel is the exact area-weighted mean
        frac = s.read_region_at_mpp((10.5, 20.5), (4, 4), mpp=0.227 * 1.5)[0].astype(np.float64)
        d = data[0].astype(np.float64)
        wts = np.array([0.5, 1.0])  # output pixel 0 covers [10.5, 12) x [20.5, 22)
        manual = (d[20:22, 10:12] * wts[:, None] * wts[None, :]).sum() / 2.25
        assert frac[0, 0] == pytest.approx(manual, rel=1e-5)


def test_read_region_at_mpp_upsample(slide: Slide, mif_data: np.ndarray) -> None:
    out = slide.read_region_at_mpp((100, 100), (40, 40), mpp=0.227 / 2, channels=[0])
    assert out.shape == (1, 40, 40)
    centres = out[0, 1::2, 1::2][:-1, :-1]  # output pixels centred on level-0 pixel centres
    np.testing.assert_allclose(centres.mean(), mif_data[0, 100:119, 100:119].mean(), rtol=0.01)


def test_thumbnail(slide: Slide) -> None:
    thumb = slide.thumbnail(max_size=200)
    assert thumb.dtype == np.uint16 and thumb.shape[0] == 4
    assert max(thumb.shape[1:]) == 200 and thumb.shape[1:] == (164, 200)
    assert slide.thumbnail(max_size=5000, channels="cd3").shape == (1, 900, 1100)


def test_threaded_reads_match_single_thread(slide: Slide) -> None:
    locations = [((i * 97) % 900, (i * 61) % 700) for i in range(48)]
    single = [slide.read_region(loc, i % 2, (128, 128)) for i, loc in enumerate(locations)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = enumerate(locations)
        threaded = list(pool.map(lambda a: slide.read_region(a[1], a[0] % 2, (128, 128)), jobs))
    for a, b in zip(single, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_uint8_flat_single_channel_uncalibrated(tmp_path: Path) -> None:
    data = np.arange(70 * 90, dtype=np.uint32).reshape(70, 90).astype(np.uint8)
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, data)
    with open_slide(path) as s:
        assert (s.format, s.level_count, s.n_channels, s.dtype) == ("tiff", 1, 1, np.uint8)
        assert s.mpp is None and not s.is_calibrated
        assert s.channel_index("hoechst") == 0  # a single unnamed channel answers any role
        with pytest.raises(UncalibratedError, match="flat.tif"):
            s.require_mpp()
        with pytest.raises(UncalibratedError):
            s.read_region_at_mpp((0, 0), (8, 8), mpp=0.5)
        np.testing.assert_array_equal(s.read_region((10, 5), 0, (20, 10))[0], data[5:15, 10:30])
    with open_slide(path, mpp=(0.5, 0.5)) as s:
        assert s.require_mpp() == (0.5, 0.5)
        assert s.read_region_at_mpp((0, 0), (8, 8), mpp=1.0).shape == (1, 8, 8)


def test_svs_like_rgb_pyramid(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    path = tmp_path / "rgb.svs"
    desc = "Aperio Image Library v12.0.0\n1024x768 [0,0 1024x768] (256x256) RAW|AppMag = 20|MPP = 0.499"
    opts = {"photometric": "rgb", "metadata": None}
    with tifffile.TiffWriter(path) as tw:
        tw.write(base, tile=(256, 256), description=desc, **opts)
        tw.write(base[::16, ::16], **opts)  # thumbnail page, as Aperio writes it
        tw.write(base[::2, ::2], tile=(256, 256), **opts)
        tw.write(base[::4, ::4], tile=(256, 256), **opts)
    with open_slide(path) as s:
        assert s.format == "svs" and s.channel_names == ["R", "G", "B"] and s.dtype == np.uint8
        assert s.level_count == 3 and s.mpp == pytest.approx((0.499, 0.499))
        region = s.read_region((40, 30), 0, (50, 20))
        np.testing.assert_array_equal(region, base[30:50, 40:90].transpose(2, 0, 1))
        green = s.read_region((40, 80), 1, (10, 10), channels=["G"])[0]
        np.testing.assert_array_equal(green, base[::2, ::2][40:50, 20:30, 1])


def test_imagej_hyperstack_labels(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 60000, (4, 64, 96), dtype=np.uint16)
    path = tmp_path / "tile [x=1024,y=2048].tif"
    labels = ["DAPI", "AF488", "Cy3", "AF750"]  # as QuPath's TileExporter names them
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / 0.4962, 1 / 0.4962),
                     metadata={"axes": "CYX", "unit": "micron", "Labels": labels})  # fmt: skip
    with open_slide(path) as s:
        assert s.format == "imagej" and s.channel_names == ["DAPI", "AF488", "Cy3", "AF750"]
        assert s.mpp == pytest.approx((0.4962, 0.4962))
        assert [s.channel_index(r) for r in ("hoechst", "cd20", "cd8", "cd3")] == [0, 1, 2, 3]
        np.testing.assert_array_equal(s.read_region((0, 0), 0, (96, 64)), data)


def test_ome_physical_size_only_fallback(tmp_path: Path, mif_data: np.ndarray) -> None:
    path = tmp_path / "nores.ome.tif"
    tifffile.imwrite(path, mif_data[:2, :64, :64], ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 325.0, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 0.325, "Channel": {"Name": ["DAPI", "FITC"]}})  # fmt: skip
    with open_slide(path) as s:
        assert s.mpp == pytest.approx((0.325, 0.325)) and s.channel_names == ["DAPI", "FITC"]


def test_closed_slide_refuses_reads(mif_ome: Path) -> None:
    s = open_slide(mif_ome)
    s.close()
    with pytest.raises(SlideError, match="closed"):
        s.read_region((0, 0), 0, (4, 4))


def test_pyramid_with_few_levels_still_reads(tmp_path: Path, write_ome: WriteOme) -> None:
    data = np.full((1, 300, 300), 7, dtype=np.uint16)
    path = write_ome(tmp_path / "one.ome.tif", data, levels=1, names=["Hoechst"])
    with open_slide(path) as s:
        assert s.level_count == 1
        np.testing.assert_allclose(s.read_region_at_mpp((0, 0), (10, 10), mpp=0.227 * 4), 7.0)
