"""How responsive the app stays: event-loop stalls during an analysis, frame times while panning.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/app_responsiveness.py [--size 8192]``

1. Writes a large synthetic pyramidal OME-TIFF (4 channels, uint16) and 500k random cells.
2. Frame time: pans the SlideView step by step at several zooms and times each synchronous
   repaint (tiles from the cache or coarser ones underneath, plus the cell overlay).
3. Stall: a QTimer probe ticks every 5 ms while the analysis (core.engine.analyse_slide with a
   random-weights resnet18 U-Net) runs on the app's worker thread and the view keeps panning; the
   longest gap between ticks, minus 5 ms, is the worst stall the user would feel.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app  # noqa: E402,F401  (installs the PySide6 refcount guard first)


def write_slide(path: Path, size: int, mpp: float = 0.227) -> Path:
    """A synthetic 4-channel uint16 pyramidal OME-TIFF: noise with a bright disc of "tissue".

    Up to 8192² it is built in memory; larger slides (40000² is 12.8 GB of pixels per level 0) are
    written tile by tile from a small pool of noise tiles, so memory stays flat.
    """
    if size > 8192:
        return _write_slide_tiled(path, size, mpp)
    import tifffile

    rng = np.random.default_rng(0)
    base = rng.normal(400, 60, (4, size, size)).clip(0, 65535).astype(np.uint16)
    yy, xx = np.mgrid[0:size:64, 0:size:64]
    tissue = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (0.4 * size) ** 2).repeat(64, 0).repeat(64, 1)
    base[0] += (tissue[:size, :size] * 2500).astype(np.uint16)
    levels = [base]
    while levels[-1].shape[1] > 512:
        levels.append(levels[-1][:, ::2, ::2].copy())
    meta = {"axes": "CYX", "Channel": {"Name": ["Hoechst", "FITC", "Cy3", "AF750"]},
            "PhysicalSizeX": mpp, "PhysicalSizeY": mpp}
    res = (1e4 / mpp, 1e4 / mpp)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(levels[0], tile=(256, 256), subifds=len(levels) - 1, metadata=meta, resolution=res,
                  resolutionunit="CENTIMETER", photometric="minisblack")
        for i, lv in enumerate(levels[1:], 1):
            tif.write(lv, tile=(256, 256), subfiletype=1, resolution=(res[0] / 2**i, res[1] / 2**i),
                      resolutionunit="CENTIMETER", photometric="minisblack")
    return path


def _write_slide_tiled(path: Path, size: int, mpp: float) -> Path:
    """:func:`write_slide` for big slides: tiles streamed to tifffile, zlib level 1."""
    import tifffile

    tile = 256
    rng = np.random.default_rng(0)
    pool = rng.normal(400, 60, (16, tile, tile)).clip(0, 65535).astype(np.uint16)
    centre, radius = size / 2, 0.4 * size
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)

    def tiles(level: int, shape: tuple[int, int]):  # noqa: ANN202 (generator of (256, 256) uint16)
        f = 2**level
        for c in range(4):
            for ty in range(0, shape[0], tile):
                for tx in range(0, shape[1], tile):
                    t = pool[(tx // tile * 7 + ty // tile * 3 + c) % len(pool)].copy()
                    if c == 0:  # the disc of tissue in the Hoechst channel, in level-0 coordinates
                        d2 = ((xx + tx) * f - centre) ** 2 + ((yy + ty) * f - centre) ** 2
                        t[d2 < radius**2] += 2500
                    yield t

    shapes = [(size, size)]
    while shapes[-1][1] > 512:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    meta = {"axes": "CYX", "Channel": {"Name": ["Hoechst", "FITC", "Cy3", "AF750"]},
            "PhysicalSizeX": mpp, "PhysicalSizeY": mpp}
    res = (1e4 / mpp, 1e4 / mpp)
    common = {"dtype": "uint16", "tile": (tile, tile), "photometric": "minisblack", "compression": "zlib",
              "compressionargs": {"level": 1}, "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(tiles(0, shapes[0]), shape=(4, *shapes[0]), subifds=len(shapes) - 1, metadata=meta,
                  resolution=res, **common)
        for i, shape in enumerate(shapes[1:], 1):
            tif.write(tiles(i, shape), shape=(4, *shape), subfiletype=1,
                      resolution=(res[0] / 2**i, res[1] / 2**i), **common)
    return path


def random_model(directory: Path) -> Path:
    import torch

    from core.models import ModelCard, build_model, save_model

    torch.manual_seed(0)
    card = ModelCard(name="random-bench", encoder="resnet18", mpp=0.227, patch_size=256, synthetic=True)
    module = build_model(card)
    with torch.no_grad():  # background never wins: random "cells" everywhere, so blocks carry many cells
        module.segmentation_head[0].bias[0] = -20.0
    save_model(module, card, directory)
    return directory


class StallProbe:
    """Ticks every ``interval_ms``; records the gaps between ticks (ms)."""

    def __init__(self, interval_ms: int = 5) -> None:
        from PySide6.QtCore import QTimer

        self.interval = interval_ms
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self._last) * 1000)
        self._last = now

    def worst_stall_ms(self) -> float:
        return max(0.0, max(self.gaps, default=0.0) - self.interval)


def pump(ms: float) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(ms), loop.quit)
    loop.exec()


def pan_frames(view, steps: int = 40, dx: int = 40) -> list[float]:  # noqa: ANN001
    """Pan ``steps`` times by ``dx`` screen px and time each synchronous repaint (ms)."""
    times = []
    bar = view.horizontalScrollBar()
    for i in range(steps):
        bar.setValue(bar.value() + (dx if (i // 20) % 2 == 0 else -dx))
        t = time.perf_counter()
        view.viewport().repaint()
        times.append((time.perf_counter() - t) * 1000)
        pump(2)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--cells", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to probe during the analysis")
    parser.add_argument("--zooms", type=float, nargs="*", default=[0.25, 1.0, 4.0],
                        help="zooms to pan at, after the whole-slide fit (screen px per level-0 px)")
    parser.add_argument("--cells-per-block", type=int, default=4000,
                        help="cells added to the view per finished block when the random model finds none")
    parser.add_argument("--slide", type=Path, default=None, help="reuse a slide written by an earlier run")
    args = parser.parse_args()
    from PySide6.QtCore import QObject, Slot
    from PySide6.QtWidgets import QApplication

    from app.viewer import SlideView
    from app.workers import JobRunner
    from core.slides import open_slide

    qapp = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="hs-bench-"))
    t = time.perf_counter()
    slide_file = args.slide or write_slide(tmp / "bench.ome.tif", args.size)
    slide = open_slide(slide_file)
    args.size = slide.dimensions[0]
    print(f"slide {slide.dimensions} levels {slide.level_count} written in {time.perf_counter() - t:.1f} s")
    view = SlideView()
    view.resize(1600, 1000)
    view.show()
    view.open_slide(slide)
    rng = np.random.default_rng(1)
    view.cells.set_cells(rng.uniform(0, args.size, args.cells), rng.uniform(0, args.size, args.cells),
                         rng.integers(1, 5, args.cells))
    pump(1500)
    fit = view.zoom
    print(f"\nFrame time while panning ({args.cells:,} cells shown):")
    for zoom in (fit, *args.zooms):
        view.set_zoom(zoom, view.visible_rect().center())
        pump(1500)  # let the tiles of this zoom arrive
        frames = pan_frames(view)
        print(f"  zoom {zoom:6.3f} (level {view.level_for_zoom()}): median {statistics.median(frames):6.1f} ms, "
              f"p95 {sorted(frames)[int(0.95 * len(frames)) - 1]:6.1f} ms, max {max(frames):6.1f} ms, "
              f"cells drawn {view.cells.last_drawn:,}")

    from app.analysis_job import engine_params
    from core.engine import analyse_slide
    from core.models.runtime import load_model

    model = load_model(random_model(tmp / "model"), device="cpu")
    analysis_slide = open_slide(slide_file)

    def factory(cancel):  # noqa: ANN001, ANN202
        return analyse_slide(analysis_slide, model, engine_params(), cancel=cancel)

    from core.engine import BlockDone

    streamed = [0]

    class CellFeed(QObject):
        """Adds each finished block's cells to the view, as the app's main window does."""

        @Slot(object)
        def on_progress(self, p: object) -> None:
            if not isinstance(p, BlockDone):
                return
            if len(p.cells):
                x, y, c = p.cells["x_px"].to_numpy(), p.cells["y_px"].to_numpy(), p.cells["class_id"].to_numpy()
            else:  # the random model finds no cell-sized blobs: stand in for a trained model's block
                k = args.cells_per_block
                x, y, c = rng.uniform(0, args.size, k), rng.uniform(0, args.size, k), rng.integers(1, 5, k)
            view.cells.add_cells(x, y, c)
            streamed[0] += len(x)

    runner = JobRunner(factory)
    feed = CellFeed()
    runner.worker.progress.connect(feed.on_progress)
    probe = StallProbe()
    probe.start()
    runner.start()
    view.set_zoom(0.5, view.visible_rect().center())
    frames: list[float] = []
    t0 = time.perf_counter()
    while runner.running and time.perf_counter() - t0 < args.seconds:
        frames += pan_frames(view, steps=20)
    probe.timer.stop()  # before cancelling: waiting for the worker to stop is not a UI stall
    elapsed = time.perf_counter() - t0
    t_cancel = time.perf_counter()
    runner.cancel()
    runner.wait(60000)
    print(f"\ncancel honoured in {time.perf_counter() - t_cancel:.1f} s")
    gaps = sorted(probe.gaps)
    print(f"During the analysis ({elapsed:.0f} s, worker thread, panning at zoom 0.5):")
    print(f"  longest event-loop stall {probe.worst_stall_ms():.1f} ms; probe gap p99 "
          f"{gaps[int(0.99 * len(gaps)) - 1]:.1f} ms over {len(gaps)} ticks")
    print(f"  frame time median {statistics.median(frames):.1f} ms, max {max(frames):.1f} ms; "
          f"{streamed[0]:,} cells streamed into the view from finished blocks")
    import resource

    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    view.close_slide()
    analysis_slide.close()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)  # the written slide (up to GBs) and the model
    del qapp
    return 0


if __name__ == "__main__":
    sys.exit(main())
