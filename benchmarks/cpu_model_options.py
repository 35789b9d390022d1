"""Model-only CPU options for the U-Net (resnet34, 256² tiles): memory format, threads, bf16, compile.

Options are measured interleaved, round by round, and the best round of each is reported, so a
load spike from another program on a shared machine hits all options alike. Random weights
(speed does not depend on them). Prints seconds per tile.

Run: .venv/bin/python benchmarks/cpu_model_options.py [--rounds 3] [--bf16] [--compile]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from core.models import ModelCard, build_model


def per_tile(fn: Callable[[torch.Tensor], object], x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    fn(x)
    return (time.perf_counter() - t0) / x.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--bf16", action="store_true", help="also bf16 autocast (slow without AMX/AVX512-BF16)")
    ap.add_argument("--compile", action="store_true", help="also torch.compile (takes a minute or more)")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(ModelCard(name="bench")).eval()
    cl = build_model(ModelCard(name="bench")).eval().to(memory_format=torch.channels_last)
    cl.load_state_dict(model.state_dict())
    x = torch.rand(args.batch_size, 1, 256, 256)
    xc = x.contiguous(memory_format=torch.channels_last)

    def run(m: torch.nn.Module, dtype: torch.dtype | None = None) -> Callable[[torch.Tensor], object]:
        def f(t: torch.Tensor) -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                return m(t)

        return f

    options: dict[str, tuple[Callable[[torch.Tensor], object], torch.Tensor, int]] = {
        "fp32 contiguous, 2 threads": (run(model), x, 2),
        "fp32 channels_last, 2 threads": (run(cl), xc, 2),
        "fp32 channels_last, 1 thread": (run(cl), xc, 1),
    }
    if args.bf16:
        options["bf16 autocast channels_last, 2 threads"] = (run(cl, torch.bfloat16), xc, 2)
    extra = {}
    if args.compile:
        torch.set_num_threads(2)
        compiled = torch.compile(cl)
        t0 = time.perf_counter()
        run(compiled)(xc)
        extra["compile_seconds"] = round(time.perf_counter() - t0, 1)
        options["fp32 channels_last torch.compile, 2 threads"] = (run(compiled), xc, 2)
    for fn, inp, threads in options.values():  # warm-up (oneDNN primitive creation)
        torch.set_num_threads(threads)
        fn(inp)
    best = {k: float("inf") for k in options}
    for _ in range(args.rounds):
        for name, (fn, inp, threads) in options.items():
            torch.set_num_threads(threads)
            best[name] = min(best[name], per_tile(fn, inp))
    for name, s in best.items():
        print(f"{name:48s} {s:.3f} s/tile")
    print(json.dumps({**{k: round(v, 4) for k, v in best.items()}, **extra}))


if __name__ == "__main__":
    main()
