"""Explain one call of the model at a point of a slide: the glue between slides, the model and HiPe.

The question a user asks is "why is *this* cell called CD8?". Answering it takes four steps, the
same for the CLI (``python -m core saliency``), the app's saliency dock and the benchmark:

1. :func:`prepare` reads the ``patch_size`` patch of the Hoechst channel centred on the point, at
   the model's mpp, normalises it exactly as inference does (:func:`core.normalise.normalise_patch`),
   predicts it, and picks the cell under the point: the 4-connected component of the predicted
   class at that pixel (4-connected like the engine's cells, so it is the same cell the cell table
   lists). A click that lands just beside a small nucleus snaps to the nearest positive pixel
   within ``search_radius_um``.
2. :func:`default_target` is the class to explain when none is given: the cell's class, or the
   predicted class at the point; "other" is refused (explaining background is rarely the question).
3. :func:`explain_job` runs HiPe (:func:`core.saliency.hipe_job`) for each target class, either on
   the whole patch (per-pixel output, saliency of every cell of that class) or on the cell (the
   scalar mean probability of the target over the cell's pixels).
4. :func:`mass_inside` measures how much of the saliency lies inside the predicted nucleus: the
   paper's finding (section 5) is that the most salient regions sit in the nuclei themselves.

:func:`explain_point_job` does 1–3 as one job (the app's saliency dock runs it); its first
progress report, :class:`ContextReady`, carries the patch and prediction so they show at once.

HiPe always runs the model in float32, whatever precision the LoadedModel predicts in: saliency is
made of small probability drops, and reduced-precision noise would show up as spurious evidence.
Coordinates: ``x_px, y_px`` are continuous level-0 pixels (pixel i spans [i, i + 1)); patch
coordinates are ``(col, row)`` patch pixels of ``mpp`` µm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from core.classes import CLASS_COLOURS, POSITIVE_CLASSES, class_label
from core.errors import CoreError
from core.models.runtime import LoadedModel
from core.normalise import normalise_patch
from core.progress import CancelToken, Progress
from core.saliency.hipe import PERTURBATIONS, HipeResult, hipe_job
from core.slides import Slide

#: Progress units per target class in :func:`explain_job` (HiPe's own total grows as it refines).
_UNITS = 1000


@dataclass(frozen=True)
class ExplainPatch:
    """The patch the model sees around a point.

    ``hoechst``: (S, S) float32 raw intensities at ``mpp``; ``image``: the same normalised to
    [0, 1]; ``location``: top-left corner in level-0 px; ``point``: (col, row) of the requested
    point in patch px; ``scale``: level-0 px per patch px (x, y).
    """

    hoechst: np.ndarray
    image: np.ndarray
    location: tuple[float, float]
    point: tuple[int, int]
    mpp: float
    scale: tuple[float, float]

    def to_level0(self, col: float, row: float) -> tuple[float, float]:
        """Patch coordinates (continuous patch px) to level-0 px."""
        return self.location[0] + col * self.scale[0], self.location[1] + row * self.scale[1]


@dataclass(frozen=True)
class ExplainContext:
    """A patch, its prediction and the cell under the point (:func:`prepare`).

    ``probabilities`` (C, S, S) softmax; ``classes`` (S, S) uint8 argmax; ``point_class`` the class
    at the point; ``cell_mask`` (S, S) bool and ``cell_class`` when a cell was asked for, else None.
    """

    patch: ExplainPatch
    probabilities: np.ndarray
    classes: np.ndarray
    point_class: int
    class_names: tuple[str, ...]
    class_colours: tuple[str, ...]
    cell_mask: np.ndarray | None = None
    cell_class: int | None = None

    @property
    def is_cell(self) -> bool:
        return self.cell_mask is not None


@dataclass(frozen=True)
class Explanation:
    """HiPe maps for each target class of one :class:`ExplainContext`.

    ``maps`` target -> :class:`HipeResult` (saliency (S, S), depth_maps (D, S, S), n_masks forward
    passes); ``seconds`` target -> wall time of its HiPe run.
    """

    context: ExplainContext
    maps: dict[int, HipeResult]
    seconds: dict[int, float]
    perturbation: str
    initial_cells: int

    def reference_mask(self, target: int) -> np.ndarray:
        """Pixels the saliency "should" be in: the cell (cell mode) or all pixels predicted ``target``."""
        if self.context.cell_mask is not None:
            return self.context.cell_mask
        return self.context.classes == target

    def inside_fraction(self, target: int, dilate_um: float = 0.0) -> float:
        """:func:`mass_inside` of ``target``'s saliency in :meth:`reference_mask`, grown by ``dilate_um``."""
        mask = dilate(self.reference_mask(target), dilate_um / self.context.patch.mpp)
        return mass_inside(self.maps[target].saliency, mask)

    def rank_fraction(self, target: int) -> float:
        """:func:`rank_inside` of ``target``'s saliency in :meth:`reference_mask`."""
        return rank_inside(self.maps[target].saliency, self.reference_mask(target))


# --- reading and predicting ----------------------------------------------------------------------


def read_patch(slide: Slide, x_px: float, y_px: float, mpp: float, size: int = 256,
               channel: str | int = "hoechst") -> ExplainPatch:
    """The ``size``² patch of ``channel`` at ``mpp`` µm/px centred on level-0 point (x_px, y_px).

    The point falls in patch pixel (size // 2, size // 2). Areas beyond the slide read as zero.
    Raises UncalibratedError for a slide without a pixel size, ChannelNotFoundError without Hoechst.
    """
    mx, my = slide.require_mpp()
    fx, fy = mpp / mx, mpp / my
    half = size // 2
    location = (x_px - half * fx, y_px - half * fy)
    index = slide.channel_index(channel)
    raw = slide.read_region_at_mpp(location=location, size=(size, size), mpp=mpp, channels=[index])[0]
    raw = raw.astype(np.float32, copy=False)
    return ExplainPatch(raw, normalise_patch(raw), location, (half, half), float(mpp), (fx, fy))


def predict_patch(model: LoadedModel, image: np.ndarray) -> np.ndarray:
    """Softmax probabilities (C, S, S) of one normalised (S, S) patch."""
    return model.predict(np.asarray(image, dtype=np.float32)[None, None])[0]


def cell_mask_at(classes: np.ndarray, point: tuple[int, int], search_radius_px: float = 0.0
                 ) -> tuple[np.ndarray, int] | None:
    """The cell under ``point`` (col, row): its (S, S) bool mask and class, or None if there is none.

    The cell is the 4-connected component of the predicted class at the point. If the point is
    class 0 ("other"), the nearest positive pixel within ``search_radius_px`` is used instead.
    """
    col, row = point
    h, w = classes.shape
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"point {point} is outside the {w}×{h} patch")
    cls = int(classes[row, col])
    if cls == 0:
        ys, xs = np.nonzero(classes)
        if ys.size == 0 or search_radius_px <= 0:
            return None
        d2 = (ys - row) ** 2 + (xs - col) ** 2
        nearest = int(np.argmin(d2))
        if d2[nearest] > search_radius_px**2:
            return None
        row, col = int(ys[nearest]), int(xs[nearest])
        cls = int(classes[row, col])
    labels, _ = ndimage.label(classes == cls)
    return labels == labels[row, col], cls


def prepare(model: LoadedModel, slide: Slide, x_px: float, y_px: float, cell: bool = False,
            search_radius_um: float = 2.0) -> ExplainContext:
    """Read, normalise and predict the patch around (x_px, y_px); with ``cell``, pick the cell there.

    Raises CoreError when ``cell`` is asked for and no positive class is predicted within
    ``search_radius_um`` of the point.
    """
    card = model.card
    patch = read_patch(slide, x_px, y_px, card.mpp, card.patch_size, card.input_channel_role)
    prob = predict_patch(model, patch.image)
    classes = prob.argmax(axis=0).astype(np.uint8)
    names = tuple(card.classes)
    colours = tuple(card.class_colours) if len(card.class_colours) == len(names) else CLASS_COLOURS
    point_class = int(classes[patch.point[1], patch.point[0]])
    mask = cls = None
    if cell:
        found = cell_mask_at(classes, patch.point, search_radius_um / card.mpp)
        if found is None:
            raise CoreError(
                f"No cell is predicted at ({x_px:.0f}, {y_px:.0f}) px: the model calls everything within "
                f"{search_radius_um:g} µm '{names[0]}'. Pick a point on a cell, or explain the whole patch."
            )
        mask, cls = found
    return ExplainContext(patch, prob, classes, point_class, names, colours, mask, cls)


def default_target(context: ExplainContext) -> int:
    """The class to explain when none is given: the cell's class, else the class at the point.

    Raises CoreError when that is class 0 ("other"), naming the classes to choose from.
    """
    target = context.cell_class if context.cell_class is not None else context.point_class
    if target == 0:
        raise CoreError(
            f"The model calls this point '{context.class_names[0]}' (no cell). Pick a point on a cell, or "
            f"choose the class to explain: {', '.join(context.class_names[1:])}."
        )
    return target


def positive_targets(context: ExplainContext) -> list[int]:
    """Every positive class the model has (:data:`core.classes.POSITIVE_CLASSES`)."""
    return [c for c in POSITIVE_CLASSES if c < len(context.class_names)]


# --- HiPe ----------------------------------------------------------------------------------------


def default_batch_size(model: LoadedModel) -> int:
    """Perturbed patches per forward pass: 32 on a GPU; 8 on a CPU, so progress and cancel answer
    within a few seconds (a 256² U-Net pass takes a tenth of a second or more there)."""
    return 32 if model.device.type == "cuda" else 8


@dataclass(frozen=True)
class HipeStep(Progress):
    """Progress of :func:`explain_job` after each batch, with what an estimate of the time left needs.

    ``index`` of ``n_targets``: the class being explained (0-based); ``depth`` of ``max_depth``:
    HiPe's depth; ``depth_done``/``depth_total``: forward passes of this depth so far / planned
    (fixed within a depth); ``passes``: forward passes of this class so far.
    """

    index: int = 0
    n_targets: int = 1
    depth: int = 1
    max_depth: int = 1
    depth_done: int = 0
    depth_total: int = 0
    passes: int = 0


@dataclass(frozen=True)
class ClassDone(Progress):
    """Progress of :func:`explain_job` when a class is finished: ``explanation`` holds every class
    finished so far, so a cancelled run still shows them (``pending``: the classes not finished)."""

    explanation: Explanation | None = None
    pending: tuple[int, ...] = ()


def explain_job(
    model: LoadedModel,
    context: ExplainContext,
    targets: Sequence[int],
    perturbation: str = "fade",
    initial_cells: int = 4,
    batch_size: int | None = None,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, Explanation]:
    """HiPe for each class in ``targets``, on the patch or (cell mode) the cell; returns an Explanation.

    Progress counts ``1000`` units per target, shared evenly among HiPe's depths (it cannot know
    its total in advance: each depth plans its windows from the saliency found so far); the message
    names the class, the depth and the forward passes. Each batch yields a :class:`HipeStep` (for
    :class:`core.saliency.eta.SaliencyEta`), each finished class a :class:`ClassDone`.
    ``batch_size`` None = :func:`default_batch_size`. HiPe runs on the model's device (a GPU when
    the model was loaded on one).
    """
    batch_size = batch_size or default_batch_size(model)
    if perturbation not in PERTURBATIONS:
        raise ValueError(f"Unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)}.")
    n_classes = len(context.class_names)
    for t in targets:
        if not 0 <= t < n_classes:
            raise ValueError(f"target class {t} is not one of the model's {n_classes} classes")
    image = torch.from_numpy(np.ascontiguousarray(context.patch.image, dtype=np.float32))[None, None]
    maps: dict[int, HipeResult] = {}
    seconds: dict[int, float] = {}
    total = len(targets) * _UNITS
    size = min(context.patch.image.shape)
    max_depth = max(1, int(math.log2(size / initial_cells)))
    for k, target in enumerate(targets):
        name = context.class_names[target]
        t0 = time.perf_counter()
        job = hipe_job(model.module, image, target, perturbation, initial_cells, batch_size,
                       context.cell_mask, cancel)
        # HiPe plans one depth at a time: its total is fixed within a depth and grows at the next.
        # Progress = (depths finished + fraction of this depth) / max_depth, which never goes back.
        depth, depth_total, before = 0, -1, 0
        while True:
            try:
                p = next(job)
            except StopIteration as stop:
                maps[target] = stop.value
                break
            if p.total != depth_total:
                depth, before, depth_total = depth + 1, max(0, depth_total), p.total
            within = (p.done - before) / max(1, depth_total - before)
            fraction = min(1.0, (depth - 1 + within) / max_depth)
            done = k * _UNITS + min(_UNITS - 1, int(_UNITS * fraction))
            yield HipeStep(done, total, f"{class_label(name)} ({k + 1} of {len(targets)}): {p.message} of "
                           f"{max_depth}, {p.done:,} forward passes", index=k, n_targets=len(targets),
                           depth=depth, max_depth=max_depth, depth_done=p.done - before,
                           depth_total=depth_total - before, passes=p.done)
        seconds[target] = time.perf_counter() - t0
        so_far = Explanation(context, dict(maps), dict(seconds), perturbation, initial_cells)
        yield ClassDone((k + 1) * _UNITS, total, f"{class_label(name)}: done, {maps[target].n_masks:,} forward passes",
                        explanation=so_far, pending=tuple(targets[k + 1:]))
    return Explanation(context, maps, seconds, perturbation, initial_cells)


@dataclass(frozen=True)
class ContextReady(Progress):
    """Progress of :func:`explain_point_job` that carries the patch and its prediction, before HiPe."""

    context: ExplainContext | None = None


def explain_point_job(
    model: LoadedModel,
    slide: Slide,
    x_px: float,
    y_px: float,
    cell: bool = False,
    targets: Sequence[int] | None = None,
    perturbation: str = "fade",
    initial_cells: int = 4,
    batch_size: int | None = None,
    search_radius_um: float = 2.0,
    cancel: CancelToken | None = None,
) -> Generator[Progress, None, Explanation]:
    """:func:`prepare`, then :func:`explain_job`, as one job; ``targets`` None = :func:`default_target`.

    First yields a :class:`ContextReady` (so a viewer can show the patch and prediction at once).
    """
    context = prepare(model, slide, x_px, y_px, cell=cell, search_radius_um=search_radius_um)
    yield ContextReady(0, len(targets or [0]) * _UNITS, "Patch read and predicted", context=context)
    chosen = list(targets) if targets is not None else [default_target(context)]
    return (yield from explain_job(model, context, chosen, perturbation, initial_cells, batch_size, cancel))


# --- measuring -----------------------------------------------------------------------------------


def dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """``mask`` grown by a disc of ``radius_px`` pixels (Euclidean); unchanged for radius < 0.5."""
    mask = np.asarray(mask, dtype=bool)
    if radius_px < 0.5:
        return mask.copy()
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xx**2 + yy**2 <= radius_px**2
    return ndimage.binary_dilation(mask, structure=disc)


def mass_inside(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the total saliency of the map that lies inside ``mask`` (0–1).

    ``saliency`` (H, W) non-negative, e.g. :attr:`HipeResult.saliency` over the whole patch;
    ``mask`` (H, W) bool. NaN when the map holds no saliency at all (nothing to attribute).
    """
    s = np.asarray(saliency, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if s.shape != m.shape:
        raise ValueError(f"saliency {s.shape} and mask {m.shape} differ in shape")
    total = float(s.sum())
    if total <= 0:
        return float("nan")
    return float(s[m].sum() / total)


def rank_inside(saliency: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the ``mask.sum()`` most salient pixels that lie inside ``mask`` (0–1).

    The "relevance rank accuracy" of Arras et al. (2022, CLEVR-XAI): it asks where the *strongest*
    evidence is, which :func:`mass_inside` cannot, since HiPe spreads a coarse window's drop evenly
    over a window much larger than a nucleus and so caps the mass fraction well below 1. Ties at the
    K-th value (HiPe's maps are made of flat windows) are shared out in proportion, i.e. the
    expected value under random tie-breaking, so the result never depends on pixel order.
    NaN when the map holds no saliency or the mask is empty.
    """
    s = np.asarray(saliency, dtype=np.float64).ravel()
    m = np.asarray(mask, dtype=bool).ravel()
    if s.shape != m.shape:
        raise ValueError(f"saliency {np.shape(saliency)} and mask {np.shape(mask)} differ in shape")
    k = int(m.sum())
    if k == 0 or float(s.max(initial=0.0)) <= 0:
        return float("nan")
    kth = np.partition(s, s.size - k)[s.size - k]  # the K-th largest value
    above, tied = s > kth, s == kth
    inside = float((above & m).sum()) + (k - int(above.sum())) * float((tied & m).sum()) / float(tied.sum())
    return inside / k


# --- pictures (RGB uint8 arrays for PNGs and the app) --------------------------------------------


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def hoechst_rgb(hoechst: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Grey (H, W, 3) uint8 picture of raw intensities stretched between two percentiles."""
    a = np.asarray(hoechst, dtype=np.float32)
    lo, hi = np.percentile(a, [low, high])
    g = np.zeros_like(a) if hi <= lo else np.clip((a - lo) / (hi - lo), 0, 1)
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def classes_rgb(classes: np.ndarray, colours: Sequence[str] = CLASS_COLOURS) -> np.ndarray:
    """(H, W, 3) uint8 picture of a class map; class 0 ("other") is black."""
    lut = np.array([(0, 0, 0)] + [_hex_rgb(c) for c in colours[1:]], dtype=np.uint8)
    return lut[np.asarray(classes, dtype=np.intp)]


def heat_rgb(values: np.ndarray) -> np.ndarray:
    """The "hot" colour map (black, red, yellow, white) of values in [0, 1], (H, W, 3) float32."""
    t = np.clip(np.asarray(values, dtype=np.float32), 0, 1)[..., None]
    return np.clip(3 * t - np.array([0.0, 1.0, 2.0], dtype=np.float32), 0, 1)


def saliency_rgb(base: np.ndarray, saliency: np.ndarray, vmax: float | None = None,
                 opacity: float = 0.7) -> np.ndarray:
    """A saliency map in "hot" colours over a (H, W, 3) uint8 picture, (H, W, 3) uint8.

    Saliency is scaled by ``vmax`` (default: its maximum) and blended with an opacity that grows
    with the value, so unsalient pixels show the Hoechst underneath.
    """
    s = np.asarray(saliency, dtype=np.float32)
    top = float(s.max()) if vmax is None else float(vmax)
    t = np.zeros_like(s) if top <= 0 else np.clip(s / top, 0, 1)
    alpha = (opacity * np.sqrt(t))[..., None]
    out = (1 - alpha) * (np.asarray(base, dtype=np.float32) / 255) + alpha * heat_rgb(t)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The one-pixel inner border of a bool mask (for drawing the cell's outline)."""
    m = np.asarray(mask, dtype=bool)
    return m & ~ndimage.binary_erosion(m)


__all__ = [
    "ClassDone",
    "ContextReady",
    "ExplainContext",
    "ExplainPatch",
    "Explanation",
    "cell_mask_at",
    "classes_rgb",
    "default_target",
    "default_batch_size",
    "dilate",
    "explain_job",
    "explain_point_job",
    "heat_rgb",
    "HipeStep",
    "hoechst_rgb",
    "mass_inside",
    "outline",
    "positive_targets",
    "predict_patch",
    "prepare",
    "read_patch",
    "saliency_rgb",
]
