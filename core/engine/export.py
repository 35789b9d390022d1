"""Write an analysis to a folder: ``cells.csv``, ``cells.geojson``, ``tissue.geojson``,
``summary.json``, ``class_map.png``.

The same files for the CLI, the app's export and batch runs. Coordinates in ``cells.csv`` and the
GeoJSONs are level-0 pixels (cells: QuPath detections with classification name and colour; tissue:
one QuPath annotation of class "Tissue", which ``core score --regions`` and the app read back so
that the invasive margin is clipped to the tissue the engine found).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from core.cells import write_cells_csv
from core.engine.params import AnalysisResult
from core.regions.geojson import write_cells_geojson, write_regions_geojson
from core.regions.raster import tissue_region

#: Colour of tissue without cells in the class-map PNG (dark grey; glass is black).
TISSUE_RGB = (48, 48, 48)


def class_map_rgb(result: AnalysisResult, class_colours: tuple[str, ...]) -> np.ndarray:
    """uint8 (h, w, 3): glass black, tissue dark grey, raster pixels with cells in their class colour."""
    rgb = np.zeros((*result.class_map.shape, 3), dtype=np.uint8)
    rgb[result.tissue_mask] = TISSUE_RGB
    for cls, colour in enumerate(class_colours):
        if cls == 0:
            continue
        h = colour.lstrip("#")
        rgb[result.class_map == cls] = [int(h[i : i + 2], 16) for i in (0, 2, 4)]
    return rgb


def write_analysis(
    result: AnalysisResult, out_dir: str | Path, mpp: tuple[float, float], class_colours: tuple[str, ...],
    extra_summary: Mapping[str, object] | None = None,
) -> dict[str, Path]:  # fmt: skip
    """Write the files into ``out_dir`` (created); returns their paths by kind (``tissue_geojson``
    only when tissue was found)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "cells_csv": write_cells_csv(result.cells, out / "cells.csv"),
        "cells_geojson": write_cells_geojson(result.cells, out / "cells.geojson", mpp,
                                             classes=result.summary.class_table),
        "summary": out / "summary.json",
        "class_map": out / "class_map.png",
    }
    summary = {
        **result.summary.to_dict(),
        "raster_mpp": result.raster_mpp,
        "raster_downsample": result.raster_downsample,
        **(extra_summary or {}),
    }
    paths["summary"].write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    Image.fromarray(class_map_rgb(result, class_colours), mode="RGB").save(paths["class_map"])
    tissue = tissue_region(result.tissue_mask, result.raster_mpp)
    if tissue is not None:
        paths["tissue_geojson"] = write_regions_geojson([tissue], out / "tissue.geojson", mpp)
    return paths
