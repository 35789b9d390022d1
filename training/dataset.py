"""Training data from cached patches: the split, the epoch sampler and the torch Dataset.

Reproducibility is built into the indices rather than into random state: the sampler orders each
epoch from ``(seed, epoch)`` and encodes the augmentation (one of the 8 rotations/flips) into the
index it yields (``patch * 8 + transform``). A resumed run therefore sees exactly the batches an
uninterrupted run would, whatever the number of DataLoader workers, and DDP ranks get disjoint
shares through :class:`torch.utils.data.distributed.DistributedSampler`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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


def make_splits(
    patches: PatchSet,
    seed: int,
    holdout_slides: Sequence[str] = (),
    val_slides: Sequence[str] = (),
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, np.ndarray]:
    """Global patch indices of 'train', 'val' and 'test'.

    Named slides go whole to test (``holdout_slides``) or validation (``val_slides``). The other
    patches are split at random by patch (the paper's 80/10/10); a split already filled by named
    slides takes no random share. Note the paper's caveat: with 50 % overlap, neighbouring
    patches share pixels, so a random patch split is optimistic; hold out slides for an honest test.
    """
    names = set(patches.slide_names)
    for flag, wanted in (("--holdout-slides", holdout_slides), ("--val-slides", val_slides)):
        missing = [s for s in wanted if s not in names]
        if missing:
            raise DatasetError(
                f"{flag}: no slide named {', '.join(missing)}. Slides in this run: {', '.join(sorted(names))}."
            )
    both = set(holdout_slides) & set(val_slides)
    if both:
        raise DatasetError(f"Slide(s) {', '.join(sorted(both))} are both held out and used for validation.")
    slide = np.asarray(patches.slide_of(np.arange(len(patches))), dtype=object)
    test = np.flatnonzero(np.isin(slide, list(holdout_slides)))
    val = np.flatnonzero(np.isin(slide, list(val_slides)))
    rest = np.setdiff1d(np.arange(len(patches)), np.concatenate([test, val]))
    rng = np.random.default_rng(seed)
    rest = rng.permutation(rest)
    f_train, f_val, f_test = fractions
    f_val = 0.0 if len(val) else f_val
    f_test = 0.0 if len(test) else f_test
    total = f_train + f_val + f_test
    n_val = int(round(len(rest) * f_val / total)) if f_val else 0
    n_test = int(round(len(rest) * f_test / total)) if f_test else 0
    if f_val and n_val == 0 and len(rest) >= 3:
        n_val = 1
    if f_test and n_test == 0 and len(rest) >= 3:
        n_test = 1
    val = np.sort(np.concatenate([val, rest[:n_val]])).astype(np.int64)
    test = np.sort(np.concatenate([test, rest[n_val : n_val + n_test]])).astype(np.int64)
    train = np.sort(rest[n_val + n_test :]).astype(np.int64)
    for name, arr in (("training", train), ("validation", val)):
        if len(arr) == 0:
            raise DatasetError(
                f"The {name} split is empty ({len(patches)} patches in all, from {len(names)} slide(s)). "
                "Add slides, lower --overlap's stride, or change --holdout-slides/--val-slides."
            )
    return {"train": train, "val": val, "test": test}


def split_summary(patches: PatchSet, splits: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per split: patch count, slides, and label pixels per class (for the model card)."""
    out: dict[str, dict] = {}
    for name, idx in splits.items():
        pixels = np.zeros(len(CLASS_NAMES), dtype=np.int64)
        for i in idx:
            entry, local = patches.locate(int(i))
            lab = np.load(entry.path / "labels.npy", mmap_mode="r")[local]
            pixels += np.bincount(lab.ravel(), minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
        out[name] = {
            "patches": int(len(idx)),
            "slides": sorted(set(patches.slide_of(idx))),
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
                 per_epoch: int | None = None, augment: bool = True, shuffle: bool = True) -> None:
        self.n, self.seed, self.rank, self.world = n_patches, seed, rank, world
        self.per_epoch, self.augment, self.shuffle = per_epoch, augment, shuffle
        self.epoch = 0
        # drop_last with several ranks: DistributedSampler would otherwise pad with repeats, and
        # the ranks' shares must be disjoint (at most world-1 patches wait for the next epoch).
        self._dist = DistributedSampler(
            range(n_patches), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=world > 1
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._dist.set_epoch(epoch)

    def _patches(self) -> list[int]:
        if not self.shuffle:  # evaluation: every patch exactly once over all ranks
            return list(range(self.rank, self.n, self.world))
        mine = list(iter(self._dist))
        if self.per_epoch is not None:
            mine = mine[: max(1, -(-self.per_epoch // self.world))]
        return mine

    def __iter__(self) -> Iterator[int]:
        mine = self._patches()
        g = np.random.default_rng([self.seed, self.epoch, self.rank, 8])
        ks = g.integers(0, N_TRANSFORMS, size=len(mine)) if self.augment else np.zeros(len(mine), dtype=int)
        return iter([p * N_TRANSFORMS + int(k) for p, k in zip(mine, ks, strict=True)])

    def __len__(self) -> int:
        return len(self._patches())
