"""The validation report: the table per point, the distributions, the roofline view, the stall
causes of simulator and model side by side, and the files `--out` writes."""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

from tasdsim.common import TasdsimError
from tasdsim.simulator.output import print_table
from tasdsim.simulator.validate_plots import plot_cycles

def _pct(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value * 100:+.2f}%"


def _table_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in results:
        exact = [m for m in r["metrics"] if m["metric"] not in ("cycles", "energy_pj")]
        wrong = sum(m["status"] != "exact" for m in exact)
        rows.append([r["name"], r["hw"], r["dataflow"], r["memory"], r["sim_cycles"], r["model_cycles"],
                     _pct(r["rel_diff"]), "exact" if not wrong else f"{wrong} differ", r["dominant"], r["status"],
                     r["component"]])
    return rows


HEADER = ["point", "hw", "df", "memory", "sim_cycles", "model_cycles", "diff", "counts", "dominant", "status",
          "component"]


def print_report(results: list[dict[str, Any]], summary: dict[str, Any], peers: dict[str, Any] | None) -> None:
    print_table(HEADER, _table_rows(results))
    s = summary
    print()
    print(f"{s['points']} points: {s['exact']} exact, {s['within']} within tolerance, {s['outside']} outside")
    for key, label in (("cycles_real", "real DRAM"), ("cycles_ideal", "ideal memory")):
        d = s[key]
        if d["points"]:
            print(f"total cycles, {label} ({d['points']} points): |diff| median {d['median'] * 100:.3f}%, "
                  f"mean {d['mean'] * 100:.3f}%, max {d['max'] * 100:.3f}% "
                  f"(tolerance {s['tolerances'][key] * 100:g}%)")
    e = s["exact_metrics"]
    print(f"exact: compute cycles {e['compute_cycles']}, DRAM bytes per operand {e['dram_bytes']}, "
          f"counts {e['counts']} points")
    cov = s["coverage"]
    print(f"coverage: {', '.join(cov['hardware'])}; {', '.join(cov['dataflows'])}; {cov['dense']} dense, "
          f"{cov['sparse']} sparse ({cov['activation_tasd']} activation TASD); {cov['compute_bound']} compute-bound, "
          f"{cov['memory_bound']} memory-bound")
    if s["components"]:
        print("components named: " + ", ".join(f"{k} {v}" for k, v in sorted(s["components"].items())))
    roof = s["roofline"]
    if roof["sim_over_roofline"]:
        ranked = sorted(roof["stall_share"].items(), key=lambda kv: -kv[1])
        shares = ", ".join(f"{k} {v * 100:.0f}%" for k, v in ranked)
        ratio = roof["sim_over_roofline"]
        print(f"roofline (the busiest unit alone, the array with fill and drain): simulated cycles are "
              f"{ratio['median']:.2f}x it on median, {ratio['max']:.2f}x at most; stall cycles by cause: {shares}")
    for r in results:
        if r["status"] != "outside":
            continue
        for m in r["metrics"]:
            if m["status"] == "outside":
                print(f"outside: {r['name']}: {m['metric']} sim {m['sim']} model {m['model']} ({_pct(m['rel_diff'])}, "
                      f"tolerance {m['tolerance'] * 100:g}%); component {r['component']} "
                      f"({r['component_diff_cycles']:+} model - sim)")
    print(f"time: simulator {s['seconds']['sim']:.1f} s, model {s['seconds']['model']:.2f} s")
    if peers is None:
        return
    if not peers["installed"]:
        print(peers["note"])
        return
    print(f"SCALE-Sim v3 (stall-free compute cycles, printed + 1) on dense layers: {peers['agrees']} of "
          f"{peers['compared']} agree (WS equal; OS ours - R per fold)")
    print_table(["point", "gemm", "groups", "array", "df", "ours", "scalesim+1", "diff", "expected", "status"],
                [[p["name"], f"{p['m']}x{p['n']}x{p['k']}", p["groups"], p["array"], p["dataflow"], p["ours"],
                  p.get("scalesim_plus_one", "-"), p.get("diff", "-"), p["expected_diff"],
                  p["status"] if "note" not in p else f"{p['status']}: {p['note']}"] for p in peers["points"]])


def write_outputs(out: str, results: list[dict[str, Any]], document: dict[str, Any]) -> list[str]:
    """validate.csv (one row per point), validate.json and, with matplotlib, cycles.png."""
    try:
        os.makedirs(out, exist_ok=True)
        path_csv = os.path.join(out, "validate.csv")
        with open(path_csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["point", "hw", "set", "dataflow", "memory", "layer", "tasd", "operand", "sim_cycles",
                             "model_cycles", "rel_diff", "roofline_cycles", "sim_compute_cycles",
                             "model_compute_cycles", "metrics_differing", "dominant", "status", "component"])
            for r in results:
                compute = next(m for m in r["metrics"] if m["metric"] == "compute_cycles")
                layer = r["layer"].get("gemm") or f"{r['layer']['workload']}:{r['layer']['name']}"
                writer.writerow([r["name"], r["hw"], ";".join(r["set"]), r["dataflow"], r["memory"], layer, r["tasd"],
                                 r["operand"], r["sim_cycles"], r["model_cycles"], f"{r['rel_diff']:.6f}",
                                 r["roofline_cycles"],
                                 compute["sim"], compute["model"],
                                 sum(m["status"] != "exact" for m in r["metrics"]), r["dominant"], r["status"],
                                 r["component"]])
        path_json = os.path.join(out, "validate.json")
        with open(path_json, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, default=json_default)
            f.write("\n")
    except OSError as err:
        raise TasdsimError(f"{out}: cannot write the validation report: {err.strerror or err}") from None
    written = [path_csv, path_json]
    plot = plot_cycles(results, document["summary"], os.path.join(out, "cycles.png"))
    return written + ([plot] if plot else [])


def json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    raise TypeError(f"not JSON serialisable: {value!r}")


def print_stalls(results: list[dict[str, Any]]) -> None:
    """Stall cycles by cause per point, the simulator's and the model's side by side."""
    causes = sorted({cause for r in results for side in ("sim", "model") for cause in r["stall_cycles"][side]})
    rows = [[r["name"], *(f"{r['stall_cycles']['sim'].get(c, 0)} / {r['stall_cycles']['model'].get(c, 0)}"
                          for c in causes), r["model_unattributed"]] for r in results]
    print_table(["point (stall cycles: sim / model)", *causes, "model_unattributed"], rows)
