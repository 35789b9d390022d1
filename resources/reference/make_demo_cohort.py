"""Make the SYNTHETIC demo reference cohort: ``python resources/reference/make_demo_cohort.py``.

No real cohort may ship with the product, so the demo ranks scores against made-up cases. Each case
gets a latent "immune hotness" h ~ N(0, 1) (cold to hot), and log-normal densities (cells/mm²)
that follow it, with the magnitudes reported for colorectal cancer:

- CD3+ in CT: median ~300 (about 50-2000); CD3+ in IM: CT x ~1.8 (IM denser than CT).
- CD8+: a share of CD3+ around 45 % (logit-normal, about 25-70 %), in each region.
- CD20+ (B cells, sparse in the tumour centre): CT median ~40; IM x ~3.

Values are clipped to [1, 6000] and rounded to 0.1. Seeded, so the file is reproducible. Writes
``demo_cohort.csv`` (with ``# name:`` / ``# synthetic: true`` header lines, read by
``core.scores.ReferenceCohort.from_csv``) and ``demo_cohort.json`` ({name, n, synthetic, how_made}).
When ``core.phantom`` matures, the cohort may be regenerated from phantom slides instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

NAME = "Demo cohort (SYNTHETIC)"
SEED = 20240611
N_CASES = 150
HERE = Path(__file__).resolve().parent


def make_cohort(n: int = N_CASES, seed: int = SEED) -> pd.DataFrame:
    """One row per synthetic case: case_id and the six densities in cells/mm²."""
    rng = np.random.default_rng(seed)
    hot = rng.normal(0.0, 1.0, n)

    def lognormal(median: float, slope: float, sd: float) -> np.ndarray:
        return np.exp(np.log(median) + slope * hot + rng.normal(0.0, sd, n))

    def share(mean: float, sd: float) -> np.ndarray:
        logit = np.log(mean / (1 - mean)) + rng.normal(0.0, sd, n)
        return 1.0 / (1.0 + np.exp(-logit))

    cd3_ct = lognormal(300.0, 0.9, 0.35)
    cd3_im = cd3_ct * np.exp(np.log(1.8) + rng.normal(0.0, 0.3, n))
    cd20_ct = lognormal(40.0, 0.8, 0.6)
    df = pd.DataFrame(
        {
            "case_id": [f"SYN-{i + 1:03d}" for i in range(n)],
            "CD3_CT": cd3_ct,
            "CD3_IM": cd3_im,
            "CD8_CT": cd3_ct * share(0.45, 0.5),
            "CD8_IM": cd3_im * share(0.45, 0.5),
            "CD20_CT": cd20_ct,
            "CD20_IM": cd20_ct * np.exp(np.log(3.0) + rng.normal(0.0, 0.4, n)),
        }
    )
    cols = df.columns[1:]
    df[cols] = df[cols].clip(1.0, 6000.0).round(1)
    return df


def main() -> None:
    df = make_cohort()
    how = (
        f"resources/reference/make_demo_cohort.py, seed {SEED}: {N_CASES} made-up cases, log-normal "
        "densities (cells/mm²) driven by a latent immune hotness; IM denser than CT. Not patient data."
    )
    header = f"# name: {NAME}\n# synthetic: true\n# SYNTHETIC data for demonstration only: {how}\n"
    (HERE / "demo_cohort.csv").write_text(header + df.to_csv(index=False), encoding="utf-8")
    meta = {"name": NAME, "n": len(df), "synthetic": True, "how_made": how, "units": "cells/mm²"}
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    (HERE / "demo_cohort.json").write_text(text, encoding="utf-8")
    print(df.describe().round(1).to_string())


if __name__ == "__main__":
    main()
