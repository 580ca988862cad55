"""The sweep's results: an SQLite database with one row per point, written as each point ends.

A row holds the point's id, index, axis values, full resolved configuration, status (ok,
failed, filtered), error and metrics, all committed at once; a killed sweep loses only the points
still in flight, and `--resume` skips the ids already stored.
"""
from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any

METRICS = ("cycles", "compute_cycles", "energy_pj", "edp", "utilization", "macs_useful", "dram_read_bytes",
           "dram_write_bytes")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id TEXT PRIMARY KEY,
    idx INTEGER NOT NULL,
    axes TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    metrics TEXT
)
"""


class ResultStore:
    """SQLite file DIR/results.sqlite; one writer (the sweep's main process)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(_SCHEMA)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def done_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM points")}

    def clear(self) -> None:
        self.db.execute("DELETE FROM points")
        self.db.commit()

    def write(self, point_id: str, index: int, axes: dict, config: dict, status: str, error: str | None,
              metrics: dict | None) -> None:
        """Store one point and commit at once."""
        self.db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (point_id, index, json.dumps(axes, sort_keys=True), json.dumps(config, sort_keys=True),
                         status, error, json.dumps(metrics, sort_keys=True) if metrics is not None else None))
        self.db.commit()

    def rows(self) -> list[dict[str, Any]]:
        """Every stored point, in point order."""
        out = []
        for pid, idx, axes, config, status, error, metrics in self.db.execute(
                "SELECT id, idx, axes, config, status, error, metrics FROM points ORDER BY idx"):
            out.append({"id": pid, "index": idx, "axes": json.loads(axes), "config": json.loads(config),
                        "status": status, "error": error, "metrics": json.loads(metrics) if metrics else None})
        return out

    def write_csv(self, path: str, axis_keys: list[str]) -> None:
        """results.csv: one column per axis (its dotted key), status, error, then the metrics."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["point", *axis_keys, "status", "error", *METRICS])
            for row in self.rows():
                metrics = row["metrics"] or {}
                writer.writerow([row["index"], *[row["axes"].get(k, "") for k in axis_keys], row["status"],
                                 row["error"] or "", *[metrics.get(m, "") for m in METRICS]])
