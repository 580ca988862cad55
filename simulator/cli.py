"""`tasdsim` command line: one sub-command per job; bad input is one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import math
import os
import sys

import tasdsim

from tasdsim.simulator.cli_format import HelpFormatter, add_command

# Only the standard library (and argparse's formatting) at the top: a Ctrl-C while the rest is
# imported is main's to report.
DESCRIPTION = """\
tasdsim simulates DNN accelerators whose PE arrays run N:M structured sparsity, cycle by cycle,
with TASD: a layer's tensor split into a series of N:M terms (A ~ A1 + A2 + ...). Out come cycles,
stalls, utilisation, traffic per memory level, energy and EDP.

hardware presets (--hw): dense-ws-32x32, stc-2of4, vegeta-m4, ttc-m8, or a YAML path
workloads (--workload): resnet50, mobilenetv2, bert-base, scalesim-resnet50, or a YAML, .onnx or
SCALE-Sim topology .csv path"""

EPILOG = """\
examples:
  tasdsim simulate --hw vegeta-m4 --workload resnet50 --tasd auto   # TASDER picks each layer's series
  tasdsim simulate --hw vegeta-m4 --gemm 512x512x512 --tasd 2:4+1:4
  tasdsim sweep paper-resnet50 --out runs/r50                       # the four presets, dense and TASD
  tasdsim dram --preset ddr4-3200 --trace requests.trace            # a DRAMsim3 trace, DRAM alone
  tasdsim validate                                                  # simulator against analytical model

`tasdsim COMMAND -h` describes a command and its options."""
FLOAT_OPTIONS = {"act_sparsity": (0.0, 1.0), "lr": (0.0, 1e6), "lambda_w": (0.0, 1e6), "min_accuracy": (0.0, 1.0)}


def int_options() -> dict[str, tuple[int, int]]:
    """The documented range of every integer option, by its argparse dest (`train`'s --batch is a
    minibatch, in the same range as a workload's batch)."""
    from tasdsim.traces import limits

    return {"seed": (0, limits.MAX_SEED), "max_terms": (1, limits.MAX_TERMS), "batch": (1, limits.MAX_BATCH),
            "seq_len": (1, limits.MAX_FIELD), "jobs": (1, limits.MAX_JOBS), "epochs": (1, 10_000),
            "timeline_max_events": (1, limits.MAX_TIMELINE_EVENTS), "axis": (-8, 7),
            "scalesim_max_macs": (1, limits.MAX_LAYER_MACS)}


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (no usage block), exit 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def check_options(args: argparse.Namespace) -> None:
    """Every numeric option within its documented range; options that cannot go together refused."""
    from tasdsim.common import TasdsimError

    for dest, (low, high) in int_options().items():
        value = getattr(args, dest, None)
        if value is not None and not low <= value <= high:
            raise TasdsimError(f"--{dest.replace('_', '-')} must be from {low:,} to {high:,}, got {value}")
    for dest, (low, high) in FLOAT_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise TasdsimError(f"--{dest.replace('_', '-')} must be a number from {low:g} to {high:g}, got {value}")
    if getattr(args, "gemm", None) and (getattr(args, "layers", None) or getattr(args, "layer", None)):
        option = "--layers" if getattr(args, "layers", None) else "--layer"
        raise TasdsimError(f"{option} selects layers of a --workload; --gemm is one layer")


def build_parser() -> argparse.ArgumentParser:
    from tasdsim.simulator import dram_commands, model_inputs, sweep_run, train_commands, validate  # here: Ctrl-C while importing is main's

    parser = Parser(prog="tasdsim", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"tasdsim {tasdsim.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    p = add_command(sub, "decompose", "split one tensor into N:M terms and report their quality")
    p.add_argument("tensor", help="file.npy, file.npz:key or file.safetensors:name")
    p.add_argument("--series", required=True, help='TASD series such as "2:4+1:4"')
    p.add_argument("--axis", type=int, default=None,
                   help="reduction axis (default: last for 2-D, input channels = 1 for 4-D)")
    p.add_argument("--inputs", help="sample inputs (K, samples) for output_error (default: seeded Gaussian)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic sample inputs")
    p.add_argument("--out", help="write every term's values and metadata to this .npz")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add_command(sub, "search", "TASDER: choose the cheapest supported series per layer")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", help="bundled workload name, YAML, .onnx (its weights) or SCALE-Sim .csv path "
                                        "(synthetic weights)")
    src.add_argument("--weights", help="a model's .onnx (its layers and initializers), or .npz or .safetensors: "
                                       "every 2-D/4-D weight is a layer")
    p.add_argument("--patterns", help='patterns the hardware supports, such as "1:4,2:4" (default: --hw\'s)')
    p.add_argument("--hw", help="target hardware preset or YAML path (needed by --objective edp)")
    p.add_argument("--objective", choices=["compute", "edp"], default="compute",
                   help="rank the series that meet --quality by compute density (default) or by the layer's "
                        "simulated EDP on --hw (real memory)")
    p.add_argument("--max-terms", type=int, default=2, help="most terms in a series (default 2)")
    p.add_argument("--quality", required=True, help='constraint such as "relative_error<=0.3" or "kept_magnitude>=0.9"')
    p.add_argument("--operand", choices=["weights", "activations", "both"], default="weights",
                   help="the operand(s) to decompose")
    p.add_argument("--budget", action="store_true",
                   help="apply --quality to the MAC-weighted mean over the model instead of to each layer")
    p.add_argument("--activations", help="sample activations: .npz/.safetensors with a (tokens, K) tensor per layer name")
    p.add_argument("--act-sparsity", type=float, default=0.5, help="zeros in synthetic activations (default 0.5)")
    p.add_argument("--synthetic", default="gaussian", help="synthetic weight kind for --workload (default gaussian)")
    p.add_argument("--batch", type=int, default=None, help="workload batch size")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (workload; default 128 for --weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic tensors")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    model_inputs.add_model_options(p)

    p = add_command(sub, "simulate", "run layers on a simulated accelerator, cycle by cycle")
    p.add_argument("--hw", help="hardware preset name or YAML path (with --trace: default the trace's own)")
    src = p.add_mutually_exclusive_group()  # one is required, unless --functional takes --weights/--inputs
    src.add_argument("--workload", help="bundled workload name or YAML path")
    src.add_argument("--gemm", help="one layer O[MxN] = I[MxK] . W[KxN], given as MxNxK")
    src.add_argument("--trace", help="replay a .trace file")
    p.add_argument("--layers", help="comma-separated layer names of the workload")
    _add_layer_options(p)
    p.add_argument("--functional", action="store_true",
                   help="also compute the layer's real outputs through the MAC kernels and check them")
    p.add_argument("--weights", help="functional: (out, in) weights, file.npy, file.npz:key or file.safetensors:name")
    p.add_argument("--inputs", help="functional: (tokens, in) inputs, same sources as --weights")
    p.add_argument("--dump-output", metavar="OUT.npy", help="functional: write the (tokens, out) output here")
    p.add_argument("--energy", default="45nm", help="energy table: name in configs/energy or YAML path")
    p.add_argument("--timeline", metavar="FILE.json", help="write a Perfetto / chrome://tracing timeline")
    p.add_argument("--timeline-layers", metavar="NAMES", help="record only these layers (comma-separated)")
    p.add_argument("--timeline-max-events", type=int, default=500_000,
                   help="stop recording complete events past this many (default 500000)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="layers simulated in parallel processes (default: cores; with --timeline: 1)")
    p.add_argument("--out", help="directory for compute.csv, memory.csv, sparsity.csv, result.json and plots")
    p.add_argument("--dram-trace", metavar="FILE",
                   help="write the layer's DRAM requests in DRAMsim3's trace format (arrivals in tCK; .gz ok)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add_command(sub, "trace", "write one layer's instruction trace to a .trace file")
    p.add_argument("--hw", required=True, help="hardware preset name or YAML path")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workload", help="bundled workload name or YAML path (with --layer)")
    src.add_argument("--gemm", help="one layer given as MxNxK")
    p.add_argument("--layer", metavar="NAME", help="the workload's layer to trace")
    _add_layer_options(p)
    p.add_argument("-o", "--output", required=True, help="the .trace file to write")
    dram_commands.add_dram_parser(sub)
    sweep_run.add_sweep_parser(sub)
    train_commands.add_train_parsers(sub)
    validate.add_validate_parser(sub)
    return parser


def _add_layer_options(p: argparse.ArgumentParser) -> None:
    from tasdsim.simulator import model_inputs

    p.add_argument("--tasd", default="none", help='none, auto (TASDER on the hardware\'s patterns) or a series "2:4+1:4"')
    p.add_argument("--operand", choices=["weights", "activations", "both"], default="weights",
                   help="the operand TASD decomposes (default weights; both: TASDER picks one per layer)")
    p.add_argument("--objective", choices=["compute", "edp"], default="compute",
                   help="--tasd auto: cheapest compute density (default) or lowest simulated EDP per layer")
    p.add_argument("--memory", choices=["real", "ideal"], default="real",
                   help="ideal: no memory stalls and unbounded buffers (for validation)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hardware config key, e.g. pe_array.rows=16 (repeatable)")
    p.add_argument("--quality", default="relative_error<=0.3", help="TASDER constraint for --tasd auto")
    p.add_argument("--max-terms", type=int, default=2, help="most terms TASDER uses (default 2)")
    p.add_argument("--act-sparsity", type=float, default=0.5, help="zeros in synthetic activations (--tasd auto)")
    p.add_argument("--batch", type=int, default=None, help="workload batch size")
    p.add_argument("--seq-len", type=int, default=None, help="workload sequence length")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic tensors TASDER searches on")
    model_inputs.add_model_options(p)


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input is one line on stderr and exit 2, Ctrl-C (at any moment,
    start-up included) one line and exit 130."""
    command = "tasdsim"
    try:
        from tasdsim.common import TasdsimError

        args = build_parser().parse_args(argv)
        if argv is None:  # the `tasdsim` program, not an in-process caller such as a test reading stderr
            from tasdsim.simulator import jit_notice

            jit_notice.install()
        command = f"tasdsim {args.command}"
        check_options(args)
        from tasdsim.simulator import dram_commands, frontend_commands, sim_commands, sweep_run, train_commands, validate

        handlers = {"decompose": frontend_commands.run_decompose, "search": frontend_commands.run_search,
                    "simulate": sim_commands.run_simulate, "trace": sim_commands.run_trace,
                    "sweep": sweep_run.run_sweep_command, "dram": dram_commands.run_dram,
                    "train": train_commands.run_train, "tasd-vs-train": train_commands.run_tasd_vs_train,
                    "validate": validate.run_validate}
        return handlers[args.command](args)
    except KeyboardInterrupt:  # first: TasdsimError is not bound when Ctrl-C came during its import
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except TasdsimError as err:
        print(f"{command}: error: {' '.join(str(err).split())}", file=sys.stderr)  # one line, whatever it quotes
        return 2
    except MemoryError:
        print(f"{command}: error: out of memory", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
