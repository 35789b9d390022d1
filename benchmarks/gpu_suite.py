"""One prepared GPU run: phantoms → labels → the paper's training → held-out F1 → validate → bench, in one budget.

Built for one call of at most 10 minutes on a bare GPU machine (16 cores, no network, the repository
copied there without its .venv), where every minute is paid for. Run from the repository root::

    python benchmarks/gpu_suite.py --out "$OUT" --minutes 8.5
    python benchmarks/gpu_suite.py --out /tmp/suite --tiny          # the same script on a CPU in ~1 minute

and, back on the CPU machine, rebuild and verify the trained model from the pieces::

    python benchmarks/gpu_suite.py --assemble DIR --to MODELDIR

The lent GPU machine has torch but not all of the project's dependencies (segmentation-models-pytorch,
tiffslide, zarr, numcodecs, imagecodecs, shapely, platformdirs are missing; its tifffile and timm may
be other versions). They travel as cp312 wheels in ``.whl/`` (ignored by git, named in the call's
``carry``; ``python benchmarks/gpu_wheels.py`` makes them); imagecodecs is cut to the codecs these slides
use (26 → 8.6 MB), so the wheels (23 MB) and the tracked tree (35 MB) stay under the 64 MiB a call may carry. The call (timeout 600 s)::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl && export PYTHONPATH=/tmp/site || exit; python3 benchmarks/gpu_suite.py --out "$OUT" --minutes 9

Stages, each timed and each under its own share of the budget; a stage that fails is recorded with
its error in the JSON and the suite goes on to the next (a later stage that needs the failed one's
result says so):

1. ``phantoms``: the paper's shape of data set, generated in parallel processes: 6 training slides
   of 4096² px (realistic and clean styles mixed, balanced and the paper's subtype mix), a validation
   slide and 2 held-out slides (one of each style). Meanwhile a second, smaller pool generates the
   validation cases and the bench slide in the background.
2. ``label``: label every slide and cut 256² patches at 50 % overlap (training.patches, in parallel;
   the retrain run finds them in its cache).
3. ``train``: ``python -m training.retrain`` with the paper's protocol (resnet34, AdamW lr 1e-3 for
   batch 32, scaled for a larger batch, plain cross-entropy, the 8 rotations/flips), patches resident
   on the GPU, bf16, for as long as the budget allows; it evaluates the best model on the held-out
   slides per cell, each cell once, with bootstrap 95 % intervals (training.evaluate).
4. ``pack``: the exported model (float16) in byte pieces of at most 15 MiB, each with its sha256.
5. ``bench``: ``python -m core bench --device cuda`` with the trained model on an 8192² phantom.
6. ``validate``: ``core validate``'s run (core.validation.run_validation) on 20 fresh cases on the
   GPU, in chunks of 4 so that a short budget still gives the cases it finished.

Everything lands in ``--out``: ``gpu_suite.json`` (every figure, rewritten after each stage so a
killed run still leaves one), ``gpu_suite.log`` (all output, the end kept if it grows past 4 MiB)
and ``model.safetensors.partNN``: at most 7 files, under the device tool's 8 files of 16 MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SUITE_JSON = "gpu_suite.json"
SUITE_LOG = "gpu_suite.log"
PIECE_BYTES = 15 * 2**20
LOG_KEEP_BYTES = 4 * 2**20
#: What the stages after training need, in seconds, before the training budget is what is left.
AFTER_TRAIN_S = {"full": 200.0, "tiny": 25.0}
VALIDATE_CHUNK = 4


@dataclass(frozen=True)
class Slide:
    """One phantom to generate: its role, name and the parameters of core.phantom."""

    role: str  # train, val, heldout, validate, bench
    name: str
    size: int
    seed: int
    realism: str = "clean"
    balanced: bool = False
    ct: float = 0.4
    im: float = 0.6


@dataclass(frozen=True)
class Plan:
    """Sizes and settings of one suite run (the full GPU run or the CPU rehearsal)."""

    tiny: bool
    slides: tuple[Slide, ...]
    patch_size: int
    overlap: float
    encoder: str
    batch_size: int
    precision: str
    validate_size: int
    validate_cases: int
    validate_first_seed: int
    bench_size: int
    bench_args: tuple[str, ...]
    train_args: tuple[str, ...] = field(default=())


def validate_levels(first_seed: int, cases: int) -> list[tuple[int, float, float]]:
    """(seed, CT level, IM level) of each case of one ``run_validation`` call: core.validation's draw."""
    import numpy as np

    levels = np.random.default_rng(first_seed).uniform(0.0, 1.0, size=(cases, 2))
    return [(first_seed + i, float(levels[i, 0]), float(levels[i, 1])) for i in range(cases)]


def validate_chunks(first_seed: int, cases: int) -> list[tuple[int, int]]:
    """(first seed, cases) of each chunk of ``VALIDATE_CHUNK`` cases."""
    return [(first_seed + s, min(VALIDATE_CHUNK, cases - s)) for s in range(0, cases, VALIDATE_CHUNK)]


def make_plan(args: argparse.Namespace) -> Plan:
    if args.tiny:
        train = (Slide("train", "train1", 640, 29001, "clean", True, 1.0, 1.0),
                 Slide("train", "train2", 640, 29002, "real", True, 1.0, 1.0))
        held = (Slide("val", "val1", 384, 29011, "real", False, 1.0, 1.0),
                Slide("heldout", "heldout1", 384, 29021, "real", False, 1.0, 1.0),
                Slide("heldout", "heldout2", 384, 29022, "clean", False, 1.0, 1.0))
        plan = Plan(True, (*train, *held), 64, 0.5, "resnet18", 8, "fp32", 512, 2, 29100, 384,
                    ("--model-tiles", "2", "--precision", "fp32", "--runtime", "torch", "--batch-size", "8",
                     "--threads", "1"))
        return replace(plan, train_args=("--max-steps", "6", "--patches-per-epoch", "24", "--epochs", "2",
                                         "--resident", "on", "--workers", "0", "--eval-batch-size", "32",
                                         "--bootstrap", "200", "--threads", "1"))
    train = (
        Slide("train", "train1", 4096, 29001, "clean", True, 0.85, 0.95),
        Slide("train", "train2", 4096, 29002, "real", True, 0.8, 0.9),
        Slide("train", "train3", 4096, 29003, "clean", False, 0.7, 0.85),
        Slide("train", "train4", 4096, 29004, "real", False, 0.6, 0.8),
        Slide("train", "train5", 4096, 29005, "clean", True, 0.5, 0.7),
        Slide("train", "train6", 4096, 29006, "real", True, 0.9, 0.95),
    )
    held = (Slide("val", "val1", 2048, 29011, "real", False, 0.8, 0.9),
            Slide("heldout", "heldout1", 4096, 29021, "real", False, 0.7, 0.85),
            Slide("heldout", "heldout2", 4096, 29022, "clean", False, 0.6, 0.8))
    if args.styles == "clean":
        train, held = (tuple(replace(s, realism="clean") for s in group) for group in (train, held))
    plan = Plan(False, (*train, *held), 256, 0.5, "resnet34", args.batch_size, "auto", 2048, 20, 29100, 8192,
                ("--model-tiles", "256", "--precision", "bf16,fp32"))
    extra = ["--lr-warmup-steps", str(args.lr_warmup_steps), "--resident", "auto", "--workers", str(min(8, os.cpu_count() or 1)),
             "--eval-batch-size", "64", "--bootstrap", "1000"]
    return replace(plan, train_args=(*extra, *(["--compile"] if args.compile else [])))


# ---- work done in pool processes (top-level functions: the pools use 'spawn') ----------------------

def generate(slide: Slide, root: str) -> dict[str, Any]:
    """Write one phantom (skipped when it is already there); returns its name and seconds."""
    from core.phantom import PhantomParams, generate_phantom
    from core.progress import run_to_completion

    t0 = time.perf_counter()
    out = Path(root) / slide.name
    if not (out / "phantom.json").is_file():
        mix = (0.25, 0.25, 0.25, 0.25) if slide.balanced else None
        params = PhantomParams(size=slide.size, seed=slide.seed, realism=slide.realism, subtype_mix=mix,
                               infiltration_ct=slide.ct, infiltration_im=slide.im, threads=1)
        run_to_completion(generate_phantom(params, out))
    return {"name": slide.name, "seconds": round(time.perf_counter() - t0, 2)}


def generate_validate(size: int, seed: int, ct: float, im: float, work_dir: str) -> dict[str, Any]:
    """One validation case where core.validation looks for it (phantom-SIZE-SEED, default params)."""
    from core.phantom import PhantomParams, generate_phantom
    from core.progress import run_to_completion

    t0 = time.perf_counter()
    out = Path(work_dir) / f"phantom-{size}-{seed}"
    if not (out / "phantom.json").is_file():
        run_to_completion(generate_phantom(PhantomParams(size=size, seed=seed, infiltration_ct=ct, infiltration_im=im), out))
    return {"name": out.name, "seconds": round(time.perf_counter() - t0, 2)}


def generate_bench(size: int, cache: str) -> dict[str, Any]:
    """The bench slide where ``core bench --cache`` looks for it (phantom-SIZE-seed0, default params)."""
    from core.phantom import PhantomParams, generate_phantom
    from core.progress import run_to_completion

    t0 = time.perf_counter()
    out = Path(cache) / f"phantom-{size}-seed0"
    if not (out / "phantom.json").is_file():
        run_to_completion(generate_phantom(PhantomParams(size=size, seed=0, threads=2), out))
    return {"name": out.name, "seconds": round(time.perf_counter() - t0, 2)}


def label(path: str, name: str, cache: str, size: int, overlap: float, mpp: float) -> dict[str, Any]:
    """Label one slide and cut its patches into the cache retrain reads (same key, same name)."""
    from core.progress import run_to_completion
    from training.config import LabelConfig
    from training.patches import PatchParams, slide_patches

    t0 = time.perf_counter()
    entry = run_to_completion(slide_patches(Path(path), LabelConfig(), PatchParams(size=size, overlap=overlap, mpp=mpp),
                                            Path(cache), name=name))
    # the phantom's own truth beside the labels: on 'real' slides the default thresholds miss dim markers
    counts = json.loads((Path(path).parent / "phantom.json").read_text()).get("counts", {})
    truth = {c: sum(int(region.get(c, 0)) for region in counts.values()) for c in entry.meta.get("cells", {})}
    return {"name": name, "patches": entry.n, "cells": entry.meta.get("cells", {}), "truth_cells": truth,
            "seconds": round(time.perf_counter() - t0, 2)}


# ---- the report -------------------------------------------------------------------------------------

class Report:
    """The JSON of every figure, rewritten atomically after each stage, and the log beside it."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.t0, self.budget_s = out, time.monotonic(), budget_s
        self.data: dict[str, Any] = {"suite_version": 1, "started_utc": _utc(), "budget_minutes": budget_s / 60,
                                     "stages": {}}
        self.log_path = out / SUITE_LOG
        self.log_path.write_text("")

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f} s] {text}"
        print(line, flush=True)
        with self.log_path.open("a") as f:
            f.write(line + "\n")

    def write(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        tmp = self.out / (SUITE_JSON + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.out / SUITE_JSON)

    @contextlib.contextmanager
    def stage(self, name: str, budget_s: float) -> Iterator[dict[str, Any]]:
        """Run a stage: its record gets status, seconds and budget; an exception is recorded, not raised."""
        rec: dict[str, Any] = {"status": "running", "budget_s": round(budget_s, 1)}
        self.data["stages"][name] = rec
        self.say(f"== {name} (budget {budget_s:.0f} s, {self.left():.0f} s left in all)")
        t = time.monotonic()
        try:
            yield rec
            if rec["status"] == "running":
                rec["status"] = "ok"
        except Exception as err:  # noqa: BLE001 - recorded in the JSON; the next stage still runs
            rec["status"], rec["error"] = "failed", f"{type(err).__name__}: {err}"
            rec["traceback"] = traceback.format_exc()[-3000:]
            self.say(f"{name} FAILED: {rec['error']}")
        finally:
            rec["seconds"] = round(time.monotonic() - t, 2)
            self.say(f"== {name}: {rec['status']} in {rec['seconds']:.1f} s")
            self.write()

    def trim_log(self) -> None:
        data = self.log_path.read_bytes()
        if len(data) > LOG_KEEP_BYTES:
            self.log_path.write_bytes(b"[... start of the log cut ...]\n" + data[-LOG_KEEP_BYTES:])


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_logged(report: Report, cmd: list[str], timeout_s: float) -> tuple[int, str]:
    """Run ``cmd`` from the repository root, output appended to the log; the whole process group is
    killed at ``timeout_s``. Returns (exit code, the output's last 20,000 characters); 124 on timeout."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    report.say("$ " + " ".join(cmd))
    start = report.log_path.stat().st_size
    with report.log_path.open("a") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = 124
            log.write(f"\n[killed after {timeout_s:.0f} s]\n")
    with report.log_path.open("rb") as log:
        log.seek(start)
        tail = log.read().decode("utf-8", "replace")
    return code, tail[-20000:]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


# ---- stages -----------------------------------------------------------------------------------------

def environment(device: str) -> dict[str, Any]:
    import importlib.util

    import torch

    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpu_count": os.cpu_count(), "torch": torch.__version__, "cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "device": device}
    if device == "cuda" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), gpu_sm=p.multi_processor_count)
    needed = ("segmentation_models_pytorch", "timm", "tiffslide", "tifffile", "zarr", "imagecodecs", "skimage", "scipy",
              "shapely", "pandas", "safetensors", "platformdirs", "tqdm", "PIL")
    env["missing_modules"] = [m for m in needed if importlib.util.find_spec(m) is None]
    return env


def stage_phantoms(report: Report, plan: Plan, work: Path, main_pool: ProcessPoolExecutor, rec: dict[str, Any]) -> None:
    jobs = [main_pool.submit(generate, s, str(work / "phantoms")) for s in plan.slides]
    done, _ = wait(jobs, timeout=max(1.0, rec["budget_s"]))
    rec["slides"] = {s.name: {**asdict(s), **_outcome(j, done)} for s, j in zip(plan.slides, jobs, strict=True)}
    failed = [n for n, v in rec["slides"].items() if "error" in v]
    if failed:
        raise RuntimeError(f"phantoms not generated: {', '.join(failed)} (see slides)")


def _outcome(job: Future, done: set[Future]) -> dict[str, Any]:
    """A pool job's result, or its error ('timeout' when it did not finish in the stage's budget)."""
    if job not in done:
        return {"error": "timeout"}
    err = job.exception()
    return {"error": f"{type(err).__name__}: {err}"} if err else job.result()


def slide_paths(plan: Plan, work: Path) -> tuple[list[Path], dict[str, str]]:
    """The mIF file of each slide and the name retrain gives it (training.patches.unique_names: the
    phantoms are all called mif.ome.tif, so 'train1-mif'), which --holdout-slides and the cache use."""
    from training.patches import unique_names

    paths = [work / "phantoms" / s.name / "mif.ome.tif" for s in plan.slides]
    return paths, dict(zip([s.name for s in plan.slides], unique_names(paths), strict=True))


def stage_label(plan: Plan, work: Path, main_pool: ProcessPoolExecutor, rec: dict[str, Any]) -> None:
    paths, names = slide_paths(plan, work)
    jobs = [main_pool.submit(label, str(path), names[s.name], str(work / "cache"), plan.patch_size, plan.overlap, 0.227)
            for s, path in zip(plan.slides, paths, strict=True)]
    done, _ = wait(jobs, timeout=max(1.0, rec["budget_s"]))
    rec["slides"] = {s.name: _outcome(j, done) for s, j in zip(plan.slides, jobs, strict=True)}
    failed = [n for n, v in rec["slides"].items() if "error" in v]
    if failed:
        raise RuntimeError(f"slides not labelled: {', '.join(failed)}")
    for role in ("train", "val", "heldout"):
        names = [s.name for s in plan.slides if s.role == role]
        rec[f"{role}_cells"] = {c: sum(rec["slides"][n]["cells"].get(c, 0) for n in names)
                                for c in ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI")}
        rec[f"{role}_patches"] = sum(rec["slides"][n]["patches"] for n in names)


def stage_train(report: Report, plan: Plan, work: Path, device: str, args: argparse.Namespace, rec: dict[str, Any]) -> None:
    run = work / "run"
    # the rest of the stage: start-up, loading the patches, the held-out evaluation and the export
    # (two 4096² held-out slides: ~1,900 patches, each scored per cell on the CPU; the margin keeps the
    # kill below from ever taking the finished model with it)
    minutes = max(0.05, (rec["budget_s"] - (90.0 if not plan.tiny else 10.0)) / 60)
    paths, unique = slide_paths(plan, work)
    slides = [str(p) for p in paths]
    names = {r: [unique[s.name] for s in plan.slides if s.role == r] for r in ("val", "heldout")}
    cmd = [sys.executable, "-m", "training.retrain", "--slides", *slides, "--out", str(run), "--force",
           "--cache", str(work / "cache"), "--name", "gpu-suite", "--holdout-slides", *names["heldout"],
           "--val-slides", *names["val"], "--encoder", plan.encoder, "--patch-size", str(plan.patch_size),
           "--overlap", str(plan.overlap), "--batch-size", str(plan.batch_size), "--lr", "1e-3",
           "--lr-scale", args.lr_scale, "--loss", "ce", "--balance", "none", "--patience", "0",
           "--time-limit", f"{minutes:.3f}", "--device", device, "--precision", plan.precision,
           "--weights-dtype", "float16", "--seed", "0", *plan.train_args]
    if not plan.tiny:
        cmd += ["--epochs", "100"]
    rec["command"] = " ".join(cmd)
    rec["time_limit_min"] = round(minutes, 3)
    code, tail = run_logged(report, cmd, rec["budget_s"] + 90)
    rec["exit_code"] = code
    if code != 0:
        raise RuntimeError(f"training.retrain exited {code}: {tail[-1500:]}")
    rows = json.loads((run / "log.json").read_text())
    card = json.loads((run / "model.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    full = [r for r in rows if not r.get("truncated")] or rows
    steady = full[1:] or full  # the first epoch pays for cuDNN autotuning and compilation

    def median(key: str, src: list[dict[str, Any]]) -> float | None:
        vals = sorted(float(r[key]) for r in src if r.get(key) is not None)
        return vals[len(vals) // 2] if vals else None

    t = card["training"]
    rec.update({
        "patches_per_s": median("patches_per_s", steady), "data_wait_share": median("data_wait_share", steady),
        "patches_per_s_by_epoch": [round(float(r["patches_per_s"]), 1) for r in rows],
        "data_wait_share_by_epoch": [round(float(r.get("data_wait_share", 0.0)), 4) for r in rows],
        "val_f1_by_epoch": [round(float(r["val_f1"]), 4) for r in rows],
        "epochs_done": t["epochs_run"], "steps": t["steps"], "patch_steps": sum(int(r["patches"]) for r in rows),
        "best_epoch": t["best_epoch"], "stopped": t["stopped"], "batch_source": t.get("batch_source"),
        "schedule": t.get("schedule"), "precision": t["precision"], "device": t["device"], "encoder": card["encoder"],
        "patch_size": card["patch_size"], "batch_size": plan.batch_size,
        "split_patches": {k: t["split"][k]["patches"] for k in ("train", "val", "test") if k in t["split"]},
    })
    rec["held_out"] = held_out_figures(metrics)


def held_out_figures(metrics: dict[str, Any]) -> dict[str, Any]:
    """Per-class hard F1 per cell with its bootstrap 95 % interval, and the macro average."""
    cent, ci = metrics["centroid"], metrics.get("centroid_ci", {})
    per = {c: {"f1": cent["hard"][c]["f1"], "precision": cent["hard"][c]["precision"], "recall": cent["hard"][c]["recall"],
               "ci95": ci.get("hard", {}).get(c)} for c in ("CD8_CD3LO", "CD3", "CD20", "CD8_CD3HI") if c in cent["hard"]}
    return {"split": metrics.get("split"), "cells": cent.get("count"), "per_class_hard": per,
            "macro_f1_hard": cent["hard"]["average"]["f1"], "macro_ci95_hard": ci.get("hard", {}).get("average"),
            "macro_f1_soft": cent["soft"]["average"]["f1"], "units": ci.get("units"), "n_boot": ci.get("n_boot"),
            "per_slide": {s: {"cells": v["centroid"]["count"], "f1_hard": v["centroid"]["hard"]["average"]["f1"]}
                          for s, v in metrics.get("per_slide", {}).items()}}


def stage_pack(report: Report, work: Path, rec: dict[str, Any]) -> None:
    """The model in byte pieces of ≤ 15 MiB with sha256s; the card travels inside the JSON."""
    run = work / "run"
    weights = run / "model.safetensors"
    if not weights.is_file():
        raise RuntimeError("no trained model to pack (the train stage failed)")
    for old in report.out.glob("model.safetensors.part*"):
        old.unlink()
    pieces = []
    with weights.open("rb") as f:
        for k, block in enumerate(iter(lambda: f.read(PIECE_BYTES), b"")):
            piece = report.out / f"model.safetensors.part{k:02d}"
            piece.write_bytes(block)
            pieces.append({"file": piece.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    card_text = (run / "model.json").read_text()
    rec.update({"bytes": weights.stat().st_size, "sha256": sha256(weights), "pieces": pieces, "card_json": card_text,
                "weights_sha256_in_card": json.loads(card_text).get("weights_sha256")})
    if rec["sha256"] != rec["weights_sha256_in_card"]:
        raise RuntimeError("the exported weights do not match their card's sha256")


def stage_bench(report: Report, plan: Plan, work: Path, device: str, bench_future: Future | None, rec: dict[str, Any]) -> None:
    _await(bench_future, rec, "phantom")
    model = work / "run"
    cmd = [sys.executable, "-m", "core", "bench", "--device", device, "--size", str(plan.bench_size),
           "--cache", str(work / "bench"), *plan.bench_args]
    if (model / "model.json").is_file():
        cmd += ["--model", str(model)]
    rec["model"] = "trained" if (model / "model.json").is_file() else "default (training failed)"
    code, tail = run_logged(report, cmd, rec["budget_s"])
    rec["exit_code"] = code
    lines = [ln for ln in tail.strip().splitlines() if ln.startswith("{")]
    if code != 0 or not lines:
        raise RuntimeError(f"core bench exited {code}: {tail[-1500:]}")
    rec["result"] = json.loads(lines[-1])


def stage_validate(report: Report, plan: Plan, work: Path, device: str, futures: list[Future], rec: dict[str, Any]) -> None:
    """``core validate``'s run, chunk by chunk while the budget lasts; the pooled summary of the cases done."""
    from core.progress import run_to_completion
    from core.validation import ValidationOptions, run_validation, summarise, write_outputs

    for f in futures:
        _await(f, rec, "phantoms")
    model = work / "run" if (work / "run" / "model.json").is_file() else None
    rec["model"] = "trained" if model else "default (training failed)"
    precision = "bf16" if device == "cuda" else "fp32"
    options = ValidationOptions(size=plan.validate_size, model_dir=model, precision=precision, device=device,
                                runtime="torch" if device == "cpu" else "auto", work_dir=work / "validate")
    rec["options"] = {"size": plan.validate_size, "precision": precision, "device": device, "runtime": options.runtime}
    cases: list[Any] = []
    deadline = time.monotonic() + rec["budget_s"]
    chunks = validate_chunks(plan.validate_first_seed, plan.validate_cases)
    for first, n in chunks:
        per_case = (sum(c.seconds for c in cases) / len(cases)) if cases else 0.0
        if cases and time.monotonic() + per_case * n > deadline:
            rec["status"] = "partial"
            rec["stopped"] = f"budget: {len(cases)} of {plan.validate_cases} cases done"
            break
        cases += run_to_completion(run_validation(replace(options, cases=n, first_seed=first)))
        report.say(f"validate: {len(cases)} of {plan.validate_cases} cases")
    rec["cases_done"] = len(cases)
    rec["seconds_per_case"] = [round(c.seconds, 2) for c in cases]
    rec["levels"] = [[c.seed, c.infiltration_ct, c.infiltration_im] for c in cases]
    rec["summary"] = summarise(cases)
    write_outputs(cases, work / "validate-out")


def _await(future: Future | None, rec: dict[str, Any], what: str) -> None:
    if future is None:
        return
    try:
        future.result(timeout=max(1.0, rec["budget_s"] / 2))
    except Exception as err:  # noqa: BLE001 - the stage generates what is missing itself
        rec[f"{what}_note"] = f"background generation did not finish ({type(err).__name__}: {err}); generated here"


# ---- assembling on the CPU machine ------------------------------------------------------------------

class AssembleError(Exception):
    """A piece or the whole model does not match the sha256 the suite recorded."""


def assemble(src: Path, dest: Path) -> Path:
    """Rebuild ``dest/model.safetensors`` + ``model.json`` from the suite's pieces, verify every sha256,
    and load it with core.models (which checks the card's weights hash again)."""
    from core.models import load_weights

    report = json.loads((src / SUITE_JSON).read_text())
    pack = report.get("stages", {}).get("pack", {})
    if pack.get("status") != "ok":
        raise AssembleError(f"{src / SUITE_JSON}: the pack stage did not finish ({pack.get('error', 'not run')}); "
                            "there is no model to assemble.")
    whole, blocks = hashlib.sha256(), []
    for piece in pack["pieces"]:  # every piece checked before anything is written
        data = (src / piece["file"]).read_bytes()
        if hashlib.sha256(data).hexdigest() != piece["sha256"] or len(data) != piece["bytes"]:
            raise AssembleError(f"{src / piece['file']} does not match its recorded sha256/size; fetch it again.")
        whole.update(data)
        blocks.append(data)
    if whole.hexdigest() != pack["sha256"]:
        raise AssembleError(f"The assembled model's sha256 {whole.hexdigest()[:12]}… is not the recorded "
                            f"{pack['sha256'][:12]}…; a piece is missing or out of order.")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "model.safetensors"
    target.write_bytes(b"".join(blocks))
    (dest / "model.json").write_text(pack["card_json"])
    _, card = load_weights(dest)
    print(f"Assembled {target} ({pack['bytes']} bytes, sha256 {pack['sha256'][:12]}…): {card.name}, "
          f"{card.encoder}, {card.patch_size} px; loads with core.models.")
    return target


# ---- main -------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Assemble: python benchmarks/gpu_suite.py --assemble DIR --to MODELDIR")
    p.add_argument("--out", type=Path, help="folder for gpu_suite.json, gpu_suite.log and the model pieces")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: /tmp/gpu-suite-work)")
    p.add_argument("--minutes", type=float, default=8.5, help="the whole suite's budget (default 8.5)")
    p.add_argument("--tiny", action="store_true", help="rehearse every stage on a CPU in about a minute")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if present; cpu with --tiny)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch (default 128; the paper's is 32)")
    p.add_argument("--lr-scale", choices=("none", "linear", "sqrt"), default="sqrt",
                   help="lr 1e-3 is the paper's for batch 32; scaled by sqrt(batch/32) by default")
    p.add_argument("--lr-warmup-steps", type=int, default=100, help="linear lr warm-up (default 100 steps)")
    p.add_argument("--compile", action="store_true", help="torch.compile the network (a minute of compilation)")
    p.add_argument("--styles", choices=("mixed", "clean"), default="mixed",
                   help="mixed (default): realistic and clean phantoms, as the issue asks; clean: all clean. The "
                   "default label thresholds miss the realistic slides' dim markers (see label truth_cells)")
    p.add_argument("--assemble", type=Path, default=None, metavar="DIR", help="rebuild the model from a suite's output")
    p.add_argument("--to", type=Path, default=None, metavar="MODELDIR", help="with --assemble: where to write the model")
    return p


def run_suite(args: argparse.Namespace) -> int:
    import torch

    device = args.device or ("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    plan = make_plan(args)
    work = args.work or Path("/tmp/gpu-suite-work" + ("-tiny" if args.tiny else ""))
    for d in (args.out, work, work / "phantoms", work / "cache", work / "validate", work / "bench"):
        d.mkdir(parents=True, exist_ok=True)
    report = Report(args.out, args.minutes * 60)
    report.data.update(tiny=plan.tiny, device=device, environment=environment(device),
                       plan={"slides": [asdict(s) for s in plan.slides], "patch_size": plan.patch_size,
                             "overlap": plan.overlap, "encoder": plan.encoder, "batch_size": plan.batch_size,
                             "lr_scale": args.lr_scale, "styles": args.styles, "validate_cases": plan.validate_cases,
                             "validate_first_seed": plan.validate_first_seed, "bench_size": plan.bench_size})
    report.say(f"gpu_suite: device {device}, budget {args.minutes} min, work {work}, out {args.out}")
    missing = report.data["environment"]["missing_modules"]
    if missing:  # nothing after this could run: say so at once rather than after minutes of phantoms
        report.data["stages"]["environment"] = {
            "status": "failed", "error": f"Python modules missing here: {', '.join(missing)}. Install the project's "
            "dependencies (pip install -e . with a registry; on a machine without one, carry wheels)."}
        report.say(report.data["stages"]["environment"]["error"])
        report.data["figures"] = headline(report.data)
        report.write()
        return 3
    report.write()
    cores = os.cpu_count() or 1
    side_workers = max(1, cores // 4)
    ctx = multiprocessing.get_context("spawn")
    main_pool = ProcessPoolExecutor(max(1, cores - side_workers), mp_context=ctx)
    side_pool = ProcessPoolExecutor(side_workers, mp_context=ctx)
    val_futures = [side_pool.submit(generate_validate, plan.validate_size, seed, ct, im, str(work / "validate"))
                   for first, n in validate_chunks(plan.validate_first_seed, plan.validate_cases)
                   for seed, ct, im in validate_levels(first, n)]
    bench_future = side_pool.submit(generate_bench, plan.bench_size, str(work / "bench"))
    after = AFTER_TRAIN_S["tiny" if plan.tiny else "full"]
    try:
        share = 0.25 if not plan.tiny else 0.3
        with report.stage("phantoms", max(20.0, share * report.budget_s)) as rec:
            stage_phantoms(report, plan, work, main_pool, rec)
        with report.stage("label", max(20.0, share * report.budget_s)) as rec:
            stage_label(plan, work, main_pool, rec)
        main_pool.shutdown(wait=False, cancel_futures=True)
        with report.stage("train", max(30.0, report.left() - after)) as rec:
            stage_train(report, plan, work, device, args, rec)
        with report.stage("pack", 30.0) as rec:
            stage_pack(report, work, rec)
        with report.stage("bench", max(20.0, min(90.0, 0.4 * report.left()))) as rec:
            stage_bench(report, plan, work, device, bench_future, rec)
        with report.stage("validate", max(20.0, report.left() - 5)) as rec:
            stage_validate(report, plan, work, device, val_futures, rec)
    finally:
        main_pool.shutdown(wait=False, cancel_futures=True)
        side_pool.shutdown(wait=False, cancel_futures=True)
        report.data["finished_utc"] = _utc()
        report.data["figures"] = headline(report.data)
        report.write()
        report.trim_log()
    report.say(json.dumps(report.data["figures"], indent=1))
    return 0 if all(s["status"] in ("ok", "partial") for s in report.data["stages"].values()) else 1


def headline(data: dict[str, Any]) -> dict[str, Any]:
    """The few numbers the issue asks for, in one place."""
    st = data.get("stages", {})
    train, bench, val = st.get("train", {}), st.get("bench", {}).get("result", {}), st.get("validate", {})
    held = train.get("held_out", {})
    return {
        "device": data.get("environment", {}).get("gpu") or data.get("device"),
        "torch": data.get("environment", {}).get("torch"),
        "training_patches_per_s": train.get("patches_per_s"), "gpu_wait_share": train.get("data_wait_share"),
        "epochs_done": train.get("epochs_done"), "patch_steps": train.get("patch_steps"),
        "held_out_f1_hard": {c: [v.get("f1"), v.get("ci95")] for c, v in held.get("per_class_hard", {}).items()},
        "validate_cases": val.get("cases_done"),
        "validate_max_abs_density_error_pct": val.get("summary", {}).get("all_judged", {}).get("max_abs_error_pct"),
        "bench_pipeline_tiles_per_s": bench.get("pipeline_tiles_per_s"), "bench_model_tiles_per_s": bench.get("model_tiles_per_s"),
        "stage_seconds": {k: v.get("seconds") for k, v in st.items()},
        "stage_status": {k: v.get("status") for k, v in st.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.assemble is not None:
        if args.to is None:
            print("error: --assemble DIR needs --to MODELDIR (where to write model.safetensors and model.json)", file=sys.stderr)
            return 2
        try:
            assemble(args.assemble, args.to)
        except (AssembleError, OSError, KeyError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    if args.out is None:
        print("error: give --out DIR (or --assemble DIR --to MODELDIR)", file=sys.stderr)
        return 2
    return run_suite(args)


if __name__ == "__main__":
    sys.exit(main())
