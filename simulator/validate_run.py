"""Running a validation suite: every point through the simulator and the analytical model, each
metric classed exact (equal), within (relative difference within its tolerance) or outside; a point
takes its worst metric's class. For a point that is not exact, the component named is the one whose
term differs most: the unit whose stall cycles differ most between simulator and model (`pipeline`
when no unit accounts for half of the difference), or the unit an exact count belongs to."""
from __future__ import annotations

import math
import statistics
import time
from typing import Any

from tasdsim.common import TasdsimError
from tasdsim.simulator.analytical import LayerModel, model_layer
from tasdsim.simulator.run import simulate_layer
from tasdsim.simulator.stats import STALL_CAUSES, LayerStats
from tasdsim.simulator.validate_suite import Point, Suite, point_hardware, point_layer, point_series

def _metrics(sim: LayerStats, model: LayerModel) -> list[tuple[str, str, float, float]]:
    """(metric, tolerance group, simulator value, model value) for every number both report."""
    out = [("cycles", "cycles", sim.cycles, model.cycles),
           ("compute_cycles", "compute_cycles", sim.compute_cycles, model.compute_cycles)]
    out += [(f"dram_bytes.{key}", "dram_bytes", sim.dram_bytes[key], value) for key, value in model.dram_bytes.items()]
    out += [(key, "counts", getattr(sim, key), getattr(model, key)) for key in ("folds", "macs_issued", "macs_useful")]
    out += [(f"actions.{unit}.{action}", "counts", sim.actions[unit][action], value)
            for unit, acts in model.actions.items() for action, value in acts.items()]
    out.append(("energy_pj", "energy", sim.energy_pj.get("total", 0.0), model.energy_pj.get("total", 0.0)))
    return out


def _rel(sim: float, model: float) -> float:
    if sim == model:
        return 0.0
    return (model - sim) / sim if sim else math.inf


def _unit_of(metric: str) -> str:
    """The component an exact count belongs to."""
    if metric.startswith("dram_bytes") or metric.startswith("actions.dram"):
        return "dram"
    if metric.startswith("actions.sram_"):
        return "sram"
    if metric.startswith("actions."):
        return metric.split(".")[1]
    return "pe_array"


def _stall_component(sim: LayerStats, model: LayerModel) -> tuple[str, int]:
    """The unit whose stall cycles differ most (and by how much, model - simulator); `pipeline`
    when no unit accounts for half of the differences (the overlap between units differs)."""
    if sim.compute_cycles != model.compute_cycles:
        return "pe_array", model.compute_cycles - sim.compute_cycles
    diffs = {c: model.stall_cycles.get(c, 0) - sim.stall_cycles.get(c, 0) for c in STALL_CAUSES}
    top = max(diffs, key=lambda c: abs(diffs[c]))
    spread = sum(abs(v) for v in diffs.values())
    if spread and abs(diffs[top]) * 2 < spread:
        return "pipeline", sum(diffs.values())
    return top, diffs[top]


def compare(point: Point, sim: LayerStats, model: LayerModel, tolerances: dict[str, float]) -> dict[str, Any]:
    """Every metric with its class, the point's class and the component to blame."""
    tol = {**tolerances, **point.tolerances}
    tol["cycles"] = tol["cycles_real"] if point.memory == "real" else tol["cycles_ideal"]
    rows = []
    for metric, group, s, m in _metrics(sim, model):
        rel = _rel(s, m)
        status = "exact" if s == m else ("within" if abs(rel) <= tol[group] else "outside")
        rows.append({"metric": metric, "sim": s, "model": m, "rel_diff": rel, "tolerance": tol[group],
                     "status": status})
    worst = "outside" if any(r["status"] == "outside" for r in rows) else (
        "within" if any(r["status"] == "within" for r in rows) else "exact")
    component, by = "-", 0
    if worst != "exact":
        bad = [r for r in rows if r["status"] == worst]
        counted = [r for r in bad if r["metric"] not in ("cycles", "energy_pj")]
        if counted:  # an exact count differs: its unit
            component, by = _unit_of(counted[0]["metric"]), counted[0]["model"] - counted[0]["sim"]
        else:
            component, by = _stall_component(sim, model)
    return {"metrics": rows, "status": worst, "component": component, "component_diff_cycles": by}


def run_suite(suite: Suite, progress: bool = False) -> list[dict[str, Any]]:
    """Simulate and model every point; one result dict per point."""
    hw_cache: dict = {}
    workloads: dict = {}
    results = []
    for i, point in enumerate(suite.points):
        hw = point_hardware(point, hw_cache)
        layer = point_layer(point, workloads)
        series = point_series(point)
        ideal = point.memory == "ideal"
        try:
            t0 = time.perf_counter()
            sim = simulate_layer(layer, hw, series, ideal)
            t1 = time.perf_counter()
            model = model_layer(layer, hw, series, ideal)
            t2 = time.perf_counter()
        except TasdsimError as err:
            raise TasdsimError(f"{suite.label}: point {point.name}: {err}") from None
        result = {
            "name": point.name, "hw": hw.name, "set": list(point.overrides), "dataflow": hw.pe_array.dataflow,
            "layer": {**point.layer, "m": layer.m, "n": layer.n, "k": layer.k, "groups": layer.groups},
            "tasd": point.tasd, "operand": point.operand, "memory": point.memory,
            "sim_cycles": sim.cycles, "model_cycles": model.cycles, "rel_diff": _rel(sim.cycles, model.cycles),
            **compare(point, sim, model, suite.tolerances),
            "dominant": model.dominant, "bound": "memory" if model.dominant == "dram" else "compute",
            "roofline_cycles": model.bounds["roofline"],
            "stall_cycles": {"sim": sim.stall_cycles, "model": model.stall_cycles},
            "model_unattributed": model.unattributed,
            "model_bounds": model.bounds, "dram_efficiency": model.dram_efficiency,
            "seconds": {"sim": t1 - t0, "model": t2 - t1},
        }
        results.append(result)
        if progress:
            print(f"  [{i + 1}/{len(suite.points)}] {point.name}: {result['status']}", flush=True)
    return results


def _distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"points": 0}
    mags = [abs(v) for v in values]
    return {"points": len(values), "median": statistics.median(mags), "mean": statistics.fmean(mags),
            "max": max(mags)}


def summarize(results: list[dict[str, Any]], suite: Suite) -> dict[str, Any]:
    """Counts by class, the error distribution of total cycles, which exact metrics matched."""
    def exact_share(group_prefix: tuple[str, ...]) -> str:
        ok = sum(all(r["status"] == "exact" for r in res["metrics"] if r["metric"].startswith(group_prefix))
                 for res in results)
        return f"{ok}/{len(results)}"

    counts = {s: sum(r["status"] == s for r in results) for s in ("exact", "within", "outside")}
    return {
        "suite": suite.label, "points": len(results), **counts,
        "cycles_real": _distribution([r["rel_diff"] for r in results if r["memory"] == "real"]),
        "cycles_ideal": _distribution([r["rel_diff"] for r in results if r["memory"] == "ideal"]),
        "exact_metrics": {"compute_cycles": exact_share(("compute_cycles",)),
                          "dram_bytes": exact_share(("dram_bytes",)),
                          "counts": exact_share(("folds", "macs_", "actions."))},
        "coverage": {"hardware": sorted({r["hw"] for r in results}),
                     "dataflows": sorted({r["dataflow"] for r in results}),
                     "dense": sum(r["tasd"] == "dense" for r in results),
                     "sparse": sum(r["tasd"] != "dense" for r in results),
                     "activation_tasd": sum(r["operand"] == "activations" and r["tasd"] != "dense" for r in results),
                     "compute_bound": sum(r["bound"] == "compute" for r in results),
                     "memory_bound": sum(r["bound"] == "memory" for r in results)},
        "components": _tally(r["component"] for r in results if r["status"] != "exact"),
        "roofline": _roofline(results),
        "tolerances": suite.tolerances,
        "seconds": {"sim": sum(r["seconds"]["sim"] for r in results),
                    "model": sum(r["seconds"]["model"] for r in results)},
    }


def _roofline(results: list[dict[str, Any]]) -> dict[str, Any]:
    """How far the simulated cycles are above the roofline (the busiest unit alone, plus fill and
    drain), and which stalls make up the simulated cycles no unit alone explains."""
    ratios = [r["sim_cycles"] / r["roofline_cycles"] for r in results if r["roofline_cycles"]]
    stalls: dict[str, int] = {}
    for r in results:
        for cause, value in r["stall_cycles"]["sim"].items():
            stalls[cause] = stalls.get(cause, 0) + value
    total = sum(stalls.values()) or 1
    return {"sim_over_roofline": {"median": statistics.median(ratios), "max": max(ratios)} if ratios else {},
            "stall_share": {cause: value / total for cause, value in stalls.items() if value}}


def _tally(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
