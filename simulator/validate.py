"""`tasdsim validate`: the simulator and the analytical model side by side over a suite of points.

A suite is a YAML file (the bundled one is `configs/suites/default.yaml`)::

    tolerances: {cycles_real: 0.10}     # optional: overrides of DEFAULT_TOLERANCES
    defaults: {memory: real}            # optional: tasd, operand, memory for every point
    points:
      - name: r50-l1.0.conv2-dense      # unique
        hw: dense-ws-32x32              # preset or YAML path
        set: [pe_array.dataflow=os]     # optional: --set overrides (a list, or a mapping)
        layer: {workload: resnet50, name: layer1.0.conv2}   # or {gemm: 100x70x50}; optional batch, seq_len
        tasd: "2:4+1:4"                 # optional, default dense
        operand: weights                # optional: weights | activations
        memory: real                    # optional: real | ideal
        tolerance: {cycles_real: 0.2}   # optional: this point's overrides

Every point runs through `simulate_layer` and `analytical.model_layer`. Each metric is exact (equal),
within (relative difference within its tolerance) or outside; a point takes its worst metric's
class. For a point that is not exact, the component named is the one whose term differs most:
the unit whose stall cycles differ most between simulator and model (`pipeline` when no unit
accounts for half of the difference), or the unit an exact count belongs to.

The report prints a table per point, the distribution of the total-cycle differences (median,
mean, max; real DRAM and ideal memory apart) and the roofline view (how far the simulated cycles
are above the busiest unit alone, and which stalls make up the rest); `--out` also writes
validate.csv, validate.json and, with matplotlib, cycles.png. With SCALE-Sim v3 installed the dense
points are also run through it in its stall-free mode and its cycles (printed minus one) compared.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasdsim.simulator.analytical import LayerModel, model_layer
from tasdsim.simulator.cli_format import add_command
from tasdsim.simulator.config import HwConfig, load_hw
from tasdsim.simulator.output import print_table
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.simulator.stats import STALL_CAUSES, LayerStats
from tasdsim.common import read_preset, TasdsimError
from tasdsim.traces.generate import plan
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import Layer, Workload, gemm_layer, load_workload

# Relative tolerances per metric group (0: exact).
DEFAULT_TOLERANCES = {
    "cycles_real": 0.10,    # total cycles with real DRAM
    "cycles_ideal": 0.10,   # total cycles with ideal memory (TASD units, accumulator and decoder remain)
    "compute_cycles": 0.0,  # fold cycles: exact
    "dram_bytes": 0.0,      # DRAM bytes per operand, metadata apart: exact
    "counts": 0.0,          # folds, MACs, action counts, SRAM bytes, DRAM bursts: exact
    "energy": 0.10,         # total energy (leakage follows the cycles)
}
SCALESIM_MAX_MACS = 20_000_000  # SCALE-Sim writes per-cycle traces: ~0.3 s per million MACs

_POINT_KEYS = {"name", "hw", "set", "layer", "tasd", "operand", "memory", "tolerance"}
_LAYER_KEYS = {"workload", "name", "gemm", "batch", "seq_len"}
_DEFAULT_KEYS = {"tasd", "operand", "memory"}
_TOP_KEYS = {"points", "tolerances", "defaults", "description"}


# ----------------------------------------------------------------------------- the suite


@dataclass(frozen=True)
class Point:
    """One validation point: a layer on a hardware config with a series and a memory mode."""

    name: str
    hw: str
    overrides: tuple[str, ...]
    layer: dict[str, Any]  # {workload, name[, batch, seq_len]} or {gemm}
    tasd: str
    operand: str
    memory: str
    tolerances: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    label: str
    points: tuple[Point, ...]
    tolerances: dict[str, float]


def load_suite(path: str | os.PathLike | None = None) -> Suite:
    """Load and check a suite (the bundled default when path is None). Every problem is one
    TasdsimError naming the file, the YAML path and the reason; hardware, layers and series are
    resolved here, so a bad point fails before anything runs."""
    raw, label = read_preset("suites", "default" if path is None else path, "validation suite")
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: top level must be a mapping with keys {', '.join(sorted(_TOP_KEYS))}")
    _keys(raw, _TOP_KEYS, {"points"}, label, "")
    tolerances = dict(DEFAULT_TOLERANCES)
    tolerances.update(_tolerances(raw.get("tolerances", {}), label, "tolerances"))
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        raise TasdsimError(f"{label}: defaults: must be a mapping of {', '.join(sorted(_DEFAULT_KEYS))}")
    _keys(defaults, _DEFAULT_KEYS, set(), label, "defaults")
    entries = raw["points"]
    if not isinstance(entries, list) or not entries:
        raise TasdsimError(f"{label}: points: must be a non-empty list of points")
    points, seen = [], set()
    for i, entry in enumerate(entries):
        where = f"points[{i}]"
        if not isinstance(entry, dict):
            raise TasdsimError(f"{label}: {where}: must be a mapping with keys {', '.join(sorted(_POINT_KEYS))}")
        point = _point({**defaults, **entry}, label, where)
        if point.name in seen:
            raise TasdsimError(f"{label}: {where}.name: duplicate point name {point.name!r}")
        seen.add(point.name)
        points.append(point)
    return Suite(label, tuple(points), tolerances)


def _keys(entry: dict, allowed: set[str], required: set[str], label: str, path: str) -> None:
    prefix = f"{path}." if path else ""
    for key in entry:
        if key not in allowed:
            raise TasdsimError(f"{label}: {prefix}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    for key in sorted(required - entry.keys()):
        raise TasdsimError(f"{label}: {prefix}{key}: missing required key")


def _tolerances(raw: Any, label: str, path: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: {path}: must be a mapping of {', '.join(DEFAULT_TOLERANCES)}")
    _keys(raw, set(DEFAULT_TOLERANCES), set(), label, path)
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise TasdsimError(f"{label}: {path}.{key}: must be a non-negative number (a relative difference), "
                               f"got {value!r}")
        out[key] = float(value)
    return out


def _text(entry: dict, key: str, label: str, where: str, choices: tuple[str, ...] = ()) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise TasdsimError(f"{label}: {where}.{key}: must be a non-empty string, got {value!r}")
    if choices and value not in choices:
        raise TasdsimError(f"{label}: {where}.{key}: must be one of {', '.join(choices)}, got {value!r}")
    return value.strip()


def _point(entry: dict, label: str, where: str) -> Point:
    _keys(entry, _POINT_KEYS, {"name", "hw", "layer"}, label, where)
    name = _text(entry, "name", label, where)
    hw = _text(entry, "hw", label, where)
    raw_set = entry.get("set", [])
    if isinstance(raw_set, dict):
        overrides = tuple(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                          for k, v in raw_set.items())
    elif isinstance(raw_set, list) and all(isinstance(s, str) for s in raw_set):
        overrides = tuple(raw_set)
    else:
        raise TasdsimError(f"{label}: {where}.set: must be a list of KEY=VALUE or a mapping, got {raw_set!r}")
    layer = entry["layer"]
    if not isinstance(layer, dict):
        raise TasdsimError(f"{label}: {where}.layer: must be a mapping: {{workload: NAME, name: LAYER}} "
                           "or {gemm: MxNxK}")
    _keys(layer, _LAYER_KEYS, set(), label, f"{where}.layer")
    if ("gemm" in layer) == ("workload" in layer):
        raise TasdsimError(f"{label}: {where}.layer: give either gemm: MxNxK or workload and name")
    if "workload" in layer and "name" not in layer:
        raise TasdsimError(f"{label}: {where}.layer.name: missing required key (the layer of the workload)")
    tasd = str(entry.get("tasd", "dense")).strip()
    operand = _text({"operand": entry.get("operand", "weights")}, "operand", label, where, ("weights", "activations"))
    memory = _text({"memory": entry.get("memory", "real")}, "memory", label, where, ("real", "ideal"))
    tolerances = _tolerances(entry.get("tolerance", {}), label, f"{where}.tolerance")
    point = Point(name, hw, overrides, dict(layer), tasd, operand, memory, tolerances)
    try:
        parse_series(tasd)
    except TasdsimError as err:
        raise TasdsimError(f"{label}: {where}.tasd: {err}") from None
    resolved = {}
    for key, resolve in (("hw", lambda: _hardware(point)), ("layer", lambda: _layer(point, {}))):
        try:
            resolved[key] = resolve()
        except TasdsimError as err:
            raise TasdsimError(f"{label}: {where}.{key}: {err}") from None
    series = _series(point)
    try:  # the series runs on the hardware and the tiles fit its buffers
        plan(resolved["layer"], resolved["hw"].target(), series.weights, series.activations, unbounded=memory == "ideal")
    except TasdsimError as err:
        raise TasdsimError(f"{label}: {where}: {err}") from None
    return point


def _hardware(point: Point, cache: dict | None = None) -> HwConfig:
    key = (point.hw, point.overrides)
    if cache is not None and key in cache:
        return cache[key]
    hw = load_hw(point.hw, list(point.overrides))
    if cache is not None:
        cache[key] = hw
    return hw


def _layer(point: Point, workloads: dict[tuple, Workload]) -> Layer:
    spec = point.layer
    if "gemm" in spec:
        return gemm_layer(str(spec["gemm"]))
    key = (spec["workload"], spec.get("batch"), spec.get("seq_len"))
    if key not in workloads:
        workloads[key] = load_workload(str(spec["workload"]), batch=spec.get("batch"), seq_len=spec.get("seq_len"))
    return workloads[key].select([str(spec["name"])]).layers[0]


def _series(point: Point) -> LayerSeries:
    series = parse_series(point.tasd)
    return LayerSeries(weights=series) if point.operand == "weights" else LayerSeries(activations=series)


# ----------------------------------------------------------------------------- comparing


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


# ----------------------------------------------------------------------------- running


def run_suite(suite: Suite, progress: bool = False) -> list[dict[str, Any]]:
    """Simulate and model every point; one result dict per point."""
    hw_cache: dict = {}
    workloads: dict = {}
    results = []
    for i, point in enumerate(suite.points):
        hw = _hardware(point, hw_cache)
        layer = _layer(point, workloads)
        series = _series(point)
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


# ----------------------------------------------------------------------------- SCALE-Sim v3


_SCALESIM_CFG = """[general]
run_name = tasdsim

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1024
FilterSramSzkB : 1024
OfmapSramSzkB : 1024
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def scalesim_available() -> bool:
    try:
        import scalesim.scale_sim  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


def scalesim_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim v3's stall-free compute cycles ("Total Cycles", CALC bandwidth mode) of one GEMM."""
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory(prefix="tasdsim-scalesim-") as tmp:
        cfg, topo, layout = (os.path.join(tmp, f) for f in ("tasdsim.cfg", "gemm.csv", "layout.csv"))
        Path(cfg).write_text(_SCALESIM_CFG.format(rows=rows, cols=cols, dataflow=dataflow))
        Path(topo).write_text(f"Layer, M, N, K,\nlayer, {m}, {n}, {k},\n")
        Path(layout).write_text("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                "Num Filter, Stride Height, Stride Width,\n")
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                           input_type_gemm=True)
            sim.run_scale(top_path=tmp)
        with open(os.path.join(tmp, "tasdsim", "COMPUTE_REPORT.csv"), encoding="utf-8") as f:
            report = list(csv.reader(f))
        header = [h.strip() for h in report[0]]
        return int(report[1][header.index("Total Cycles")])


def scalesim_compare(suite: Suite, results: list[dict[str, Any]], max_macs: int) -> dict[str, Any]:
    """SCALE-Sim v3 next to our stall-free (ideal-memory) compute cycles on the suite's dense
    layers. SCALE-Sim prints the count minus one; its OS folds take R + C + T - 2 (a bug its
    maintainers confirmed) where ours take 2R + C + T - 2, so OS differs by R per fold."""
    if not scalesim_available():
        return {"installed": False, "note": "SCALE-Sim v3 is not installed (pip install 'tasdsim[peers]')"}
    hw_cache: dict = {}
    workloads: dict = {}
    done: dict[tuple, dict[str, Any]] = {}
    rows_out = []
    for point, result in zip(suite.points, results):
        if not parse_series(point.tasd).is_dense:
            continue
        hw = _hardware(point, hw_cache)
        layer = _layer(point, workloads)
        r, c, df = hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.dataflow
        key = (layer.m, layer.n, layer.k, r, c, df)
        ours = model_layer(layer, hw, LayerSeries(), True).compute_cycles // layer.groups
        folds = -(-layer.k // r) * -(-layer.n // c) if df == "ws" else -(-layer.m // r) * -(-layer.n // c)
        expected = 0 if df == "ws" else folds * r
        row = {"name": point.name, "m": layer.m, "n": layer.n, "k": layer.k, "groups": layer.groups,
               "array": f"{r}x{c}", "dataflow": df, "ours": ours, "expected_diff": expected}
        if layer.m * layer.n * layer.k > max_macs:
            row.update(status="skipped", note=f"more than {max_macs} MACs per GEMM")
        elif key in done:
            row.update({k: v for k, v in done[key].items() if k in ("scalesim_plus_one", "diff", "status", "note")})
        else:
            try:
                plus_one = scalesim_cycles(layer.m, layer.n, layer.k, r, c, df) + 1
                diff = ours - plus_one
                row.update(scalesim_plus_one=plus_one, diff=diff, status="agrees" if diff == expected else "differs")
            except (Exception, SystemExit) as err:  # noqa: BLE001 - a peer's failure must not stop validation
                hint = " (SCALE-Sim 3.0 needs numpy < 2.4)" if "0-dimensional arrays" in str(err) else ""
                row.update(status="error", note=f"SCALE-Sim failed: {err}{hint}")
            done[key] = row
        rows_out.append(row)
    ran = [r for r in rows_out if r["status"] in ("agrees", "differs")]
    return {"installed": True, "points": rows_out,
            "agrees": sum(r["status"] == "agrees" for r in rows_out), "compared": len(ran)}


# ----------------------------------------------------------------------------- output


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
            json.dump(document, f, indent=2, default=_json_default)
            f.write("\n")
    except OSError as err:
        raise TasdsimError(f"{out}: cannot write the validation report: {err.strerror or err}") from None
    written = [path_csv, path_json]
    plot = plot_cycles(results, document["summary"], os.path.join(out, "cycles.png"))
    return written + ([plot] if plot else [])


def plot_cycles(results: list[dict[str, Any]], summary: dict[str, Any], path: str) -> str | None:
    """Simulated against modelled cycles, log-log, with the tolerance band; None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_roof) = plt.subplots(1, 2, figsize=(11, 5.2))
    for memory, marker in (("real", "o"), ("ideal", "s")):
        for status, color in (("exact", "C2"), ("within", "C0"), ("outside", "C3")):
            pts = [(r["sim_cycles"], r["model_cycles"]) for r in results
                   if r["memory"] == memory and r["status"] == status]
            if pts:
                ax.scatter(*zip(*pts), s=22, marker=marker, color=color, alpha=0.8, label=f"{memory}, {status}")
    values = [v for r in results for v in (r["sim_cycles"], r["model_cycles"], r["roofline_cycles"]) if v > 0]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    tol = summary["tolerances"]["cycles_real"]
    d = summary["cycles_real"]
    detail = f": |diff| median {d['median'] * 100:.2f}%, max {d['max'] * 100:.2f}% (real DRAM)" if d["points"] else ""
    _diagonal(ax, lo, hi, tol, "modelled cycles (accelerator clock)", f"model: {summary['points']} points{detail}")
    for i, dominant in enumerate(sorted({r["dominant"] for r in results})):
        pts = [(r["sim_cycles"], r["roofline_cycles"]) for r in results if r["dominant"] == dominant]
        ax_roof.scatter(*zip(*pts), s=22, color=f"C{i}", alpha=0.8, label=f"dominant: {dominant}")
    _diagonal(ax_roof, lo, hi, tol, "roofline cycles (busiest unit + fill + drain)",
              "roofline: below the diagonal, stalls that do not overlap")
    hardware = ", ".join(sorted({r["hw"] for r in results}))
    workloads = ", ".join(sorted({r["layer"].get("workload", "GEMM") for r in results}))
    tasd = ", ".join(sorted({"dense" if parse_series(r["tasd"]).is_dense else
                             f"TASD-{'W' if r['operand'] == 'weights' else 'A'}" for r in results}))
    fig.suptitle(f"validate: {len(results)} points | hardware {hardware} | layers of {workloads} | {tasd}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _diagonal(ax: Any, lo: float, hi: float, tol: float, ylabel: str, title: str) -> None:
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax.fill_between([lo, hi], [lo * (1 - tol), hi * (1 - tol)], [lo * (1 + tol), hi * (1 + tol)], color="grey",
                    alpha=0.15, label=f"±{tol * 100:g}%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("simulated cycles (accelerator clock)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    raise TypeError(f"not JSON serialisable: {value!r}")


# ----------------------------------------------------------------------------- the command


def add_validate_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "validate", "compare simulator and analytical model over a suite of points",
                    "Each metric is exact, within its tolerance or outside; exit status 1 when a point is outside.")
    p.add_argument("--suite", help="suite YAML (default: the bundled configs/suites/default.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object (points and summary)")
    p.add_argument("--out", help="directory for validate.csv, validate.json and cycles.png (with matplotlib)")
    p.add_argument("--points", help="comma-separated point names to run (default: all)")
    p.add_argument("--no-scalesim", action="store_true", help="skip the SCALE-Sim v3 cross-check even if installed")
    p.add_argument("--scalesim-max-macs", type=int, default=SCALESIM_MAX_MACS,
                   help="largest GEMM (MACs) given to SCALE-Sim")


def run_validate(args: argparse.Namespace) -> int:
    """Exit 0 when every point is within its tolerances, 1 when one is outside."""
    suite = load_suite(args.suite)
    if args.points:
        names = [n.strip() for n in args.points.split(",") if n.strip()]
        known = {p.name for p in suite.points}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TasdsimError(f"{suite.label}: no point named {', '.join(map(repr, unknown))}")
        suite = Suite(suite.label, tuple(p for p in suite.points if p.name in names), suite.tolerances)
    results = run_suite(suite)
    summary = summarize(results, suite)
    peers = None if args.no_scalesim else scalesim_compare(suite, results, args.scalesim_max_macs)
    document = {"points": results, "summary": summary, "scalesim": peers}
    written = write_outputs(args.out, results, document) if args.out else []
    if args.json:
        print(json.dumps(document, indent=2, default=_json_default))
    else:
        print_report(results, summary, peers)
        if args.out:
            print(f"written: {', '.join(written)}")
            if not any(w.endswith(".png") for w in written):
                print("no plot: matplotlib is not installed (pip install 'tasdsim[plots]')")
    return 1 if summary["outside"] else 0
