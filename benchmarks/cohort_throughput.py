"""Cohort throughput: slides per hour with 1, 2, ... local Dask workers (``core.cohort``).

Run: ``.venv/bin/python benchmarks/cohort_throughput.py [--slides 6] [--size 768] [--workers 1 2]``

Makes ``--slides`` phantom slides once, then for each worker count runs the whole cohort from an
empty output folder on a fresh LocalCluster (demo model, fp32, CPU unless --device cuda) and prints
slides/hour twice: over the whole run (cluster start and model loading included, what a user
waits for) and in steady state (from the first finished case to the last, i.e. without the
start-up). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli.score import DEMO_COHORT  # noqa: E402
from core.cohort import CohortCase, CohortSettings, local_cluster, run_cohort, with_threads  # noqa: E402
from core.engine import AnalysisParams  # noqa: E402
from core.models.card import load_card  # noqa: E402
from core.models.runtime import default_model_dir  # noqa: E402
from core.phantom import PhantomParams, generate_phantom  # noqa: E402
from core.progress import run_to_completion  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slides", type=int, default=6)
    p.add_argument("--size", type=int, default=768)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()
    from distributed import Client

    work = Path(tempfile.mkdtemp(prefix="cohort-bench-"))
    cases = []
    for seed in range(1, args.slides + 1):
        folder = work / f"slide{seed}"
        run_to_completion(generate_phantom(PhantomParams(size=args.size, seed=seed), folder))
        cases.append(CohortCase(f"S{seed}", folder / "hoechst.ome.tif", folder / "tumour.geojson"))
    model = default_model_dir()
    side_um = args.size * 0.227
    params = AnalysisParams(tissue_min_area_um2=min(20_000.0, side_um**2 / 20))
    im_um = json.loads((work / "slide1" / "phantom.json").read_text())["im_half_width_um"]  # scaled to the size
    base = CohortSettings(model, load_card(model).weights_sha256, DEMO_COHORT, params, args.device, args.precision,
                          im_um)
    results = []
    for n in args.workers:
        t0 = time.perf_counter()
        with local_cluster(n) as cluster, Client(cluster) as client:
            settings = with_threads(base, n)
            stamps = []
            job = run_cohort(cases, work / f"out-{n}", settings, client)
            try:
                while True:
                    progress = next(job)
                    if progress.done:
                        stamps.append(time.perf_counter())
            except StopIteration as stop:
                result = stop.value
        wall = time.perf_counter() - t0
        steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 3600 if len(stamps) > 1 else None
        row = {"workers": n, "slides": len(cases), "size_px": args.size, "failed": len(result.failed),
               "wall_s": round(wall, 1), "slides_per_hour": round(len(cases) / wall * 3600, 1),
               "steady_slides_per_hour": None if steady is None else round(steady, 1),
               "torch_threads_per_worker": settings.params.torch_threads}
        print(f"{n} worker(s): {row['slides_per_hour']} slides/h overall ({wall:.0f} s for {len(cases)}), "
              f"{row['steady_slides_per_hour']} slides/h after start-up", flush=True)
        results.append(row)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
