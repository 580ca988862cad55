"""N:M training on digits: time per run, and how robust the issue's two claims are across seeds.

For each seed, trains dense, STE and SR-STE with one pattern (default epochs) and prints test
accuracy, total SAD and seconds per run; the summary counts the seeds where SR-STE is within one
point of dense and where SR-STE's total SAD is below STE's.
Run: python benchmarks/bench_training.py [--seeds 10] [--pattern 2:4] [--epochs 30]
"""
from __future__ import annotations

import argparse
import time

from tasdsim.traces.digits import load_digits
from tasdsim.traces.nm_training import TrainConfig, train
from tasdsim.traces.patterns import parse_pattern

METHODS = ("dense", "ste", "srste")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--pattern", default="2:4")
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    args = parser.parse_args()
    data = load_digits()
    pattern = parse_pattern(args.pattern)
    within = lower_sad = 0
    seconds = {m: 0.0 for m in METHODS}
    print(f"digits, pattern {pattern}, {args.epochs} epochs")
    print("seed  dense_acc  ste_acc  srste_acc  ste_sad  srste_sad")
    for seed in range(args.seeds):
        runs = {}
        for method in METHODS:
            start = time.perf_counter()
            runs[method] = train(data, TrainConfig(method=method, pattern=pattern, epochs=args.epochs, seed=seed))
            seconds[method] += time.perf_counter() - start
        d, s, r = (runs[m] for m in METHODS)
        within += abs(r.test_accuracy - d.test_accuracy) <= 0.01
        lower_sad += sum(r.sad) < sum(s.sad)
        print(f"{seed:<4}  {d.test_accuracy:.4f}     {s.test_accuracy:.4f}   {r.test_accuracy:.4f}     "
              f"{sum(s.sad):<7}  {sum(r.sad)}", flush=True)
    print(f"SR-STE within 1 point of dense: {within}/{args.seeds} seeds; SAD(SR-STE) < SAD(STE): "
          f"{lower_sad}/{args.seeds} seeds")
    print("seconds per run: " + ", ".join(f"{m} {seconds[m] / args.seeds:.2f}" for m in METHODS))


if __name__ == "__main__":
    main()
