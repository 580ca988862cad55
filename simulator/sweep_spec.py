"""Sweep specs: a base design point plus axes (grid product), zipped axes and filters.

    hw: vegeta-m4                      # preset or path
    workload: {gemm: 1024x1024x2048}   # or {name: resnet50, layers: [conv1, fc], batch: 1, seq_len: 128};
                                       # name may be a .onnx (optional input_shape: {x: [1, 3, 224, 224]},
                                       # sample: x.npy) or a SCALE-Sim .csv
    tasd: 2:4+1:4                      # optional, as in simulate (none, auto or a series)
    operand: weights                   # optional: weights, activations or both
    synthetic: gaussian:pruned=0.7     # optional: the synthetic weights TASDER searches on (default gaussian)
    objective: compute                 # optional: TASDER ranks by compute (default) or edp
    memory: real                       # optional: real or ideal
    energy: 45nm                       # optional energy table
    axes:                              # dotted hardware keys as in --set, or hw, tasd, operand
      pe_array.rows: [8, 16, 32]
      dram.channels: [1, 2]
    zip:                               # optional: lists of equal length varied together
      pe_array.rows: [16, 32]
      pe_array.cols: [16, 32]
    filter:                            # optional: a point must satisfy every condition
      - pe_array.rows <= pe_array.cols

Points excluded by a filter are reported, never silently dropped. A point's id is a hash of
everything that determines its result, so a resumed sweep recognises the points it has.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from tasdsim.common import bundled_files, check_range, find_preset, load_yaml, read_yaml, TasdsimError
from tasdsim.traces.limits import MAX_SWEEP_POINTS, MAX_TERMS, check_seed

RUN_KEYS = ("hw", "tasd", "operand", "memory", "synthetic", "objective")  # axis keys that are not hardware keys
_SPEC_KEYS = ("hw", "workload", "tasd", "operand", "memory", "energy", "axes", "zip", "filter", "quality",
              "max_terms", "seed", "synthetic", "objective")
_WORKLOAD_KEYS = ("gemm", "name", "layers", "batch", "seq_len", "input_shape", "sample")
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq,
        "!=": operator.ne}
_CONDITION = re.compile(r"^\s*([\w.\-]+)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


@dataclass(frozen=True)
class Condition:
    """`KEY OP VALUE`, where VALUE is a number, a word or another axis key."""

    key: str
    op: str
    other: Any
    text: str

    def holds(self, values: dict[str, Any]) -> bool:
        other = values.get(self.other, self.other) if isinstance(self.other, str) else self.other
        try:
            return bool(_OPS[self.op](values[self.key], other))
        except TypeError:
            return False


@dataclass(frozen=True)
class Point:
    """One design point: the base run settings with the axis values applied."""

    index: int
    axes: dict[str, Any]  # axis key -> value
    run: dict[str, Any]  # hw, tasd, operand, memory, energy, quality, max_terms, seed
    overrides: tuple[str, ...]  # KEY=VALUE for the hardware config
    workload: dict[str, Any]

    @property
    def id(self) -> str:
        blob = json.dumps({"run": self.run, "overrides": self.overrides, "workload": self.workload},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict[str, Any]
    workload: dict[str, Any]
    axes: dict[str, list]
    zipped: dict[str, list]
    filters: tuple[Condition, ...]

    @property
    def axis_keys(self) -> list[str]:
        return list(self.axes) + list(self.zipped)

    @property
    def hash(self) -> str:
        """What the points' results depend on (not the filters, which only mark points)."""
        blob = json.dumps({"base": self.base, "workload": self.workload, "axes": self.axes, "zip": self.zipped},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def points(self) -> tuple[list[Point], list[tuple[int, dict[str, Any], str]]]:
        """The points to run, and the (index, axis values, failed condition) of the filtered ones.
        Indices number every combination in grid order, run or filtered."""
        grid = list(itertools.product(*self.axes.values())) if self.axes else [()]
        zipped = list(zip(*self.zipped.values())) if self.zipped else [()]
        points, filtered = [], []
        for index, (combo, zrow) in enumerate(itertools.product(grid, zipped)):
            values = dict(zip(self.axes, combo)) | dict(zip(self.zipped, zrow))
            failed = next((c for c in self.filters if not c.holds(values)), None)
            if failed is not None:
                filtered.append((index, values, failed.text))
                continue
            run = dict(self.base) | {k: v for k, v in values.items() if k in RUN_KEYS}
            overrides = tuple(f"{k}={yaml_value(v)}" for k, v in values.items() if k not in RUN_KEYS)
            points.append(Point(index, values, run, overrides, self.workload))
        return points, filtered


def yaml_value(value: Any) -> str:
    """An axis value as the VALUE of a --set KEY=VALUE override."""
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def load_spec(name_or_path: str) -> SweepSpec:
    """Load a bundled sweep (configs/sweeps/NAME.yaml) or a YAML path, strictly."""
    path, label = find_preset("sweeps", name_or_path, "sweep")
    return parse_spec(read_yaml(path, label), path.name)


def sweep_files() -> dict[str, Path]:
    """Bundled sweeps by name (configs/sweeps/NAME.yaml)."""
    return bundled_files("sweeps")


def parse_spec(raw: Any, label: str) -> SweepSpec:
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: top level must be a mapping of sweep keys")
    for key in raw:
        if key not in _SPEC_KEYS:
            raise TasdsimError(f"{label}: unknown key {key} (keys: {', '.join(_SPEC_KEYS)})")
    for key in ("hw", "workload"):
        if key not in raw:
            raise TasdsimError(f"{label}: missing required key {key}")
    workload = raw["workload"]
    if not isinstance(workload, dict) or not workload:
        raise TasdsimError(f"{label}: workload: must be a mapping such as {{gemm: 1024x1024x2048}} or {{name: resnet50}}")
    for key in workload:
        if key not in _WORKLOAD_KEYS:
            raise TasdsimError(f"{label}: workload: unknown key {key} (keys: {', '.join(_WORKLOAD_KEYS)})")
    if ("gemm" in workload) == ("name" in workload):
        raise TasdsimError(f"{label}: workload: give exactly one of gemm or name")
    base = {"hw": str(raw["hw"]), "tasd": str(raw.get("tasd", "none")), "operand": str(raw.get("operand", "weights")),
            "memory": str(raw.get("memory", "real")), "energy": str(raw.get("energy", "45nm")),
            "quality": str(raw.get("quality", "relative_error<=0.3")),
            "max_terms": check_range(raw.get("max_terms", 2), 1, MAX_TERMS, f"{label}: max_terms"),
            "seed": check_seed(raw.get("seed", 0), f"{label}: seed")}
    base.update({key: str(raw[key]) for key in ("synthetic", "objective") if key in raw})  # ids stay as before
    if base["operand"] not in ("weights", "activations", "both"):
        raise TasdsimError(f"{label}: operand: must be weights, activations or both, got {base['operand']!r}")
    if base.get("objective", "compute") not in ("compute", "edp"):
        raise TasdsimError(f"{label}: objective: must be compute or edp, got {base['objective']!r}")
    if base["memory"] not in ("real", "ideal"):
        raise TasdsimError(f"{label}: memory: must be real or ideal, got {base['memory']!r}")
    axes = _axes(raw.get("axes", {}), label, "axes")
    zipped = _axes(raw.get("zip", {}), label, "zip")
    if zipped and len({len(v) for v in zipped.values()}) != 1:
        raise TasdsimError(f"{label}: zip: every list must have the same length")
    count = math.prod(len(v) for v in axes.values()) * (len(next(iter(zipped.values()))) if zipped else 1)
    if count > MAX_SWEEP_POINTS:
        raise TasdsimError(f"{label}: axes and zip make {count:,} points, more than the limit of {MAX_SWEEP_POINTS:,}")
    overlap = set(axes) & set(zipped)
    if overlap:
        raise TasdsimError(f"{label}: {sorted(overlap)[0]} is both in axes and zip")
    filters = raw.get("filter", [])
    if not isinstance(filters, list):
        raise TasdsimError(f"{label}: filter: must be a list of conditions such as 'pe_array.rows <= pe_array.cols'")
    keys = set(axes) | set(zipped)
    conditions = tuple(_condition(text, keys, label, f"filter[{i}]") for i, text in enumerate(filters))
    return SweepSpec(Path(label).stem, base, dict(workload), axes, zipped, conditions)


def _axes(raw: Any, label: str, where: str) -> dict[str, list]:
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: {where}: must be a mapping of dotted keys to lists of values")
    axes = {}
    for key, values in raw.items():
        if not isinstance(values, list) or not values:
            raise TasdsimError(f"{label}: {where}.{key}: must be a non-empty list of values")
        axes[str(key)] = values
    return axes


def _condition(text: Any, keys: set[str], label: str, where: str) -> Condition:
    match = _CONDITION.match(str(text))
    if not match:
        raise TasdsimError(f"{label}: {where}: {text!r} is not 'KEY OP VALUE' with OP one of {', '.join(_OPS)}")
    key, op, other = match.groups()
    if key not in keys:
        raise TasdsimError(f"{label}: {where}: {key} is not an axis")
    value: Any = other if other in keys else load_yaml(other, f"{label}: {where}")
    return Condition(key, op, value, str(text).strip())
