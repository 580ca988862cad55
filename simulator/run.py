"""Running layers: choose each layer's series, generate its trace (or read one) and simulate it."""
from __future__ import annotations

import copy
import multiprocessing
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait as wait_for_ends

import numpy as np

from tasdsim.simulator.config import HwConfig, hw_from_dict
from tasdsim.simulator.energy import EnergyTable, edp, layer_energy, load_energy
from tasdsim.simulator.engine import Accelerator
from tasdsim.simulator.stats import LayerStats
from tasdsim.simulator.timeline import Timeline
from tasdsim.traces import layer_tensors
from tasdsim.traces.dram_trace import write_dram_trace
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import BufferPlan, Tiling, generate, plan
from tasdsim.traces.patterns import DENSE, Series, parse_pattern, parse_series, runs_on
from tasdsim.traces.search import Choice, Constraint, candidate_series, choose
from tasdsim.traces.decompose import normalize_axis
from tasdsim.traces.limits import check_folds
from tasdsim.traces.metrics import reduction_size
from tasdsim.traces.trace_check import TraceChecker
from tasdsim.traces.trace_file import TraceHeader, TraceReader
from tasdsim.traces.workloads import Layer

DENSE_SERIES = Series((DENSE,))
DEFAULT_ENERGY = "45nm"


@dataclass(frozen=True)
class LayerSeries:
    """The series each operand of a layer runs with."""

    weights: Series = DENSE_SERIES
    activations: Series = DENSE_SERIES

    def as_dict(self) -> dict[str, str]:
        return {"weights": str(self.weights), "activations": str(self.activations)}


def sparse_patterns(hw: HwConfig) -> tuple:
    return tuple(p for p in hw.pe_array.patterns if p.n != p.m)


def choose_series(layer: Layer, hw: HwConfig, tasd: str, operand: str, constraint: Constraint, max_terms: int,
                  seed: int, act_sparsity: float, tensors: Mapping[str, np.ndarray] | None = None,
                  weights_kind: str = "gaussian", objective: EdpObjective | None = None) -> LayerSeries:
    """The layer's series on `operand` (weights, activations, or both: TASDER picks one of the two).

    `none`: dense, or the weight pattern the layer declares (a topology's Sparsity column) when the
    hardware runs it. A series: that series. `auto`: TASDER over the hardware's patterns (activations
    only with TASD units) on the layer's real tensors (`tensors`: operand -> tensor) or seeded
    synthetic ones (`weights_kind` weights, ReLU-like activations): the cheapest compute density that
    meets `constraint`, or with `objective` the lowest simulated EDP among those that meet it and dense."""
    if tasd == "none":
        if layer.sparsity and runs_on(parse_pattern(layer.sparsity), hw.pe_array.patterns):
            return LayerSeries(weights=parse_series(layer.sparsity))
        return LayerSeries()
    if tasd != "auto":
        if operand == "both":
            raise TasdsimError("operand both needs tasd auto: a given series runs on weights or on activations")
        series = parse_series(tasd)
        return LayerSeries(weights=series) if operand == "weights" else LayerSeries(activations=series)
    options = []
    for op in ("weights", "activations") if operand == "both" else (operand,):
        choice = _tasder(layer, hw, op, constraint, max_terms, seed, act_sparsity, (tensors or {}).get(op),
                         weights_kind, exhaustive=objective is not None)
        if choice is None:
            continue
        chosen = [s for s, value in choice.tried if constraint.holds(value)] if objective else [choice.series]
        options += [LayerSeries(weights=s) if op == "weights" else LayerSeries(activations=s) for s in chosen]
    if objective is not None:
        return objective.best(layer, hw, [LayerSeries(), *options])
    return min(options, key=_compute_density, default=LayerSeries())


def _compute_density(series: LayerSeries) -> float:
    return series.weights.compute_density * series.activations.compute_density


def _tasder(layer: Layer, hw: HwConfig, operand: str, constraint: Constraint, max_terms: int, seed: int,
            act_sparsity: float, tensor: np.ndarray | None, weights_kind: str, exhaustive: bool) -> Choice | None:
    """TASDER on one operand of the layer, or None when the hardware cannot run that operand sparse."""
    patterns = sparse_patterns(hw)
    if not patterns or (operand == "weights" and layer.weight_shape is None) or (
            operand == "activations" and hw.tasd_units.count == 0):  # no TASD units: TASD-A cannot run
        return None
    axis = None if operand == "weights" else 1
    if tensor is None and operand == "weights":
        tensor = layer_tensors.synthetic_weights(layer, seed, weights_kind)
    elif tensor is None:
        tensor = layer_tensors.synthetic_activations(layer, seed, act_sparsity)
    samples = None
    if constraint.metric == "output_error":
        samples = layer_tensors.sample_inputs(reduction_size(tensor.shape, normalize_axis(tensor.shape, axis)), seed)
    return choose(layer.name, operand, layer.macs, tensor, candidate_series(patterns, max_terms), constraint,
                  samples, axis, exhaustive)


def choose_all_series(layers: list[Layer], hw: HwConfig, tasd: str, operand: str, constraint: Constraint,
                      max_terms: int, seed: int, act_sparsity: float,
                      tensors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                      weights_kind: str = "gaussian", objective: EdpObjective | None = None) -> list[LayerSeries]:
    """choose_series for every layer, in layer order, on the real `tensors` (operand -> layer name ->
    tensor) where given. With `auto` the layers' searches run on a thread pool (the Numba kernels and
    numpy's generators release the GIL); each layer's result depends only on the layer, so it is the
    same as one by one."""
    def pick(layer: Layer) -> LayerSeries:
        real = {op: by_name[layer.name] for op, by_name in (tensors or {}).items() if layer.name in by_name}
        return choose_series(layer, hw, tasd, operand, constraint, max_terms, seed, act_sparsity, real,
                             weights_kind, objective)

    if tasd != "auto" or len(layers) < 2:
        return [pick(layer) for layer in layers]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(pick, layers))


def add_energy(stats: LayerStats, hw: HwConfig, table: EnergyTable | None) -> LayerStats:
    """Fill in energy per unit and EDP from the action counts (the default table: 45 nm)."""
    stats.energy_pj = layer_energy(stats, hw, table or load_energy(DEFAULT_ENERGY))
    stats.edp = edp(stats.energy_pj["total"], stats.cycles, hw.clock_ghz)
    return stats


def simulate_layer(layer: Layer, hw: HwConfig, series: LayerSeries, ideal_memory: bool,
                   energy: EnergyTable | None = None, timeline: Timeline | None = None,
                   dram_trace: str | None = None) -> LayerStats:
    """Generate the layer's trace and run it, streamed; energy from `energy` (default 45 nm);
    events into `timeline` when given; the DRAM requests, in DRAMsim3's trace format, into the file
    `dram_trace` when given."""
    tiling = plan(layer, hw.target(), series.weights, series.activations, unbounded=ideal_memory)
    check_folds(layer.name, tiling.folds)
    acc = Accelerator(hw, tiling.buffers, ideal_memory, timeline=timeline)
    stats = acc.run(generate(layer, hw.target(), series.weights, series.activations, tiling), layer.name, "")
    if dram_trace is not None:
        write_dram_trace(dram_trace, *acc.dram.offered())
    if timeline is not None:
        timeline.end_layer(layer.name, stats.cycles)
    stats.series, stats.tiling = series.as_dict(), tiling.as_dict()
    return add_energy(stats, hw, energy)


@dataclass
class EdpObjective:
    """TASDER's `--objective edp`: a layer's candidate series ranked by the layer's simulated EDP on
    the target hardware (ties: the lower compute density), each simulated once per layer shape."""

    ideal_memory: bool
    energy: EnergyTable | None = None
    cache: dict = field(default_factory=dict)  # (layer shape, series) -> EDP

    def edp(self, layer: Layer, hw: HwConfig, series: LayerSeries) -> float:
        key = (layer.kind, layer.m, layer.n, layer.k, layer.groups, layer.weight_shape, str(series.weights),
               str(series.activations))
        if key not in self.cache:
            self.cache[key] = simulate_layer(layer, hw, series, self.ideal_memory, self.energy).edp
        return self.cache[key]

    def best(self, layer: Layer, hw: HwConfig, options: list[LayerSeries]) -> LayerSeries:
        return min(options, key=lambda s: (self.edp(layer, hw, s), _compute_density(s)))


def simulate_layers(layers: list[Layer], hw: HwConfig, series: list[LayerSeries], ideal_memory: bool,
                    energy: EnergyTable | None = None, jobs: int = 1) -> list[LayerStats]:
    """simulate_layer for every layer, results in layer order. Timing depends on a layer's lowered
    GEMM (M, N, K, groups) and series only, never on its name or data, so layers that repeat one
    (ResNet-50's layer3.1-5, BERT's blocks) are simulated once and their stats copied under their
    own names: the output is the same as simulating each."""
    first: dict[tuple, int] = {}  # (m, n, k, groups, series) -> index into `distinct`
    distinct: list[int] = []
    for i, (layer, s) in enumerate(zip(layers, series)):
        key = (layer.m, layer.n, layer.k, layer.groups, s)
        if key not in first:
            first[key] = len(distinct)
            distinct.append(i)
    stats = _simulate_distinct([layers[i] for i in distinct], hw, [series[i] for i in distinct], ideal_memory,
                               energy, jobs)
    results = []
    for layer, s in zip(layers, series):
        own = copy.deepcopy(stats[first[(layer.m, layer.n, layer.k, layer.groups, s)]])
        own.name = layer.name
        results.append(own)
    return results


def _simulate_distinct(layers: list[Layer], hw: HwConfig, series: list[LayerSeries], ideal_memory: bool,
                       energy: EnergyTable | None, jobs: int) -> list[LayerStats]:
    """simulate_layer for every layer, results in layer order. With jobs > 1 the layers are shared
    out, the most folds first, to that many forked worker processes (which run no Numba parallel
    kernels, so forking after TASDER's OpenMP threads is safe); every layer is an independent run,
    so the results are identical to running them one by one."""
    if jobs < 2 or len(layers) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [simulate_layer(layer, hw, s, ideal_memory, energy) for layer, s in zip(layers, series)]
    folds = [plan(layer, hw.target(), s.weights, s.activations, unbounded=ideal_memory).folds
             for layer, s in zip(layers, series)]
    results: list[LayerStats | None] = [None] * len(layers)
    context = multiprocessing.get_context("fork")
    workers = []
    try:
        for share in _shares(folds, min(jobs, len(layers))):
            receive, send = context.Pipe(duplex=False)
            worker = context.Process(target=_simulate_share, args=(share, layers, hw, series, ideal_memory, energy,
                                                                   send), daemon=True)
            worker.start()
            send.close()
            workers.append((worker, receive))
        open_ends = [receive for _, receive in workers]
        while open_ends:
            for end in wait_for_ends(open_ends):  # a plain select: Ctrl-C interrupts it cleanly
                try:
                    i, outcome = end.recv()
                except EOFError:  # the worker is done
                    open_ends.remove(end)
                    continue
                if isinstance(outcome, BaseException):
                    raise outcome
                results[i] = outcome
    finally:
        for worker, receive in workers:
            worker.terminate()
            worker.join()
            receive.close()
    missing = [layers[i].name for i, stats in enumerate(results) if stats is None]
    if missing:
        raise TasdsimError(f"a simulation worker process died before finishing layers {', '.join(missing)}")
    return results


def _shares(costs: list[int], workers: int) -> list[list[int]]:
    """Indices of `costs` shared out to `workers`: the largest first, each to the least loaded."""
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        least = loads.index(min(loads))
        shares[least].append(i)
        loads[least] += costs[i]
    return shares


def _simulate_share(share: list[int], layers: list[Layer], hw: HwConfig, series: list[LayerSeries],
                    ideal_memory: bool, energy: EnergyTable | None, send: Connection) -> None:
    """A worker process: simulate layers `share`, sending (index, stats or the error) for each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    with send:
        for i in share:
            try:
                send.send((i, simulate_layer(layers[i], hw, series[i], ideal_memory, energy)))
            except Exception as err:  # sent to the parent, which raises it
                send.send((i, err))
                return


def layer_from_header(header: dict, path: str) -> Layer:
    try:
        return Layer(**{k: tuple(v) if k == "weight_shape" and v is not None else v for k, v in header.items()})
    except TypeError as err:
        raise TasdsimError(f"{path}: header layer: {err}") from None


def buffer_plan_from_header(tiling: dict, path: str) -> BufferPlan:
    """The buffer plan a trace header's tiling carries."""
    try:
        return BufferPlan.from_dict(tiling["buffers"])
    except (KeyError, TypeError, ValueError) as err:
        raise TasdsimError(f"{path}: header tiling: buffers must give slots and slot_bytes of weights, inputs "
                           f"and outputs ({err!r})") from None


def series_from_header(series: dict, path: str) -> dict[str, str]:
    """A trace header's series: {"weights": SERIES, "activations": SERIES}, each one that parses."""
    if set(series) != {"weights", "activations"} or not all(isinstance(v, str) for v in series.values()):
        raise TasdsimError(f'{path}: header series: expected {{"weights": SERIES, "activations": SERIES}}')
    try:
        return {operand: str(parse_series(text)) for operand, text in series.items()}
    except TasdsimError as err:
        raise TasdsimError(f"{path}: header series: {err}") from None


def simulate_trace(path: str, ideal_memory: bool, overrides: HwConfig | None = None,
                   energy: EnergyTable | None = None, timeline: Timeline | None = None) -> tuple[HwConfig, LayerStats]:
    """Replay a .trace file on the hardware its header names (or `overrides`)."""
    with TraceReader(path) as reader:
        hw = overrides or hw_from_dict(reader.header.hardware, f"{path}: header hardware")
        layer = layer_from_header(reader.header.layer, path)
        series = series_from_header(reader.header.series, path)
        buffers = buffer_plan_from_header(reader.header.tiling, path)
        acc = Accelerator(hw, buffers, ideal_memory, where=f"{path}: ", timeline=timeline)
        try:
            check = TraceChecker(hw.target(), buffers, ideal_memory)
        except TasdsimError as err:
            raise TasdsimError(f"{path}: {err}") from None
        stats = acc.run(reader.instructions(check), layer.name, f"{path}: ")
        if timeline is not None:
            timeline.end_layer(layer.name, stats.cycles)
        stats.series = series
        stats.tiling = dict(reader.header.tiling)
    return hw, add_energy(stats, hw, energy)


def trace_header(layer: Layer, hw: HwConfig, series: LayerSeries, tiling: Tiling, ideal_memory: bool) -> TraceHeader:
    """The header a generated trace carries: enough to replay it exactly."""
    layer_dict = {"name": layer.name, "kind": layer.kind, "m": layer.m, "n": layer.n, "k": layer.k,
                  "groups": layer.groups,
                  "weight_shape": list(layer.weight_shape) if layer.weight_shape else None}
    return TraceHeader(hw.as_dict(), layer_dict, series.as_dict(), {**tiling.as_dict(), "ideal_memory": ideal_memory})
