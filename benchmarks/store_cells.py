"""Saving and loading a cell table in the case store: column blobs (what the store does) vs one
row per cell (the alternative it rejected; see ``core/store/cells_codec.py``).

    .venv/bin/python benchmarks/store_cells.py [--cells 1000000] [--url URL]

Without ``--url`` it uses a fresh SQLite file in a temporary folder. Prints seconds per step.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Column, Float, Integer, MetaData, SmallInteger, Table, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.store import CaseStore  # noqa: E402


def make_cells(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x_um = rng.uniform(0, 20_000, n)
    y_um = rng.uniform(0, 20_000, n)
    class_id = rng.integers(0, 5, n)
    return pd.DataFrame(
        {
            "x_px": x_um / 0.227,
            "y_px": y_um / 0.227,
            "x_um": x_um,
            "y_um": y_um,
            "class_id": class_id,
            "probability": rng.uniform(0.2, 1.0, n),
            "area_um2": rng.uniform(10, 80, n),
        }
    )


def bench_blobs(store: CaseStore, cells: pd.DataFrame, slide_file: Path) -> tuple[float, float]:
    case = store.create_case(f"bench-{time.time_ns()}")
    slide = store.add_slide(case.id, slide_file, mpp=(0.227, 0.227), channels=["Hoechst"], is_synthetic=True)
    run = store.start_analysis(
        case.id, slide.id, model_name="bench", model_sha256="0" * 64, parameters={}, device="cpu", precision="fp32"
    )
    t0 = time.perf_counter()
    store.save_cells(run.id, cells)
    t1 = time.perf_counter()
    loaded = store.load_cells(run.id)
    t2 = time.perf_counter()
    assert len(loaded) == len(cells) and np.array_equal(loaded["x_um"].to_numpy(), cells["x_um"].to_numpy())
    return t1 - t0, t2 - t1


def bench_rows(store: CaseStore, cells: pd.DataFrame, *, raw: bool) -> tuple[float, float]:
    """One row per cell in a scratch table: SQLAlchemy Core executemany, or (``raw``) the
    driver's own ``cursor.executemany`` with tuples, the fastest a row-per-cell design can go.
    """
    table = Table(
        "bench_cell_rows",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("analysis_id", Integer, nullable=False, index=True),
        Column("x_um", Float, nullable=False),
        Column("y_um", Float, nullable=False),
        Column("class_id", SmallInteger, nullable=False),
        Column("probability", Float, nullable=False),
        Column("area_um2", Float, nullable=False),
    )
    table.metadata.drop_all(store.engine)
    table.metadata.create_all(store.engine)
    columns = ["x_um", "y_um", "class_id", "probability", "area_um2"]
    mark = "?" if store.engine.dialect.name == "sqlite" else "%s"
    sql_insert = f"INSERT INTO bench_cell_rows (analysis_id, {', '.join(columns)}) VALUES ({', '.join([mark] * 6)})"
    sql_select = f"SELECT {', '.join(columns)} FROM bench_cell_rows WHERE analysis_id = 1"
    t0 = time.perf_counter()
    with store.engine.begin() as conn:
        if raw:
            values = cells[columns].astype(object).to_numpy()
            conn.exec_driver_sql(sql_insert, [(1, *row) for row in values.tolist()])
        else:
            conn.execute(insert(table), cells[columns].assign(analysis_id=1).to_dict("records"))
    t1 = time.perf_counter()
    with store.engine.connect() as conn:
        if raw:
            rows = conn.exec_driver_sql(sql_select).fetchall()
        else:
            rows = conn.execute(select(*(table.c[c] for c in columns)).where(table.c.analysis_id == 1)).all()
    loaded = pd.DataFrame(rows, columns=columns)
    t2 = time.perf_counter()
    assert len(loaded) == len(cells)
    table.metadata.drop_all(store.engine)
    return t1 - t0, t2 - t1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--url", default=None, help="SQLAlchemy URL (default: a temporary SQLite file)")
    parser.add_argument("--skip-rows", action="store_true", help="only time the blobs")
    args = parser.parse_args()
    cells = make_cells(args.cells)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        slide_file = Path(tmp) / "slide.bin"
        slide_file.write_bytes(b"synthetic slide stand-in")
        with CaseStore.open(url) as store:
            print(f"{args.cells:,} cells, {store.engine.dialect.name}")
            save, load = bench_blobs(store, cells, slide_file)
            print(f"  column blobs (the store):     save {save:6.2f} s   load {load:6.2f} s")
            if not args.skip_rows:
                save, load = bench_rows(store, cells, raw=False)
                print(f"  one row per cell, ORM Core:   save {save:6.2f} s   load {load:6.2f} s")
                save, load = bench_rows(store, cells, raw=True)
                print(f"  one row per cell, driver:     save {save:6.2f} s   load {load:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
