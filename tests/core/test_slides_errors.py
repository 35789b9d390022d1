"""Broken and unusual files give a SlideOpenError that names the file and says what is wrong.

Every broken file is made for real in tmp_path (cut short, bytes flipped, text renamed); no mocks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from core.errors import ChannelNotFoundError, SlideError, SlideOpenError, UncalibratedError
from core.slides import open_slide

WriteOme = Callable[..., Path]
MakePixels = Callable[..., np.ndarray]


@pytest.fixture(scope="module")
def small_ome(tmp_path_factory: pytest.TempPathFactory, write_ome: WriteOme, make_pixels: MakePixels) -> Path:
    return write_ome(tmp_path_factory.mktemp("bad") / "good.ome.tif", make_pixels(600, 500), levels=2)


def open_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(SlideOpenError) as err:
        open_slide(path, **kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert path.name in message, message
    return message


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in open_error(tmp_path / "nowhere.ome.tif")


def test_folder_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "scan.tif").mkdir()
    assert "folder" in open_error(tmp_path / "scan.tif")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.svs").write_bytes(b"")
    assert "empty (0 bytes)" in open_error(tmp_path / "empty.svs")


def test_text_file_renamed_tif(tmp_path: Path) -> None:
    path = tmp_path / "notes.tif"
    path.write_text("patient 12, slide 3\nHoechst ok\n")
    message = open_error(path)
    assert "text" in message and "not a slide image" in message and "OME-TIFF" in message


def test_png_renamed_tif(tmp_path: Path) -> None:
    path = tmp_path / "photo.tif"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "PNG" in open_error(path)


def test_truncated_tiff(tmp_path: Path, small_ome: Path) -> None:
    path = tmp_path / "cut.ome.tif"
    path.write_bytes(small_ome.read_bytes()[: small_ome.stat().st_size // 2])
    message = open_error(path)
    assert "truncated" in message or "damaged" in message


def test_truncated_header(tmp_path: Path, small_ome: Path) -> None:
    path = tmp_path / "stub.tif"
    path.write_bytes(small_ome.read_bytes()[:12])
    assert "damaged" in open_error(path)


def test_flipped_header_bytes(tmp_path: Path, small_ome: Path) -> None:
    raw = bytearray(small_ome.read_bytes())
    raw[8:16] = bytes(b ^ 0xFF for b in raw[8:16])  # BigTIFF offset of the first IFD
    path = tmp_path / "flipped.ome.tif"
    path.write_bytes(bytes(raw))
    assert "damaged" in open_error(path)


def test_flipped_tile_bytes_fail_on_read(tmp_path: Path, small_ome: Path) -> None:
    with tifffile.TiffFile(small_ome) as tif:
        page = tif.series[0].pages[0]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    raw = bytearray(small_ome.read_bytes())
    for i in range(offset, offset + count, 7):  # corrupt the zlib stream of the first tile
        raw[i] ^= 0x5A
    path = tmp_path / "bitrot.ome.tif"
    path.write_bytes(bytes(raw))
    with open_slide(path) as s:
        with pytest.raises(SlideError) as err:
            s.read_region((0, 0), 0, (64, 64), channels=[0])
    assert "bitrot.ome.tif" in str(err.value) and "damaged" in str(err.value)


def test_5d_time_and_z_refused(tmp_path: Path) -> None:
    path = tmp_path / "timelapse.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 4, 32, 32), np.uint16), metadata={"axes": "TZCYX"})
    message = open_error(path)
    assert "TZCYX" in message and "T=2" in message and "Z=3" in message and "single time point" in message


def test_zero_size_image(tmp_path: Path) -> None:
    path = tmp_path / "nothing.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size TIFF is nonconformant
        tifffile.imwrite(path, np.zeros((0, 0), np.uint8))
    assert "empty" in open_error(path)


def test_float_pixels_refused(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.float32))
    assert "uint8/uint16" in open_error(path)


def test_no_pixel_size_is_uncalibrated(tmp_path: Path, write_ome: WriteOme, make_pixels: MakePixels) -> None:
    data = make_pixels(300, 200, channels=1)
    path = write_ome(tmp_path / "nompp.ome.tif", data, mpp=None, levels=1, names=["DAPI"])
    with open_slide(path) as s:
        assert not s.is_calibrated and s.mpp is None
        with pytest.raises(UncalibratedError) as err:
            s.require_mpp()
    assert "nompp.ome.tif" in str(err.value) and "pixel size" in str(err.value)


def test_72_dpi_is_not_a_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    with open_slide(path) as s:
        assert s.mpp is None


def test_channel_absent(tmp_path: Path, small_ome: Path) -> None:
    with open_slide(small_ome, channel_aliases={"cd3": ["AF647"]}) as s:
        with pytest.raises(ChannelNotFoundError) as err:
            s.read_region((0, 0), 0, (8, 8), channels="cd3")
    message = str(err.value)
    assert "good.ome.tif" in message and "'cd3'" in message and "'AF750'" in message


def test_bad_mpp_override(small_ome: Path) -> None:
    assert "pixel size" in open_error(small_ome, mpp=(0.0, -1.0))


def test_bad_level(small_ome: Path) -> None:
    with open_slide(small_ome) as s, pytest.raises(ValueError, match="levels 0..1"):
        s.read_region((0, 0), 5, (8, 8))
