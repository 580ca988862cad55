"""MAC kernel throughput beside numpy on the same operands, and a functional layer end to end.

Layers: a ResNet-50 3x3 convolution (layer1.0.conv2 as im2col GEMM, 3136x64x576) and a BERT-base
FFN layer (encoder.0.ffn.fc1, 128x3072x768), with Gaussian weights decomposed by TASD (2:4, 1:4,
2:4+1:4) and ReLU-sparse inputs, on the fold structure of vegeta-m4 (32x32 WS, ideal memory).

- ours: every term's MACs on the compressed weights (values + decoded metadata) and the TASD
  accumulation of their psums (simulator.functional.execute); operands prepared beforehand, as
  the PE array finds them in its buffers.
- int8 baseline: numpy's integer matmul of the decompressed (approximated) weight matrix,
  inputs.astype(int32) @ w_hat.astype(int32).T (numpy has no int8 -> int32 matmul).
- fp32 baseline: numpy's BLAS matmul of the decompressed matrix (dense shape: BLAS skips nothing).

Both compute the same product, checked equal, so throughput in useful MACs per second (the
series' real slots x tokens x outputs, per second) differs by the ratio of times: "x numpy".
Timings run in blocks of --repeats calls, three blocks each, ours and numpy's in turn, and keep
the best (the machine may be shared; numpy's slow int8 baseline gets a fifth of the calls).
Kernels use Numba's thread count (NUMBA_NUM_THREADS), BLAS its own (OPENBLAS_NUM_THREADS).
Goals: int8 >= 10x numpy; fp32 2:4 >= 1x dense BLAS; the functional ResNet-50 3x3 layer end to
end (`tasdsim simulate --functional`, a fresh process with warm Numba caches) under 2 s.
Run: python benchmarks/bench_kernels.py [--repeats 10] [--hw vegeta-m4] [--dtypes int8,float32] [--no-end-to-end]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.functional import LayerTensors, execute, prepare_layer
from tasdsim.simulator.run import LayerSeries
from tasdsim.traces import tensors
from tasdsim.traces.generate import plan
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import Layer

LAYERS = {
    "resnet50 layer1.0.conv2 (3x3)": (3136, 64, 576),
    "bert-base ffn.fc1": (128, 3072, 768),
}
SERIES = ("2:4", "1:4", "2:4+1:4")
GOALS = {"int8": 10.0, "float32": 1.0}  # x numpy; fp32 only for 2:4
END_TO_END_GOAL = 2.0
ROUNDS = 3  # blocks of repeats per contender
PAUSE = 0.2  # seconds between blocks, for the other library's threads to go to sleep


def layer_tensors(m: int, n: int, k: int, dtype: str) -> LayerTensors:
    weights = tensors.synthetic(f"gaussian,{dtype}", (n, k), seed=1)
    inputs = tensors.synthetic(f"relu:sparsity=0.5,{dtype}", (m, k), seed=2)
    return LayerTensors(weights, inputs, {})


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(hw, name: str, shape: tuple[int, int, int], dtype: str, series_text: str, repeats: int) -> dict:
    m, n, k = shape
    layer = Layer(name=name, kind="linear", m=m, n=n, k=k, weight_shape=(n, k))
    series = LayerSeries(weights=parse_series(series_text))
    t = layer_tensors(m, n, k, dtype)
    tiling = plan(layer, hw.target(), series.weights, series.activations, unbounded=True)
    prep, dec = prepare_layer(t, series, tiling, hw)
    w_hat = dec.approximation(t.weights)
    if dtype == "int8":
        a, b = t.inputs.astype(np.int32), np.ascontiguousarray(w_hat.astype(np.int32).T)
    else:
        a, b = t.inputs, np.ascontiguousarray(w_hat.T)
    psums, (_, _, useful) = execute(prep)
    expected = a @ b
    if dtype == "int8":
        assert np.array_equal(psums.T, expected), "int8 kernel output differs from numpy"
    else:
        assert np.allclose(psums.T, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    ours_s = base_s = float("inf")
    base_repeats = max(1, repeats // 5) if dtype == "int8" else repeats  # numpy's integer matmul is slow
    for _ in range(ROUNDS):  # blocks, not alternation: each library's idle threads spin a while after work
        time.sleep(PAUSE)
        ours_s = min(ours_s, *(timed(lambda: execute(prep)) for _ in range(repeats)))
        time.sleep(PAUSE)
        base_s = min(base_s, *(timed(lambda: a @ b) for _ in range(base_repeats)))
    return {"ours": ours_s, "numpy": base_s, "useful": useful, "ratio": base_s / ours_s}


def end_to_end(hw_name: str) -> float:
    cmd = [sys.executable, "-m", "tasdsim.simulator.cli", "simulate", "--hw", hw_name, "--gemm", "3136x64x576",
           "--tasd", "2:4", "--functional", "--json"]
    subprocess.run(cmd, check=True, capture_output=True)  # compiles or loads the Numba caches once
    return min(timed(lambda: subprocess.run(cmd, check=True, capture_output=True)) for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hw", default="vegeta-m4")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--dtypes", default="int8,float32", help="comma-separated: int8, float32")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end CLI run")
    args = parser.parse_args()
    hw = load_hw(args.hw)
    print(f"MAC kernels vs numpy on {hw.name} folds ({hw.pe_array.rows}x{hw.pe_array.cols} "
          f"{hw.pe_array.dataflow}, ideal memory), weights decomposed, best of {ROUNDS}x{args.repeats}")
    header = f"{'layer':32} {'dtype':7} {'series':8} {'useful MACs':>12} {'ours ms':>8} {'GMAC/s':>7} " \
             f"{'numpy ms':>9} {'GMAC/s':>7} {'x numpy':>8}  goal"
    print(header)
    print("-" * len(header))
    for dtype in (d.strip() for d in args.dtypes.split(",")):
        for name, shape in LAYERS.items():
            for series in SERIES:
                r = compare(hw, name, shape, dtype, series, args.repeats)
                goal = GOALS[dtype] if dtype == "int8" or series == "2:4" else None
                verdict = "" if goal is None else f">= {goal:g}x {'met' if r['ratio'] >= goal else 'MISSED'}"
                print(f"{name:32} {dtype:7} {series:8} {r['useful']:>12,} {r['ours'] * 1e3:8.2f} "
                      f"{r['useful'] / r['ours'] / 1e9:7.1f} {r['numpy'] * 1e3:9.2f} "
                      f"{r['useful'] / r['numpy'] / 1e9:7.1f} {r['ratio']:8.2f}  {verdict}")
    if args.no_end_to_end:
        return
    seconds = end_to_end(args.hw)
    print(f"end to end: tasdsim simulate --hw {args.hw} --gemm 3136x64x576 --tasd 2:4 --functional --json "
          f"{seconds:.2f} s (goal < {END_TO_END_GOAL:g} s: {'met' if seconds < END_TO_END_GOAL else 'MISSED'})")


if __name__ == "__main__":
    main()
