"""``python -m core validate``: the whole pipeline on unseen phantoms, against their truth.

Generates N phantom slides over a range of infiltration (cold to hot, CT and IM separately), runs
the engine on each as a user would (engine cells, engine tissue, the true tumour outline as the
drawn region), scores them, and prints per marker group and region the density error against the
truth, the IM area error, the Immunoscore-like and T-and-B category agreement, and split/merged
cells. See :mod:`core.validation`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from core.models.card import PRECISIONS
from core.models.precision import RUNTIMES
from core.progress import CancelToken

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, not {text}")
    return value


def _slide_size(text: str) -> int:
    value = int(text)
    if not 512 <= value <= 200_000:
        raise argparse.ArgumentTypeError(f"slide size must be 512 to 200000 px, not {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="validate slide → engine → scores on phantoms against their truth",
        description="Generate phantom cases (never trained on), analyse and score each as a user would, and "
        "compare densities, IM area and categories with the truth.",
    )
    p.add_argument("--cases", type=_positive_int, default=20, help="number of phantom cases (default 20)")
    p.add_argument("--size", type=_slide_size, default=2048, help="phantom side in px (default 2048)")
    p.add_argument("--first-seed", type=int, default=5000,
                   help="seed of the first case (default 5000; the demo model was trained on seeds 11-14, 201, 301, 302, "
                        "401-404 and 501-504, with 202 for validation; 16000, 17000, 22000 and 23000 chose between models)")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: the demo model)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="numeric precision (default fp32)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="what runs the network on the CPU, as in core analyse (default auto: ONNX Runtime when "
                        "installed, else PyTorch)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the network runs (default cpu: the figures are a lab PC's; cuda: the GPU path, "
                        "e.g. with --precision bf16 as core analyse uses it there)")
    p.add_argument("--reference", type=Path, default=None,
                   help="reference cohort CSV for the categories (default: the SYNTHETIC demo cohort)")
    p.add_argument("--work-dir", type=Path, default=Path("validation-work"),
                   help="where the phantoms are written and kept for re-runs (default ./validation-work)")
    p.add_argument("--out", type=Path, required=True, help="folder for densities.csv, cases.csv, summary.json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.progress import run_to_completion
    from core.validation import ValidationOptions, format_table, run_validation, write_outputs

    options = ValidationOptions(cases=args.cases, size=args.size, first_seed=args.first_seed, model_dir=args.model,
                                precision=args.precision, runtime=args.runtime, device=args.device,
                                reference_csv=args.reference, work_dir=args.work_dir)
    last = [""]

    def show(p) -> None:
        if p.message.startswith("Case") and p.message != last[0]:
            last[0] = p.message
            log.info("%s", p.message)

    cases = run_to_completion(run_validation(options, CancelToken()), show)
    paths = write_outputs(cases, args.out)
    print(format_table(cases))
    print(f"\nWrote {', '.join(str(p) for p in paths.values())}")
    return 0
