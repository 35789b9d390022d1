"""QuPath GeoJSON details shared by region and cell import/export: feature lists, classes, pixels.

QuPath writes objects as GeoJSON Features in level-0 PIXEL coordinates:
``{"type": "Feature", "id": uuid, "geometry": {...}, "properties": {"objectType": "annotation",
"name": ..., "classification": {"name": "Tumor", "color": [r, g, b]}, "isLocked": false, ...}}``.
QuPath 0.2 wrote a bare list of Features whose ``id`` was the Java type ("PathAnnotationObject")
instead of ``properties.objectType``; both are read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from core.errors import RegionError

_GEOMETRY_TYPES = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection",
}
#: QuPath 0.2 put the Java object type in "id"; mapped to the objectType of QuPath >= 0.3.
_OLD_OBJECT_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmacore",
}


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; RegionError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RegionError(f"Cannot read {path.name}: {err.strerror or err}.") from err
    except UnicodeDecodeError as err:
        raise RegionError(f"Cannot read {path.name}: not a text (GeoJSON) file ({err.reason}).") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RegionError(
            f"Cannot read {path.name}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}). "
            "Export it again from QuPath (File > Export objects as GeoJSON)."
        ) from err


def features(data: Any, source: str) -> list[dict[str, Any]]:
    """The Features in a FeatureCollection, a bare Feature, a bare geometry or a list of Features."""
    if isinstance(data, Mapping):
        kind = data.get("type")
        if kind == "FeatureCollection":
            items = data.get("features")
            if not isinstance(items, list):
                raise RegionError(f"{source}: FeatureCollection has no 'features' list.")
        elif kind == "Feature":
            items = [data]
        elif kind in _GEOMETRY_TYPES:
            items = [{"type": "Feature", "geometry": data, "properties": {}}]
        else:
            raise RegionError(
                f"{source}: expected a GeoJSON FeatureCollection, Feature or list of Features, "
                f"found type {kind!r}."
            )
    elif isinstance(data, list):
        items = data
    else:
        raise RegionError(f"{source}: expected GeoJSON (an object or a list), found {type(data).__name__}.")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("type", "Feature") != "Feature":
            raise RegionError(f"{source}: item {i + 1} is not a GeoJSON Feature.")
    return [dict(item) for item in items]


def object_type(feature: Mapping[str, Any]) -> str:
    """QuPath object type: "annotation", "detection", "cell", ... ("annotation" when unstated)."""
    props = feature.get("properties") or {}
    if isinstance(props, Mapping) and isinstance(props.get("objectType"), str):
        return str(props["objectType"])
    old = feature.get("id")
    if isinstance(old, str) and old in _OLD_OBJECT_TYPES:
        return _OLD_OBJECT_TYPES[old]
    return "annotation"


def is_old_style_id(value: Any) -> bool:
    """True for QuPath 0.2's ``"id": "PathAnnotationObject"`` style, which is not an object id."""
    return isinstance(value, str) and value in _OLD_OBJECT_TYPES


def classification(feature: Mapping[str, Any]) -> tuple[str | None, list[int] | None]:
    """(class name, [r, g, b]) of a feature; either may be None. Reads ``color`` or old ``colorRGB``."""
    props = feature.get("properties") or {}
    cls = props.get("classification") if isinstance(props, Mapping) else None
    if not isinstance(cls, Mapping):
        return None, None
    name = cls.get("name")
    name = str(name) if name is not None else None
    colour = cls.get("color", cls.get("colorRGB"))
    if isinstance(colour, list) and len(colour) >= 3:
        return name, [int(c) for c in colour[:3]]
    if isinstance(colour, int):  # packed ARGB int, as Java writes it
        return name, [(colour >> 16) & 255, (colour >> 8) & 255, colour & 255]
    return name, None


def hex_to_rgb(colour: str) -> list[int]:
    """"#rrggbb" -> [r, g, b]."""
    c = colour.lstrip("#")
    return [int(c[i : i + 2], 16) for i in (0, 2, 4)]


def geometry_px_to_um(geojson_geometry: Any, mpp: tuple[float, float], what: str) -> BaseGeometry:
    """A GeoJSON geometry in level-0 pixels as a shapely geometry in slide µm."""
    try:
        geom = shapely.geometry.shape(geojson_geometry)
    except Exception as err:  # shapely raises several types for malformed coordinates
        raise RegionError(f"{what}: malformed geometry ({err}).") from err
    return shapely.transform(geom, lambda xy: xy * np.asarray(mpp, dtype=float))


def geometry_um_to_px(geometry: BaseGeometry, mpp: tuple[float, float], decimals: int = 3) -> dict[str, Any]:
    """A shapely geometry in slide µm as a GeoJSON geometry dict in level-0 pixels."""
    px = shapely.transform(geometry, lambda xy: np.round(xy / np.asarray(mpp, dtype=float), decimals))
    return shapely.geometry.mapping(px)


def check_mpp(mpp: tuple[float, float]) -> tuple[float, float]:
    """Validate a (x, y) µm-per-pixel pair."""
    try:
        x, y = (float(v) for v in mpp)
    except (TypeError, ValueError):
        raise RegionError(f"Pixel size must be two numbers (x, y) in µm per pixel, got {mpp!r}.") from None
    if not (x > 0 and y > 0 and np.isfinite(x) and np.isfinite(y)):
        raise RegionError(f"Pixel size must be positive µm per pixel, got {mpp!r}.")
    return x, y
