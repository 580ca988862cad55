"""`tasdsim dram`: replay a request stream in DRAMsim3's trace format through the DRAM model alone."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from tasdsim.common import load_yaml, TasdsimError
from tasdsim.components.dram import DramTiming, load_dram_preset, replay
from tasdsim.simulator.output import print_json, print_table
from tasdsim.traces.dram_trace import read_dram_trace
from tasdsim.simulator.cli_format import add_command


def add_dram_parser(sub: Any) -> None:
    p = add_command(sub, "dram", "replay a DRAM request trace (DRAMsim3's format) through the DRAM model")
    p.add_argument("--preset", required=True, help="DRAM preset name (configs/dram) or YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DRAM preset key, e.g. ranks=1 or tRCD=20 (repeatable; dram.KEY works too)")
    p.add_argument("--trace", required=True, help="requests `0x<hex address> READ|WRITE <arrival tCK>` (.gz too)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--per-request", metavar="OUT.npy", help="write each request's completion tCK (int64, file order)")


def dram_with_overrides(preset: str, items: Sequence[str]) -> DramTiming:
    """A DRAM preset with `KEY=VALUE` overrides (values parsed as YAML; `dram.` prefixes allowed)."""
    timing = load_dram_preset(preset)
    changes = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("dram.")
        if not sep or not key:
            raise TasdsimError(f"--set {item}: expected KEY=VALUE, such as ranks=1")
        changes[key] = load_yaml(text, f"--set {item}")
    try:
        return timing.with_overrides(changes)
    except TasdsimError as err:
        raise TasdsimError(f"--set: {err}") from None


def replay_report(timing: DramTiming, addresses: np.ndarray, writes: np.ndarray, arrivals: np.ndarray,
                  ) -> tuple[dict[str, Any], np.ndarray]:
    """The `--json` document of a replayed stream, and each request's completion tCK."""
    result = replay(timing, addresses, writes, arrivals)
    done, s = result.done, result.stats
    latency = done - arrivals
    cycles = int(done.max())
    reads = writes == 0

    def mean(mask: np.ndarray) -> float | None:
        return float(latency[mask].mean()) if mask.any() else None

    report = {"preset": timing.name, "requests": len(done), "reads": int(reads.sum()), "writes": int((~reads).sum()),
              "cycles": cycles, "time_ns": round(cycles * timing.tCK, 3),
              "mean_read_latency": mean(reads), "mean_write_latency": mean(~reads),
              "activates": s["activates"], "row_hits": s["row_hits"], "row_misses": s["row_misses"],
              "row_conflicts": s["row_conflicts"], "refreshes": s["refreshes"], "precharges": s["precharges"],
              "read_cmds": s["read_cmds"], "write_cmds": s["write_cmds"], "hbm_dual_cmds": s["hbm_dual_cmds"],
              "bandwidth_fraction": len(done) * timing.request_bytes / (cycles * timing.peak_bytes_per_tck)}
    return report, done


def run_dram(args: argparse.Namespace) -> int:
    timing = dram_with_overrides(args.preset, args.set)
    trace = read_dram_trace(args.trace)
    report, done = replay_report(timing, trace.addresses, trace.writes, trace.arrivals)
    if args.per_request:
        try:
            np.save(args.per_request, done)
        except OSError as err:
            raise TasdsimError(f"{args.per_request}: cannot write: {err.strerror or err}") from None
    if args.json:
        print_json(report)
    else:
        rows = [[key, "-" if value is None else f"{value:.4f}" if isinstance(value, float) and abs(value) < 10
                 else f"{value:.1f}" if isinstance(value, float) else value] for key, value in report.items()]
        print_table(["", args.trace], rows)
    return 0
