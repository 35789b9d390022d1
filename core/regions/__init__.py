"""Regions: polygons on a slide in µm (tumour, CT, IM, exclusions, tissue), their validation,
CT/IM derivation, and QuPath GeoJSON import/export of regions and cells. No Qt.

Coordinates are slide µm (origin top-left of level 0, x right, y down); files hold level-0 pixels.
"""

from core.regions._signal import Signal
from core.regions.geojson import (
    KIND_QUPATH_CLASSES,
    QUPATH_CLASS_KINDS,
    RegionImport,
    cells_from_geojson,
    cells_to_geojson,
    kind_for_class,
    read_cells_geojson,
    read_regions_geojson,
    region_to_feature,
    regions_from_geojson,
    regions_to_geojson,
    write_cells_geojson,
    write_regions_geojson,
)
from core.regions.region import UM2_PER_MM2, Polygonal, Region, RegionKind
from core.regions.regionset import DEFAULT_IM_HALF_WIDTH_UM, RegionChange, RegionSet, derive_ct_im
from core.regions.validate import MIN_AREA_UM2, MIN_WIDTH_UM, GeometryReport, clean_geometry, validate_region

__all__ = [
    "DEFAULT_IM_HALF_WIDTH_UM",
    "KIND_QUPATH_CLASSES",
    "MIN_AREA_UM2",
    "MIN_WIDTH_UM",
    "QUPATH_CLASS_KINDS",
    "UM2_PER_MM2",
    "GeometryReport",
    "Polygonal",
    "Region",
    "RegionChange",
    "RegionImport",
    "RegionKind",
    "RegionSet",
    "Signal",
    "cells_from_geojson",
    "cells_to_geojson",
    "clean_geometry",
    "derive_ct_im",
    "kind_for_class",
    "read_cells_geojson",
    "read_regions_geojson",
    "region_to_feature",
    "regions_from_geojson",
    "regions_to_geojson",
    "validate_region",
    "write_cells_geojson",
    "write_regions_geojson",
]
