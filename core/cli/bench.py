"""``python -m core bench``: model-only vs end-to-end throughput on a phantom slide.

Prints one line per precision the device can use, then ONE JSON object on the last line
(model_tiles_per_s, pipeline_tiles_per_s, efficiency, peak_rss_mb, device, precision, ...) for
the precision the engine would choose by itself. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.args import (
    existing_dir,
    existing_file,
    non_negative_int,
    output_dir,
    positive_float,
    positive_int,
)
from core.engine.params import AnalysisParams
from core.models.card import PRECISIONS
from core.models.precision import RUNTIMES

if TYPE_CHECKING:
    import torch


def register(subparsers: argparse._SubParsersAction) -> None:
    d = AnalysisParams()
    p = subparsers.add_parser(
        "bench",
        help="measure model and pipeline throughput on a synthetic slide",
        description="Benchmark the analysis engine on a phantom slide (generated once into a cache "
        "directory). The last line of output is one JSON object.",
    )
    p.add_argument("--size", type=positive_int, default=4096, help="phantom side in pixels (default 4096)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="phantom seed (default 0)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA if available")
    p.add_argument("--model", type=existing_dir, default=None,
                   help="model directory (default: the demo model; random weights if it is not installed)")
    p.add_argument("--precision", default=None,
                   help=f"comma-separated precisions to measure ({', '.join(PRECISIONS)}); default: those the device runs natively")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size, help=f"tiles per model call (default {d.batch_size})")
    p.add_argument("--threads", type=positive_int, default=None, help="PyTorch CPU threads (default: PyTorch's choice)")
    p.add_argument("--reader-threads", type=non_negative_int, default=d.reader_threads, help="tile reader threads")
    p.add_argument("--extract-workers", type=non_negative_int, default=d.extract_workers, dest="extract_workers",
                   help=f"cell extraction threads (default {d.extract_workers})")
    p.add_argument("--model-tiles", type=positive_int, default=48, help="tiles for the model-only measurement")
    p.add_argument("--cache", type=output_dir, default=None, help="where phantoms are kept (default: user cache dir)")
    p.add_argument("--slide", type=existing_file, default=None, help="benchmark this slide instead of a phantom")
    p.add_argument("--runtime", choices=RUNTIMES, default="torch",
                   help="CPU inference runtime for fp32 (default torch; auto: ONNX Runtime when installed)")
    p.add_argument("--stand-in", choices=("instant", "sleep", "compute"), default=None, dest="stand_in",
                   help="replace the model by a stand-in of the same output shape (fp32, CPU): 'instant' "
                   "measures the pipeline's own ceiling; 'sleep' and 'compute' cost --stand-in-ms per tile")
    p.add_argument("--stand-in-ms", type=positive_float, default=13.0, dest="stand_in_ms",
                   help="ms per tile of the 'sleep'/'compute' stand-in (default 13)")
    p.set_defaults(func=run)


def _phantom(size: int, seed: int, cache: Path) -> Path:
    from core.phantom import PhantomParams, generate_phantom
    from core.progress import run_to_completion

    out = cache / f"phantom-{size}-seed{seed}"
    slide = out / "hoechst.ome.tif"
    if not (out / "phantom.json").exists() or not slide.exists():
        print(f"generating a {size}x{size} phantom in {out} (once)", file=sys.stderr)
        run_to_completion(generate_phantom(PhantomParams(size=size, seed=seed), out))
    return slide


def _precisions(arg: str | None, device: torch.device) -> list[str]:
    import torch

    from core.models.precision import cpu_bf16_support

    if arg:
        return [p.strip() for p in arg.split(",") if p.strip()]
    if device.type == "cuda":
        return ["fp32", *(["bf16"] if torch.cuda.is_bf16_supported() else []), "fp16"]
    return ["fp32", *(["bf16"] if cpu_bf16_support()[0] else [])]


def run(args: argparse.Namespace) -> int:
    # Heavy imports live here so that `python -m core --help` answers at once.
    import platformdirs
    import torch

    from core.engine.bench import benchmark
    from core.errors import ModelLoadError
    from core.models import ModelCard, build_model, save_model
    from core.models.onnx_runtime import with_runtime
    from core.models.runtime import default_model_dir, load_model, resolve_device
    from core.slides import open_slide

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cache = args.cache or Path(platformdirs.user_cache_dir("HoechstScore")) / "bench"
    slide_path = args.slide or _phantom(args.size, args.seed, cache)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or default_model_dir()
        weights = "trained"
        if args.model is None and not (model_dir / "model.json").exists():
            torch.manual_seed(0)  # speed does not depend on the weights
            card = ModelCard(name="random-unet-resnet34", synthetic=True, description="benchmark only")
            save_model(build_model(card), card, tmp)
            model_dir, weights = Path(tmp), "random (no demo model installed; speed only)"
        auto = load_model(model_dir, device=device, precision=None if args.stand_in is None else "fp32")
        if args.stand_in is not None:
            from core.engine.standin import standin_model

            auto = standin_model(auto.card, args.stand_in, args.stand_in_ms)
            weights = auto.precision_reason
        print(f"slide {slide_path} | model {auto.card.name} ({weights}) | torch threads "
              f"{torch.get_num_threads()} | automatic precision: {auto.precision_reason} | "
              f"load average {os.getloadavg()[0]:.2f}")
        params = AnalysisParams(batch_size=args.batch_size, reader_threads=args.reader_threads,
                                extract_workers=args.extract_workers)
        results = []
        with open_slide(slide_path) as slide:
            for precision in ["fp32"] if args.stand_in else _precisions(args.precision, device):
                try:
                    model = auto if precision == auto.precision else load_model(model_dir, device, precision)
                    if args.stand_in is None:
                        model = with_runtime(model, args.runtime)
                except ModelLoadError as err:
                    print(f"{device.type} {precision}: skipped ({err})")
                    continue
                res = benchmark(slide, model, params, model_tiles=args.model_tiles)
                print(res.line(), flush=True)
                results.append(res)
    if not results:
        print(json.dumps({"error": "no precision could be measured"}))
        return 1
    main = next((r for r in results if r.precision == auto.precision), results[0])
    summary = {
        **dataclasses.asdict(main),
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "reader_threads": args.reader_threads,
        "extract_workers": args.extract_workers,
        "slide": str(slide_path),
        "runs": [dataclasses.asdict(r) for r in results],
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0
