"""Training data from cached patches: the split, the epoch sampler and the torch Dataset.

Reproducibility is built into the indices rather than into random state: the sampler orders each
epoch from ``(seed, epoch)`` and encodes the augmentation (one of the 8 rotations/flips) into the
index it yields (``patch * 8 + transform``). A resumed run therefore sees exactly the batches an
uninterrupted run would, whatever the number of DataLoader workers, and DDP ranks get disjoint
shares through :class:`torch.utils.data.distributed.DistributedSampler`.

Splits hold out whole slides, tiles of one slide by name pattern, rectangles of a slide, or random
spatial blocks (:class:`SplitSpec`); a training patch that overlaps a held-out one is dropped, so
no pixel is both trained on and tested. Class-balanced sampling draws patches with rare classes
more often (:func:`balanced_weights`); :func:`class_weights` gives the alternative, a weighted loss.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from core.classes import CLASS_NAMES
from core.normalise import normalise_patch
from training.errors import DatasetError
from training.patches import CacheEntry

N_TRANSFORMS = 8


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """Transform ``k`` (0-7) of the square's symmetry group on the last two axes: k%4 quarter turns, then a flip if k≥4."""
    out = np.rot90(a, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


@dataclass
class PatchSet:
    """All patches of a run: cache entries addressed by one global index."""

    entries: list[CacheEntry]

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [e.n for e in self.entries])
        self.slide_names: list[str] = []
        ids = []
        for e in self.entries:
            local = np.load(e.path / "patch_slide.npy")
            base = len(self.slide_names)
            self.slide_names += [f"{s}" for s in e.slides]
            ids.append(local + base)
        self.patch_slide = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
        boxes, tiles, units, pixels = [], [], [], []
        for k, e in enumerate(self.entries):
            boxes.append(np.load(e.path / "boxes.npy"))
            t = np.load(e.path / "patch_tile.npy")
            names = e.meta.get("tile_names", [])
            tiles += [names[i] if i >= 0 else "" for i in t]
            units.append(np.where(t >= 0, k * 1_000_000 + t, -1))
            pixels.append(np.load(e.path / "patch_pixels.npy"))
        #: (N, 4) x0, y0, x1, y1 of each patch in level-0 px of its slide (NaN: unknown)
        self.boxes = np.concatenate(boxes) if boxes else np.zeros((0, 4))
        #: tile name of each patch ('' for slides)
        self.tile_names: list[str] = tiles
        #: tile unit id of each patch (-1 for slides)
        self.tile_unit = np.concatenate(units) if units else np.zeros(0, dtype=np.int64)
        #: (N, C) label pixels per class
        self.pixels = np.concatenate(pixels) if pixels else np.zeros((0, len(CLASS_NAMES)), dtype=np.int64)
        self.source_mpp = np.concatenate(
            [np.full(e.n, float(e.meta.get("source_mpp") or e.meta.get("mpp", 1.0))) for e in self.entries]
        ) if self.entries else np.zeros(0)
        dup = {s for s in self.slide_names if self.slide_names.count(s) > 1}
        if dup:
            raise DatasetError(f"Slide name(s) {', '.join(sorted(dup))} occur in more than one input; rename one.")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[CacheEntry, int]:
        k = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.entries[k], index - int(self.offsets[k])

    def slide_of(self, indices: np.ndarray) -> list[str]:
        return [self.slide_names[i] for i in self.patch_slide[indices]]


@dataclass(frozen=True)
class SlideRect:
    """A rectangle of one slide in level-0 px: ``SLIDE:x0,y0,x1,y1`` on the command line."""

    slide: str
    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def parse(cls, text: str, flag: str = "--holdout-region") -> SlideRect:
        m = re.fullmatch(r"\s*(.+?)\s*:\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*", text)
        if not m or float(m[4]) <= float(m[2]) or float(m[5]) <= float(m[3]):
            raise DatasetError(f"{flag} {text!r}: give SLIDE:x0,y0,x1,y1 in level-0 pixels of that slide, "
                               "with x1 > x0 and y1 > y0, e.g. 'Lung 3:0,0,2048,2048'.")
        return cls(m[1], *(float(m[i]) for i in range(2, 6)))


@dataclass(frozen=True)
class SplitSpec:
    """How patches are split into train, val and test.

    Named slides, tiles whose name matches a glob (``'Lung 3 [x=1024,*'``) and rectangles go whole
    to test (``holdout_*``) or validation (``val_*``). The rest is split by ``by``: 'patch' (the
    paper's random patch split; optimistic, neighbours share pixels), 'tile' (whole tiles; slides
    fall back to blocks) or 'block' (square blocks of ``block_um`` µm of each slide).
    """

    holdout_slides: tuple[str, ...] = ()
    val_slides: tuple[str, ...] = ()
    holdout_tiles: tuple[str, ...] = ()
    val_tiles: tuple[str, ...] = ()
    holdout_regions: tuple[SlideRect, ...] = ()
    val_regions: tuple[SlideRect, ...] = ()
    by: str = "patch"
    block_um: float = 500.0
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def describe(self) -> str:
        parts = []
        for what, hold, val in (("slides", self.holdout_slides, self.val_slides),
                                ("tiles", self.holdout_tiles, self.val_tiles),
                                ("regions", self.holdout_regions, self.val_regions)):
            if hold:
                parts.append(f"holdout {what}")
            if val:
                parts.append(f"validation {what}")
        parts.append(f"random by {self.by}" + (f" ({self.block_um:g} µm blocks)" if self.by == "block" else ""))
        return "; ".join(parts)


def _select(patches: PatchSet, slide: np.ndarray, names: Sequence[str], globs: Sequence[str],
            regions: Sequence[SlideRect], flag: str) -> np.ndarray:
    """Boolean mask of the patches named by slides, tile globs and regions (centre inside)."""
    known = set(patches.slide_names)
    missing = [s for s in [*names, *(r.slide for r in regions)] if s not in known]
    if missing:
        raise DatasetError(f"{flag}: no slide named {', '.join(missing)}. Slides in this run: {', '.join(sorted(known))}.")
    sel = np.isin(slide, list(names))
    for g in globs:
        hit = np.asarray([bool(t) and fnmatch.fnmatchcase(t, g) for t in patches.tile_names], dtype=bool)
        if not hit.any():
            sample = sorted({t for t in patches.tile_names if t})[:3]
            raise DatasetError(f"{flag} {g!r} matches no tile. Tiles are named like "
                               f"{', '.join(repr(t) for t in sample) or '(no tiles in this run)'}; "
                               "use * and ? as in file names.")
        sel |= hit
    cx = (patches.boxes[:, 0] + patches.boxes[:, 2]) / 2
    cy = (patches.boxes[:, 1] + patches.boxes[:, 3]) / 2
    for r in regions:
        hit = (slide == r.slide) & (cx >= r.x0) & (cx < r.x1) & (cy >= r.y0) & (cy < r.y1)
        if not hit.any():
            raise DatasetError(f"{flag} {r.slide}:{r.x0:g},{r.y0:g},{r.x1:g},{r.y1:g} holds no patch centre "
                               "(level-0 px of the slide; tiles need QuPath names with [x=..,y=..]).")
        sel |= hit
    return sel


def _overlapping(patches: PatchSet, slide: np.ndarray, candidates: np.ndarray, held: np.ndarray) -> np.ndarray:
    """Which of ``candidates`` share pixels with any ``held`` patch of the same slide."""
    out = np.zeros(len(candidates), dtype=bool)
    b = patches.boxes
    for s in set(slide[held]):
        hs = held[slide[held] == s]
        hb = b[hs][~np.isnan(b[hs]).any(1)]
        cand = np.flatnonzero(slide[candidates] == s)
        if not len(hb) or not len(cand):
            continue
        cb = b[candidates[cand]]
        for start in range(0, len(cand), 2048):
            c = cb[start : start + 2048, None, :]
            hit = ((c[..., 0] < hb[None, :, 2]) & (hb[None, :, 0] < c[..., 2])
                   & (c[..., 1] < hb[None, :, 3]) & (hb[None, :, 1] < c[..., 3])).any(1)
            out[cand[start : start + 2048]] = hit
    return out


def _units(patches: PatchSet, slide: np.ndarray, idx: np.ndarray, spec: SplitSpec) -> np.ndarray:
    """Unit of each patch in ``idx`` for a spatial split: its tile, or its block of ``block_um`` µm."""
    if spec.by == "patch":
        return idx
    b = patches.boxes[idx]
    block_px = spec.block_um / patches.source_mpp[idx]
    bx = np.floor((b[:, 0] + b[:, 2]) / 2 / block_px)
    by = np.floor((b[:, 1] + b[:, 3]) / 2 / block_px)
    sid = patches.patch_slide[idx].astype(np.int64)
    keys = [f"s{s}:{x:.0f},{y:.0f}" for s, x, y in zip(sid, bx, by, strict=True)]
    tile = patches.tile_unit[idx]
    if spec.by == "tile":
        keys = [f"t{t}" if t >= 0 else k for k, t in zip(keys, tile, strict=True)]
    else:  # blocks; a tile without coordinates is its own block
        keys = [f"t{t}" if t >= 0 and math.isnan(x) else k for k, t, x in zip(keys, tile, bx, strict=True)]
    return np.unique(np.asarray(keys), return_inverse=True)[1]


def make_splits(
    patches: PatchSet,
    seed: int,
    holdout_slides: Sequence[str] = (),
    val_slides: Sequence[str] = (),
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    spec: SplitSpec | None = None,
) -> dict[str, np.ndarray]:
    """Global patch indices of 'train', 'val', 'test' and 'dropped' (see :class:`SplitSpec`).

    A split already filled by named slides/tiles/regions takes no random share. With anything
    but the random patch split, training patches that overlap a validation or test patch are
    'dropped', so that no pixel is both trained on and evaluated.
    """
    spec = spec or SplitSpec(tuple(holdout_slides), tuple(val_slides), fractions=fractions)
    if spec.by not in ("patch", "tile", "block"):
        raise DatasetError(f"--split-by {spec.by!r}; valid: patch, tile, block.")
    slide = np.asarray(patches.slide_of(np.arange(len(patches))), dtype=object)
    is_test = _select(patches, slide, spec.holdout_slides, spec.holdout_tiles, spec.holdout_regions, "--holdout")
    is_val = _select(patches, slide, spec.val_slides, spec.val_tiles, spec.val_regions, "--val")
    both = is_test & is_val
    if both.any():
        raise DatasetError(f"{int(both.sum())} patches (slides {', '.join(sorted(set(slide[both])))}) are both held "
                           "out and used for validation; make the --holdout-* and --val-* choices disjoint.")
    test, val = np.flatnonzero(is_test), np.flatnonzero(is_val)
    named_held = np.concatenate([test, val])
    rest = np.flatnonzero(~is_test & ~is_val)
    f_train, f_val, f_test = spec.fractions
    f_val = 0.0 if len(val) else f_val
    f_test = 0.0 if len(test) else f_test
    total = f_train + f_val + f_test
    rng = np.random.default_rng(seed)
    unit_of = _units(patches, slide, rest, spec)
    units = rng.permutation(np.unique(unit_of)) if len(rest) else np.zeros(0, dtype=np.int64)
    n_val = int(round(len(units) * f_val / total)) if f_val else 0
    n_test = int(round(len(units) * f_test / total)) if f_test else 0
    if f_val and n_val == 0 and len(units) >= 3:
        n_val = 1
    if f_test and n_test == 0 and len(units) >= 3:
        n_test = 1
    val = np.sort(np.concatenate([val, rest[np.isin(unit_of, units[:n_val])]])).astype(np.int64)
    test = np.sort(np.concatenate([test, rest[np.isin(unit_of, units[n_val : n_val + n_test])]])).astype(np.int64)
    train = np.sort(rest[np.isin(unit_of, units[n_val + n_test :])]).astype(np.int64)
    # The random patch split is the paper's (neighbours share pixels, knowingly); anything held
    # out on purpose, and every spatial split, is kept apart from training pixels.
    held = np.concatenate([val, test]) if spec.by != "patch" else named_held
    leak = _overlapping(patches, slide, train, held) if len(held) else np.zeros(len(train), dtype=bool)
    train, dropped = train[~leak], train[leak]
    for name, arr in (("training", train), ("validation", val)):
        if len(arr) == 0:
            raise DatasetError(
                f"The {name} split is empty ({len(patches)} patches in all, from {len(set(slide))} slide(s)). "
                "Add slides or tiles, lower --overlap's stride, use smaller --block-um, or change the "
                "--holdout-*/--val-* choices."
            )
    return {"train": train, "val": val, "test": test, "dropped": dropped}


def split_summary(patches: PatchSet, splits: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per split: patch count, slides, and label pixels per class (for the model card)."""
    out: dict[str, dict] = {}
    for name, idx in splits.items():
        pixels = patches.pixels[idx].sum(0) if len(idx) else np.zeros(len(CLASS_NAMES), dtype=np.int64)
        out[name] = {
            "patches": int(len(idx)),
            "slides": sorted(set(patches.slide_of(idx))),
            "tiles": sorted({patches.tile_names[i] for i in idx if patches.tile_names[i]}),
            "pixels": {c: int(v) for c, v in zip(CLASS_NAMES, pixels, strict=True)},
        }
    return out


class PatchDataset(Dataset):
    """Item ``patch * 8 + k``: (normalised image (1, P, P) float32, labels (P, P) int64) under transform k.

    Holds only paths; memory maps are opened lazily in each worker process.
    """

    def __init__(self, patches: PatchSet, indices: np.ndarray) -> None:
        self.patches = patches
        self.indices = np.asarray(indices, dtype=np.int64)
        self._maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.indices) * N_TRANSFORMS

    def _arrays(self, entry: CacheEntry) -> tuple[np.ndarray, np.ndarray]:
        key = str(entry.path)
        if key not in self._maps:
            self._maps[key] = (
                np.load(entry.path / "images.npy", mmap_mode="r"),
                np.load(entry.path / "labels.npy", mmap_mode="r"),
            )
        return self._maps[key]

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed (normalised image (P, P), labels (P, P)) of position ``i`` of ``indices``."""
        entry, local = self.patches.locate(int(self.indices[i]))
        images, labels = self._arrays(entry)
        return normalise_patch(images[local]), np.asarray(labels[local])

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, k = divmod(int(item), N_TRANSFORMS)
        image, label = self.raw(i)
        image, label = dihedral(image, k), dihedral(label, k)
        return (
            torch.from_numpy(np.ascontiguousarray(image)[None]),
            torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)),
        )

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state


class EpochSampler(Sampler[int]):
    """This rank's items for one epoch: a seeded permutation of patches, each with a random transform.

    ``per_epoch`` limits the patches drawn per epoch (all ranks together); ``augment=False`` always
    yields transform 0 (identity), for validation.
    """

    def __init__(self, n_patches: int, seed: int, rank: int = 0, world: int = 1,
                 per_epoch: int | None = None, augment: bool = True, shuffle: bool = True,
                 weights: np.ndarray | None = None) -> None:
        self.n, self.seed, self.rank, self.world = n_patches, seed, rank, world
        self.per_epoch, self.augment, self.shuffle = per_epoch, augment, shuffle
        #: with weights, each epoch draws patches with replacement in proportion to them
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self.epoch = 0
        # drop_last with several ranks: DistributedSampler would otherwise pad with repeats, and
        # the ranks' shares must be disjoint (at most world-1 patches wait for the next epoch).
        # (it only takes the length of what it samples, so a range stands in for a dataset)
        self._dist: DistributedSampler[int] = DistributedSampler(
            cast(Dataset[int], range(n_patches)), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=world > 1,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._dist.set_epoch(epoch)

    def _patches(self) -> list[int]:
        if not self.shuffle:  # evaluation: every patch exactly once over all ranks
            return list(range(self.rank, self.n, self.world))
        if self.weights is not None:
            total = self.per_epoch or self.n
            total -= total % self.world if total >= self.world else 0
            drawn = np.random.default_rng([self.seed, self.epoch, 7]).choice(self.n, size=max(1, total), p=self.weights)
            return [int(i) for i in drawn[self.rank :: self.world]]
        mine = list(iter(self._dist))
        if self.per_epoch is not None:
            mine = mine[: max(1, -(-self.per_epoch // self.world))]
        return mine

    def items(self) -> np.ndarray:
        """This epoch's items, ``patch * 8 + transform`` (int64), in order: what iterating yields, as one
        array, so a device-resident batch source draws exactly the DataLoader's batches."""
        mine = np.asarray(self._patches(), dtype=np.int64)
        g = np.random.default_rng([self.seed, self.epoch, self.rank, 8])
        ks = g.integers(0, N_TRANSFORMS, size=len(mine)) if self.augment else np.zeros(len(mine), dtype=np.int64)
        return mine * N_TRANSFORMS + ks.astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.items().tolist())

    def __len__(self) -> int:
        return len(self._patches())


def balanced_weights(pixels: np.ndarray) -> np.ndarray:
    """Sampling weight of each patch from its label pixels per class (N, C): rare classes drawn more.

    A patch weighs 1 / (number of patches holding c) for the rarest class c it holds, so each
    class is drawn about equally often, however few patches hold it.
    """
    present = pixels > 0
    holders = present.sum(0).astype(np.float64)
    inv = np.divide(1.0, holders, out=np.zeros_like(holders), where=holders > 0)
    w = (present * inv[None, :]).max(1)
    return np.where(w > 0, w, inv[inv > 0].min() if (inv > 0).any() else 1.0)


def class_weights(pixels: np.ndarray, clip: float = 10.0) -> np.ndarray:
    """Loss weight per class: sqrt(median frequency / frequency), clipped to [1/clip, clip].

    The square root tempers the weights: full inverse frequency on a few hundred rare pixels
    makes the loss chase noise. Classes with no pixels get weight 1.
    """
    total = pixels.sum(0).astype(np.float64)
    seen = total > 0
    if not seen.any():
        return np.ones(len(total))
    med = float(np.median(total[seen]))
    w = np.ones(len(total))
    w[seen] = np.sqrt(med / total[seen])
    return np.clip(w, 1.0 / clip, clip)
