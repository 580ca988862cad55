"""The EDP table of a sweep that runs TASD against dense (`tasd: none`) on the same hardware:
one row per point with TASD, its EDP beside the same hardware's dense EDP and the improvement
1 - EDP_tasd / EDP_dense (the paper's measure)."""
from __future__ import annotations

from typing import Any

from tasdsim.simulator.output import print_table


def edp_rows(rows: list[dict[str, Any]], axis_keys: list[str]) -> list[dict[str, Any]]:
    """For each finished point with tasd other than none: its setup (the axis values besides hw and
    tasd), its EDP, the dense EDP of the same hardware (same overrides; same other axis values when
    such a dense point exists) and the improvement. Points without a dense counterpart are left out."""
    ok = [r for r in rows if r["status"] == "ok"]
    setup_keys = [k for k in axis_keys if k not in ("hw", "tasd")]

    def machine(row: dict[str, Any]) -> tuple:
        return row["config"]["run"]["hw"], tuple(row["config"]["overrides"])

    def setup(row: dict[str, Any]) -> tuple:
        return tuple(str(row["axes"].get(k, "")) for k in setup_keys)

    dense = [r for r in ok if r["config"]["run"]["tasd"] == "none"]
    table = []
    for row in ok:
        if row["config"]["run"]["tasd"] == "none":
            continue
        same = [d for d in dense if machine(d) == machine(row)]
        base = next((d for d in same if setup(d) == setup(row)), same[0] if same else None)
        if base is None:
            continue
        edp, edp_dense = row["metrics"]["edp"], base["metrics"]["edp"]
        table.append({"hw": machine(row)[0], **dict(zip(setup_keys, setup(row))), "tasd": row["config"]["run"]["tasd"],
                      "edp": edp, "edp_dense": edp_dense, "improvement": 1 - edp / edp_dense if edp_dense else 0.0})
    return table


def print_edp_table(rows: list[dict[str, Any]], axis_keys: list[str]) -> bool:
    """Print the EDP table; False (nothing printed) when the sweep has no TASD point with a dense one."""
    table = edp_rows(rows, axis_keys)
    if not table:
        return False
    keys = [k for k in table[0] if k not in ("edp", "edp_dense", "improvement")]
    print("EDP improvement of TASD over the same hardware running dense (1 - EDP_tasd / EDP_dense):")
    print_table([*keys, "edp_dense", "edp_tasd", "improvement"],
                [[*(t[k] for k in keys), f"{t['edp_dense']:.4g}", f"{t['edp']:.4g}", f"{t['improvement']:.1%}"]
                 for t in table])
    return True
