"""CPU inference runtimes compared in one run on the same tiles (issue #13 item 5).

PyTorch eager fp32 (contiguous and channels_last), optionally ``torch.compile``, ONNX Runtime and
OpenVINO (fp32 inference precision, so results stay deterministic and comparable), all on the same
normalised tiles of a phantom (or random tiles), with the same thread count. Options are
measured interleaved, round by round, so a load spike from another program hits all alike; the
median round per option is reported, with the argmax-class agreement with eager fp32 on the kept
centre of every tile. An option is worth adopting at ≥ 20% faster with ≥ 99.5% agreement.

ONNX Runtime and OpenVINO are not dependencies; install them somewhere and put it on the path:

    pip install --no-deps --target /tmp/ort onnx==1.23.2 onnxruntime==1.31.1 onnxscript==0.7.2 \\
        openvino==2026.4.1 protobuf==7.36.2 ml-dtypes==0.6.0 flatbuffers==25.12.19 onnx-ir==1.1.0 \\
        openvino-telemetry==2025.2.0
    PYTHONPATH=.:/tmp/ort .venv/bin/python benchmarks/cpu_inference.py --slide <phantom>/hoechst.ome.tif
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.engine.bench import tissue_tiles_in_memory
from core.engine.params import AnalysisParams
from core.models.runtime import cpu_bf16_support, default_model_dir, load_model

Runner = Callable[[np.ndarray], np.ndarray]  # normalised batch (N,1,P,P) float32 -> logits (N,C,P,P)


def eager(module: torch.nn.Module, channels_last: bool, bf16: bool = False) -> Runner:
    m = module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x)
        t = t.contiguous(memory_format=torch.channels_last) if channels_last else t
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return m(t).float().contiguous().numpy()

    return run


def export_onnx(module: torch.nn.Module, patch: int, path: Path) -> None:
    module = module.to(memory_format=torch.contiguous_format)
    x = torch.zeros(1, 1, patch, patch)
    torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)


def onnxruntime_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


def openvino_runner(path: Path, threads: int) -> Runner:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
    })  # fmt: skip
    request = compiled.create_infer_request()
    return lambda x: np.asarray(request.infer({0: x})[compiled.output(0)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slide", type=Path, default=None, help="phantom slide (default: random tiles)")
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    ap.add_argument("--tiles", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--compile", action="store_true", help="also torch.compile (compile cost reported)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model or default_model_dir(), device="cpu", precision="fp32")
    patch, crop = model.card.patch_size, model.card.patch_size // 8
    if args.slide:
        from core.slides import open_slide

        with open_slide(args.slide) as slide:
            tiles = tissue_tiles_in_memory(slide, model, AnalysisParams(), args.tiles)
    else:
        tiles = np.random.default_rng(0).uniform(0, 1, (args.tiles, 1, patch, patch)).astype(np.float32)
    module = model.module
    options: dict[str, Runner] = {
        "torch eager fp32 contiguous": eager(module, channels_last=False),
        "torch eager fp32 channels_last (engine)": eager(module, channels_last=True),
    }
    if cpu_bf16_support()[0]:  # emulated bf16 is several times slower: only where it is native
        options["torch eager bf16 autocast channels_last"] = eager(module, channels_last=True, bf16=True)
    setup: dict[str, float] = {}
    skipped: dict[str, str] = {}
    if args.compile:
        t0 = time.perf_counter()
        compiled = torch.compile(module.to(memory_format=torch.channels_last))
        run = eager(compiled, channels_last=True)
        run(tiles[: args.batch_size])
        setup["torch.compile channels_last"] = time.perf_counter() - t0
        options["torch.compile channels_last"] = run
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        try:
            t0 = time.perf_counter()
            export_onnx(module, patch, onnx_path)
            setup["onnx export"] = time.perf_counter() - t0
        except Exception as err:  # noqa: BLE001 - report any exporter failure and go on
            skipped["onnx export"] = f"{type(err).__name__}: {err}"[:300]
        for name, make in (("onnxruntime", onnxruntime_runner), ("openvino f32", openvino_runner)):
            if not onnx_path.exists():
                break
            try:
                t0 = time.perf_counter()
                options[name] = make(onnx_path, args.threads)
                setup[name] = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001 - a runtime that is not installed is skipped
                skipped[name] = f"{type(err).__name__}: {err}"[:300]
        module.to(memory_format=torch.channels_last)
        batches = [tiles[i : i + args.batch_size] for i in range(0, len(tiles), args.batch_size)]
        reference = np.concatenate([options["torch eager fp32 channels_last (engine)"](b) for b in batches])
        ref_cls = reference[:, :, crop:-crop, crop:-crop].argmax(axis=1)
        agreement: dict[str, float] = {}
        for name, run in options.items():  # warm-up + agreement
            out = np.concatenate([run(b) for b in batches])
            agreement[name] = float(np.mean(out[:, :, crop:-crop, crop:-crop].argmax(axis=1) == ref_cls))
        times: dict[str, list[float]] = {name: [] for name in options}
        for _ in range(args.rounds):
            for name, run in options.items():
                t0 = time.perf_counter()
                for b in batches:
                    run(b)
                times[name].append((time.perf_counter() - t0) / len(tiles))
    base = statistics.median(times["torch eager fp32 channels_last (engine)"])
    print(f"{len(tiles)} tiles {patch}², batch {args.batch_size}, {args.threads} threads, model {model.card.name}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| option | ms per tile (median of rounds) | vs engine | class agreement | setup |")
    print("|---|---|---|---|---|")
    for name in options:
        med = statistics.median(times[name])
        print(f"| {name} | {1000 * med:.1f} ({', '.join(f'{1000 * t:.0f}' for t in times[name])}) | "
              f"{base / med:.2f}× | {agreement[name]:.4%} | {setup.get(name, 0.0):.1f} s |")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print(json.dumps({"ms_per_tile": {k: 1000 * statistics.median(v) for k, v in times.items()},
                      "agreement": agreement, "setup_s": setup, "skipped": skipped}))


if __name__ == "__main__":
    main()
