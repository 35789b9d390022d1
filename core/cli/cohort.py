"""``python -m core cohort MANIFEST.csv --out DIR``: analyse and score every case of a cohort on Dask.

Writes one folder per case (the files of ``core analyse`` and ``core score``), ``cohort.parquet``
and ``cohort.csv`` (one row per case) and ``cohort.png``. Local by default (a LocalCluster sized
to the machine); ``--scheduler tcp://HOST:PORT`` uses any running Dask cluster. A failed case is
reported and the others go on (exit code 1 when any failed); a re-run skips finished cases.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.params import AnalysisParams
from core.models.card import PRECISIONS
from core.models.precision import RUNTIMES
from core.regions import DEFAULT_IM_HALF_WIDTH_UM

if TYPE_CHECKING:  # distributed is imported when the command runs
    from distributed import Client, LocalCluster

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    d = AnalysisParams()
    p = subparsers.add_parser(
        "cohort",
        help="analyse and score every case of a manifest on a Dask cluster (local by default)",
        description="Analyse and score each case of MANIFEST.csv (columns case_id,slide and optional "
        "regions,mpp,reference) into OUT/<case_id>/, then write OUT/cohort.parquet, OUT/cohort.csv and "
        "OUT/cohort.png. Finished cases are skipped on a re-run; interrupted ones resume.",
    )
    p.add_argument("manifest", type=Path, help="CSV: case_id,slide[,regions,mpp,reference]; paths relative to it")
    p.add_argument("--out", type=Path, required=True, help="output directory (created)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per GPU, else one per 4 CPU cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler (tcp://HOST:PORT) or scheduler file (.json) instead of a local "
                   "cluster (default: Dask's scheduler-address setting, e.g. $DASK_SCHEDULER_ADDRESS, if set)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="afterwards, record the finished cases in this case store (SQLAlchemy URL)")
    p.add_argument("--reference", action="store_true",
                   help="with --store: flag every finished case as a member of the lab's reference cohort")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    p.add_argument("--reference-csv", default=None, metavar="CSV",
                   help="reference cohort CSV the Immunoscore-like and T-and-B scores rank against, or 'demo' for "
                   "the SYNTHETIC demo cohort (default: none: densities only, both scores 'not evaluable'; the "
                   "finished cohort table can itself become the lab's reference, see docs/cohorts.md)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA if available")
    p.add_argument("--precision", choices=PRECISIONS, default=None, help="default: chosen on each worker")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="CPU inference runtime, as core analyse (default auto: ONNX Runtime at fp32 when installed, else PyTorch)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"tiles per model call (default {d.batch_size})")
    p.add_argument("--tissue-min-area", type=float, default=d.tissue_min_area_um2, metavar="UM2",
                   help=f"ignore tissue pieces smaller than this, in µm² (default {d.tissue_min_area_um2:g})")
    p.add_argument("--im-width", type=float, default=DEFAULT_IM_HALF_WIDTH_UM, metavar="UM",
                   help=f"IM half-width in µm when CT/IM are derived (default {DEFAULT_IM_HALF_WIDTH_UM:g})")
    p.set_defaults(func=run)


def _client(args: argparse.Namespace) -> tuple[LocalCluster | None, Client]:
    """(LocalCluster or None, distributed.Client): a running scheduler if one is named, else a local cluster."""
    import dask
    from distributed import Client

    from core.cohort import local_cluster
    from core.errors import ConfigError

    # --scheduler, else Dask's own configuration (DASK_SCHEDULER_ADDRESS, ~/.config/dask/*.yaml)
    target = args.scheduler or dask.config.get("scheduler-address", None)
    if target:
        try:
            if target.endswith(".json"):
                return None, Client(scheduler_file=target, timeout="30s")
            return None, Client(target, timeout="30s")
        except (OSError, TimeoutError, ValueError) as err:
            raise ConfigError(f"Cannot reach the Dask scheduler {target}: {err}. Is the cluster running?") from err
    cluster = local_cluster(args.workers)
    return cluster, Client(cluster)


def _reference(value: str | None) -> Path | None:
    """The reference cohort CSV: None, the demo cohort for "demo", or an existing file."""
    from core.demo import DEMO_COHORT
    from core.errors import ConfigError

    if value is None:
        return None
    path = DEMO_COHORT if value == "demo" else Path(value)
    if not path.is_file():
        raise ConfigError(f"--reference-csv {value}: no such file. Give the lab's cohort table (CSV) or 'demo'.")
    return path.resolve()


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.cohort import CohortSettings, read_manifest, run_cohort, with_threads
    from core.cohort.run import dashboard_link
    from core.errors import ConfigError
    from core.models.card import load_card
    from core.models.runtime import default_model_dir
    from core.progress import Progress, run_to_completion

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be 1 or more, not {args.workers}.")
    if args.reference and not args.store:
        raise ConfigError("--reference flags cases in the case store: give the store with --store URL.")
    cases = read_manifest(args.manifest)
    model_dir = (args.model or default_model_dir()).resolve()
    card = load_card(model_dir)
    params = AnalysisParams(batch_size=args.batch_size, tissue_min_area_um2=args.tissue_min_area)
    settings = CohortSettings(model_dir, card.weights_sha256, _reference(args.reference_csv),
                              params, args.device, args.precision, args.im_width, args.runtime)
    if not args.verbose:  # the scheduler's and workers' INFO lines would bury the progress bar
        import distributed  # noqa: F401 - it sets its loggers' levels on import: quieten them after

        logging.getLogger("distributed").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # the store's schema check, with --store
    cluster, client = _client(args)
    try:
        if cluster is not None:
            settings = with_threads(settings, len(cluster.workers))
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        link = dashboard_link(client, local=cluster is not None)
        print(f"{len(cases)} case(s), model {card.name}, {workers} Dask worker(s); dashboard: "
              f"{link or 'none (install bokeh for it)'}", file=sys.stderr)
        with tqdm(total=len(cases), unit="case", file=sys.stderr, dynamic_ncols=True) as bar:

            def show(p: Progress) -> None:
                bar.n = p.done
                bar.set_postfix_str(p.message, refresh=False)
                bar.refresh()

            result = run_to_completion(run_cohort(cases, args.out, settings, client), show)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for error in result.failed.values():
        print(f"failed: {error}", file=sys.stderr)
    print(f"{len(result.done)} case(s) analysed, {len(result.skipped)} done before, {len(result.failed)} failed")
    if args.store:
        from core.cohort import merge_into_store
        from core.store import CaseStore

        with CaseStore.open(args.store) as store:
            merged = run_to_completion(merge_into_store(store, cases, args.out, result.keys, args.reference))
        print(f"case store {store.url}: {len(merged.recorded)} case(s) recorded, {len(merged.unchanged)} already "
              f"there, {len(merged.reference)} flagged as reference")
        for case_id, why in merged.left_out.items():
            print(f"not recorded: {case_id}: {why}", file=sys.stderr)
    print(f"wrote {result.parquet}, {result.csv}, {result.plot}")
    return 1 if result.failed else 0
