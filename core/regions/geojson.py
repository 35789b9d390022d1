"""QuPath GeoJSON import and export of regions (annotations) and cells (detections).

Files hold level-0 PIXEL coordinates; regions in memory hold slide µm, so every function takes the
slide's ``mpp`` = (x, y) µm per pixel. QuPath's own field names are kept (``id``, ``type``,
``properties.objectType``, ``classification``, ``isLocked``, ``measurements``, ...), and fields
HoechstScore does not use travel in :attr:`Region.extra`, so annotations can go QuPath ->
HoechstScore -> QuPath without loss (point and line annotations excepted: they are skipped,
since a region needs an area).

QuPath class -> region kind (:data:`QUPATH_CLASS_KINDS`, case-insensitive):

=====================================================  ===================
Tumor, Tumour, Tumor region                            tumour
Center, Centre, CT, Tumor center, Tumour centre        tumour_centre
Invasive margin, IM, Margin                            invasive_margin
Ignore*, Ignore, Exclusion, Exclude, Necrosis,         exclusion
Artefact, Artifact, Fold
Tissue                                                 tissue
anything else (e.g. Stroma, Immune cells), no class    other (kept, not scored)
=====================================================  ===================

"Stroma" is deliberately not tissue: the IM is clipped to tissue and must keep its inner half in
the tumour. Export writes the original class name and colour back when the kind is unchanged;
otherwise the first name of the kind in the table above (:data:`KIND_QUPATH_CLASSES`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeGuard

import numpy as np
import pandas as pd

from core.classes import DEFAULT_CLASS_TABLE, ClassTable
from core.errors import RegionError
from core.jsontypes import JSONDict, JSONMapping, JSONValue, as_float, as_list, as_mapping
from core.regions import _qupath as qp
from core.regions.kinds import REGION_KINDS
from core.regions.region import Region, RegionKind
from core.regions.validate import clean_geometry, polygonal_parts

QUPATH_CLASS_KINDS: Mapping[str, RegionKind] = {
    **dict.fromkeys(("tumor", "tumour", "tumor region", "tumour region"), RegionKind.TUMOUR),
    **dict.fromkeys(
        ("center", "centre", "ct", "tumor center", "tumour centre", "tumor centre", "tumour center"),
        RegionKind.TUMOUR_CENTRE,
    ),
    **dict.fromkeys(("invasive margin", "im", "margin"), RegionKind.INVASIVE_MARGIN),
    **dict.fromkeys(
        ("ignore*", "ignore", "exclusion", "exclude", "necrosis", "artefact", "artifact", "fold"),
        RegionKind.EXCLUSION,
    ),
    "tissue": RegionKind.TISSUE,
}
#: Region kind -> (QuPath class name, [r, g, b]) written on export: from the one table of kinds.
KIND_QUPATH_CLASSES: Mapping[RegionKind, tuple[str, list[int]]] = {
    kind: (info.qupath_class, list(info.rgb)) for kind, info in REGION_KINDS.items() if info.qupath_class
}
_OWN_PROPERTIES = ("objectType", "name", "classification")
_OWN_FEATURE_FIELDS = ("type", "id", "geometry", "properties")


@dataclass(frozen=True)
class RegionImport:
    """Regions read from GeoJSON, and what the user should be told (skipped features, repairs)."""

    regions: list[Region]
    warnings: list[str] = field(default_factory=list)


def kind_for_class(name: str | None, class_map: Mapping[str, RegionKind | str] | None = None) -> RegionKind:
    """Region kind of a QuPath class name; ``class_map`` entries (any case) come first."""
    if name is None:
        return RegionKind.OTHER
    key = " ".join(name.split()).lower()
    for table in (class_map or {}, QUPATH_CLASS_KINDS):
        for cls, kind in table.items():
            if " ".join(cls.split()).lower() == key:
                return RegionKind.parse(kind)
    return RegionKind.OTHER


def regions_from_geojson(
    data: object,
    mpp: tuple[float, float],
    *,
    source: str = "GeoJSON",
    class_map: Mapping[str, RegionKind | str] | None = None,
    bounds_um: tuple[float, float] | None = None,
) -> RegionImport:
    """Regions from parsed QuPath GeoJSON (FeatureCollection, Feature, list of Features).

    mpp: slide (x, y) µm per level-0 pixel. Annotations only (detections are skipped); geometries
    are repaired and cleaned (see :func:`~core.regions.validate.clean_geometry`). RegionError if
    the data is not GeoJSON or no feature has a usable area.
    """
    mpp = qp.check_mpp(mpp)
    regions: list[Region] = []
    warnings: list[str] = []
    seen_ids: set[str] = set()
    items = qp.features(data, source)
    for i, feature in enumerate(items, 1):
        otype = qp.object_type(feature)
        props = dict(as_mapping(feature.get("properties")))
        cls_name, _ = qp.classification(feature)
        label = qp.feature_label(feature, source, i)
        if otype != "annotation":
            continue
        try:
            geom = qp.geometry_px_to_um(feature.get("geometry"), mpp, label)
        except RegionError as err:
            warnings.append(f"{err} Skipped.")
            continue
        if not polygonal_parts(geom) and geom.geom_type not in ("Polygon", "MultiPolygon"):
            warnings.append(f"{label} is a {geom.geom_type}, not an area; skipped.")
            continue
        try:
            geom, report = clean_geometry(geom, what=label, bounds_um=bounds_um)
        except RegionError as err:
            warnings.append(f"{err} Skipped.")
            continue
        warnings.extend(report.warnings)
        fid = feature.get("id")
        rid = str(fid) if isinstance(fid, str) and fid and not qp.is_old_style_id(fid) else None
        given = props.get("metadata")
        metadata: JSONMapping = given if isinstance(given, Mapping) else {}
        name = props.get("name")
        extra: JSONDict = {
            "feature": {k: v for k, v in feature.items() if k not in _OWN_FEATURE_FIELDS},
            "properties": {k: v for k, v in props.items() if k not in _OWN_PROPERTIES},
        }
        if "classification" in props:
            extra["classification"] = props["classification"]
        region = Region(
            kind=kind_for_class(cls_name, class_map),
            geometry=geom,
            name=name if isinstance(name, str) else "",
            author=str(metadata.get("author", "")),
            extra=extra,
            **({"id": rid} if rid and rid not in seen_ids else {}),
        )
        seen_ids.add(region.id)
        regions.append(region)
    if not regions:
        why = "; ".join(warnings) or "it holds no annotations"
        raise RegionError(f"{source}: no region with an area could be read ({why}).")
    return RegionImport(regions, warnings)


def read_regions_geojson(
    path: str | Path,
    mpp: tuple[float, float],
    *,
    class_map: Mapping[str, RegionKind | str] | None = None,
    bounds_um: tuple[float, float] | None = None,
) -> RegionImport:
    """Regions from a QuPath GeoJSON file (see :func:`regions_from_geojson`)."""
    path = Path(path)
    return regions_from_geojson(
        qp.load_json(path), mpp, source=path.name, class_map=class_map, bounds_um=bounds_um
    )


def region_to_feature(region: Region, mpp: tuple[float, float]) -> JSONDict:
    """One region as a QuPath annotation Feature in level-0 pixels."""
    mpp = qp.check_mpp(mpp)
    extra = dict(region.extra)
    props: JSONDict = {"objectType": "annotation"}
    if region.name:
        props["name"] = region.name
    original = extra.get("classification")
    original_name, _ = qp.classification({"properties": {"classification": original}})
    if isinstance(original, Mapping) and kind_for_class(original_name) is region.kind:
        props["classification"] = original
    elif region.kind in KIND_QUPATH_CLASSES:
        name, colour = KIND_QUPATH_CLASSES[region.kind]
        props["classification"] = {"name": name, "color": list(colour)}
    props.setdefault("isLocked", False)
    props.update(as_mapping(extra.get("properties")))
    if region.author:
        props["metadata"] = {**as_mapping(props.get("metadata")), "author": region.author}
    feature: JSONDict = {"type": "Feature", "id": region.id}
    feature["geometry"] = qp.geometry_um_to_px(region.geometry, mpp)
    feature["properties"] = props
    feature.update(as_mapping(extra.get("feature")))
    return feature


def regions_to_geojson(regions: Iterable[Region], mpp: tuple[float, float]) -> JSONDict:
    """Regions as a QuPath FeatureCollection in level-0 pixels (mpp = slide (x, y) µm/px)."""
    return {"type": "FeatureCollection", "features": [region_to_feature(r, mpp) for r in regions]}


def write_regions_geojson(regions: Iterable[Region], path: str | Path, mpp: tuple[float, float]) -> Path:
    """Write regions as QuPath GeoJSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(regions_to_geojson(regions, mpp)), encoding="utf-8")
    return path


def _pixels(cells: pd.DataFrame, mpp: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    if {"x_px", "y_px"} <= set(cells.columns):
        return cells["x_px"].to_numpy(float), cells["y_px"].to_numpy(float)
    if {"x_um", "y_um"} <= set(cells.columns):
        return cells["x_um"].to_numpy(float) / mpp[0], cells["y_um"].to_numpy(float) / mpp[1]
    raise RegionError(
        f"The cell table needs x_px, y_px or x_um, y_um columns; it has {', '.join(map(str, cells.columns))}."
    )


def cells_to_geojson(
    cells: pd.DataFrame,
    mpp: tuple[float, float],
    *,
    shape: Literal["point", "circle"] = "point",
    measurements: Iterable[str] = ("probability", "confidence", "area_um2"),
    classes: ClassTable = DEFAULT_CLASS_TABLE,
) -> JSONDict:
    """Cells as a QuPath FeatureCollection of detections, in level-0 pixels.

    cells: cell table (x_px, y_px or x_um, y_um; class_name; optional id and measurement columns).
    shape: "point" (centroid) or "circle" (12-gon of the cell's area_um2, 3 µm radius without one).
    classes: the class table of the model that made the cells (its card's names and colours).
    Each feature carries ``classification {name, color}`` (colours from ``classes``, grey for
    names not in it) and the listed ``measurements`` present in the table, as QuPath >= 0.4 writes
    them (a name -> value map). About 5 s and 1-2 GB per million cells: to write a file, use
    :func:`write_cells_geojson`, which streams.
    """
    mpp = qp.check_mpp(mpp)
    if "class_name" not in cells.columns:
        raise RegionError("The cell table needs a class_name column to export detections.")
    x, y = _pixels(cells, mpp)
    colours = {n: qp.hex_to_rgb(c) for n, c in zip(classes.names, classes.colours, strict=True)}
    names = cells["class_name"].astype(str).tolist()
    if shape == "circle":
        default = np.pi * 9.0  # a 3 µm radius
        has_area = "area_um2" in cells.columns
        area = cells["area_um2"].to_numpy(float) if has_area else np.full(len(cells), default)
        r = np.sqrt(np.nan_to_num(area, nan=default) / np.pi)
        t = np.linspace(0, 2 * np.pi, 13)
        ring_x = np.round(x[:, None] + r[:, None] / mpp[0] * np.cos(t), 2)
        ring_y = np.round(y[:, None] + r[:, None] / mpp[1] * np.sin(t), 2)
        ring_x[:, -1], ring_y[:, -1] = ring_x[:, 0], ring_y[:, 0]
        coords = np.stack([ring_x, ring_y], axis=-1).tolist()
        geoms: list[JSONValue] = [{"type": "Polygon", "coordinates": [c]} for c in coords]
    elif shape == "point":
        xy = np.round(np.stack([x, y], axis=1), 3).tolist()
        geoms = [{"type": "Point", "coordinates": p} for p in xy]
    else:
        raise RegionError(f"Unknown detection shape {shape!r}; use 'point' or 'circle'.")
    cols = [c for c in measurements if c in cells.columns]
    table = cells[cols].astype(float).to_numpy()
    if np.isnan(table).any():  # rare: keep only the measurements present for each cell
        meas = [{c: v for c, v in zip(cols, row, strict=True) if v == v} for row in table.tolist()]
    else:
        meas = [dict(zip(cols, row, strict=True)) for row in table.tolist()]
    classification: dict[str, JSONDict] = {n: {"name": n, "color": [*colours.get(n, [128, 128, 128])]} for n in set(names)}
    feats: list[JSONDict] = [
        {"type": "Feature", "geometry": g,
         "properties": {"objectType": "detection", "classification": dict(classification[n]), "measurements": m}}
        for g, n, m in zip(geoms, names, meas, strict=True)
    ]
    if "id" in cells.columns:  # QuPath ids when the table has them (e.g. the phantom's cells.csv)
        ids = cells["id"].astype(str)
        feats = [{"type": "Feature", "id": i, **f} for i, f in zip(ids, feats, strict=True)]
    return {"type": "FeatureCollection", "features": [*feats]}


def cells_from_geojson(data: object, mpp: tuple[float, float], *, source: str = "GeoJSON",
                       classes: ClassTable = DEFAULT_CLASS_TABLE) -> pd.DataFrame:
    """A cell table from QuPath detections/cells (centroids), annotations skipped.

    Columns: x_px, y_px, x_um, y_um, class_name ("" when unclassified), class_id (the name's index
    in ``classes``, the paper's table by default; -1 when the name is not in it), probability and
    area_um2 (from measurements, NaN if absent).
    """
    mpp = qp.check_mpp(mpp)
    rows = []
    for i, feature in enumerate(qp.features(data, source), 1):
        if qp.object_type(feature) not in ("detection", "cell"):
            continue
        g = feature.get("geometry")
        point = g.get("coordinates") if isinstance(g, Mapping) and g.get("type") == "Point" else None
        if isinstance(point, list) and len(point) >= 2 and all(_is_number(v) for v in point[:2]):
            cx, cy = as_float(point[0]), as_float(point[1])  # fast path: most detections are points
        else:
            geom = qp.geometry_px_to_um(g, (1.0, 1.0), qp.feature_label(feature, source, i))
            if geom.is_empty:
                continue
            cx, cy = geom.centroid.x, geom.centroid.y
        if not (np.isfinite(cx) and np.isfinite(cy)):
            raise RegionError(f"{qp.feature_label(feature, source, i)}: its position is not a finite number.")
        name, _ = qp.classification(feature)
        meas: object = as_mapping(feature.get("properties")).get("measurements") or {}
        if isinstance(meas, list):  # QuPath <= 0.3: [{"name": ..., "value": ...}]
            meas = {m.get("name"): m.get("value") for m in meas if isinstance(m, Mapping) and _hashable(m.get("name"))}
        if not isinstance(meas, Mapping):
            meas = {}
        rows.append((cx, cy, name or "", _number(meas.get("probability")), _number(meas.get("area_um2"))))
    df = pd.DataFrame(rows, columns=["x_px", "y_px", "class_name", "probability", "area_um2"])
    df = df.astype({"x_px": float, "y_px": float, "probability": float, "area_um2": float})
    df.insert(2, "x_um", df["x_px"] * mpp[0])
    df.insert(3, "y_um", df["y_px"] * mpp[1])
    index = {n: i for i, n in enumerate(classes.names)}
    df.insert(5, "class_id", df["class_name"].map(index).fillna(-1).astype(int))
    return df


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _hashable(value: object) -> bool:
    return isinstance(value, str | int | float | None)


def _number(value: object) -> float:
    """A measurement as float; NaN when absent or not a finite-sized number."""
    if not _is_number(value):
        return float("nan")
    try:
        return float(value)
    except OverflowError:  # an int with hundreds of digits
        return float("nan")


def read_cells_geojson(path: str | Path, mpp: tuple[float, float], classes: ClassTable = DEFAULT_CLASS_TABLE
                       ) -> pd.DataFrame:
    """A cell table from a QuPath GeoJSON file (see :func:`cells_from_geojson`)."""
    path = Path(path)
    return cells_from_geojson(qp.load_json(path), mpp, source=path.name, classes=classes)


def write_cells_geojson(
    cells: pd.DataFrame, path: str | Path, mpp: tuple[float, float], *, chunk: int = 50_000,
    shape: Literal["point", "circle"] = "point",
    measurements: Iterable[str] = ("probability", "confidence", "area_um2"),
    classes: ClassTable = DEFAULT_CLASS_TABLE,
) -> Path:
    """Write cells as QuPath detections (see :func:`cells_to_geojson`, which takes ``shape``,
    ``measurements`` and ``classes``), ``chunk`` cells at a time so that memory stays small for
    millions of cells; returns the path."""
    measurements = tuple(measurements)  # used once per chunk
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        f.write('{"type":"FeatureCollection","features":[')
        for start in range(0, len(cells), chunk):
            part = as_list(cells_to_geojson(cells.iloc[start : start + chunk], mpp, shape=shape,
                                            measurements=measurements, classes=classes)["features"])
            f.write(("," if start else "") + ",".join(json.dumps(ft, separators=(",", ":")) for ft in part))
        f.write("]}")
    return path
