"""Whole-network simulation speed: ResNet-50 (batch 1) on vegeta-m4 with DDR4 and --tasd auto.

Prints, in this process after a warm-up (medians of --repeat runs): the wall time of TASDER (the series search, layers on a
thread pool), of the simulation one layer after another and on `--jobs` worker processes, and the
ratio of search + simulation to the 2 s goal. Then the wall time of the whole command
`tasdsim simulate --hw vegeta-m4 --workload resnet50 --tasd auto` (start-up, imports and Numba
cache loading included; median of --cli-runs runs). Run: python benchmarks/bench_simulate.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import choose_all_series, choose_series, simulate_layer, simulate_layers
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.workloads import load_workload

GOAL_SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hw", default="vegeta-m4")
    parser.add_argument("--workload", default="resnet50")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="in-process repetitions (medians are printed)")
    parser.add_argument("--cli-runs", type=int, default=3, help="runs of the whole command (0: skip)")
    args = parser.parse_args()
    hw = load_hw(args.hw)
    layers = list(load_workload(args.workload).layers)
    constraint = parse_constraint("relative_error<=0.3")
    simulate_layer(layers[0], hw, choose_series(layers[0], hw, "auto", "weights", constraint, 2, 0, 0.5), False)

    searches, serials, parallels = [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        series = choose_all_series(layers, hw, "auto", "weights", constraint, 2, 0, 0.5)
        searches.append(time.perf_counter() - start)
        start = time.perf_counter()
        serial = [simulate_layer(layer, hw, s, False) for layer, s in zip(layers, series)]
        serials.append(time.perf_counter() - start)
        start = time.perf_counter()
        stats = simulate_layers(layers, hw, series, False, jobs=args.jobs)
        parallels.append(time.perf_counter() - start)
        assert [s.as_dict() for s in stats] == [s.as_dict() for s in serial], "worker processes changed a result"
    search, one_by_one, parallel = (statistics.median(t) for t in (searches, serials, parallels))
    cycles = sum(s.cycles for s in stats)
    total = search + parallel
    print(f"{args.workload} ({len(layers)} layers) on {hw.name}, DDR4, --tasd auto: {cycles:,} cycles "
          f"(medians of {args.repeat} runs)")
    print(f"  TASDER search                {search:6.2f} s")
    print(f"  simulation, one by one       {one_by_one:6.2f} s")
    print(f"  simulation, {args.jobs} processes     {parallel:6.2f} s   ({one_by_one / parallel:.2f}x one by one)")
    print(f"  search + simulation          {total:6.2f} s   ({total / GOAL_SECONDS:.2f}x the {GOAL_SECONDS:.0f} s goal)")
    if args.cli_runs > 0:
        command = [sys.executable, "-m", "tasdsim.simulator.cli", "simulate", "--hw", args.hw, "--workload", args.workload,
                   "--tasd", "auto", "--jobs", str(args.jobs)]
        walls = []
        for _ in range(args.cli_runs):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - start)
        wall = statistics.median(walls)
        print(f"  whole command (median of {args.cli_runs})  {wall:6.2f} s   ({wall / GOAL_SECONDS:.2f}x the goal; "
              f"runs {', '.join(f'{w:.2f}' for w in walls)})")


if __name__ == "__main__":
    main()
