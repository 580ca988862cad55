"""Whole-network simulation speed: ResNet-50 (batch 1) on vegeta-m4 with DDR4 and --tasd auto.

Prints the wall time of TASDER (the series search) and of the simulation apart, and the ratio of
the total to the 2 s goal. Run: python benchmarks/bench_simulate.py
"""
from __future__ import annotations

import argparse
import time

from simulator.config import load_hw
from simulator.run import choose_all_series, choose_series, simulate_layer
from traces.search import parse_constraint
from traces.workloads import load_workload

GOAL_SECONDS = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hw", default="vegeta-m4")
    parser.add_argument("--workload", default="resnet50")
    args = parser.parse_args()
    hw = load_hw(args.hw)
    layers = load_workload(args.workload).layers
    constraint = parse_constraint("relative_error<=0.3")
    simulate_layer(layers[0], hw, choose_series(layers[0], hw, "auto", "weights", constraint, 2, 0, 0.5), False)

    start = time.perf_counter()
    series = choose_all_series(list(layers), hw, "auto", "weights", constraint, 2, 0, 0.5)
    search = time.perf_counter() - start
    start = time.perf_counter()
    stats = [simulate_layer(layer, hw, s, False) for layer, s in zip(layers, series)]
    sim = time.perf_counter() - start
    cycles = sum(s.cycles for s in stats)
    print(f"{args.workload} ({len(layers)} layers) on {hw.name}, DDR4, --tasd auto: {cycles:,} cycles")
    print(f"  TASDER search       {search:8.2f} s")
    print(f"  simulation          {sim:8.2f} s")
    print(f"  total               {search + sim:8.2f} s   ({(search + sim) / GOAL_SECONDS:.1f}x the {GOAL_SECONDS:.0f} s goal)")


if __name__ == "__main__":
    main()
