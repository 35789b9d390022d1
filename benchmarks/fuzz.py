"""Fuzz campaign: damaged slides and GeoJSON, each in its own child process; prints the outcome table.

Run: ``PYTHONPATH=. nice .venv/bin/python benchmarks/fuzz.py --slides 1000 --geojson 500 [--seed 0]``

Every input is a seeded mutation of a small valid file (see ``tests/fuzzing.py``) and runs in a
forked child with a time limit (``--timeout``, default 10 s) and an address-space limit
(``--memory-mb``, default 4096). Outcomes: OK (read/imported), product error (a CoreError, i.e. a
message for the user), other exception (a defect), timeout, crash (killed by a signal, e.g. a
segfault in a C library). "peak MB" is the largest resident set of any child (including the ~150 MB
of libraries it shares with the parent). The issue's target: 0 other, 0 timeout, 0 crash, peak < 2 GB.
Findings are written to ``--findings`` (JSON lines: kind, seed, outcome, detail) to replay any input:
``--replay KIND SEED`` writes that input to the current folder.

``--czi-scan`` instead times the pure-Python CZI structure check against opening with libCZI.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import (  # noqa: E402
    OUTCOMES,
    dumps_geojson,
    mutate_geojson,
    mutate_slide,
    preload,
    probe_geojson,
    probe_slide,
    run_isolated,
    seed_geojson,
    write_seeds,
)


def slide_input(seeds: dict[str, bytes], seed: int) -> tuple[str, bytes]:
    rng = random.Random(seed)
    kind = sorted(seeds)[seed % len(seeds)]
    suffix = {"czi": ".czi", "czi-zstd": ".czi"}.get(kind, ".tif")
    return kind + suffix, mutate_slide(seeds[kind], rng, kind)


def geojson_input(seed: int) -> str:
    return dumps_geojson(mutate_geojson(seed_geojson(), random.Random(seed)))


def campaign(kind: str, n: int, first_seed: int, folder: Path, seeds: dict[str, bytes], args: argparse.Namespace,
             findings: list[dict]) -> dict[str, float]:  # fmt: skip
    counts: Counter[str] = Counter()
    peak, slowest = 0.0, 0.0
    for seed in range(first_seed, first_seed + n):
        if kind == "slide":
            name, data = slide_input(seeds, seed)
            path = folder / f"input-{seed}-{name}"
            path.write_bytes(data)
            outcome = run_isolated(lambda p=path: probe_slide(p), args.timeout, args.memory_mb)
        else:
            path = folder / f"input-{seed}.geojson"
            path.write_text(geojson_input(seed), encoding="utf-8")
            outcome = run_isolated(lambda p=path: probe_geojson(p), args.timeout, args.memory_mb)
        path.unlink(missing_ok=True)
        counts[outcome.outcome] += 1
        peak, slowest = max(peak, outcome.peak_mb), max(slowest, outcome.seconds)
        if args.all_outcomes:
            findings.append({"kind": kind, "seed": seed, "outcome": outcome.outcome, "detail": outcome.detail[:300]})
        elif outcome.outcome not in ("ok", "product") or outcome.peak_mb > 2048:
            findings.append({"kind": kind, "seed": seed, "outcome": outcome.outcome, "detail": outcome.detail,
                             "seconds": round(outcome.seconds, 2), "peak_mb": round(outcome.peak_mb)})  # fmt: skip
            print(f"  {kind} seed {seed}: {outcome.outcome} {outcome.detail[:160]}", flush=True)
    return {"inputs": n, **{o: counts[o] for o in OUTCOMES}, "peak_mb": round(peak), "slowest_s": round(slowest, 2)}


def czi_scan_cost(folder: Path) -> None:
    from pylibCZIrw import czi as pyczi

    from core.slides._cziscan import check_czi_structure

    seeds = write_seeds(folder)
    for name in ("czi", "czi-zstd"):
        path = seeds[name]
        t0 = time.perf_counter()
        for _ in range(200):
            check_czi_structure(path)
        scan = (time.perf_counter() - t0) / 200
        t0 = time.perf_counter()
        for _ in range(200):
            pyczi.CziReader(str(path)).close()
        libczi = (time.perf_counter() - t0) / 200
        print(f"{name}: structure check {scan * 1e3:.3f} ms, libCZI open {libczi * 1e3:.3f} ms per open")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slides", type=int, default=1000, help="damaged slide inputs (default 1000)")
    p.add_argument("--geojson", type=int, default=500, help="damaged GeoJSON inputs (default 500)")
    p.add_argument("--seed", type=int, default=0, help="first seed (inputs use seed, seed+1, ...)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per input (default 10)")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per input (default 4096)")
    p.add_argument("--findings", type=Path, default=None, help="write non-OK/non-product outcomes here (JSON lines)")
    p.add_argument("--all-outcomes", action="store_true", help="write every outcome to --findings, not only failures")
    p.add_argument("--replay", nargs=2, metavar=("KIND", "SEED"), help="write input KIND (slide|geojson) SEED here and stop")
    p.add_argument("--czi-scan", action="store_true", help="time the CZI structure check and stop")
    p.add_argument("--code", type=Path, default=None,
                   help="fuzz the core package of another checkout (e.g. /work/main, for a before/after table)")
    args = p.parse_args()
    if args.code:
        sys.path.insert(0, str(args.code.resolve()))
    import core.slides

    preload()  # once here, not in every forked child
    print(f"core from {Path(core.slides.__file__).parents[1]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hoechstscore-fuzz-") as tmp:
        folder = Path(tmp)
        if args.czi_scan:
            czi_scan_cost(folder)
            return 0
        seeds = {k: v.read_bytes() for k, v in write_seeds(folder / "seeds").items()}
        if args.replay:
            kind, seed = args.replay[0], int(args.replay[1])
            if kind == "slide":
                name, data = slide_input(seeds, seed)
                Path(f"fuzz-{seed}-{name}").write_bytes(data)
            else:
                Path(f"fuzz-{seed}.geojson").write_text(geojson_input(seed), encoding="utf-8")
            return 0
        findings: list[dict] = []
        rows = {}
        t0 = time.perf_counter()
        if args.slides:
            rows["slides"] = campaign("slide", args.slides, args.seed, folder, seeds, args, findings)
        if args.geojson:
            rows["geojson"] = campaign("geojson", args.geojson, args.seed, folder, seeds, args, findings)
        columns = ["inputs", *OUTCOMES, "peak_mb", "slowest_s"]
        titles = ["inputs", "OK", "product error", "other exception", "timeout", "crash", "peak MB", "slowest s"]
        print(f"\n{'':9}" + "".join(f"{t:>16}" for t in titles))
        for name, row in rows.items():
            print(f"{name:9}" + "".join(f"{row[c]:>16}" for c in columns))
        print(f"\n{time.perf_counter() - t0:.0f} s in all")
        if args.findings:
            args.findings.write_text("".join(json.dumps(f) + "\n" for f in findings), encoding="utf-8")
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
