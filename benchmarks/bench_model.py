"""Analytical model against the simulator over whole networks: speed and agreement.

Every layer of a workload runs through `simulate_layer` and `analytical.model_layer` (real DRAM);
prints both wall times and the distribution of |model - simulator| / simulator total cycles.
Run: python benchmarks/bench_model.py [--hw vegeta-m4] [--workload resnet50] [--tasd 2:4] [--set KEY=VALUE]
"""
from __future__ import annotations

import argparse
import statistics
import time

from tasdsim.simulator.analytical import model_layer
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import load_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hw", default="vegeta-m4")
    parser.add_argument("--workload", default="resnet50")
    parser.add_argument("--tasd", default="2:4", help="series on every layer's weights (dense: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    hw = load_hw(args.hw, args.set)
    layers = load_workload(args.workload).layers
    series = LayerSeries(weights=parse_series(args.tasd))
    skipped, rows = [], []
    sim_s = model_s = 0.0
    for layer in layers:
        try:
            t0 = time.perf_counter()
            model = model_layer(layer, hw, series, False)
            t1 = time.perf_counter()
            sim = simulate_layer(layer, hw, series, False)
            t2 = time.perf_counter()
        except Exception as err:  # noqa: BLE001 - e.g. a tile that does not fit: report and go on
            skipped.append(f"{layer.name}: {err}")
            continue
        model_s, sim_s = model_s + t1 - t0, sim_s + t2 - t1
        rows.append((layer.name, sim.cycles, model.cycles, abs(model.cycles - sim.cycles) / sim.cycles))
    errors = [r[3] for r in rows]
    print(f"{args.workload} ({len(rows)} layers) on {hw.name} {' '.join(args.set)}, weights {args.tasd}, real DRAM")
    print(f"  simulator {sim_s:8.2f} s, model {model_s:8.3f} s ({sim_s / model_s:.0f}x faster)")
    print(f"  total cycles: simulator {sum(r[1] for r in rows):,}, model {sum(r[2] for r in rows):,}")
    print(f"  |diff| per layer: median {statistics.median(errors) * 100:.3f}%, max {max(errors) * 100:.3f}% "
          f"({max(rows, key=lambda r: r[3])[0]})")
    for line in skipped:
        print(f"  skipped {line}")


if __name__ == "__main__":
    main()
