"""Old against new pipeline, interleaved round by round: ``core bench --stand-in`` of two source trees.

On a shared machine the load swings from minute to minute, so the two versions run alternately
and every figure is printed with the load average beside it; the summary gives best and median
tiles/s and the median busy and CPU ms per tile of each stage (the old tree may lack CPU times).

    git archive main | tar -x -C /tmp/old
    .venv/bin/python benchmarks/pipeline_ab.py --old /tmp/old --sizes 4096 16384 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

NEW = Path(__file__).resolve().parents[1]


def bench(tree: Path, size: int, stand_in: str, cache: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "core", "bench", "--stand-in", stand_in, "--size", str(size), "--cache", str(cache), *extra]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="source tree of the old code")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stand-in", default="instant", dest="stand_in")
    ap.add_argument("--cache", type=Path, default=Path("build/bench-phantoms"))
    args = ap.parse_args()
    runs: dict[tuple[int, str], list[dict]] = {}
    for size in args.sizes:
        for rnd in range(args.rounds):
            for name, tree in (("old", args.old), ("new", NEW)):
                r = bench(tree, size, args.stand_in, args.cache, [])
                runs.setdefault((size, name), []).append(r)
                print(f"{size}² round {rnd + 1} {name}: {r['pipeline_tiles_per_s']:.1f} tiles/s, "
                      f"load {r['load_average'][0]:.2f}", flush=True)  # fmt: skip
    for (size, name), rs in runs.items():
        rates = [r["pipeline_tiles_per_s"] for r in rs]
        loads = [r["load_average"][0] for r in rs]
        print(f"\n{size}² {name}: best {max(rates):.1f}, median {statistics.median(rates):.1f} tiles/s "
              f"(load {min(loads):.1f}-{max(loads):.1f}, {len(rs)} runs)")  # fmt: skip
        for key in ("stage_ms_per_tile", "stage_cpu_ms_per_tile"):
            stages = [r[key] for r in rs if r.get(key)]
            if stages:
                med = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
                print(f"  {key}: " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))


if __name__ == "__main__":
    main()
