"""QuPath GeoJSON details shared by region and cell import/export: feature lists, classes, pixels.

QuPath writes objects as GeoJSON Features in level-0 PIXEL coordinates:
``{"type": "Feature", "id": uuid, "geometry": {...}, "properties": {"objectType": "annotation",
"name": ..., "classification": {"name": "Tumor", "color": [r, g, b]}, "isLocked": false, ...}}``.
QuPath 0.2 wrote a bare list of Features whose ``id`` was the Java type ("PathAnnotationObject")
instead of ``properties.objectType``; both are read.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from core.errors import RegionError
from core.jsontypes import JSONDict, JSONMapping, JSONValue, as_mapping

_GEOMETRY_TYPES = {
    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection",
}
#: Largest coordinate believed (level-0 px): a whole slide is < 10⁶ px; beyond 10⁹ GEOS arithmetic overflows.
MAX_COORDINATE_PX = 1e9
#: QuPath 0.2 put the Java object type in "id"; mapped to the objectType of QuPath >= 0.3.
_OLD_OBJECT_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmacore",
}


def load_json(path: str | Path) -> JSONValue:
    """Parse a JSON file; RegionError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RegionError(f"Cannot read {path.name}: {err.strerror or err}.") from err
    except UnicodeDecodeError as err:
        raise RegionError(f"Cannot read {path.name}: not a text (GeoJSON) file ({err.reason}).") from err
    try:
        data: JSONValue = json.loads(text)
        return data
    except json.JSONDecodeError as err:
        raise RegionError(
            f"Cannot read {path.name}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}). "
            "Export it again from QuPath (File > Export objects as GeoJSON)."
        ) from err
    except RecursionError as err:
        raise RegionError(f"Cannot read {path.name}: its JSON is nested too deeply to be GeoJSON. "
                          "Export it again from QuPath (File > Export objects as GeoJSON).") from err  # fmt: skip
    except ValueError as err:  # e.g. a number with thousands of digits (Python's int limit)
        raise RegionError(f"Cannot read {path.name}: it holds a value no GeoJSON file has ({str(err)[:80]}). "
                          "Export it again from QuPath (File > Export objects as GeoJSON).") from err  # fmt: skip


def features(data: object, source: str) -> list[JSONDict]:
    """The Features in a FeatureCollection, a bare Feature, a bare geometry or a list of Features."""
    if isinstance(data, Mapping):
        kind = data.get("type")
        if not isinstance(kind, str):
            raise RegionError(f"{source}: the GeoJSON 'type' must be a text such as \"FeatureCollection\", "
                              f"found {type(kind).__name__} {_short(kind)}.")  # fmt: skip
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
    for i, item in enumerate(items, 1):
        check_feature(item, f"{source}: feature {i}")
    return [dict(item) for item in items]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_feature(item: object, what: str) -> None:
    """RegionError naming ``what`` unless ``item`` has a Feature's structure (fields of the right types)."""
    if not isinstance(item, Mapping):
        raise RegionError(f"{what} is not a GeoJSON Feature (an object), found {type(item).__name__} {_short(item)}.")
    kind = item.get("type", "Feature")
    if kind != "Feature":
        raise RegionError(f"{what} is not a GeoJSON Feature: its type is {_short(kind)}.")
    props = item.get("properties")
    if props is not None and not isinstance(props, Mapping):
        raise RegionError(f"{what}: 'properties' must be an object, found {type(props).__name__} {_short(props)}.")
    geometry = item.get("geometry")
    if geometry is not None and not isinstance(geometry, Mapping):
        raise RegionError(f"{what}: 'geometry' must be an object, found {type(geometry).__name__} {_short(geometry)}.")
    if isinstance(geometry, Mapping) and not isinstance(geometry.get("type"), str):
        raise RegionError(f"{what}: the geometry's 'type' must be a text such as \"Polygon\", found {_short(geometry.get('type'))}.")


def feature_label(feature: JSONMapping, source: str, index: int) -> str:
    """``"file.geojson: feature 3 (Tumor)"``: how messages name a feature (by index and name or class)."""
    props = as_mapping(feature.get("properties"))
    name = props.get("name") if isinstance(props.get("name"), str) else None
    cls, _ = classification(feature)
    return f"{source}: feature {index} ({_short(name or cls or 'unnamed').strip(chr(39))})"


def object_type(feature: JSONMapping) -> str:
    """QuPath object type: "annotation", "detection", "cell", ... ("annotation" when unstated)."""
    props = feature.get("properties") or {}
    if isinstance(props, Mapping) and isinstance(props.get("objectType"), str):
        return str(props["objectType"])
    old = feature.get("id")
    if isinstance(old, str) and old in _OLD_OBJECT_TYPES:
        return _OLD_OBJECT_TYPES[old]
    return "annotation"


def is_old_style_id(value: object) -> bool:
    """True for QuPath 0.2's ``"id": "PathAnnotationObject"`` style, which is not an object id."""
    return isinstance(value, str) and value in _OLD_OBJECT_TYPES


def _rgb(colour: object) -> list[int] | None:
    """[r, g, b] from a list of three numbers 0-255 or a packed (A)RGB int; None for anything else."""
    if isinstance(colour, list) and len(colour) >= 3:
        values = colour[:3]
        if all(isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255 for c in values):
            return [int(c) for c in values]
        return None
    if isinstance(colour, int) and not isinstance(colour, bool) and -(2**31) <= colour < 2**32:
        return [(colour >> 16) & 255, (colour >> 8) & 255, colour & 255]  # packed ARGB, as Java writes it
    return None


def classification(feature: JSONMapping) -> tuple[str | None, list[int] | None]:
    """(class name, [r, g, b]) of a feature; either may be None. Reads ``color`` or old ``colorRGB``.

    A bare name (``"classification": "Tumor"``) is read as the class name; a colour that is not
    three numbers 0-255 or a packed RGB int (a colour name, null, 1e300) is ignored.
    """
    props = feature.get("properties") or {}
    cls = props.get("classification") if isinstance(props, Mapping) else None
    if isinstance(cls, str | int | float) and not isinstance(cls, bool):
        return str(cls), None
    if not isinstance(cls, Mapping):
        return None, None
    name = cls.get("name")
    name = str(name) if isinstance(name, str | int | float) and not isinstance(name, bool) else None
    return name, _rgb(cls.get("color", cls.get("colorRGB")))


def hex_to_rgb(colour: str) -> list[int]:
    """"#rrggbb" -> [r, g, b]."""
    c = colour.lstrip("#")
    return [int(c[i : i + 2], 16) for i in (0, 2, 4)]


def geometry_px_to_um(geojson_geometry: object, mpp: tuple[float, float], what: str) -> BaseGeometry:
    """A GeoJSON geometry in level-0 pixels as a shapely geometry in slide µm."""
    if not isinstance(geojson_geometry, Mapping):
        raise RegionError(f"{what}: has no geometry.")
    try:
        with warnings.catch_warnings():  # NaN coordinates: refused below, with a message
            warnings.simplefilter("ignore", RuntimeWarning)
            geom = shapely.geometry.shape(geojson_geometry)
        coords = shapely.get_coordinates(geom)
    except Exception as err:  # shapely raises several types for malformed coordinates
        raise RegionError(f"{what}: malformed geometry ({str(err)[:120]}).") from err
    if not np.isfinite(coords).all():
        raise RegionError(f"{what}: the geometry has coordinates that are not finite numbers (infinity or NaN).")
    if coords.size and np.abs(coords).max() > MAX_COORDINATE_PX:
        raise RegionError(f"{what}: the geometry has coordinates beyond ±{MAX_COORDINATE_PX:.0e} pixels, far outside "
                          "any slide; the file is damaged or not in pixel coordinates.")  # fmt: skip
    return shapely.transform(geom, lambda xy: xy * np.asarray(mpp, dtype=float))


def geometry_um_to_px(geometry: BaseGeometry, mpp: tuple[float, float], decimals: int = 3) -> JSONDict:
    """A shapely geometry in slide µm as a GeoJSON geometry dict in level-0 pixels."""
    px = shapely.transform(geometry, lambda xy: np.round(xy / np.asarray(mpp, dtype=float), decimals))
    mapping: JSONDict = shapely.geometry.mapping(px)
    return mapping


def check_mpp(mpp: tuple[float, float]) -> tuple[float, float]:
    """Validate a (x, y) µm-per-pixel pair."""
    try:
        x, y = (float(v) for v in mpp)
    except (TypeError, ValueError):
        raise RegionError(f"Pixel size must be two numbers (x, y) in µm per pixel, got {mpp!r}.") from None
    if not (x > 0 and y > 0 and np.isfinite(x) and np.isfinite(y)):
        raise RegionError(f"Pixel size must be positive µm per pixel, got {mpp!r}.")
    return x, y
