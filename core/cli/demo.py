"""``python -m core demo``: make sure the demo slide exists in the user's data folder; say where.

The demo phantom is generated once (it takes a minute or two for the default 4096² slide) and
re-used by ``demo-case``, the app's "Open demo slide" and the tutorials.
"""

from __future__ import annotations

import argparse
import sys
import time

from core.cli.args import non_negative_int, output_dir, positive_int
from core.demo import DEFAULT_SEED, DEFAULT_SIZE, DEMO_MODEL, demo_dir, ensure_demo_slide, require_demo_model
from core.errors import CoreError
from core.progress import Progress, run_to_completion


class ProgressPrinter:
    """Prints a job's progress on one line per step: a new message at once, counts every few seconds."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self._last = 0.0
        self._stage = ""
        self._message = ""

    def __call__(self, p: Progress) -> None:
        stage = p.message.split(" ")[0] if p.total else p.message
        now = time.monotonic()
        final = p.total > 0 and p.done >= p.total
        if p.message == self._message or (stage == self._stage and not final and now - self._last < self.every_s):
            return
        self._stage, self._last, self._message = stage, now, p.message
        pct = f" ({100 * p.fraction:.0f}%)" if p.total > 0 else ""
        print(f"{p.message}{pct}", file=sys.stderr, flush=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="make sure the synthetic demo slide exists and print where it is",
        description="Generate the synthetic demo slide (a phantom) into the user's data folder if it is "
        "not there yet, and print its files. SYNTHETIC: it describes no patient.",
    )
    p.add_argument("--size", type=positive_int, default=DEFAULT_SIZE, help=f"slide side in pixels (default {DEFAULT_SIZE})")
    p.add_argument("--seed", type=non_negative_int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    p.add_argument("--data-dir", type=output_dir, help="folder holding demo/ (default: the user's data folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory = demo_dir(args.size, args.seed, args.data_dir)
    t0 = time.perf_counter()
    slide = run_to_completion(ensure_demo_slide(directory, args.size, args.seed), ProgressPrinter())
    made = f"generated in {time.perf_counter() - t0:.0f} s" if slide.generated else "already present, re-used"
    meta = slide.metadata
    print(f"Demo slide ({made}), SYNTHETIC: {slide.directory}")
    print(f"  Hoechst slide:   {slide.hoechst}")
    print(f"  mIF slide:       {slide.directory / 'mif.ome.tif'}")
    print(f"  tumour outline:  {slide.tumour_geojson}")
    print(f"  true cells:      {slide.directory / 'cells.csv'}")
    print(f"  metadata:        {slide.directory / 'phantom.json'}")
    print(f"  {meta['size']}×{meta['size']} px at {meta['mpp']} µm/px, seed {meta['seed']}, "
          f"IM half-width {meta['im_half_width_um']:g} µm")
    try:
        require_demo_model(DEMO_MODEL)
        print(f"Demo model: {DEMO_MODEL}. Next: python -m core demo-case --out DIR")
    except CoreError as err:
        print(f"Demo model: missing. {err}")
    return 0
