"""`tasdsim sweep`: run a sweep's points in parallel processes (local or dask), store each at once.

Each point runs the whole workload on its hardware (every layer simulated, energy from the table)
and returns its metrics; a failing point is stored with its error and the sweep goes on. The spec
is checked before any point runs (sweep_check). A sweep owns its directory while it runs (an OS
lock on DIR/.lock), its database belongs to one spec (sweep_store), and its local workers die with
it, on Ctrl-C, SIGTERM or kill -9.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import multiprocessing
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, wait
from contextlib import contextmanager
from typing import Any

from tasdsim.simulator import plots, sweep_table
from tasdsim.simulator.cli_format import add_command
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.energy import load_energy
from tasdsim.simulator.run import EdpObjective, choose_series, simulate_layer
from tasdsim.simulator.stats import total
from tasdsim.simulator.sweep_check import check_spec, input_shapes, point_layers
from tasdsim.simulator.sweep_spec import Point, SweepSpec, load_spec, sweep_files
from tasdsim.simulator.sweep_store import ResultStore
from tasdsim.common import TasdsimError
from tasdsim.traces.onnx_model import load_onnx, operand_tensors
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.workloads import Layer

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _onnx_tensors(point: Point, layers: list[Layer]) -> dict[str, dict[str, Any]] | None:
    """An ONNX workload's real weights and/or activations (operand -> layer name -> tensor)."""
    name = str(point.workload.get("name", ""))
    if not name.lower().endswith(".onnx"):
        return None
    w = point.workload
    model = load_onnx(name, input_shapes(w), w.get("batch"), w.get("seq_len"))
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


def _worker_start(parent: int) -> None:
    """A pool worker: Ctrl-C is the sweep's to handle, and the worker dies with the sweep (Linux:
    PR_SET_PDEATHSIG; elsewhere it notices at its next point)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the sweep died before the line above
        os._exit(1)


def _local(points: list[Point], jobs: int) -> Iterator[tuple]:
    """Results as they finish, from a pool of `jobs` processes (at most 2 x jobs in flight). When
    the sweep stops early (Ctrl-C, SIGTERM, an error) the workers are stopped with it."""
    from concurrent.futures import ProcessPoolExecutor  # here: it costs every other command start-up time

    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_start, initargs=(os.getpid(),))
    pending, queue = set(), iter(points)
    try:
        while True:
            while len(pending) < 2 * jobs:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending.add(pool.submit(run_point, nxt))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    except BaseException:
        for child in multiprocessing.active_children():
            child.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


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
              progress: bool = True, on_start: Callable[[], None] | None = None) -> dict[str, int]:
    """Run every point not yet stored; returns counts of ok, failed, filtered and skipped points.
    `on_start` is called once the directory and its database are the sweep's."""
    with owned_directory(out):
        return _run_sweep(spec, out, jobs, executor, scheduler, resume, progress, on_start)


@contextmanager
def owned_directory(out: str) -> Iterator[None]:
    """Create `out` and hold an exclusive OS lock on it (DIR/.lock) while the sweep runs, so a
    second sweep on the same directory refuses instead of mixing its results in."""
    try:
        os.makedirs(out, exist_ok=True)
        fd = os.open(os.path.join(out, ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise TasdsimError(f"{out}: cannot be the sweep's directory: {err.strerror or err}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TasdsimError(f"{out}: another sweep is running on this directory; wait for it or use "
                               "another --out") from None
        yield
    finally:
        os.close(fd)


def _run_sweep(spec: SweepSpec, out: str, jobs: int, executor: str, scheduler: str | None, resume: bool,
               progress: bool, on_start: Callable[[], None] | None) -> dict[str, int]:
    store = ResultStore(os.path.join(out, "results.sqlite"))
    try:
        store.claim(spec.hash, resume)
        if on_start is not None:
            on_start()
        points, filtered = spec.points()
        store.mark_filtered(filtered)
        done = store.done_ids()
        todo = [p for p in points if p.id not in done]
        counts = {"ok": 0, "failed": 0, "filtered": len(filtered), "skipped": len(points) - len(todo)}
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
        try:
            store.write_csv(os.path.join(out, "results.csv"), spec.axis_keys)
        except OSError as err:
            raise TasdsimError(f"{out}/results.csv: cannot write: {err.strerror or err}") from None
        counts["plots"] = len(plots.sweep_plots(store.rows(), spec.axis_keys, out, plot_title(spec)))
        return counts
    finally:
        store.close()


def plot_title(spec: SweepSpec) -> str:
    """The sweep, its hardware (unless an axis: then the legend), workload and TASD setting."""
    w = spec.workload
    workload = f"GEMM {w['gemm']}" if "gemm" in w else str(w["name"]) + (f" ({', '.join(w['layers'])})"
                                                                          if w.get("layers") else "")
    tasd = "tasd " + (" vs ".join(str(t) for t in spec.axes["tasd"]) if "tasd" in spec.axes else spec.base["tasd"])
    if spec.base["tasd"] == "auto" or "auto" in spec.axes.get("tasd", []):
        tasd += f" (auto: TASDER, {spec.base['quality']})"
    hardware = "" if "hw" in spec.axes else f"{spec.base['hw']} | "
    return f"sweep {spec.name} | {hardware}{workload} | {tasd}"


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "sweep", "run a hardware parameter sweep in parallel, resumable",
                    f"bundled sweeps: {', '.join(sweep_files())}\n"
                    "Each point is stored in DIR/results.sqlite as it ends; at the end DIR/results.csv, plots,\n"
                    "each distinct error of failed points and, when tasd is an axis with none, an EDP table.")
    p.add_argument("spec", help="bundled sweep name or YAML path")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel processes (default: the cores)")
    p.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local processes, or dask.distributed (pip install 'tasdsim[dist]')")
    p.add_argument("--scheduler", help="dask scheduler address tcp://host:port (joins an existing cluster)")
    p.add_argument("--resume", action="store_true", help="skip the points already in DIR/results.sqlite")
    p.add_argument("--out", default="sweep-out", metavar="DIR", help="result directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM: stop the workers and exit at once (143). Every finished point is already committed;
    raising here instead could be swallowed where Python ignores exceptions (at-fork hooks)."""
    for child in multiprocessing.active_children():
        child.kill()
    os.write(sys.stderr.fileno(), b"tasdsim sweep: terminated: finished points are kept; run again with --resume\n")
    os._exit(128 + signal.SIGTERM)


def run_sweep_command(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.jobs < 1:
        raise TasdsimError(f"--jobs must be at least 1, got {args.jobs}")
    if args.scheduler and args.executor != "dask":
        raise TasdsimError("--scheduler needs --executor dask")
    check_spec(spec, args.spec)

    def announce() -> None:
        points, filtered = spec.points()
        print(f"sweep {spec.name}: {len(points)} points ({len(filtered)} filtered out), {args.jobs} jobs, "
              f"executor {args.executor}, results in {args.out}", file=sys.stderr)
        for index, values, condition in filtered:
            print(f"  point {index} filtered out: {values} fails {condition}", file=sys.stderr)

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        counts = run_sweep(spec, args.out, args.jobs, args.executor, args.scheduler, args.resume,
                           progress=not args.no_progress, on_start=announce)
    except KeyboardInterrupt:
        print(f"sweep interrupted: finished points are in {args.out}/results.sqlite; "
              f"run again with --resume to finish", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['filtered']} filtered, "
          f"{counts['skipped']} already done; {args.out}/results.csv")
    if counts["plots"]:
        print(f"{counts['plots']} plots written to {args.out} (metric per axis, cycles-energy Pareto front)")
    elif not plots.available():
        print("no plots: matplotlib is not installed (pip install 'tasdsim[plots]')")
    store = ResultStore(os.path.join(args.out, "results.sqlite"))
    try:
        rows = store.rows()
    finally:
        store.close()
    print_errors(rows)
    sweep_table.print_edp_table(rows, spec.axis_keys)
    return 1 if counts["failed"] else 0


def print_errors(rows: list[dict[str, Any]]) -> None:
    """Each distinct error of the failed points, with how many points hit it, most frequent first."""
    errors = Counter(r["error"] for r in rows if r["status"] == "failed")
    if errors:
        print("failed points by error:")
    for error, count in errors.most_common():
        print(f"  {count} point{'s' if count > 1 else ''}: {error}")
