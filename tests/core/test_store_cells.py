"""Cells in the case store: exact round trip of 1,000,000 cells, replacement, damage detection.

Timings are printed by ``benchmarks/store_cells.py``; these tests check correctness only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from store_fixtures import MPP, make_cells, new_analysis

from core.errors import StoreError
from core.store import CaseStore
from core.store.cells_codec import CELL_COLUMNS, CHUNK_CELLS

pytest_plugins = ["store_fixtures"]  # store, store_url, slide_file, pg_server


def test_million_cells_round_trip(store: CaseStore, slide_file: Path) -> None:
    # 1,000,000 on SQLite (the default store); fewer on the PostgreSQL server to keep the suite short
    # (benchmarks/store_cells.py --url postgresql+psycopg2://... times a million there).
    n = 1_000_000 if store.engine.dialect.name == "sqlite" else 3 * CHUNK_CELLS + 7
    _case_id, run_id = new_analysis(store, "CELLS-1", slide_file)
    cells = make_cells(n)
    saved = store.save_cells(run_id, cells)
    assert saved.n_cells == n
    loaded = store.load_cells(run_id)
    assert list(loaded.columns) == list(CELL_COLUMNS)
    stored = ["x_um", "y_um", "class_id", "probability", "area_um2"]
    pd.testing.assert_frame_equal(loaded[stored], cells[stored].astype({"class_id": np.int64}))  # bit-exact
    assert (loaded["class_name"].to_numpy() == cells["class_name"].to_numpy()).all()
    np.testing.assert_allclose(loaded["x_px"], cells["x_px"], rtol=1e-12)
    np.testing.assert_allclose(loaded["y_px"], cells["y_px"], rtol=1e-12)
    assert loaded["x_px"].to_numpy()[0] == loaded["x_um"].to_numpy()[0] / MPP[0]


def test_save_replaces_and_empty_tables(store: CaseStore, slide_file: Path) -> None:
    _case_id, run_id = new_analysis(store, "CELLS-2", slide_file)
    empty = store.load_cells(run_id)
    assert list(empty.columns) == list(CELL_COLUMNS) and len(empty) == 0
    store.save_cells(run_id, make_cells(CHUNK_CELLS + 1, seed=1))
    assert len(store.load_cells(run_id)) == CHUNK_CELLS + 1
    second = make_cells(5, seed=2)
    assert store.save_cells(run_id, second).n_cells == 5
    assert store.load_cells(run_id)["x_um"].tolist() == second["x_um"].tolist()
    assert store.save_cells(run_id, make_cells(0)).n_cells == 0
    assert len(store.load_cells(run_id)) == 0
    assert [e.after["n_cells"] for e in store.audit_entries() if e.action == "save_cells"] == [CHUNK_CELLS + 1, 5, 0]


def test_bad_cell_tables_are_refused(store: CaseStore, slide_file: Path) -> None:
    _case_id, run_id = new_analysis(store, "CELLS-3", slide_file)
    with pytest.raises(StoreError, match="lacks column.*probability"):
        store.save_cells(run_id, make_cells(3).drop(columns=["probability"]))
    bad = make_cells(3)
    bad.loc[1, "class_id"] = 7
    with pytest.raises(StoreError, match="class id 7"):
        store.save_cells(run_id, bad)
    assert store.get_analysis(run_id).n_cells is None


def test_damaged_cells_are_detected(store: CaseStore, slide_file: Path) -> None:
    _case_id, run_id = new_analysis(store, "CELLS-4", slide_file)
    store.save_cells(run_id, make_cells(1000))
    with store.engine.begin() as conn:
        blob = bytearray(conn.execute(text("SELECT data FROM cell_chunks WHERE analysis_id = :a"), {"a": run_id}).scalar_one())
        blob[100] ^= 0xFF
        conn.execute(text("UPDATE cell_chunks SET data = :d WHERE analysis_id = :a"), {"d": bytes(blob), "a": run_id})
    with pytest.raises(StoreError, match="damaged"):
        store.load_cells(run_id)
