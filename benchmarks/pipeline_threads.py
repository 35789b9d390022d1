"""A/B of thread allocations for the pipeline on a small CPU: efficiency = pipeline / model-only.

On a shared 2-core machine absolute speed swings with other programs' load, so configurations
are interleaved round by round and the median of each ratio is reported. Each round, for each
(torch threads, reader threads) pair: model-only throughput on in-memory tiles, then a region
of the phantom analysed end to end (the same number of tiles, same batch size).

Run: .venv/bin/python benchmarks/pipeline_threads.py [--slide PHANTOM] [--rounds 3]
(the phantom comes from ``python -m core bench --size 4096`` or ``python -m core phantom``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from shapely.geometry import box

from core.engine import AnalysisParams, analyse_slide
from core.engine.bench import model_throughput, tissue_tiles_in_memory
from core.models import ModelCard, build_model, save_model
from core.models.runtime import load_model
from core.progress import run_to_completion
from core.slides import open_slide


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--slide", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--configs", default="2:1,2:0,1:1", help="torch_threads:reader_threads, comma-separated")
    args = ap.parse_args()
    configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",")]
    torch.manual_seed(0)
    card = ModelCard(name="random-unet-resnet34", synthetic=True)
    ratios: dict[str, list[float]] = {f"{t}:{r}": [] for t, r in configs}
    rates: dict[str, list[tuple[float, float]]] = {k: [] for k in ratios}
    with tempfile.TemporaryDirectory() as tmp, open_slide(args.slide) as slide:
        save_model(build_model(card), card, tmp)
        model = load_model(tmp, device="cpu", precision="fp32")
        w, h = slide.dimensions
        mx, my = slide.require_mpp()
        cx, cy = w * mx / 2, h * my / 2
        region = box(cx - 150, cy - 110, cx + 150, cy + 110)  # ~ 7 x 5 tiles of 43.6 µm (+ margin), in tissue
        for rnd in range(args.rounds):
            for threads, readers in configs:
                key = f"{threads}:{readers}"
                torch.set_num_threads(threads)
                params = AnalysisParams(batch_size=args.batch_size, reader_threads=readers)
                t0 = time.perf_counter()
                result = run_to_completion(analyse_slide(slide, model, params, regions_um=region))
                n = result.summary.tiles_analysed
                pipeline = n / (time.perf_counter() - t0)
                tiles = tissue_tiles_in_memory(slide, model, params, n)
                model_rate, _ = model_throughput(model, tiles, args.batch_size, 32)
                ratios[key].append(pipeline / model_rate)
                rates[key].append((model_rate, pipeline))
                print(f"round {rnd} threads {threads} readers {readers}: model {model_rate:.2f} tiles/s, "
                      f"pipeline {pipeline:.2f} tiles/s ({n} tiles), efficiency {pipeline / model_rate:.2f}", flush=True)
    summary = {
        k: {
            "median_efficiency": round(statistics.median(v), 3),
            "median_model_tiles_per_s": round(statistics.median(m for m, _ in rates[k]), 2),
            "median_pipeline_tiles_per_s": round(statistics.median(p for _, p in rates[k]), 2),
        }
        for k, v in ratios.items()
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
