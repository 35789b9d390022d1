"""``AnalysisSummary``: what one run of the engine says about itself, typed.

The engine used to hand back a 33-key dict that the case store kept as JSON, the CLI wrote to
``summary.json`` and every reader (report, cohort table, app) read back by string key, so a renamed
key failed only at run time. This record is the one description of those keys:

- :meth:`AnalysisSummary.to_dict` writes exactly the JSON the dict had (same keys, same values,
  same order; the optional keys only when set), plus ``classes`` and ``class_colours`` (the class
  table of the model that made the cells: see :mod:`core.classes`), so summaries stored or written
  by earlier versions and by this one are read the same way.
- :meth:`AnalysisSummary.from_dict` reads any of them: a key an older version did not write takes
  its default (no class table: the paper's model's), and a key this version does not know is kept
  in ``extra`` and written back unchanged.

Units are in the field names (``_mm2``, ``_px``, ``seconds``, ``_ms_per_tile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from core.classes import CLASS_COLOURS, CLASS_NAMES, ClassTable

__all__ = ["AnalysisSummary", "MppOverride"]

@dataclass(frozen=True)
class MppOverride:
    """The pixel size given on the command line in place of (or for want of) the slide's own."""

    recorded: tuple[float, float] | None  # what the file said, None if uncalibrated
    used: tuple[float, float]
    forced: bool  # True when the file recorded a different pixel size

    def to_dict(self) -> dict[str, object]:
        return {"recorded": None if self.recorded is None else list(self.recorded), "used": list(self.used),
                "forced": self.forced}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MppOverride:
        recorded = data.get("recorded")
        return cls(None if recorded is None else _pair(recorded), _pair(data.get("used")), bool(data.get("forced")))


def _pair(value: object) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    return 0.0, 0.0


def _float(value: object, default: float = 0.0) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def _int(value: object, default: int = 0) -> int:
    return int(value) if isinstance(value, (int, float)) else default


def _str(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def _ints(value: object) -> dict[str, int]:
    return {str(k): _int(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _floats(value: object) -> dict[str, float]:
    return {str(k): _float(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _object(value: object) -> dict[str, object] | None:
    return {str(k): v for k, v in value.items()} if isinstance(value, Mapping) else None


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


#: Keys written only when set (None is "not set"): the CLI's, the store's and the export's additions.
_OPTIONAL = ("warnings", "mpp_override", "raster_mpp", "raster_downsample", "model_card", "tissue_mask", "error")


@dataclass(frozen=True)
class AnalysisSummary:
    """Counts, areas, timing, device, precision and model identity of one analysis of one slide.

    Built by the engine (:func:`core.engine.analyse_slide`); the CLI adds ``warnings`` and
    ``mpp_override``, the export the raster geometry, the case store ``model_card`` and
    ``tissue_mask`` (:func:`core.tissue_mask.analysis_summary_extras`). Add to it with
    :func:`dataclasses.replace`; it is frozen so a stored one stays as stored.
    """

    slide: str = ""  # the slide file
    slide_mpp: tuple[float, float] = (0.0, 0.0)  # µm per level-0 pixel (x, y)
    channel: str = ""  # the analysed channel's name
    model: str = ""  # the model card's name
    model_sha256: str = ""
    model_mpp: float = 0.0
    model_synthetic: bool = False  # trained on phantoms only
    device: str = ""  # e.g. "cpu", "cuda:0"
    precision: str = "fp32"
    precision_reason: str = ""
    runtime: str = "torch"
    counts: dict[str, int] = field(default_factory=dict)  # class name -> cells (every class of the card)
    total_cells: int = 0
    tissue_area_mm2: float = 0.0
    nucleus_stain_min: float = 0.0  # a nucleus's mean Hoechst must reach this (0: no check)
    analysed_area_mm2: float = 0.0  # the tissue inside the region, if any
    region_area_mm2: float | None = None  # None: the whole slide
    tiles_in_grid: int = 0
    tiles_analysed: int = 0
    tiles_skipped_background: int = 0
    tiles_computed: int = 0  # this run; the rest came from a checkpoint
    blocks_resumed: int = 0
    batch_size: int = 0  # at the end of the run (halved on GPU out-of-memory)
    tile_px: int = 0
    context_px: int = 0
    seconds: float = 0.0
    seconds_model: float = 0.0
    seconds_waiting_for_tiles: float = 0.0
    stage_ms_per_tile: dict[str, float] = field(default_factory=dict)  # busy (wall) ms per computed tile
    stage_cpu_ms_per_tile: dict[str, float] = field(default_factory=dict)  # CPU ms per tile, summed over threads
    checkpoint_key: str | None = None
    #: The class table of the model that made the cells: index -> name, and display colours.
    classes: tuple[str, ...] = CLASS_NAMES
    class_colours: tuple[str, ...] = CLASS_COLOURS
    # Added after the engine (written only when set):
    warnings: tuple[str, ...] | None = None  # the slide-vs-model check (CLI, app)
    mpp_override: MppOverride | None = None  # CLI --mpp
    raster_mpp: float | None = None  # summary.json: the class map's pixel size
    raster_downsample: float | None = None
    model_card: dict[str, object] | None = None  # the card without its class lists (for the report)
    tissue_mask: dict[str, object] | None = None  # core.tissue_mask.encode_mask
    error: str | None = None  # why a run failed
    #: Keys this version does not know (written by a newer one), kept to be written back.
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def class_table(self) -> ClassTable:
        """The classes of the cells this analysis found (from the model card that made them)."""
        return ClassTable(self.classes, self.class_colours)

    def to_dict(self) -> dict[str, object]:
        """The JSON the engine's dict had (key for key), the class table, the optional keys that are set."""
        d: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in _OPTIONAL and value is None):
                continue
            if isinstance(value, MppOverride):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            d[f.name] = value
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AnalysisSummary:
        """A summary as stored or written by any version (missing keys: defaults; unknown: ``extra``)."""
        g = data.get
        classes = _strings(g("classes")) or CLASS_NAMES
        colours = _strings(g("class_colours"))
        if len(colours) != len(classes):
            colours = ClassTable.default_colours(classes)
        warnings = g("warnings")
        override = g("mpp_override")
        raster_mpp, raster_ds = g("raster_mpp"), g("raster_downsample")
        known = {f.name for f in fields(cls)}
        return cls(
            slide=_str(g("slide")),
            slide_mpp=_pair(g("slide_mpp")),
            channel=_str(g("channel")),
            model=_str(g("model")),
            model_sha256=_str(g("model_sha256")),
            model_mpp=_float(g("model_mpp")),
            model_synthetic=bool(g("model_synthetic", False)),
            device=_str(g("device")),
            precision=_str(g("precision"), "fp32"),
            precision_reason=_str(g("precision_reason")),
            runtime=_str(g("runtime"), "torch"),
            counts=_ints(g("counts")),
            total_cells=_int(g("total_cells")),
            tissue_area_mm2=_float(g("tissue_area_mm2")),
            nucleus_stain_min=_float(g("nucleus_stain_min")),
            analysed_area_mm2=_float(g("analysed_area_mm2")),
            region_area_mm2=None if g("region_area_mm2") is None else _float(g("region_area_mm2")),
            tiles_in_grid=_int(g("tiles_in_grid")),
            tiles_analysed=_int(g("tiles_analysed")),
            tiles_skipped_background=_int(g("tiles_skipped_background")),
            tiles_computed=_int(g("tiles_computed")),
            blocks_resumed=_int(g("blocks_resumed")),
            batch_size=_int(g("batch_size")),
            tile_px=_int(g("tile_px")),
            context_px=_int(g("context_px")),
            seconds=_float(g("seconds")),
            seconds_model=_float(g("seconds_model")),
            seconds_waiting_for_tiles=_float(g("seconds_waiting_for_tiles")),
            stage_ms_per_tile=_floats(g("stage_ms_per_tile")),
            stage_cpu_ms_per_tile=_floats(g("stage_cpu_ms_per_tile")),
            checkpoint_key=None if g("checkpoint_key") is None else _str(g("checkpoint_key")),
            classes=classes,
            class_colours=colours,
            warnings=None if warnings is None else _strings(warnings),
            mpp_override=MppOverride.from_dict(override) if isinstance(override, Mapping) else None,
            raster_mpp=None if raster_mpp is None else _float(raster_mpp),
            raster_downsample=None if raster_ds is None else _float(raster_ds),
            model_card=_object(g("model_card")),
            tissue_mask=_object(g("tissue_mask")),
            error=None if g("error") is None else _str(g("error")),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def __getitem__(self, key: str) -> object:
        """The value under ``key`` of :meth:`to_dict`: for callers written against the dict this
        record replaced (new code reads the attribute)."""
        return self.to_dict()[key]
