"""Running layers: choose each layer's series, generate its trace (or read one) and simulate it."""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait as wait_for_ends

from tasdsim.simulator.config import HwConfig, hw_from_dict
from tasdsim.simulator.energy import EnergyTable, edp, layer_energy, load_energy
from tasdsim.simulator.engine import SLOTS, Accelerator
from tasdsim.simulator.stats import LayerStats
from tasdsim.simulator.timeline import Timeline
from tasdsim.traces import layer_tensors
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import Tiling, generate, plan
from tasdsim.traces.patterns import DENSE, Series, parse_series
from tasdsim.traces.search import Constraint, candidate_series, choose
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
                  seed: int, act_sparsity: float) -> LayerSeries:
    """`none`: dense; a series: that series on `operand`; `auto`: TASDER over the hardware's patterns
    on the layer's seeded synthetic tensors."""
    if tasd == "none":
        return LayerSeries()
    if tasd == "auto":
        patterns = sparse_patterns(hw)
        if not patterns or (operand == "weights" and layer.weight_shape is None):
            return LayerSeries()
        if operand == "weights":
            tensor, axis = layer_tensors.synthetic_weights(layer, seed), None
        else:
            tensor, axis = layer_tensors.synthetic_activations(layer, seed, act_sparsity), 1
        samples = None
        if constraint.metric == "output_error":
            samples = layer_tensors.sample_inputs(reduction_size(tensor.shape, normalize_axis(tensor.shape, axis)), seed)
        series = choose(layer.name, operand, layer.macs, tensor, candidate_series(patterns, max_terms), constraint,
                        samples, axis).series
    else:
        series = parse_series(tasd)
    return LayerSeries(weights=series) if operand == "weights" else LayerSeries(activations=series)


def choose_all_series(layers: list[Layer], hw: HwConfig, tasd: str, operand: str, constraint: Constraint,
                      max_terms: int, seed: int, act_sparsity: float) -> list[LayerSeries]:
    """choose_series for every layer, in layer order. With `auto` the layers' searches run on a
    thread pool (the Numba kernels and numpy's generators release the GIL); each layer's result
    depends only on the layer, so it is the same as one by one."""
    def pick(layer: Layer) -> LayerSeries:
        return choose_series(layer, hw, tasd, operand, constraint, max_terms, seed, act_sparsity)

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
                   energy: EnergyTable | None = None, timeline: Timeline | None = None) -> LayerStats:
    """Generate the layer's trace and run it, streamed; energy from `energy` (default 45 nm);
    events into `timeline` when given."""
    tiling = plan(layer, hw.target(), series.weights, series.activations, unbounded=ideal_memory)
    check_folds(layer.name, tiling.folds)
    acc = Accelerator(hw, ideal_memory, timeline=timeline)
    stats = acc.run(generate(layer, hw.target(), series.weights, series.activations, tiling), layer.name, "")
    if timeline is not None:
        timeline.end_layer(layer.name, stats.cycles)
    stats.series, stats.tiling = series.as_dict(), tiling.as_dict()
    return add_energy(stats, hw, energy)


def simulate_layers(layers: list[Layer], hw: HwConfig, series: list[LayerSeries], ideal_memory: bool,
                    energy: EnergyTable | None = None, jobs: int = 1) -> list[LayerStats]:
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
        acc = Accelerator(hw, ideal_memory, where=f"{path}: ", timeline=timeline)
        check = TraceChecker(hw.target(), SLOTS, ideal_memory)
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
