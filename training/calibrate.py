"""Threshold calibration: suggested thresholds, histograms (text and PNG) and QC mosaics.

Method (documented in ``--help``): per marker, model the NEGATIVE population instead of forcing a
two-way split. On log10 of the per-cell means, the negative population is the mode (every marker is
negative on most cells); its spread is measured on the mode's left side, which positives never
reach. The threshold is the lowest density between the negatives and a positive population (a bump
of the smoothed histogram right of mode + 3 SD, see :func:`_valley`), so it is never inside the
negatives: with a rare marker (a few positive cells) Otsu's method puts its split there and calls
hundreds of false positives, which this cannot. Negatives are right-skewed (signal spilling over
from touching positive cells), which is why the valley comes first; without one, a 2-Gaussian mixture
started from the negative mode may still find a well-separated positive component (its crossing
point); where none separates, the suggestion is the larger of mode + 4 SD and the 99.5th percentile
("no clear positives": at most 0.5 % of cells called, since the negatives' right tail is heavier
than their left side shows). AF750 is judged per population,
because CD8+ cells carry dim CD3 (the CD8_CD3LO class): ``cd3`` among CD8- cells and ``cd3_hi``
among CD8+ cells (CD8 by the suggested ``cd8``), where the CD8_CD3LO cells are the "negatives"; when
the few CD8_CD3HI cells show no population of their own, or the split found among CD8+ cells lies
above the CD3 cells' median (it would cut the CD8_CD3HI cells), ``cd3_hi`` is placed between the
CD8_CD3LO cells and the CD3 cells (which carry as much CD3 as CD8_CD3HI cells).
Thresholds are suggested on the cells of all slides pooled (one config for the batch) and per slide,
so a slide that differs from the batch shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from skimage.segmentation import expand_labels, find_boundaries

from core.classes import CLASS_COLOURS, CLASS_NAMES
from core.slides import Slide
from training.config import CHANNEL_ROLES, MARKER_ROLES, LabelConfig, Thresholds
from training.segment import segment_nuclei

_MARKER_LABEL = {
    "cd20": "CD20 (FITC)",
    "cd8": "CD8 (Cy3)",
    "cd3": "CD3 (AF750, CD8- cells)",
    "cd3_hi": "CD3 high (AF750, CD8+ cells)",
}
#: Keys of :class:`Thresholds` in report order.
KEYS: tuple[str, ...] = (*MARKER_ROLES, "cd3_hi")
#: Fewest cells a suggestion is made from.
MIN_CELLS = 20
#: Without a positive population, at most this percentage of cells is called positive.
NO_POSITIVES_PERCENT = 0.5
NO_POSITIVES = "no clear positives: negative mode + 4 SD or the top 0.5 %"


@dataclass(frozen=True)
class Suggestion:
    """A suggested threshold and how it was found (values in slide intensity units)."""

    threshold: float
    negative_mode: float
    negative_sd_log: float
    method: str  # "valley above the negatives", "mixture above the negatives" or NO_POSITIVES
    n_cells: int


def _density(logs: np.ndarray, bw: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed histogram (Gaussian kernel, ``bw`` decades) of log10 values on a 0.01-decade grid."""
    lo, hi = float(logs.min()) - 3 * bw, float(logs.max()) + 3 * bw
    bins = max(20, int((hi - lo) / 0.01) + 1)
    counts, edges = np.histogram(logs, bins=bins, range=(lo, hi))
    k = max(1.0, bw / ((hi - lo) / bins))
    kernel = np.exp(-0.5 * (np.arange(-int(4 * k), int(4 * k) + 1) / k) ** 2)
    kernel /= kernel.sum()  # density in cells per 0.01-decade bin
    return np.convolve(counts, kernel, mode="same"), (edges[:-1] + edges[1:]) / 2


def _negative_mode(logs: np.ndarray) -> tuple[float, float]:
    """Mode of log10 values and the SD of the negative population from the peak's left half-width
    at half maximum (HWHM / 1.177: blind to far-off dim cells and to the positives on the right)."""
    dens, xs = _density(logs, bw=0.02)
    i = int(np.argmax(dens))
    mode = float(xs[i])
    below = np.flatnonzero(dens[:i] < 0.5 * dens[i])
    sd = (mode - float(xs[below[-1]])) / 1.1774 if below.size else float(np.std(logs))
    return mode, max(sd, 0.01)


def _valley(logs: np.ndarray, mode: float, sd: float) -> float | None:
    """The density minimum between the negatives and a positive population, or None without one.

    A positive population is a bump right of mode + 3 SD rising at least 1.3x (and by 0.2 cells per
    0.01 decade) above the lowest density between it and the negatives, with at least 3 cells beyond
    that low."""
    dens, xs = _density(logs)
    start = int(np.searchsorted(xs, mode + 3 * sd))
    best = None
    for j in range(start + 1, len(xs) - 1):
        if not (dens[j] >= dens[j - 1] and dens[j] >= dens[j + 1]):
            continue
        i = start + int(np.argmin(dens[start : j + 1]))
        low, beyond = float(dens[i]), int(np.sum(logs > xs[i]))
        if dens[j] >= 1.3 * low and dens[j] - low >= 0.2 and beyond >= 3:
            best = float(xs[i])
            break
    return best


def _mixture_split(logs: np.ndarray, mode: float, sd: float, iters: int = 100) -> float | None:
    """Where a 2-Gaussian mixture (EM from the negative mode and the tail above mode + 3 SD) calls a
    cell as likely positive as negative; None unless the components are well apart (Ashman's D >= 2)
    and the positive one holds at least 3 cells. For a positive population hiding in the negatives'
    tail (CD8_CD3HI among CD8+ cells), where the density has no valley."""
    logs = logs[logs > mode - 4 * sd]  # far-off dim cells are not the negatives being modelled
    tail = logs[logs > mode + 3 * sd]
    if tail.size < 3:
        return None
    w = np.array([1 - tail.size / logs.size, tail.size / logs.size])
    mu = np.array([mode, float(np.median(tail))])
    sg = np.array([sd, max(float(np.std(tail)), sd)])
    for _ in range(iters):
        dens = w / sg * np.exp(-0.5 * ((logs[:, None] - mu) / sg) ** 2)
        resp = dens / np.maximum(dens.sum(axis=1, keepdims=True), 1e-300)
        nk = resp.sum(axis=0)
        if nk.min() < 0.5:
            return None
        w, mu = nk / nk.sum(), (resp * logs[:, None]).sum(axis=0) / nk
        sg = np.sqrt((resp * (logs[:, None] - mu) ** 2).sum(axis=0) / nk).clip(0.01)
    ashman = np.sqrt(2) * abs(mu[1] - mu[0]) / np.sqrt(sg[0] ** 2 + sg[1] ** 2)
    if mu[1] <= mu[0] or ashman < 2.0 or nk[1] < 3:
        return None
    xs = np.linspace(mu[0], mu[1], 400)
    d0 = w[0] / sg[0] * np.exp(-0.5 * ((xs - mu[0]) / sg[0]) ** 2)
    d1 = w[1] / sg[1] * np.exp(-0.5 * ((xs - mu[1]) / sg[1]) ** 2)
    cross = np.flatnonzero(d1 >= d0)
    return max(float(xs[cross[0]]), mode + 3 * sd) if cross.size else None


def suggest_one(values: np.ndarray) -> Suggestion | None:
    """Suggested threshold for one marker's cell means (None below :data:`MIN_CELLS` cells)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size < MIN_CELLS:
        return None
    logs = np.log10(v)
    mode, sd = _negative_mode(logs)
    t = _valley(logs, mode, sd)
    if t is not None:
        return Suggestion(float(round(10**t)), float(10**mode), sd, "valley above the negatives", int(v.size))
    t = _mixture_split(logs, mode, sd)
    if t is not None:
        return Suggestion(float(round(10**t)), float(10**mode), sd, "mixture above the negatives", int(v.size))
    # no positive population: the negatives' right tail (autofluorescence, spill-over) is heavier
    # than their left side says, so call at most the brightest 0.5 % of cells
    t = max(mode + 4 * sd, float(np.percentile(logs, 100 - NO_POSITIVES_PERCENT)))
    return Suggestion(float(round(10**t)), float(10**mode), sd, NO_POSITIVES, int(v.size))


def _values(cells: pd.DataFrame, key: str, cd8: float) -> np.ndarray:
    if key in ("cd20", "cd8"):
        return cells[f"mean_{key}"].to_numpy()
    cd8_pos = cells["mean_cd8"].to_numpy() >= cd8
    cd3 = cells["mean_cd3"].to_numpy()
    return cd3[cd8_pos] if key == "cd3_hi" else cd3[~cd8_pos]


def suggest_thresholds(cells: pd.DataFrame, current: Thresholds) -> dict[str, Suggestion | None]:
    """Suggestion per key of :class:`Thresholds` (None where there are too few cells).

    CD8+ for the AF750 split uses the suggested ``cd8`` (the current one when none)."""
    out: dict[str, Suggestion | None] = {}
    for key in ("cd20", "cd8"):
        out[key] = suggest_one(_values(cells, key, current.cd8))
    cd8 = out["cd8"].threshold if out["cd8"] is not None else current.cd8
    for key in ("cd3", "cd3_hi"):
        out[key] = suggest_one(_values(cells, key, cd8))
    hi, lo3 = out["cd3_hi"], out["cd3"]
    if hi is not None and lo3 is not None:
        cd3_neg8 = _values(cells, "cd3", cd8)
        cd3_pos = cd3_neg8[cd3_neg8 >= lo3.threshold]
        # CD8_CD3HI cells carry as much CD3 as CD3 cells, so a split above the CD3 cells' median
        # cuts through the CD8_CD3HI cells (a dip inside a handful of them passed for a valley: a
        # realistic phantom's 11 CD8_CD3HI cells, split at 3753 where the CD3 cells sit at ~3000,
        # left 7 of them CD8_CD3LO)
        too_high = cd3_pos.size >= MIN_CELLS and hi.threshold > float(np.median(cd3_pos))
        if hi.method == NO_POSITIVES or too_high:
            out["cd3_hi"] = _cd3_hi_from_cd3(hi, cd3_neg8, lo3.threshold)
    return out


def _cd3_hi_from_cd3(lo: Suggestion, cd3_values: np.ndarray, cd3: float) -> Suggestion:
    """``cd3_hi`` when the few CD8_CD3HI cells make no population of their own among CD8+ cells:
    they carry as much CD3 as CD3 cells, so the split is where a Gaussian (log10) of the CD8_CD3LO
    cells (the mode and spread found) meets one of the CD3+ CD8- cells, at equal height."""
    pos = np.log10(cd3_values[(cd3_values >= cd3) & (cd3_values > 0)])
    if pos.size < MIN_CELLS:
        return lo
    m0, s0 = np.log10(lo.negative_mode), lo.negative_sd_log
    m1 = float(np.median(pos))
    s1 = max(0.01, 1.4826 * float(np.median(np.abs(pos - m1))))
    if m1 <= m0:
        return lo
    xs = np.linspace(m0, m1, 400)
    d0 = np.exp(-0.5 * ((xs - m0) / s0) ** 2) / s0
    d1 = np.exp(-0.5 * ((xs - m1) / s1) ** 2) / s1
    t = float(xs[np.argmax(d1 >= d0)])
    return Suggestion(float(round(10**t)), lo.negative_mode, s0, "between CD8_CD3LO and CD3 cells", lo.n_cells)


def suggested_values(sugg: dict[str, Suggestion | None]) -> dict[str, float]:
    """The thresholds of a suggestion dict (keys without a suggestion left out)."""
    return {k: s.threshold for k, s in sugg.items() if s is not None}


def text_histogram(values: np.ndarray, marks: dict[str, float], bins: int = 24, width: int = 50) -> str:
    """A log10-binned histogram as text lines, marking the bins that hold each threshold."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return "  (no cells with a positive mean)"
    lo, hi = np.log10(v.min()), np.log10(v.max())
    for m in marks.values():
        if m and m > 0:
            lo, hi = min(lo, np.log10(m)), max(hi, np.log10(m))
    hi = max(hi, lo + 1e-3)
    edges = np.linspace(lo, hi * (1 + 1e-9), bins + 1)
    counts, _ = np.histogram(np.log10(v), bins=edges)
    scale = width / max(1, counts.max())
    lines = []
    for k in range(bins):
        a, b = 10 ** edges[k], 10 ** edges[k + 1]
        here = [f"{name} {m:.0f}" for name, m in marks.items() if m and a <= m < b]
        bar = "#" * int(round(counts[k] * scale))
        note = f"  <- {', '.join(here)}" if here else ""
        lines.append(f"  {a:>9.0f}-{b:<9.0f} {counts[k]:>7d} {bar}{note}")
    return "\n".join(lines)


def calibration_report(
    cells: pd.DataFrame, current: Thresholds, per_slide: dict[str, pd.DataFrame] | None = None
) -> tuple[str, dict[str, Suggestion | None]]:
    """Readable report: per marker the pooled histogram, current and suggested thresholds, positives,
    and one line per slide with its own suggestion. Returns the text and the pooled suggestions."""
    sugg = suggest_thresholds(cells, current)
    per = {name: suggest_thresholds(df, current) for name, df in (per_slide or {}).items()}
    parts = [
        f"Suggested thresholds from {len(cells)} cells"
        + (f" of {len(per)} slides/tiles pooled" if len(per) > 1 else "")
        + ": negative population (mode and left-side SD of log10 cell means), threshold at the density "
        "valley above mode + 3 SD. Check them against the QC mosaics and histograms before use.",
    ]
    cd8 = sugg["cd8"].threshold if sugg["cd8"] is not None else current.cd8
    for key in KEYS:
        vals = _values(cells, key, cd8)
        cur = float(getattr(current, key))
        s = sugg[key]
        s_txt = "n/a (too few cells)" if s is None else (
            f"{s.threshold:.0f} ({int((vals >= s.threshold).sum())} positive; {s.method}; "
            f"negatives around {s.negative_mode:.0f})"
        )
        parts.append(
            f"\n{_MARKER_LABEL[key]}: {len(vals)} cells; current {cur:.0f} ({int((vals >= cur).sum())} positive); "
            f"suggested {s_txt}"
        )
        parts.append(text_histogram(vals, {"current": cur, "suggested": s.threshold if s else 0.0}))
        if len(per) > 1:
            vals_per = [f"{name}: {own.threshold:.0f}" if (own := p[key]) else f"{name}: n/a" for name, p in per.items()]
            parts.append("  per slide: " + "; ".join(vals_per))
    return "\n".join(parts), sugg


def write_histograms(
    cells: pd.DataFrame,
    current: Thresholds,
    sugg: dict[str, Suggestion | None],
    out_dir: str | Path,
    per_slide: dict[str, pd.DataFrame] | None = None,
    size: tuple[int, int] = (720, 320),
) -> list[Path]:
    """One PNG per marker (``hist-<key>.png``): log10 histogram of the pooled cell means with the
    current threshold (grey), the suggestion (red) and each slide's own suggestion (thin orange)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    width, height = size
    left, right, top, bottom = 50, 14, 36, 40
    cd8_suggestion = sugg.get("cd8")
    cd8 = cd8_suggestion.threshold if cd8_suggestion else current.cd8
    per = {name: suggest_thresholds(df, current) for name, df in (per_slide or {}).items()}
    written = []
    for key in KEYS:
        v = _values(cells, key, cd8)
        v = v[np.isfinite(v) & (v > 0)]
        img = Image.new("RGB", size, (255, 255, 255))
        draw = ImageDraw.Draw(img)
        s = sugg.get(key)
        title = f"{_MARKER_LABEL[key]}: {v.size} cells; current {getattr(current, key):.0f}"
        title += f", suggested {s.threshold:.0f} ({s.method})" if s else ", no suggestion"
        draw.text((left, 8), title, fill=(0, 0, 0))
        if v.size:
            marks = [float(getattr(current, key))] + ([s.threshold] if s else [])
            lo = min(np.log10(v.min()), *np.log10(marks)) - 0.05
            hi = max(np.log10(v.max()), *np.log10(marks)) + 0.05
            counts, edges = np.histogram(np.log10(v), bins=80, range=(lo, hi))
            pw, ph = width - left - right, height - top - bottom
            scale = ph / max(1, counts.max())

            def x_of(val: float, lo: float = lo, hi: float = hi, pw: int = pw) -> float:
                return left + (np.log10(val) - lo) / (hi - lo) * pw

            for k, c in enumerate(counts):
                x0 = left + k * pw / len(counts)
                draw.rectangle([x0, top + ph - c * scale, x0 + pw / len(counts) - 1, top + ph], fill=(90, 110, 160))
            draw.line([left, top + ph, left + pw, top + ph], fill=(0, 0, 0))
            for dec in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
                for m in (1, 2, 5):
                    val = m * 10.0**dec
                    if lo <= np.log10(val) <= hi:
                        xv = x_of(val)
                        draw.line([xv, top + ph, xv, top + ph + 4], fill=(0, 0, 0))
                        draw.text((xv - 12, top + ph + 6), f"{val:g}", fill=(0, 0, 0))
            for p in per.values():
                own = p.get(key)
                if own and lo <= np.log10(own.threshold) <= hi:
                    xv = x_of(own.threshold)
                    draw.line([xv, top, xv, top + ph], fill=(255, 160, 0), width=1)
            xc = x_of(float(getattr(current, key)))
            draw.line([xc, top, xc, top + ph], fill=(128, 128, 128), width=3)
            if s:
                xs = x_of(s.threshold)
                draw.line([xs, top, xs, top + ph], fill=(220, 0, 0), width=3)
            draw.text((left, height - 14), "cell mean (log scale). grey: current, red: suggested (pooled), "
                      "orange: per slide", fill=(60, 60, 60))
        path = out / f"hist-{key}.png"
        img.save(path)
        written.append(path)
    return written


def unique_path(path: Path) -> Path:
    """``path``, or ``name-2.png``, ``name-3.png``… if it exists: QC pictures are never overwritten."""
    if not path.exists():
        return path
    k = 2
    while (alt := path.with_name(f"{path.stem}-{k}{path.suffix}")).exists():
        k += 1
    return alt


def _display(a: np.ndarray, hi: float) -> np.ndarray:
    return (np.clip(a / max(hi, 1e-6), 0, 1) * 255).astype(np.uint8)


def write_qc_mosaics(
    slide: Slide,
    cells: pd.DataFrame,
    cfg: LabelConfig,
    channels: dict[str, int],
    hoechst_threshold: float,
    out_dir: str | Path,
    per_class: int = 24,
    window_um: float = 16.0,
    seed: int = 0,
    slide_name: str = "",
    note: str = "",
) -> list[Path]:
    """One PNG per class of this slide (``qc-<slide>-<class>.png``, never overwritten): sampled cells
    as strips Hoechst | CD20 | CD8 | CD3 with the cell outline in the class colour, titled with the
    slide, class, thresholds and ``note`` (e.g. a low-contrast warning).

    Marker panels are scaled 0 → 2× the threshold, so a cell exactly at threshold is mid-grey:
    positives look bright, negatives dark, and borderline cells are easy to spot by eye.
    ``hoechst_threshold``: the nucleus threshold on background-subtracted Hoechst.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mpp = float(np.mean(slide.require_mpp()))
    win = int(round(window_um / mpp)) | 1
    half = win // 2
    scale = max(1, 64 // win + 1)
    rng = np.random.default_rng(seed)
    order = [channels[r] for r in CHANNEL_ROLES]
    t = cfg.thresholds
    ranges = {"cd20": 2 * t.cd20, "cd8": 2 * t.cd8, "cd3": 2 * t.cd3}
    written = []
    for cid, name in enumerate(CLASS_NAMES):
        sub = cells[cells["class_id"] == cid]
        if len(sub) == 0:
            continue
        pick = sub.iloc[np.sort(rng.choice(len(sub), size=min(per_class, len(sub)), replace=False))]
        strips = []
        colour = tuple(int(CLASS_COLOURS[cid][i : i + 2], 16) for i in (1, 3, 5))
        for _, row in pick.iterrows():
            x, y = int(round(row["x_px"])), int(round(row["y_px"]))
            ctx = max(half, int(round(30.0 / mpp)))  # segment with context: the background needs ~40 µm
            big = slide.read_region((x - ctx, y - ctx), 0, (2 * ctx + 1, 2 * ctx + 1), channels=order).astype(np.float32)
            crop = (slice(None), slice(ctx - half, ctx - half + win), slice(ctx - half, ctx - half + win))
            stack = big[crop]
            nuc = segment_nuclei(big[0], mpp, cfg.segmentation, hoechst_threshold)[crop[1:]]
            cell = expand_labels(nuc, distance=max(0, int(round(cfg.segmentation.cell_expansion_um / mpp))))
            outline = find_boundaries(cell == cell[half, half], mode="inner") if cell[half, half] else None
            hmax = float(np.percentile(stack[0], 99.5)) or 1.0
            panels = [_display(stack[0], hmax)] + [_display(stack[1 + k], ranges[r]) for k, r in enumerate(MARKER_ROLES)]
            rgb = [np.repeat(p[..., None], 3, axis=2) for p in panels]
            if outline is not None:
                for p in rgb:
                    p[outline] = colour
            strip = np.concatenate([np.pad(p, ((1, 1), (1, 1), (0, 0)), constant_values=40) for p in rgb], axis=1)
            strips.append(np.kron(strip, np.ones((scale, scale, 1), dtype=np.uint8)))
        cols = 3
        rows = [strips[i : i + cols] for i in range(0, len(strips), cols)]
        sh, sw = strips[0].shape[:2]
        grid = np.full((len(rows) * (sh + 4) + 36, cols * (sw + 8), 3), 20, dtype=np.uint8)
        for r, row_strips in enumerate(rows):
            for c, s in enumerate(row_strips):
                grid[36 + r * (sh + 4) : 36 + r * (sh + 4) + sh, c * (sw + 8) : c * (sw + 8) + sw] = s
        grid = np.concatenate([np.full((16 if note else 0, grid.shape[1], 3), 20, np.uint8), grid])
        if grid.shape[1] < 420:
            grid = np.pad(grid, ((0, 0), (0, 420 - grid.shape[1]), (0, 0)), constant_values=20)
        img = Image.fromarray(grid)
        draw = ImageDraw.Draw(img)
        draw.text((4, 4), f"{slide_name or slide.path.name} - {name}: {len(pick)} of {len(sub)} cells", fill=(255, 255, 255))
        draw.text((4, 20 if not note else 36), f"Hoechst | CD20 | CD8 | CD3, 0-2x threshold (CD20 {t.cd20:.0f}, "
                  f"CD8 {t.cd8:.0f}, CD3 {t.cd3:.0f}, CD3 hi {t.cd3_hi:.0f})", fill=(200, 200, 200))
        if note:
            draw.text((4, 20), note, fill=(255, 90, 90))
        safe = "".join(ch if ch.isalnum() or ch in "-_.=,[]" else "_" for ch in (slide_name or slide.path.stem))
        path = unique_path(out / f"qc-{safe}-{name}.png")
        img.save(path)
        written.append(path)
    return written
