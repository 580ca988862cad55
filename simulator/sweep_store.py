"""The sweep's results: an SQLite database with one row per point, written as each point ends.

A row holds the point's id, index, axis values, full resolved configuration, status (ok,
failed, filtered), error and metrics, all committed at once; a killed sweep loses only the points
still in flight, and `--resume` skips the ids already stored. A `meta` table holds the schema
version and the hash of the spec whose points these are, so no other sweep mixes its rows in.
"""
from __future__ import annotations

import csv
import json
import sqlite3
from typing import Any

from tasdsim.common import TasdsimError

SCHEMA_VERSION = "1"
_COLUMNS = ["id", "idx", "axes", "config", "status", "error", "metrics"]

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
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class ResultStore:
    """SQLite file DIR/results.sqlite; one writer (the sweep's main process).

    A file that is not such a database (corrupt, a directory, another program's or another
    schema's) is a TasdsimError naming it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path)
            tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables - {"points", "meta"}:
                raise TasdsimError(f"{path}: not a tasdsim sweep database (it has tables "
                                   f"{', '.join(sorted(tables))}); use another --out")
            if "points" in tables and [r[1] for r in self.db.execute("PRAGMA table_info(points)")] != _COLUMNS:
                raise TasdsimError(f"{path}: its points table is of another schema; use another --out")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
            version = self.meta("schema")
            if version is not None and version != SCHEMA_VERSION:
                raise TasdsimError(f"{path}: schema version {version}, expected {SCHEMA_VERSION}; use another --out")
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self.db.commit()
        except sqlite3.Error as err:
            raise TasdsimError(f"{path}: not a usable sweep database ({err})") from None

    def close(self) -> None:
        self.db.close()

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def claim(self, spec_hash: str, resume: bool) -> None:
        """Make the store the spec's: a fresh run empties a store of the same spec; a store with
        another spec's points is refused, so nothing is lost or mixed."""
        stored = self.meta("spec_hash")
        has_rows = self.db.execute("SELECT COUNT(*) FROM points").fetchone()[0] > 0
        if stored is not None and stored != spec_hash and has_rows:
            raise TasdsimError(f"{self.path}: holds the results of another sweep spec (hash {stored}, this spec "
                               f"{spec_hash}); use another --out, or delete it to start over")
        if stored is None and has_rows:
            raise TasdsimError(f"{self.path}: holds results of an unknown sweep spec; use another --out")
        if not resume:
            self.clear()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('spec_hash', ?)", (spec_hash,))
        self.db.commit()

    def mark_filtered(self, filtered: list[tuple[int, dict, str]]) -> None:
        """Replace every filtered mark by the current filters' (a point a filter now excludes
        loses its stored row), so each index has one row that matches the spec as it is now."""
        self.db.execute("DELETE FROM points WHERE status = 'filtered'")
        self.db.executemany("DELETE FROM points WHERE idx = ?", [(index,) for index, _, _ in filtered])
        self.db.executemany("INSERT INTO points VALUES (?, ?, ?, ?, 'filtered', ?, NULL)",
                            [(f"filtered-{index}", index, json.dumps(values, sort_keys=True),
                              json.dumps({"filter": condition}), f"filtered by {condition}")
                             for index, values, condition in filtered])
        self.db.commit()

    def done_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT id FROM points")}

    def clear(self) -> None:
        self.db.execute("DELETE FROM points")
        self.db.commit()

    def write(self, point_id: str, index: int, axes: dict, config: dict, status: str, error: str | None,
              metrics: dict | None) -> None:
        """Store one point and commit at once."""
        try:
            self.db.execute("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (point_id, index, json.dumps(axes, sort_keys=True), json.dumps(config, sort_keys=True),
                             status, error, json.dumps(metrics, sort_keys=True) if metrics is not None else None))
            self.db.commit()
        except sqlite3.Error as err:
            raise TasdsimError(f"{self.path}: cannot store point {index} ({err})") from None

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
