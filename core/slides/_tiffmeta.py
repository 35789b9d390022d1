"""Channel names and pixel size from TIFF metadata that tiffslide does not read.

tiffslide takes the pixel size from the TIFF resolution tags only (and from the SVS description).
OME-TIFF writers may put it only in OME ``PhysicalSizeX/Y``; ImageJ (and QuPath's TileExporter,
which writes ImageJ TIFFs) stores the pixel size in the resolution tags with ResolutionUnit NONE
and the unit as ``unit=micron`` in its description, which tiffslide ignores. Channel names come
from OME ``Channel/@Name`` and ImageJ ``Labels``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import tifffile

__all__ = ["ome_channel_names", "ome_mpp", "imagej_channel_names", "imagej_mpp", "plausible_mpp"]

# µm per unit; OME units are UCUM-like symbols, ImageJ writes words.
_UNIT_UM = {
    "µm": 1.0, "um": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "\\u00B5m": 1.0, "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3,
    "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6,
}  # fmt: skip

# Writers that know no pixel size often write 72 or 96 dpi; no slide has pixels that large.
_MPP_RANGE_UM = (0.01, 50.0)


def plausible_mpp(x: float | None, y: float | None) -> tuple[float, float] | None:
    """(x, y) if both are finite µm values a microscope could produce, else None."""
    if x is None or y is None:
        return None
    try:
        xf, yf = float(x), float(y)
    except (TypeError, ValueError):
        return None
    lo, hi = _MPP_RANGE_UM
    if all(math.isfinite(v) and lo <= v <= hi for v in (xf, yf)):
        return (xf, yf)
    return None


def _ome_pixels(tif: tifffile.TiffFile) -> ET.Element | None:
    xml = tif.ome_metadata
    if not xml:
        return None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    return root.find("{*}Image/{*}Pixels")


def ome_channel_names(tif: tifffile.TiffFile, n_channels: int) -> list[str] | None:
    """OME ``Channel/@Name`` of the first image, or None when absent or the count disagrees."""
    pixels = _ome_pixels(tif)
    if pixels is None:
        return None
    names = [ch.get("Name") or "" for ch in pixels.findall("{*}Channel")]
    if len(names) != n_channels or not all(names):
        return None
    return names


def ome_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    """OME ``PhysicalSizeX/Y`` converted to µm (default unit µm), or None."""
    pixels = _ome_pixels(tif)
    if pixels is None:
        return None
    values = []
    for axis in ("X", "Y"):
        size = pixels.get(f"PhysicalSize{axis}")
        factor = _UNIT_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if size is None or factor is None:
            return None
        values.append(float(size) * factor)
    return plausible_mpp(values[0], values[1])


def imagej_channel_names(tif: tifffile.TiffFile, n_channels: int) -> list[str] | None:
    """ImageJ ``Labels`` (one per channel for a C-only hyperstack), or None."""
    meta = tif.imagej_metadata or {}
    labels = meta.get("Labels")
    if not labels or len(labels) < n_channels:
        return None
    names = [str(label).strip() for label in labels[:n_channels]]
    return names if all(names) else None


def imagej_mpp(tif: tifffile.TiffFile) -> tuple[float, float] | None:
    """Pixel size of an ImageJ TIFF: 1 / resolution tag, in the description's ``unit``."""
    meta = tif.imagej_metadata or {}
    factor = _UNIT_UM.get(str(meta.get("unit", "")).strip())
    if factor is None:
        return None
    page = tif.pages.first
    if "XResolution" not in page.tags or "YResolution" not in page.tags:
        return None
    xres, yres = page.get_resolution()  # pixels per unit
    if not xres or not yres:
        return None
    return plausible_mpp(factor / xres, factor / yres)
