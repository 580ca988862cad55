"""Side by side with SCALE-Sim v3 on one ResNet-50 3x3 convolution (a dense 32x32 WS array).

Prints both cycle counts (SCALE-Sim reports the stall-free count minus one, so ours should be its
count plus one) and the wall-time ratio. tasdsim runs the same layer stall-free (--memory ideal)
and also with real DDR4, which SCALE-Sim does not model. Needs SCALE-Sim in the same environment:
`pip install 'tasdsim[peers]'` (SCALE-Sim 3.0.0 needs numpy below 2.4).
Run: python benchmarks/bench_scalesim.py [--layer layer2.0.conv2]
"""
from __future__ import annotations

import argparse
import time

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.simulator.scalesim_peer import scalesim_available, scalesim_cycles
from tasdsim.traces.workloads import load_workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layer", default="layer2.0.conv2", help="a ResNet-50 layer (default: a 3x3 conv)")
    args = parser.parse_args()
    if not scalesim_available():
        raise SystemExit("SCALE-Sim v3 is not importable here: pip install 'tasdsim[peers]' (numpy < 2.4)")
    layer = load_workload("resnet50").select([args.layer]).layers[0]
    hw = load_hw("dense-ws-32x32", ["metadata_decoder.latency=0"])
    r, c = hw.pe_array.rows, hw.pe_array.cols
    simulate_layer(layer, hw, LayerSeries(), True)  # warm up (Numba cache, imports)

    start = time.perf_counter()
    theirs = scalesim_cycles(layer.m, layer.n, layer.k, r, c, "ws")
    scalesim_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = simulate_layer(layer, hw, LayerSeries(), True)
    ideal_s = time.perf_counter() - start
    start = time.perf_counter()
    real = simulate_layer(layer, hw, LayerSeries(), False)
    real_s = time.perf_counter() - start

    print(f"ResNet-50 {layer.name}: GEMM M={layer.m} N={layer.n} K={layer.k}, 32x32 WS, dense")
    print(f"  SCALE-Sim v3         {theirs:>10,} cycles (+1 = {theirs + 1:,})  {scalesim_s:8.3f} s")
    print(f"  tasdsim, stall-free  {ours.cycles:>10,} cycles               {ideal_s:8.3f} s")
    print(f"  tasdsim, DDR4        {real.cycles:>10,} cycles               {real_s:8.3f} s")
    print(f"  cycles equal SCALE-Sim's + 1: {ours.cycles == theirs + 1}")
    print(f"  wall-time ratio SCALE-Sim / tasdsim stall-free: {scalesim_s / ideal_s:.0f}x, "
          f"/ tasdsim with DDR4: {scalesim_s / real_s:.0f}x")


if __name__ == "__main__":
    main()
