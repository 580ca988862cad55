"""Validation suites: the YAML schema, loaded strictly, and each point resolved to hardware, layer
and series.

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
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from tasdsim.common import TasdsimError, read_preset
from tasdsim.simulator.config import HwConfig, load_hw
from tasdsim.simulator.run import LayerSeries
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

_POINT_KEYS = {"name", "hw", "set", "layer", "tasd", "operand", "memory", "tolerance"}
_LAYER_KEYS = {"workload", "name", "gemm", "batch", "seq_len"}
_DEFAULT_KEYS = {"tasd", "operand", "memory"}
_TOP_KEYS = {"points", "tolerances", "defaults", "description"}


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
    for key, resolve in (("hw", lambda: point_hardware(point)), ("layer", lambda: point_layer(point, {}))):
        try:
            resolved[key] = resolve()
        except TasdsimError as err:
            raise TasdsimError(f"{label}: {where}.{key}: {err}") from None
    series = point_series(point)
    try:  # the series runs on the hardware and the tiles fit its buffers
        plan(resolved["layer"], resolved["hw"].target(), series.weights, series.activations, unbounded=memory == "ideal")
    except TasdsimError as err:
        raise TasdsimError(f"{label}: {where}: {err}") from None
    return point


def point_hardware(point: Point, cache: dict | None = None) -> HwConfig:
    """The point's hardware config (cached by preset and overrides in `cache`)."""
    key = (point.hw, point.overrides)
    if cache is not None and key in cache:
        return cache[key]
    hw = load_hw(point.hw, list(point.overrides))
    if cache is not None:
        cache[key] = hw
    return hw


def point_layer(point: Point, workloads: dict[tuple, Workload]) -> Layer:
    """The point's layer (workloads cached in `workloads`)."""
    spec = point.layer
    if "gemm" in spec:
        return gemm_layer(str(spec["gemm"]))
    key = (spec["workload"], spec.get("batch"), spec.get("seq_len"))
    if key not in workloads:
        workloads[key] = load_workload(str(spec["workload"]), batch=spec.get("batch"), seq_len=spec.get("seq_len"))
    return workloads[key].select([str(spec["name"])]).layers[0]


def point_series(point: Point) -> LayerSeries:
    """The series the point runs, on its operand."""
    series = parse_series(point.tasd)
    return LayerSeries(weights=series) if point.operand == "weights" else LayerSeries(activations=series)
