"""`tasdsim sweep`: run a sweep's points in parallel processes (local or dask), store each at once.

Each point runs the whole workload on its hardware (every layer simulated, energy from the table)
and returns its metrics; a failing point is stored with its error and the sweep goes on.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

from tasdsim.simulator import plots, sweep_table
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.energy import load_energy
from tasdsim.simulator.run import EdpObjective, choose_series, simulate_layer
from tasdsim.simulator.stats import total
from tasdsim.simulator.sweep_spec import Point, SweepSpec, load_spec
from tasdsim.simulator.sweep_store import ResultStore
from tasdsim.common import TasdsimError
from tasdsim.traces.onnx_model import load_onnx, operand_tensors
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.workloads import Layer, gemm_layer, load_workload


def point_layers(workload: dict[str, Any]) -> list[Layer]:
    if "gemm" in workload:
        return [gemm_layer(str(workload["gemm"]))]
    w = load_workload(str(workload["name"]), batch=workload.get("batch"), seq_len=workload.get("seq_len"),
                      input_shapes=_input_shapes(workload))
    if workload.get("layers"):
        w = w.select([str(n) for n in workload["layers"]])
    return list(w.layers)


def _input_shapes(workload: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    shapes = workload.get("input_shape")
    if shapes is None:
        return None
    if not isinstance(shapes, dict) or not all(
            isinstance(v, list) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v)
            for v in shapes.values()):
        raise TasdsimError("workload.input_shape: must map input names to lists of dimensions, e.g. {x: [1, 3, 224, 224]}")
    return {str(k): tuple(v) for k, v in shapes.items()}


def _onnx_tensors(point: Point, layers: list[Layer]) -> dict[str, dict[str, Any]] | None:
    """An ONNX workload's real weights and/or activations (operand -> layer name -> tensor)."""
    name = str(point.workload.get("name", ""))
    if not name.lower().endswith(".onnx"):
        return None
    w = point.workload
    model = load_onnx(name, _input_shapes(w), w.get("batch"), w.get("seq_len"))
    operand = point.run["operand"]
    return {op: operand_tensors(model, op, [layer.name for layer in layers], w.get("sample"), int(point.run["seed"]))
            for op in (("weights", "activations") if operand == "both" else (operand,))}


def run_point(point: Point) -> tuple[str, dict[str, Any], str | None, dict[str, Any] | None]:
    """Simulate one point: (id, resolved config, error, metrics). Never raises for a bad point."""
    config: dict[str, Any] = {"run": point.run, "overrides": list(point.overrides), "workload": point.workload}
    try:
        hw = load_hw(point.run["hw"], point.overrides)
        config["hardware"] = hw.as_dict()
        table = load_energy(point.run["energy"])
        constraint = parse_constraint(point.run["quality"])
        stats = []
        layers = point_layers(point.workload)
        tensors = _onnx_tensors(point, layers) if point.run["tasd"] == "auto" else None
        objective = EdpObjective(point.run["memory"] == "ideal", table) if point.run.get("objective") == "edp" else None
        for layer in layers:
            real = {op: by_name[layer.name] for op, by_name in (tensors or {}).items() if layer.name in by_name}
            series = choose_series(layer, hw, point.run["tasd"], point.run["operand"], constraint,
                                   int(point.run["max_terms"]), int(point.run["seed"]), 0.5, real,
                                   point.run.get("synthetic", "gaussian"), objective)
            stats.append(simulate_layer(layer, hw, series, point.run["memory"] == "ideal", table))
        t = total(stats, hw.pe_array.rows * hw.pe_array.cols, hw.clock_ghz)
        metrics = {"cycles": t["cycles"], "compute_cycles": t["compute_cycles"], "energy_pj": t["energy_pj"]["total"],
                   "edp": t["edp"], "utilization": t["utilization"], "macs_useful": t["macs_useful"],
                   "dram_read_bytes": t["dram_bytes"]["read"], "dram_write_bytes": t["dram_bytes"]["write"]}
        return point.id, config, None, metrics
    except TasdsimError as err:
        return point.id, config, str(err), None


def _local(points: list[Point], jobs: int) -> Iterator[tuple]:
    """Results as they finish, from a pool of `jobs` processes (at most 2 x jobs in flight)."""
    from concurrent.futures import ProcessPoolExecutor  # here: it costs every other command start-up time

    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending, queue = set(), iter(points)
        try:
            while True:
                while len(pending) < 2 * jobs:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending.add(pool.submit(run_point, nxt))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _dask(points: list[Point], jobs: int, scheduler: str | None) -> Iterator[tuple]:
    """Results as they finish, from a dask.distributed cluster (a LocalCluster of `jobs` workers
    when no scheduler address is given)."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise TasdsimError("the dask executor needs dask.distributed: pip install 'tasdsim[dist]'") from None
    cluster = None if scheduler else LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                                   dashboard_address=None)
    try:
        with Client(scheduler or cluster) as client:
            futures = client.map(run_point, points, pure=False)
            for future in as_completed(futures):
                yield future.result()
    except OSError as err:
        raise TasdsimError(f"dask scheduler {scheduler}: cannot connect: {err}") from None
    finally:
        if cluster is not None:
            cluster.close()


def run_sweep(spec: SweepSpec, out: str, jobs: int, executor: str, scheduler: str | None, resume: bool,
              progress: bool = True) -> dict[str, int]:
    """Run every point not yet stored; returns counts of ok, failed, filtered and skipped points."""
    os.makedirs(out, exist_ok=True)
    store = ResultStore(os.path.join(out, "results.sqlite"))
    try:
        if not resume:
            store.clear()
        points, filtered = spec.points()
        done = store.done_ids()
        todo = [p for p in points if p.id not in done]
        counts = {"ok": 0, "failed": 0, "filtered": len(filtered), "skipped": len(points) - len(todo)}
        for index, values, condition in filtered:
            store.write(f"filtered-{index}", index, values, {"filter": condition}, "filtered",
                        f"filtered by {condition}", None)
        by_id = {p.id: p for p in todo}
        results: Callable[[], Iterator[tuple]] = (
            (lambda: _local(todo, jobs)) if executor == "local" else (lambda: _dask(todo, jobs, scheduler)))
        from tqdm import tqdm  # here: it costs every other command start-up time

        with tqdm(total=len(points), initial=counts["skipped"], unit="point", disable=None if progress else True,
                  file=sys.stderr) as bar:
            for point_id, config, error, metrics in results():
                point = by_id[point_id]
                store.write(point_id, point.index, point.axes, config, "failed" if error else "ok", error, metrics)
                counts["failed" if error else "ok"] += 1
                bar.update(1)
        store.write_csv(os.path.join(out, "results.csv"), spec.axis_keys)
        counts["plots"] = len(plots.sweep_plots(store.rows(), spec.axis_keys, out))
        return counts
    finally:
        store.close()


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a hardware parameter sweep in parallel, resumable")
    p.add_argument("spec", help="bundled sweep name or YAML path")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: cores)")
    p.add_argument("--executor", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", help="dask scheduler address tcp://host:port (joins an existing cluster)")
    p.add_argument("--resume", action="store_true", help="skip the points already in DIR/results.sqlite")
    p.add_argument("--out", default="sweep-out", help="result directory (default sweep-out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_sweep_command(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.jobs < 1:
        raise TasdsimError(f"--jobs must be at least 1, got {args.jobs}")
    if args.scheduler and args.executor != "dask":
        raise TasdsimError("--scheduler needs --executor dask")
    points, filtered = spec.points()
    print(f"sweep {spec.name}: {len(points)} points ({len(filtered)} filtered out), {args.jobs} jobs, "
          f"executor {args.executor}, results in {args.out}", file=sys.stderr)
    for index, values, condition in filtered:
        print(f"  point {index} filtered out: {values} fails {condition}", file=sys.stderr)
    try:
        counts = run_sweep(spec, args.out, args.jobs, args.executor, args.scheduler, args.resume,
                           progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"sweep interrupted: finished points are in {args.out}/results.sqlite; "
              f"run again with --resume to finish", file=sys.stderr)
        return 130
    print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['filtered']} filtered, "
          f"{counts['skipped']} already done; {args.out}/results.csv")
    store = ResultStore(os.path.join(args.out, "results.sqlite"))
    try:
        sweep_table.print_edp_table(store.rows(), spec.axis_keys)
    finally:
        store.close()
    if counts["plots"]:
        print(f"{counts['plots']} plots written to {args.out} (metric per axis, cycles-energy Pareto front)")
    elif not plots.available():
        print("no plots: matplotlib is not installed (pip install 'tasdsim[plots]')")
    return 1 if counts["failed"] else 0
