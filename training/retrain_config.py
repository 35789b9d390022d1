"""The typed settings of one ``python -m training.retrain`` run, and its resume format (``run.json``).

Before this, ``training.retrain.run`` took the ``argparse.Namespace`` itself, changed it as it went
(the encoder and pixel size of an ``--init`` model) and wrote it out as the resume file, so what a
resumed run read back depended on which attributes had been set where. :class:`RetrainConfig` is
built once from the parsed arguments (:meth:`RetrainConfig.from_args`) or a stored run
(:meth:`RetrainConfig.from_json`), is frozen, and is checked in one place (``__post_init__``), so
a hand-edited or older ``run.json`` fails with the bad value named, not deep inside training.

The JSON keys are the argparse destinations, exactly as ``run.json`` has held them since the first
version (plus ``label_config``), so runs stored before this module existed still resume; keys a
newer flag adds take their defaults when an older file lacks them.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from training.config import LabelConfig, config_from_dict
from training.dataset import SlideRect, SplitSpec
from training.device import PRECISIONS
from training.errors import TrainingError
from training.resident import RESIDENT_CHOICES
from training.small_set import SELECT_RULES
from training.train import BALANCE, LR_SCALES, LR_SCHEDULES

#: Choices of the flags that take one (checked again here for stored runs).
SPLIT_BY = ("patch", "tile", "block")
LOSSES = ("ce", "focal")
WEIGHT_DTYPES = ("float32", "float16", "bfloat16")
BOOTSTRAP_UNITS = ("cell", "tile")

#: Settings a resumed run takes from the new command line when given; the rest come from the stored run.
RESUMABLE = ("epochs", "time_limit", "max_steps", "precision", "name", "weights_dtype",
             "patience", "patience_patches", "warmup_patches", "select")
#: Settings about this invocation only, never taken from the stored run.
CURRENT = ("force", "install", "device", "workers", "threads", "eval_batch_size", "debug_record_dir", "debug",
           "resident", "compile")

_PATH_LISTS = ("slides", "tiles")
_PATHS = ("out", "config", "cache", "debug_record_dir", "init")
_STR_LISTS = ("holdout_slides", "val_slides", "holdout_tiles", "val_tiles", "holdout_region", "val_region")


@dataclass(frozen=True)
class RetrainConfig:
    """Every setting of a retrain run; field names are the command line's flags (``--patch-size`` →
    ``patch_size``). Units: µm for ``mpp``/``model_mpp``/``block_um``, minutes for ``time_limit``,
    patch-steps (patches trained on) for ``patience_patches``/``warmup_patches``, epochs for the
    older ``patience``."""

    out: Path
    # inputs
    slides: tuple[Path, ...] = ()
    tiles: tuple[Path, ...] = ()
    mpp: float | None = None
    # labelling: a TOML file and flags on top, or the stored run's resolved config
    config: Path | None = None
    channel_hoechst: str | None = None
    channel_cd20: str | None = None
    channel_cd8: str | None = None
    channel_cd3: str | None = None
    threshold_cd20: float | None = None
    threshold_cd8: float | None = None
    threshold_cd3: float | None = None
    threshold_cd3_hi: float | None = None
    label_config: LabelConfig | None = None
    # data split
    holdout_slides: tuple[str, ...] = ()
    val_slides: tuple[str, ...] = ()
    holdout_tiles: tuple[str, ...] = ()
    val_tiles: tuple[str, ...] = ()
    holdout_region: tuple[str, ...] = ()
    val_region: tuple[str, ...] = ()
    split_by: str = "patch"
    block_um: float = 500.0
    split: str = "0.8,0.1,0.1"
    patch_size: int = 256
    overlap: float = 0.5
    model_mpp: float | None = None
    # training
    cache: Path | None = None
    name: str | None = None
    encoder: str = "resnet34"
    init: Path | None = None
    description: str | None = None
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    lr_schedule: str = "constant"
    lr_scale: str = "none"
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-2
    loss: str = "ce"
    balance: str = "both"
    patience: int | None = None
    patience_patches: int | None = None
    warmup_patches: int | None = None
    select: str = "auto"
    seed: int = 0
    patches_per_epoch: int | None = None
    max_steps: int | None = None
    time_limit: float | None = None
    weights_dtype: str = "float32"
    # this invocation
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    resident: str = "auto"
    compile: bool = False
    workers: int = 2
    eval_batch_size: int = 16
    resume: bool = False
    force: bool = False
    install: str | None = None
    debug: bool = False
    debug_record_dir: Path | None = None
    bootstrap: int = 1000
    bootstrap_unit: str = "cell"
    bootstrap_seed: int = 0
    #: regions parsed from holdout_region/val_region (derived, not stored)
    regions: tuple[tuple[SlideRect, ...], tuple[SlideRect, ...]] = field(default=((), ()), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        """The one place a run's settings are checked (flags were checked by argparse; a stored
        ``run.json`` may have been edited or written by another version)."""
        for name, value, valid in (
            ("--split-by", self.split_by, SPLIT_BY), ("--lr-schedule", self.lr_schedule, LR_SCHEDULES),
            ("--loss", self.loss, LOSSES), ("--balance", self.balance, BALANCE),
            ("--precision", self.precision, PRECISIONS), ("--weights-dtype", self.weights_dtype, WEIGHT_DTYPES),
            ("--bootstrap-unit", self.bootstrap_unit, BOOTSTRAP_UNITS), ("--select", self.select, SELECT_RULES),
            ("--resident", self.resident, RESIDENT_CHOICES), ("--lr-scale", self.lr_scale, LR_SCALES),
        ):
            if value not in valid:
                raise TrainingError(f"{name} {value!r}; valid: {', '.join(valid)}.")
        self.fractions  # noqa: B018 - raises on a bad --split
        if self.patch_size < 32 or self.patch_size % 32 or not 0 <= self.overlap < 0.95:
            raise TrainingError(f"--patch-size must be a multiple of 32 (got {self.patch_size}) and --overlap in "
                                f"[0, 0.95) (got {self.overlap}).")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise TrainingError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}.")
        for name in ("patience", "patience_patches", "warmup_patches", "seed", "workers", "bootstrap", "lr_warmup_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise TrainingError(f"--{name.replace('_', '-')} must be 0 or more, not {value}.")
        for name in ("lr", "block_um", "time_limit", "mpp", "model_mpp"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TrainingError(f"--{name.replace('_', '-')} must be a positive number, not {value}.")
        regions = (tuple(SlideRect.parse(r, "--holdout-region") for r in self.holdout_region),
                   tuple(SlideRect.parse(r, "--val-region") for r in self.val_region))
        object.__setattr__(self, "regions", regions)

    @property
    def fractions(self) -> tuple[float, float, float]:
        """``--split`` as three floats (train, val, test)."""
        try:
            values = tuple(float(x) for x in str(self.split).split(","))
            if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
                raise ValueError
        except ValueError:
            raise TrainingError(f"--split {self.split!r}: give three fractions train,val,test such as 0.8,0.1,0.1.") from None
        return values[0], values[1], values[2]

    def split_spec(self) -> SplitSpec:
        """The data split these settings describe."""
        return SplitSpec(self.holdout_slides, self.val_slides, self.holdout_tiles, self.val_tiles,
                         self.regions[0], self.regions[1], by=self.split_by, block_um=self.block_um,
                         fractions=self.fractions)

    # -- building and storing ------------------------------------------------------------------

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The stored keys: every field but the derived ones."""
        return tuple(f.name for f in fields(cls) if f.name != "regions")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RetrainConfig:
        """From ``build_parser().parse_args()``; an option this class lacks is a programming error
        (a flag added to the parser but not here), refused so it is never silently dropped."""
        return cls._build(vars(args), "the command line")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RetrainConfig:
        """From a stored ``run.json`` (or a checkpoint's settings), including those written before
        this class existed; keys a newer version added take their defaults."""
        return cls._build(data, "the stored run (run.json)")

    @classmethod
    def _build(cls, data: Mapping[str, Any], source: str) -> RetrainConfig:
        known = set(cls.keys())
        unknown = sorted(set(data) - known)
        if unknown:
            raise TrainingError(f"{source} has setting(s) {', '.join(unknown)} that this version does not know; "
                                "resume it with the version that wrote it, or start a new run.")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in _PATH_LISTS:
                values[key] = tuple(Path(v) for v in value or ())
            elif key in _STR_LISTS:
                values[key] = tuple(str(v) for v in value or ())
            elif key in _PATHS:
                values[key] = None if value is None else Path(value)
            elif key == "label_config":
                values[key] = (value if isinstance(value, LabelConfig) or value is None
                               else config_from_dict(dict(value), "stored run"))
            else:
                values[key] = value
        if values.get("out") is None:
            raise TrainingError(f"{source} names no output folder (--out).")
        try:
            return cls(**values)
        except TypeError as err:
            raise TrainingError(f"{source} is not a retrain run's settings ({err}).") from None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict with the argparse names as keys (the ``run.json`` format)."""
        out: dict[str, Any] = {}
        for key in self.keys():
            value = getattr(self, key)
            if isinstance(value, tuple):
                value = [str(v) for v in value]
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, LabelConfig):
                value = value.to_dict()
            out[key] = value
        return out

    def resumed(self, current: RetrainConfig, explicit: Iterable[str]) -> RetrainConfig:
        """These stored settings continued by ``current`` (this invocation's): the :data:`RESUMABLE`
        settings the user gave now (``explicit``: the flags on the command line) and every
        :data:`CURRENT` one are taken from ``current``; everything that shapes the data and the model
        stays as stored."""
        given = set(explicit)
        changes: dict[str, Any] = {k: getattr(current, k) for k in RESUMABLE if k in given}
        changes.update({k: getattr(current, k) for k in CURRENT})
        changes["out"] = current.out  # where the checkpoint was read, even if the folder has moved
        changes["resume"] = True
        return dataclasses.replace(self, **changes)

    def replace(self, **changes: Any) -> RetrainConfig:
        """A copy with ``changes`` (e.g. the encoder and pixel size an ``--init`` model fixes), checked again."""
        return dataclasses.replace(self, **changes)
