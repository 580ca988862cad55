"""A sweep spec checked before its first point runs: what every point shares is checked once, and
a spec none of whose points can run is refused, not run point by point into failures.

Shared: the workload (gemm string or named workload and layers), the quality string, the energy
table, the run keys' values (hardware presets, tasd strings, operand, memory). Per axis: a
hardware key that does not exist, or an axis none of whose values loads on the base hardware.
Per point: a dry run (hardware loaded, series parsed, every layer tiled; no simulation) until one
point passes, over at most DRY_RUN_POINTS points.
"""
from __future__ import annotations

from typing import Any

from tasdsim.common import TasdsimError
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.energy import load_energy
from tasdsim.simulator.run import LayerSeries, choose_series
from tasdsim.simulator.sweep_spec import RUN_KEYS, Point, SweepSpec, yaml_value
from tasdsim.traces.generate import plan
from tasdsim.traces.limits import check_folds
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.workloads import Layer, gemm_layer, load_workload
from tasdsim.traces.tensors import synthetic

DRY_RUN_POINTS = 1000
RUN_VALUES = {"operand": ("weights", "activations", "both"), "memory": ("real", "ideal"),
              "objective": ("compute", "edp")}
RUN_DEFAULTS = {"synthetic": "gaussian", "objective": "compute"}  # run keys a spec may leave out


def input_shapes(workload: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """An ONNX workload's `input_shape` entry: input name -> dimensions (None when absent)."""
    shapes = workload.get("input_shape")
    if shapes is None:
        return None
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)
            for v in shapes.values()):
        raise TasdsimError("workload.input_shape: must map input names to lists of dimensions, e.g. {x: [1, 3, 224, 224]}")
    return {str(k): tuple(v) for k, v in shapes.items()}


def point_layers(workload: dict[str, Any]) -> list[Layer]:
    """The layers of a sweep's workload entry (gemm, or name with layers, batch, seq_len)."""
    if "gemm" in workload:
        return [gemm_layer(str(workload["gemm"]))]
    w = load_workload(str(workload["name"]), batch=workload.get("batch"), seq_len=workload.get("seq_len"),
                      input_shapes=input_shapes(workload))
    if workload.get("layers"):
        if not isinstance(workload["layers"], list):
            raise TasdsimError("workload.layers: must be a list of layer names")
        w = w.select([str(n) for n in workload["layers"]])
    return list(w.layers)


def check_spec(spec: SweepSpec, label: str) -> None:
    """Refuse, in one TasdsimError naming `label`, a spec that no point of can run."""
    try:
        layers = point_layers(spec.workload)
        parse_constraint(spec.base["quality"])
        load_energy(spec.base["energy"])
        for key in RUN_KEYS:
            base = spec.base.get(key, RUN_DEFAULTS.get(key))
            for value in [base, *spec.axes.get(key, []), *spec.zipped.get(key, [])]:
                _run_value(key, str(value))
    except TasdsimError as err:
        raise TasdsimError(f"{label}: {err}") from None
    base_hw = str((spec.axes.get("hw") or spec.zipped.get("hw") or [spec.base["hw"]])[0])
    for where, axes in (("axes", spec.axes), ("zip", spec.zipped)):
        for key, values in axes.items():
            if key not in RUN_KEYS:
                _hw_axis(base_hw, key, values, f"{label}: {where}.{key}")
    _dry_run(spec, layers, label)


def _run_value(key: str, value: str) -> None:
    if key == "hw":
        load_hw(value)
    elif key == "tasd":
        if value not in ("none", "auto"):
            parse_series(value)
    elif key == "synthetic":
        synthetic(value, (4, 8), 0)  # a spec that does not parse raises here
    elif value not in RUN_VALUES[key]:
        raise TasdsimError(f"{key}: must be {' or '.join(RUN_VALUES[key])}, got {value!r}")


def _hw_axis(base_hw: str, key: str, values: list, where: str) -> None:
    """The axis names a hardware key, and at least one of its values loads on the base hardware."""
    errors = []
    for value in values:
        try:
            load_hw(base_hw, [f"{key}={yaml_value(value)}"])
            return
        except TasdsimError as err:
            if "unknown key" in str(err):
                raise TasdsimError(f"{where}: {err}") from None
            errors.append(err)
    raise TasdsimError(f"{where}: no value loads, so every point would fail: {errors[0]}")


def _dry_run(spec: SweepSpec, layers: list[Layer], label: str) -> None:
    points, _ = spec.points()
    if not points:
        return
    first = None
    for point in points[:DRY_RUN_POINTS]:
        try:
            _prepare(point, layers)
            return
        except TasdsimError as err:
            first = first or f"point {point.index} ({point.axes}): {err}"
    every = "every point" if len(points) <= DRY_RUN_POINTS else f"the first {DRY_RUN_POINTS} points"
    raise TasdsimError(f"{label}: {every} would fail; {first}")


def _prepare(point: Point, layers: list[Layer]) -> None:
    """Everything run_point does before simulating, except TASDER's search (auto tiles dense)."""
    hw = load_hw(point.run["hw"], point.overrides)
    memory_ideal = point.run["memory"] == "ideal"
    for layer in layers:
        series = (LayerSeries() if point.run["tasd"] == "auto" else
                  choose_series(layer, hw, point.run["tasd"], point.run["operand"], None, 1, 0, 0.5))
        check_folds(layer.name, plan(layer, hw.target(), series.weights, series.activations, memory_ideal).folds)
