"""The per-epoch training log, as ``log.json`` (for programs) and ``log.csv`` (for a spreadsheet).

Rewritten whole after every epoch (a few hundred rows at most), so the files on disk always match
the last checkpoint; on ``--resume`` rows after the checkpoint's epoch are dropped.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class History:
    def __init__(self, out_dir: Path) -> None:
        self.json_path = out_dir / "log.json"
        self.csv_path = out_dir / "log.csv"
        self.rows: list[dict[str, Any]] = []
        if self.json_path.is_file():
            self.rows = json.loads(self.json_path.read_text())

    def truncate(self, epoch: int) -> None:
        self.rows = [r for r in self.rows if int(r["epoch"]) <= epoch]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.json_path.write_text(json.dumps(self.rows, indent=1))
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
