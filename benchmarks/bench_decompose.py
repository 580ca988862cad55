"""Decomposition speed: a 4096x4096 fp32 matrix with a 3-term series.

Baseline in the same run: a straightforward numpy implementation (stable argsort per group), the
way one would write TASD without the jitted kernel. Prints seconds for both and the ratio.
Run: python benchmarks/bench_decompose.py [--size 4096] [--series 4:8+2:8+1:8]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from tasdsim.traces.decompose import decompose
from tasdsim.traces.patterns import parse_series


def numpy_decompose(a: np.ndarray, series) -> np.ndarray:
    """Reference greedy TASD in plain numpy: returns the residual."""
    residual = a.copy()
    rows, k = a.shape
    for p in series.terms:
        groups = -(-k // p.m)
        padded = np.zeros((rows, groups * p.m), dtype=a.dtype)
        padded[:, :k] = residual
        grouped = padded.reshape(rows, groups, p.m)
        order = np.argsort(-np.abs(grouped), axis=2, kind="stable")[:, :, : p.n]
        np.put_along_axis(grouped, order, 0, axis=2)
        residual = padded[:, :k].copy()
    return residual


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--series", default="4:8+2:8+1:8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    series = parse_series(args.series)
    a = np.random.default_rng(0).standard_normal((args.size, args.size)).astype(np.float32)
    decompose(a[:8, :16], series)  # compile (or load the Numba cache) outside the timing
    ours = best_of(lambda: decompose(a, series), args.repeats)
    base = best_of(lambda: numpy_decompose(a, series), args.repeats)
    assert np.array_equal(decompose(a, series).residual, numpy_decompose(a, series))
    print(f"decompose {args.size}x{args.size} fp32, series {series}")
    print(f"  tasdsim (Numba)     {ours:8.3f} s")
    print(f"  numpy argsort       {base:8.3f} s")
    print(f"  speed-up            {base / ours:8.1f}x")


if __name__ == "__main__":
    main()
