"""`tasdsim validate`: the simulator and the analytical model side by side over a suite of points.

The parts, one job each: `validate_suite` (the suite's schema and its points), `validate_run`
(simulate, model and compare every point), `validate_report` (tables and files),
`validate_plots` (cycles.png), `scalesim_peer` (SCALE-Sim v3 beside ours). This module is the
command: it runs a suite, prints the report or `--json`, writes `--out`, and exits 0 when every
point is within its tolerances, 1 when one is outside.
"""
from __future__ import annotations

import argparse
import json

from tasdsim.common import TasdsimError
from tasdsim.simulator.cli_format import add_command
from tasdsim.simulator.scalesim_peer import SCALESIM_MAX_MACS, scalesim_compare
from tasdsim.simulator.validate_report import json_default, print_report, print_stalls, write_outputs
from tasdsim.simulator.validate_run import run_suite, summarize
from tasdsim.simulator.validate_suite import Suite, load_suite

def add_validate_parser(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "validate", "compare simulator and analytical model over a suite of points",
                    "Each metric is exact, within its tolerance or outside; exit status 1 when a point is outside.")
    p.add_argument("--suite", help="suite YAML (default: the bundled configs/suites/default.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object (points and summary)")
    p.add_argument("--out", help="directory for validate.csv, validate.json and cycles.png (with matplotlib)")
    p.add_argument("--points", help="comma-separated point names to run (default: all)")
    p.add_argument("--stalls", action="store_true",
                   help="also print each point's stall cycles by cause, simulator and model side by side")
    p.add_argument("--no-scalesim", action="store_true", help="skip the SCALE-Sim v3 cross-check even if installed")
    p.add_argument("--scalesim-max-macs", type=int, default=SCALESIM_MAX_MACS,
                   help="largest GEMM (MACs) given to SCALE-Sim")


def run_validate(args: argparse.Namespace) -> int:
    """Exit 0 when every point is within its tolerances, 1 when one is outside."""
    suite = load_suite(args.suite)
    if args.points:
        names = [n.strip() for n in args.points.split(",") if n.strip()]
        known = {p.name for p in suite.points}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TasdsimError(f"{suite.label}: no point named {', '.join(map(repr, unknown))}")
        suite = Suite(suite.label, tuple(p for p in suite.points if p.name in names), suite.tolerances)
    results = run_suite(suite)
    summary = summarize(results, suite)
    peers = None if args.no_scalesim else scalesim_compare(suite, results, args.scalesim_max_macs)
    document = {"points": results, "summary": summary, "scalesim": peers}
    written = write_outputs(args.out, results, document) if args.out else []
    if args.json:
        print(json.dumps(document, indent=2, default=json_default))
    else:
        print_report(results, summary, peers)
        if args.stalls:
            print()
            print_stalls(results)
        if args.out:
            print(f"written: {', '.join(written)}")
            if not any(w.endswith(".png") for w in written):
                print("no plot: matplotlib is not installed (pip install 'tasdsim[plots]')")
    return 1 if summary["outside"] else 0
