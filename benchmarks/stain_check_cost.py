"""What the nucleus stain check (``AnalysisParams.nucleus_stain_ratio``) costs the pipeline, with the
model taken out: the instant stand-in model, the same slide analysed with the check off and on in
interleaved rounds; prints the wall time, cells and per-stage ms per tile of each run.

    .venv/bin/python benchmarks/stain_check_cost.py --slide <phantom>/hoechst.ome.tif [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from core.engine import AnalysisParams, analyse_slide
from core.engine.standin import standin_model
from core.models import ModelCard
from core.progress import run_to_completion
from core.slides import open_slide


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slide", type=Path, required=True, help="a Hoechst slide, e.g. a phantom's hoechst.ome.tif")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    model = standin_model(ModelCard(name="standin", synthetic=True))
    for _ in range(args.rounds):
        for ratio in (0.0, AnalysisParams().nucleus_stain_ratio):
            with open_slide(args.slide) as slide:
                t0 = time.perf_counter()
                result = run_to_completion(analyse_slide(slide, model, AnalysisParams(nucleus_stain_ratio=ratio)))
                seconds = time.perf_counter() - t0
            stages = ", ".join(f"{k} {v:.2f}" for k, v in result.summary.stage_ms_per_tile.items())
            print(f"stain check {'on ' if ratio else 'off'}: {seconds:.2f} s, {result.summary.tiles_analysed} tiles, "
                  f"{len(result.cells)} cells; ms/tile: {stages}", flush=True)


if __name__ == "__main__":
    main()
