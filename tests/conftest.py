"""Shared fixtures: small synthetic slides written for real with tifffile (no mocks)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import tifffile

MIF_NAMES = ("Hoechst", "FITC", "Cy3", "AF750")
MIF_MPP = 0.227


def write_ome_pyramid(
    path: Path,
    data: np.ndarray,
    mpp: float | None = MIF_MPP,
    names: Sequence[str] | None = MIF_NAMES,
    levels: int = 3,
    tile: int = 256,
) -> Path:
    """Write (C, Y, X) ``data`` as a tiled pyramidal OME-TIFF (SubIFDs, 2x block-mean levels).

    Writes the pixel size both as resolution tags (read by tiffslide) and OME PhysicalSizeX/Y.
    """
    meta: dict[str, object] = {"axes": "CYX"}
    if names is not None:
        meta["Channel"] = {"Name": list(names)}
    res: dict[str, object] = {}
    if mpp is not None:
        meta.update(PhysicalSizeX=mpp, PhysicalSizeY=mpp, PhysicalSizeXUnit="µm", PhysicalSizeYUnit="µm")
    opts = {"tile": (tile, tile), "compression": "zlib", "photometric": "minisblack"}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        if mpp is not None:
            res = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
        tw.write(data, subifds=levels - 1, metadata=meta, **res, **opts)
        level = data
        for i in range(1, levels):
            h, w = level.shape[1] // 2 * 2, level.shape[2] // 2 * 2
            level = level[:, :h, :w].reshape(level.shape[0], h // 2, 2, w // 2, 2).mean(axis=(2, 4))
            level = level.astype(data.dtype)
            if mpp is not None:
                res = {"resolution": (1e4 / mpp / 2**i,) * 2, "resolutionunit": "CENTIMETER"}
            tw.write(level, subfiletype=1, **res, **opts)
    return path


def mif_pixels(width: int = 1100, height: int = 900, channels: int = 4, seed: int = 0) -> np.ndarray:
    """Smooth-ish uint16 test pattern (C, Y, X): gradients + noise, distinct per channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    out = np.empty((channels, height, width), dtype=np.uint16)
    for c in range(channels):
        base = (xx * (c + 1) * 7 + yy * 13 + c * 1000) % 50000
        out[c] = base + rng.integers(0, 2000, size=(height, width))
    return out


@pytest.fixture(scope="session")
def mif_data() -> np.ndarray:
    return mif_pixels()


@pytest.fixture(scope="session")
def mif_ome(tmp_path_factory: pytest.TempPathFactory, mif_data: np.ndarray) -> Path:
    """4-channel uint16 pyramidal OME-TIFF, 1100x900 px, tile 256, 3 levels, mpp 0.227."""
    return write_ome_pyramid(tmp_path_factory.mktemp("slides") / "mif.ome.tif", mif_data)


@pytest.fixture(scope="session")
def write_ome() -> Callable[..., Path]:
    """:func:`write_ome_pyramid`, as a fixture so test modules need not import conftest."""
    return write_ome_pyramid


@pytest.fixture(scope="session")
def make_pixels() -> Callable[..., np.ndarray]:
    """:func:`mif_pixels`, as a fixture."""
    return mif_pixels


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small models on a shared 2-core CPU: two OpenMP threads run them 5-10x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
