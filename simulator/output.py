"""Printing results: JSON on stdout and plain aligned tables."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence


def print_json(obj: Any) -> None:
    """One JSON object on stdout, keys in insertion order."""
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A left-aligned text table with a header rule."""
    cells = [[str(h) for h in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))
