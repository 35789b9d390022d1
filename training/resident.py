"""Where the training loop's batches come from: a DataLoader, or the whole patch set resident on the device.

Both sources draw the same items from the same :class:`training.dataset.EpochSampler` (``patch * 8 +
transform``, a pure function of seed and epoch), so they give the same batches in the same order and
the loop body in :func:`training.train.fit` is one piece of code for both.

* :class:`LoaderBatches`: today's path. Worker processes read each patch from the memory-mapped cache,
  normalise it (:func:`core.normalise.normalise_patch`) and apply its rotation/flip in numpy, one
  sample at a time. Right for a CPU, where the model is the bottleneck anyway.
* :class:`ResidentBatches`: the GPU path. Every training patch is copied to the device once, in a
  compact integer form, and each batch is gathered, normalised and transformed there with a handful
  of whole-batch tensor operations: no Python per sample, no worker processes, no host-to-device copy
  per step. The paper's 7,413 patches of 256² take 0.97 GB as uint16 plus 0.49 GB of uint8 labels.

**No quantisation.** Hoechst is stored as it is in the cache: uint8 stays uint8, uint16 is kept
bit for bit (as int16, which every torch kernel supports, widened back with ``& 0xFFFF``), any other
dtype (float32 when the cache was resampled) becomes float32 exactly as ``normalise_patch`` converts
it. The min-max normalisation then runs in float32 with the same operations, so the resident
batches equal the DataLoader's bit for bit (tests/training/test_resident.py checks it); storing
uint8 after a per-patch min-max would have cost up to 1/510 of the range per pixel for a 2x smaller
set, which nothing here needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from training.dataset import N_TRANSFORMS, EpochSampler, PatchDataset, dihedral
from training.errors import TrainingError

#: --resident choices: auto = on for CUDA when the set fits, off on a CPU (today's behaviour).
RESIDENT_CHOICES = ("auto", "on", "off")
#: auto keeps the set off the GPU when it would take more than this share of its free memory.
MAX_FREE_SHARE = 0.5


class BatchSource(Protocol):
    """One epoch of (images (B, 1, P, P) float32, labels (B, P, P) int64) batches, in sampler order."""

    name: str

    def __len__(self) -> int:
        """Batches per epoch."""
        ...

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Set the sampler to ``epoch`` and yield its batches."""
        ...


class LoaderBatches:
    """Batches from a :class:`DataLoader` over ``data`` in ``sampler``'s order (CPU tensors; pinned on CUDA)."""

    name = "loader"

    def __init__(self, data: PatchDataset, sampler: EpochSampler, batch_size: int, workers: int,
                 device: torch.device) -> None:
        self.sampler = sampler
        self.loader = DataLoader(
            data, batch_size=batch_size, sampler=sampler, num_workers=workers,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0, drop_last=False,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch)
        return iter(self.loader)


def _storage(images: np.ndarray) -> tuple[np.ndarray, str]:
    """The compact, exact host form of raw Hoechst patches and its codec name (see the module doc)."""
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images), "uint8"
    if images.dtype == np.uint16:
        return np.ascontiguousarray(images).view(np.int16), "uint16-as-int16"
    return np.asarray(images, dtype=np.float32), "float32"


def _decode(stored: torch.Tensor, codec: str) -> torch.Tensor:
    """Stored patches back to float32 raw values (exact for every codec)."""
    if codec == "uint16-as-int16":
        return (stored.to(torch.int32) & 0xFFFF).to(torch.float32)
    return stored.to(torch.float32)


def dihedral_table(size: int, device: torch.device) -> torch.Tensor:
    """(8, size²) int64: row k lists, for each output pixel of transform k, the flat input pixel it takes.

    Built by applying :func:`training.dataset.dihedral` to the pixel numbers, so the device path is
    the CPU path's transform by construction.
    """
    ids = np.arange(size * size, dtype=np.int64).reshape(size, size)
    rows = [np.ascontiguousarray(dihedral(ids, k)).ravel() for k in range(N_TRANSFORMS)]
    return torch.from_numpy(np.stack(rows)).to(device)


def normalise_rows(flat: torch.Tensor) -> torch.Tensor:
    """Per-row min-max to [0, 1] of a (B, n) float32 tensor; a flat row becomes zeros.

    The float32 operations of :func:`core.normalise.normalise_patch` (so the results are equal), written
    with ``torch.where`` instead of a boolean-mask assignment, which would make the host wait for the GPU.
    """
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    flat_row = hi <= lo
    span = torch.where(flat_row, torch.ones_like(hi), hi - lo)
    return torch.where(flat_row, torch.zeros_like(flat), (flat - lo) / span)


class ResidentPatches:
    """Every patch of ``data`` (in ``data.indices`` order) and its labels, held on ``device``."""

    def __init__(self, data: PatchDataset, device: torch.device) -> None:
        n = len(data.indices)
        if n == 0:
            raise TrainingError("No training patches to hold on the device.")
        first, _ = data.patches.locate(int(data.indices[0]))
        size = int(np.load(first.path / "labels.npy", mmap_mode="r").shape[-1])
        self.size, self.device = size, device
        self.images: torch.Tensor | None = None
        self.labels = torch.empty((n, size, size), dtype=torch.uint8, device=device)
        self.codec = ""
        # one contiguous run of positions per cache entry: a fancy-indexed read of a memory map per run
        owner = np.searchsorted(data.patches.offsets, data.indices, side="right") - 1
        for k in np.unique(owner):
            pos = np.flatnonzero(owner == k)
            entry = data.patches.entries[int(k)]
            local = data.indices[pos] - int(data.patches.offsets[k])
            images, labels = data._arrays(entry)
            for start in range(0, len(pos), 512):  # bounded host memory per copy
                p, loc = pos[start : start + 512], local[start : start + 512]
                stored, codec = _storage(np.asarray(images[loc]))
                if self.images is None:
                    self.codec = codec
                    self.images = torch.empty((n, size, size), dtype=torch.from_numpy(stored[:1]).dtype, device=device)
                elif codec != self.codec:  # inputs of different dtypes: widen all to float32 (still exact)
                    self.images, self.codec = _decode(self.images, self.codec), "float32"
                    stored, codec = np.asarray(images[loc], dtype=np.float32), "float32"
                at = torch.from_numpy(p).to(device)
                self.images[at] = torch.from_numpy(stored).to(device, self.images.dtype)
                self.labels[at] = torch.from_numpy(np.asarray(labels[loc], dtype=np.uint8)).to(device)
        self.table = dihedral_table(size, device)

    @property
    def nbytes(self) -> int:
        assert self.images is not None
        return self.images.numel() * self.images.element_size() + self.labels.numel() + self.table.numel() * 8

    def batch(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``position * 8 + transform`` (int64 on the device) -> (images (B, 1, P, P) float32
        normalised and transformed, channels-last; labels (B, P, P) int64)."""
        assert self.images is not None
        pos, k = items // N_TRANSFORMS, items % N_TRANSFORMS
        b, px = len(items), self.size * self.size
        flat = normalise_rows(_decode(self.images.index_select(0, pos).reshape(b, px), self.codec))
        where = self.table.index_select(0, k)
        x = flat.gather(1, where).reshape(b, 1, self.size, self.size)
        y = self.labels.index_select(0, pos).reshape(b, px).gather(1, where).reshape(b, self.size, self.size)
        return x.contiguous(memory_format=torch.channels_last), y.long()


class ResidentBatches:
    """Batches of ``batch_size`` drawn from :class:`ResidentPatches` in ``sampler``'s order."""

    name = "resident"

    def __init__(self, patches: ResidentPatches, sampler: EpochSampler, batch_size: int) -> None:
        self.patches, self.sampler, self.batch_size = patches, sampler, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch)
        # one host-to-device copy per epoch; each batch is a slice of it
        items = torch.from_numpy(self.sampler.items()).to(self.patches.device)
        for start in range(0, len(items), self.batch_size):
            yield self.patches.batch(items[start : start + self.batch_size])


def resident_bytes(data: PatchDataset) -> int:
    """Device memory the resident set would take (images in their stored form + uint8 labels)."""
    if not len(data.indices):
        return 0
    entry, _ = data.patches.locate(int(data.indices[0]))
    images = np.load(entry.path / "images.npy", mmap_mode="r")
    per_px = images.dtype.itemsize if images.dtype in (np.uint8, np.uint16) else 4
    return len(data.indices) * int(np.prod(images.shape[1:])) * (per_px + 1)


def choose_resident(requested: str, device: torch.device, data: PatchDataset) -> tuple[bool, str]:
    """Whether to hold the training set on the device, and why (for the log and the card)."""
    if requested not in RESIDENT_CHOICES:
        raise TrainingError(f"--resident {requested!r}; valid: {', '.join(RESIDENT_CHOICES)}.")
    need = resident_bytes(data)
    if requested == "on":
        return True, f"asked for (--resident on); {need / 2**30:.2f} GiB on {device}"
    if requested == "off":
        return False, "asked for (--resident off)"
    if device.type != "cuda":
        return False, "a CPU: worker processes feed the model as fast as it trains (--resident on to force)"
    free, _ = torch.cuda.mem_get_info(device)
    if need > MAX_FREE_SHARE * free:
        return False, (f"the set needs {need / 2**30:.2f} GiB, more than {MAX_FREE_SHARE:.0%} of the GPU's "
                       f"{free / 2**30:.2f} GiB free; batches come from worker processes")
    return True, f"{need / 2**30:.2f} GiB of {free / 2**30:.2f} GiB free on {device}"


def make_batch_source(requested: str, data: PatchDataset, sampler: EpochSampler, batch_size: int, workers: int,
                      device: torch.device, log: Callable[[str], None] = print) -> BatchSource:
    """The batch source for ``fit``: resident on the device or a DataLoader, by :func:`choose_resident`."""
    resident, why = choose_resident(requested, device, data)
    if not resident:
        log(f"Batches: DataLoader with {workers} worker process(es) ({why}).")
        return LoaderBatches(data, sampler, batch_size, workers, device)
    patches = ResidentPatches(data, device)
    log(f"Batches: all {len(data.indices)} training patches resident on {device} ({patches.codec}, "
        f"{patches.nbytes / 2**30:.2f} GiB; {why}); normalised and rotated/flipped there per batch.")
    return ResidentBatches(patches, sampler, batch_size)
