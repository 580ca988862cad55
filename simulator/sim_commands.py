"""The simulator commands: `tasdsim simulate` and `tasdsim trace`."""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

from tasdsim.simulator import functional, model_inputs
from tasdsim.simulator import plots
from tasdsim.simulator.config import HwConfig, load_hw
from tasdsim.simulator.energy import load_energy
from tasdsim.simulator.timeline import Timeline
from tasdsim.simulator.output import print_json, print_table
from tasdsim.simulator.run import (EdpObjective, LayerSeries, choose_all_series, choose_series, simulate_layer,
                                   simulate_layers, simulate_trace, trace_header)
from tasdsim.simulator.stats import STALL_CAUSES, LayerStats, total
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import generate, plan
from tasdsim.traces.limits import check_folds
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.trace_file import write_trace
from tasdsim.traces.workloads import Layer, gemm_layer, load_workload


def _layers(args: argparse.Namespace) -> list[Layer]:
    if args.gemm:
        return [gemm_layer(args.gemm)]
    if model_inputs.is_onnx(args.workload):
        workload = model_inputs.onnx_model(args, args.workload).workload
    else:
        workload = load_workload(args.workload, batch=args.batch, seq_len=args.seq_len)
    if args.layers:
        workload = workload.select([n.strip() for n in args.layers.split(",") if n.strip()])
    return list(workload.layers)


def _series(args: argparse.Namespace, layer: Layer, hw: HwConfig) -> LayerSeries:
    tensors = model_inputs.real_tensors(args, [layer], args.operand) if args.tasd == "auto" else None
    return choose_series(layer, hw, args.tasd, args.operand, parse_constraint(args.quality), args.max_terms,
                         args.seed, args.act_sparsity, {op: t[layer.name] for op, t in (tensors or {}).items()
                                                         if layer.name in t},
                         objective=_objective(args))


def _objective(args: argparse.Namespace) -> EdpObjective | None:
    """--objective edp: TASDER ranks by the layer's simulated EDP on the same hardware and memory."""
    return EdpObjective(args.memory == "ideal", load_energy(args.energy)) if args.objective == "edp" else None


def run_simulate(args: argparse.Namespace) -> int:
    """Simulate a workload, a GEMM or a trace file; print a table or JSON; write reports with --out."""
    ideal = args.memory == "ideal"
    run_functional = functional.requested(args)
    if not (args.workload or args.gemm or args.trace or (run_functional and (args.weights or args.inputs))):
        raise TasdsimError("give --workload, --gemm or --trace (or --functional with --weights and --inputs)")
    checked = None
    table = load_energy(args.energy)
    timeline = _timeline(args)
    if args.dram_trace and (args.trace or run_functional):
        raise TasdsimError("--dram-trace works with --gemm or --workload")
    if args.trace:
        hw, stats = simulate_trace(args.trace, ideal, load_hw(args.hw, args.set) if args.hw else None, table,
                                   timeline)
        layers = [stats]
    else:
        if not args.hw:
            raise TasdsimError("--hw is required with --workload or --gemm")
        hw = load_hw(args.hw, args.set)
        if run_functional:
            stats, checked = functional.simulate(args, hw, ideal)
            layers = [stats]
        else:
            chosen = _timeline_layers(args)
            todo = _layers(args)
            tensors = model_inputs.real_tensors(args, todo, args.operand) if args.tasd == "auto" else None
            series = choose_all_series(todo, hw, args.tasd, args.operand, parse_constraint(args.quality),
                                       args.max_terms, args.seed, args.act_sparsity, tensors,
                                       objective=_objective(args))
            if args.dram_trace:
                if len(todo) != 1 or ideal:
                    raise TasdsimError("--dram-trace records one layer with real memory: give --gemm, or "
                                       "--workload with --layers NAME")
                layers = [simulate_layer(todo[0], hw, series[0], ideal, table, timeline, dram_trace=args.dram_trace)]
            elif timeline is None:
                layers = simulate_layers(todo, hw, series, ideal, table, _jobs(args))
            else:
                layers = [simulate_layer(layer, hw, s, ideal, table,
                                         timeline if chosen is None or layer.name in chosen else None)
                          for layer, s in zip(todo, series)]
    pes = hw.pe_array.rows * hw.pe_array.cols
    notes: list[str] = [f"DRAM requests written to {args.dram_trace}"] if args.dram_trace else []
    result = {"hardware": hw.as_dict(), "memory": args.memory,
              "layers": [s.as_dict() for s in layers], "total": total(layers, pes, hw.clock_ghz)}
    if checked is not None:
        result["functional"] = checked
    if args.out:
        write_reports(args.out, layers, result)
        written = plots.run_plots(result["layers"], pes, dram_bytes_per_cycle(hw), args.out,
                                  _plot_title(args, hw, layers))
        notes.append(f"{len(written)} plots written to {args.out}" if written else
                     "no plots: matplotlib is not installed (pip install 'tasdsim[plots]')")
    if timeline is not None:
        notes.append(_write_timeline(args, timeline))
    if args.json:
        for note in notes:
            print(note, file=sys.stderr)
        print_json(result)
        return 0
    rows = [[s.name, s.series["weights"], s.series["activations"], s.cycles, s.compute_cycles,
             sum(s.stall_cycles.values()), f"{s.utilization:.3f}", s.dram_bytes["read"], s.dram_bytes["write"]]
            for s in layers]
    t = result["total"]
    rows.append(["total", "", "", t["cycles"], t["compute_cycles"], sum(t["stall_cycles"].values()),
                 f"{t['utilization']:.3f}", t["dram_bytes"]["read"], t["dram_bytes"]["write"]])
    print(f"hardware {hw.name}: {hw.pe_array.rows}x{hw.pe_array.cols} {hw.pe_array.dataflow}, "
          f"{hw.dram.preset} x{hw.dram.channels}, memory {args.memory}")
    print_table(["layer", "weights", "activations", "cycles", "compute", "stalls", "util", "dram_read", "dram_write"],
                rows)
    stalls = ", ".join(f"{k} {v}" for k, v in t["stall_cycles"].items() if v)
    print(f"stall cycles by cause: {stalls or 'none'}")
    if checked is not None:
        print(functional.summary(checked))
    if args.out:
        print(f"reports written to {args.out}")
    for note in notes:
        print(note)
    return 0


def _plot_title(args: argparse.Namespace, hw: HwConfig, layers: list[LayerStats]) -> str:
    """The hardware, the workload and the TASD setting, e.g.
    'vegeta-m4 (32x32 ws, ddr4-3200 x1) | resnet50 | TASD-W auto (TASDER per layer)'."""
    array = (f"{hw.name} ({hw.pe_array.rows}x{hw.pe_array.cols} {hw.pe_array.dataflow}, "
             f"{hw.dram.preset} x{hw.dram.channels})")
    if args.trace:
        series = layers[0].series
        return f"{array} | trace {args.trace} | weights {series['weights']}, activations {series['activations']}"
    workload = args.workload or (f"GEMM {args.gemm}" if args.gemm else "GEMM of --weights x --inputs")
    if args.layers:
        workload += f" ({args.layers})"
    kind = "TASD-W" if args.operand == "weights" else "TASD-A"
    tasd = {"none": "dense, no TASD", "auto": f"{kind} auto (TASDER per layer)"}.get(args.tasd, f"{kind} {args.tasd}")
    return f"{array} | {workload} | {tasd}"


def _jobs(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise TasdsimError(f"--jobs must be at least 1, got {args.jobs}")
    return args.jobs


def _timeline(args: argparse.Namespace) -> Timeline | None:
    if not args.timeline:
        return None
    if args.timeline_max_events < 1:
        raise TasdsimError(f"--timeline-max-events must be at least 1, got {args.timeline_max_events}")
    return Timeline(args.timeline_max_events)


def _timeline_layers(args: argparse.Namespace) -> set[str] | None:
    if not args.timeline_layers:
        return None
    return {n.strip() for n in args.timeline_layers.split(",") if n.strip()}


def _write_timeline(args: argparse.Namespace, timeline: Timeline) -> str:
    """Write the timeline; the note says what it holds and whether it was cut."""
    try:
        timeline.write(args.timeline)
    except OSError as err:
        raise TasdsimError(f"{args.timeline}: cannot write timeline: {err.strerror or err}") from None
    note = f"timeline written to {args.timeline} ({timeline.complete} events"
    if args.timeline_layers:
        note += f"; layers {args.timeline_layers} only, back to back"
    if timeline.truncated:
        note += f"; truncated at --timeline-max-events {timeline.max_events}: later events are missing"
    return note + "); open it in ui.perfetto.dev or chrome://tracing"


def dram_bytes_per_cycle(hw: HwConfig) -> float:
    """Peak DRAM bytes per accelerator cycle over all channels (the roofline's memory roof)."""
    timing = hw.dram.timing()
    return timing.peak_bytes_per_ns_per_channel * timing.channels / hw.clock_ghz


def write_reports(out: str, layers: list[LayerStats], result: dict) -> None:
    """One CSV per concern keyed by layer (compute, memory, sparsity) and the JSON."""
    try:
        os.makedirs(out, exist_ok=True)
        _csv(os.path.join(out, "compute.csv"),
             ["layer", "cycles", "compute_cycles", *[f"stall_{c}" for c in STALL_CAUSES], "utilization",
              "macs_issued", "macs_useful", "folds"],
             [[s.name, s.cycles, s.compute_cycles, *[s.stall_cycles.get(c, 0) for c in STALL_CAUSES],
               f"{s.utilization:.6f}", s.macs_issued, s.macs_useful, s.folds] for s in layers])
        _csv(os.path.join(out, "memory.csv"),
             ["layer", "dram_read_bytes", "dram_write_bytes", "weights_bytes", "metadata_bytes", "inputs_bytes",
              "outputs_bytes", "row_hits", "row_misses", "row_conflicts",
              *[f"sram_{b}_{d}_bytes" for b in ("weights", "inputs", "outputs") for d in ("read", "write")]],
             [[s.name, s.dram_bytes["read"], s.dram_bytes["write"], s.dram_bytes["weights"], s.dram_bytes["metadata"],
               s.dram_bytes["inputs"], s.dram_bytes["outputs"], s.dram_rows["hits"], s.dram_rows["misses"],
               s.dram_rows["conflicts"],
               *[s.sram_bytes[b][d] for b in ("weights", "inputs", "outputs") for d in ("read", "write")]]
              for s in layers])
        _csv(os.path.join(out, "sparsity.csv"),
             ["layer", "weights_series", "activations_series", "metadata_bytes", "macs_issued", "macs_useful",
              "decoder_folds", "accumulator_adds", "tasd_nm_groups"],
             [[s.name, s.series["weights"], s.series["activations"], s.dram_bytes["metadata"], s.macs_issued,
               s.macs_useful, s.actions["metadata_decoder"]["folds"], s.actions["accumulator"]["adds"],
               s.actions["tasd_units"]["nm_groups"]] for s in layers])
        with open(os.path.join(out, "result.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    except OSError as err:
        raise TasdsimError(f"{out}: cannot write reports: {err.strerror or err}") from None


def _csv(path: str, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def run_trace(args: argparse.Namespace) -> int:
    """Generate one layer's trace and write it to a .trace file."""
    hw = load_hw(args.hw, args.set)
    if args.gemm:
        layer = gemm_layer(args.gemm)
    else:
        workload = load_workload(args.workload, batch=args.batch, seq_len=args.seq_len)
        if not args.layer:
            raise TasdsimError(f"trace writes one layer: give --layer NAME (one of the {len(workload.layers)} "
                               f"layers of {args.workload}, e.g. {workload.layers[0].name})")
        layer = workload.select([args.layer]).layers[0]
    ideal = args.memory == "ideal"
    series = _series(args, layer, hw)
    tiling = plan(layer, hw.target(), series.weights, series.activations, unbounded=ideal)
    check_folds(layer.name, tiling.folds)
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            count = write_trace(f, trace_header(layer, hw, series, tiling, ideal),
                                generate(layer, hw.target(), series.weights, series.activations, tiling))
    except OSError as err:
        raise TasdsimError(f"{args.output}: cannot write trace: {err.strerror or err}") from None
    print(f"{args.output}: {count} instructions for layer {layer.name} on {hw.name} "
          f"(weights {series.weights}, activations {series.activations})")
    return 0
