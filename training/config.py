"""The labelling configuration: channel map, segmentation parameters, class thresholds, tile labels.

Thresholds depend on the scanner and the staining run (SPEC), so they live in a small TOML file
(``labels.toml``) that a technician calibrates once per slide batch (``python -m training.label
SLIDE --calibrate --save-config labels.toml``) and passes to every later run. Core never reads
config files (STYLE §6); this module turns the file into frozen dataclasses and refuses typos
with a :class:`~core.errors.ConfigError` that lists the valid keys, because a misspelt threshold
that is silently ignored would quietly mislabel a whole training set.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core.classes import CLASS_NAMES
from core.errors import ConfigError

#: Marker roles the labeller measures, in the order of the cell table's ``mean_*`` columns.
MARKER_ROLES: tuple[str, ...] = ("cd20", "cd8", "cd3")
#: Every channel role the labeller reads.
CHANNEL_ROLES: tuple[str, ...] = ("hoechst", *MARKER_ROLES)

#: QuPath TileExporter label values of the paper's data: 1 'CD8', 2 'CD3', 3 'CD20', 4 'CD8: CD3';
#: 5-7 are CD20 double-positives, which the paper trained as background.
DEFAULT_TILE_LABELS: dict[int, str] = {
    0: "other",
    1: "CD8_CD3LO",
    2: "CD3",
    3: "CD20",
    4: "CD8_CD3HI",
    5: "other",
    6: "other",
    7: "other",
}


@dataclass(frozen=True)
class ChannelMap:
    """Channel name (or 0-based index as text) for each role; empty = find it by its aliases."""

    hoechst: str = ""
    cd20: str = ""
    cd8: str = ""
    cd3: str = ""

    def lookup(self, role: str) -> str | int:
        """What to pass to ``slide.channel_index``: the configured name/index, else the role."""
        value = getattr(self, role)
        if value == "":
            return role
        return int(value) if str(value).isdigit() else str(value)


@dataclass(frozen=True)
class Segmentation:
    """Nucleus segmentation on Hoechst; lengths in µm, areas in µm² (converted by the slide's mpp).

    ``threshold`` is "otsu" (one global Otsu threshold of the background-subtracted Hoechst, from
    samples of the whole slide, so that blocks of pure background are not split into noise) or
    "local" (skimage threshold_local over ``local_window_um``). ``threshold_scale`` multiplies it:
    0.7 by default, since Otsu's split of a dim slide (4 background SDs) sits high in the dimmer
    nuclei, and the watershed and size filter deal with what a lower threshold lets in.
    Touching nuclei are split by a watershed seeded at maxima of a blob filter (Laplacian of
    Gaussian at ``split_sigma_um``, about a lymphocyte radius / √2) plus ``split_shape`` ×
    distance to the edge (per 3.5 µm), at least ``peak_min_distance_um`` apart.
    ``edge_fraction`` trims each nucleus to where the smoothed Hoechst is at least that fraction of
    its own peak (0: off), on images of at most
    0.5 µm/px (``segment.EDGE_TRIM_MAX_MPP``: coarser ones do not resolve that edge). On a dim slide
    the low global threshold lets haze around a nucleus into its segment; the trim keeps the
    nucleus's own edge, whatever its brightness. 0.3 measured best on dim realistic phantoms (see
    ``segment.EDGE_TRIM_MAX_MPP``); 0.5 (the half maximum) cut dim nuclei touching bright ones.
    """

    smooth_sigma_um: float = 0.5
    threshold: str = "otsu"
    threshold_scale: float = 0.7
    local_window_um: float = 50.0
    min_nucleus_area_um2: float = 10.0
    max_nucleus_area_um2: float = 300.0
    peak_min_distance_um: float = 1.5
    split_sigma_um: float = 2.0
    split_shape: float = 1.0
    edge_fraction: float = 0.3
    cell_expansion_um: float = 1.0
    block_size_px: int = 2048
    block_overlap_um: float = 25.0


@dataclass(frozen=True)
class Thresholds:
    """Cell-mean intensity thresholds (slide intensity units), paper values by default.

    A cell is positive for a marker when its mean is ≥ the threshold. ``cd3_hi`` splits CD8+
    cells into CD8_CD3HI (mean AF750 ≥ cd3_hi) and CD8_CD3LO; by default it equals ``cd3``, which
    is QuPath's rule in the paper's export ('CD8: CD3' = CD8+ and CD3+, 'CD8' = CD8+ only).
    """

    cd20: float = 5000.0
    cd8: float = 4000.0
    cd3: float = 2200.0
    cd3_hi: float = 2200.0


@dataclass(frozen=True)
class LabelConfig:
    """Everything the labeller needs; the TOML file has one table per field."""

    channels: ChannelMap = field(default_factory=ChannelMap)
    segmentation: Segmentation = field(default_factory=Segmentation)
    thresholds: Thresholds = field(default_factory=Thresholds)
    tile_labels: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_TILE_LABELS))

    def with_thresholds(self, **values: float) -> LabelConfig:
        return dataclasses.replace(self, thresholds=dataclasses.replace(self.thresholds, **values))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tile_labels"] = {str(k): v for k, v in sorted(self.tile_labels.items())}
        return d


_SECTIONS: dict[str, type] = {"channels": ChannelMap, "segmentation": Segmentation, "thresholds": Thresholds}


def _check_keys(where: str, given: dict[str, Any], valid: list[str]) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}. Valid keys: {', '.join(valid)}."
        )


def _coerce(where: str, key: str, value: Any, default: Any) -> Any:
    """Convert a TOML value to the type of the default, with a message naming the key."""
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, int):
            if isinstance(value, bool) or int(value) != value:
                raise TypeError
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if isinstance(default, str):
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if not isinstance(value, str):
                raise TypeError
            return value
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}.{key}: {value!r} is not a valid {type(default).__name__} (default {default!r})."
        ) from None
    return value


def config_from_dict(data: dict[str, Any], source: str = "config") -> LabelConfig:
    """Build a :class:`LabelConfig` from parsed TOML, refusing unknown keys and bad values."""
    valid_sections = [*_SECTIONS, "tile_labels"]
    _check_keys(source, data, valid_sections)
    parts: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table, found {table!r}.")
        defaults = cls()
        names = [f.name for f in fields(cls)]
        _check_keys(f"{source} [{name}]", table, names)
        values = {k: _coerce(f"[{name}]", k, v, getattr(defaults, k)) for k, v in table.items()}
        parts[name] = cls(**values)
    seg: Segmentation = parts["segmentation"]
    if seg.threshold not in ("otsu", "local"):
        raise ConfigError(f"[segmentation] threshold = {seg.threshold!r}; valid: 'otsu', 'local'.")
    for key in ("smooth_sigma_um", "min_nucleus_area_um2", "max_nucleus_area_um2", "peak_min_distance_um"):
        if getattr(seg, key) < 0:
            raise ConfigError(f"[segmentation] {key} must be ≥ 0, not {getattr(seg, key)}.")
    if seg.block_size_px < 256:
        raise ConfigError(f"[segmentation] block_size_px must be ≥ 256, not {seg.block_size_px}.")
    tile_labels = dict(DEFAULT_TILE_LABELS)
    if "tile_labels" in data:
        table = data["tile_labels"]
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [tile_labels] must be a table of \"value\" = \"class name\".")
        tile_labels = {}
        for k, v in table.items():
            if not str(k).isdigit() or not 0 <= int(k) <= 255:
                raise ConfigError(f"[tile_labels] key {k!r} must be a label value 0-255 (quote it: \"5\" = ...).")
            if v not in CLASS_NAMES:
                raise ConfigError(f"[tile_labels] {k} = {v!r}: valid classes are {', '.join(CLASS_NAMES)}.")
            tile_labels[int(k)] = str(v)
    return LabelConfig(tile_labels=tile_labels, **parts)


def load_config(path: str | Path | None) -> LabelConfig:
    """Read ``labels.toml``; ``None`` gives the defaults (paper thresholds, alias channel map)."""
    if path is None:
        return LabelConfig()
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Config file {p} does not exist. Write one with --save-config {p}.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"Config file {p} is not valid TOML: {err}") from None
    return config_from_dict(data, source=str(p))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_to_toml(cfg: LabelConfig, comment: str = "") -> str:
    """TOML text of a config (tomllib cannot write; the format is flat enough to write by hand)."""
    lines = [f"# {line}" for line in comment.splitlines()] if comment else []
    lines.append("# HoechstScore labelling config; read with --config. Units: µm, µm², slide intensity.")
    for name in _SECTIONS:
        lines.append(f"\n[{name}]")
        for f in fields(getattr(cfg, name)):
            lines.append(f"{f.name} = {_toml_value(getattr(getattr(cfg, name), f.name))}")
    lines.append("\n[tile_labels]  # QuPath TileExporter label value -> class")
    lines += [f'"{k}" = {_toml_value(v)}' for k, v in sorted(cfg.tile_labels.items())]
    return "\n".join(lines) + "\n"


def save_config(cfg: LabelConfig, path: str | Path, comment: str = "") -> Path:
    p = Path(path)
    p.write_text(config_to_toml(cfg, comment), encoding="utf-8")
    return p
