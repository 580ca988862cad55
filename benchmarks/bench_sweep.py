"""Sweep throughput: single-layer points per minute with --jobs 2, against --jobs 1 in the same run.

Run: python benchmarks/bench_sweep.py [--points 24]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from tasdsim.simulator.sweep_run import run_sweep
from tasdsim.simulator.sweep_spec import parse_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=24, help="points (multiple of 4)")
    args = parser.parse_args()
    rows = [8 + 4 * i for i in range(args.points // 4)]
    spec = parse_spec({"hw": "vegeta-m4", "workload": {"name": "resnet50", "layers": ["layer2.0.conv2"]},
                       "tasd": "2:4+1:4",
                       "axes": {"pe_array.rows": rows, "dram.channels": [1, 2], "tasd": ["none", "2:4+1:4"]}},
                      "bench.yaml")
    timings = {}
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            counts = run_sweep(spec, out, jobs, "local", None, False, progress=False)
            timings[jobs] = time.perf_counter() - start
        assert counts["ok"] == len(spec.points()[0])
    n = len(spec.points()[0])
    print(f"sweep of {n} single-layer points (ResNet-50 layer2.0.conv2 on vegeta-m4)")
    for jobs, seconds in timings.items():
        print(f"  --jobs {jobs}: {seconds:6.2f} s  {n / seconds * 60:8.1f} points/min")
    print(f"  speed-up of 2 jobs over 1: {timings[1] / timings[2]:.2f}x")


if __name__ == "__main__":
    main()
