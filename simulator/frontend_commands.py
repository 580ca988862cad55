"""The front-end commands: `tasdsim decompose` and `tasdsim search`."""
from __future__ import annotations

import argparse
import os

import numpy as np

from tasdsim.simulator import model_inputs
from tasdsim.simulator.output import print_json, print_table
from tasdsim.traces import layer_tensors, tensors
from tasdsim.traces.decompose import decompose
from tasdsim.common import TasdsimError
from tasdsim.traces.metrics import quality, reduction_size
from tasdsim.traces.nm_format import save_terms
from tasdsim.traces.onnx_model import operand_tensors
from tasdsim.simulator.config import HwConfig, load_hw
from tasdsim.simulator.run import EdpObjective, LayerSeries, sparse_patterns
from tasdsim.traces.patterns import DENSE, Series, parse_pattern_set, parse_series
from tasdsim.traces.search import (Choice, Constraint, apply_model_budget, candidate_series, choose,
                                   parse_constraint, weighted_metric)
from tasdsim.traces.workloads import Layer, layers_from_weight_shapes, load_workload

DEFAULT_TOKENS = 128  # M of every layer of a model file when --seq-len is not given


def run_decompose(args: argparse.Namespace) -> int:
    """Decompose one tensor with a series; print its quality and terms; optionally save the terms."""
    if args.out and (os.path.isdir(args.out) or not args.out.lower().endswith(".npz")):
        raise TasdsimError(f"--out {args.out}: not an .npz file name; give the file to write, such as terms.npz")
    series = parse_series(args.series)
    tensor = tensors.load_tensor(args.tensor)
    dec = decompose(tensor, series, args.axis)
    samples = tensors.load_tensor(args.inputs) if args.inputs else layer_tensors.sample_inputs(
        reduction_size(tensor.shape, dec.axis), args.seed)
    if samples.ndim != 2:
        raise TasdsimError(f"{args.inputs}: sample inputs must be 2-D (K, samples), got shape {samples.shape}")
    metrics = quality(tensor, dec, samples)
    result = {
        "tensor": args.tensor,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
        "axis": dec.axis,
        "series": str(series),
        **metrics,
        "terms": [{"pattern": str(t.pattern), "nnz": t.nnz, "value_bytes": t.value_bytes,
                   "metadata_bytes": t.metadata_bytes} for t in dec.terms],
    }
    if args.out:
        save_terms(args.out, dec.terms, str(series))
        result["out"] = args.out
    if args.json:
        print_json(result)
        return 0
    print(f"{args.tensor}: shape {tuple(tensor.shape)} {tensor.dtype}, axis {dec.axis}, series {series}")
    print(f"  density {metrics['density']:.4f}  compute_density {metrics['compute_density']:.4f}  "
          f"relative_error {metrics['relative_error']:.4g}  kept_magnitude {metrics['kept_magnitude']:.4f}  "
          f"output_error {metrics['output_error']:.4g}")
    print_table(["term", "pattern", "nnz", "value_bytes", "metadata_bytes"],
                [[i + 1, *row.values()] for i, row in enumerate(result["terms"])])
    if args.out:
        print(f"terms written to {args.out}")
    return 0


def _layers_and_weights(args: argparse.Namespace) -> list[tuple[Layer, np.ndarray | None]]:
    """The layers to search with their weight tensors (real from --weights or an ONNX workload, else
    synthetic)."""
    onnx_path = args.weights if model_inputs.is_onnx(args.weights) else args.workload
    if model_inputs.is_onnx(onnx_path):
        model = model_inputs.onnx_model(args, onnx_path)
        return [(layer, model.weights(layer.name)) for layer in model.workload.layers]
    if args.weights:
        real = tensors.load_tensors(args.weights)
        workload = layers_from_weight_shapes({k: v.shape for k, v in real.items()}, args.seq_len if args.seq_len is not None else DEFAULT_TOKENS,
                                             name=args.weights)
        return [(layer, real[layer.name]) for layer in workload.layers]
    workload = load_workload(args.workload, batch=args.batch, seq_len=args.seq_len)
    return [(layer, layer_tensors.synthetic_weights(layer, args.seed, args.synthetic))
            for layer in workload.layers]


def _activations(args: argparse.Namespace, layer: Layer, captured: dict[str, np.ndarray] | None) -> np.ndarray:
    if captured is not None:
        return captured[layer.name]
    if args.activations:
        act = tensors.load_tensor(f"{args.activations}:{layer.name}")
        if act.ndim != 2 or act.shape[1] != layer.k:
            raise TasdsimError(f"{args.activations}:{layer.name}: activations must be (tokens, {layer.k}), "
                               f"got shape {act.shape}")
        return act
    return layer_tensors.synthetic_activations(layer, args.seed, args.act_sparsity)


def search_choices(args: argparse.Namespace) -> list[Choice]:
    """Run TASDER over the layers for the operands asked; returns one Choice per layer and operand."""
    constraint = parse_constraint(args.quality)
    hw = load_hw(args.hw) if args.hw else None
    if args.objective == "edp" and (hw is None or args.budget):
        raise TasdsimError("--objective edp needs --hw (the hardware whose EDP it ranks) and no --budget")
    if not args.patterns and hw is None:
        raise TasdsimError("give --patterns (such as 1:4,2:4) or --hw")
    patterns = parse_pattern_set(args.patterns) if args.patterns else sparse_patterns(hw)
    candidates = candidate_series(patterns, args.max_terms)
    objective = EdpObjective(ideal_memory=False) if args.objective == "edp" else None
    operands = ["weights", "activations"] if args.operand == "both" else [args.operand]
    if objective is not None and "activations" in operands and hw.tasd_units.count == 0:
        raise TasdsimError(f"--objective edp on activations needs TASD units to simulate; {hw.name} has none")
    choices = []
    layers = _layers_and_weights(args)
    captured = None
    onnx_path = args.weights if model_inputs.is_onnx(args.weights) else args.workload
    if "activations" in operands and model_inputs.is_onnx(onnx_path) and not args.activations:
        captured = operand_tensors(model_inputs.onnx_model(args, onnx_path), "activations",
                                   [layer.name for layer, _ in layers], args.sample, args.seed)
    for layer, weights in layers:
        for operand in operands:
            if operand == "weights":
                if weights is None:
                    continue
                samples = layer_tensors.sample_inputs(reduction_size(weights.shape, _weight_axis(weights)),
                                                      args.seed)
                tensor, axis = weights, _weight_axis(weights)
            else:
                tensor, axis = _activations(args, layer, captured), 1
                samples = _weight_matrix(weights, layer, args.seed)
            choice = choose(layer.name, operand, layer.macs, tensor, candidates, constraint, samples, axis,
                            exhaustive=args.budget or objective is not None)
            choices.append(choice if objective is None else _lowest_edp(choice, layer, hw, objective, constraint))
    if not choices:
        raise TasdsimError("no layer has an operand to search")
    if args.budget:
        by_operand = {op: apply_model_budget([c for c in choices if c.operand == op], constraint)
                      for op in operands}
        choices = [c for op in operands for c in by_operand[op]]
    return choices


def _lowest_edp(choice: Choice, layer: Layer, hw: HwConfig, objective: EdpObjective,
                constraint: Constraint) -> Choice:
    """The candidate that meets the constraint (or dense) with the lowest simulated EDP of the layer."""
    dense = Series((DENSE,))
    values = {str(dense): 1.0 if constraint.metric == "kept_magnitude" else 0.0}
    values.update({str(s): v for s, v in choice.tried if constraint.holds(v)})
    options = [dense, *(s for s, v in choice.tried if constraint.holds(v))]
    as_layer = [LayerSeries(weights=s) if choice.operand == "weights" else LayerSeries(activations=s) for s in options]
    best = objective.best(layer, hw, as_layer)
    series = best.weights if choice.operand == "weights" else best.activations
    return Choice(choice.name, choice.operand, choice.macs, series, values[str(series)], len(options) == 1,
                  choice.tried)


def _weight_axis(weights: np.ndarray) -> int:
    return 1 if weights.ndim == 4 else weights.ndim - 1


def _weight_matrix(weights: np.ndarray | None, layer: Layer, seed: int) -> np.ndarray:
    """B for the activations' output_error: the layer's weights as (K, N), or Gaussian samples."""
    if weights is None:
        return layer_tensors.sample_inputs(layer.k, seed)
    return np.asarray(weights, dtype=np.float64).reshape(weights.shape[0], -1).T


def run_search(args: argparse.Namespace) -> int:
    """TASDER: print the chosen series per layer and the MACs before and after."""
    constraint = parse_constraint(args.quality)
    choices = search_choices(args)
    macs = {c.name: c.macs for c in choices}
    density = {}
    for c in choices:
        density[c.name] = density.get(c.name, 1.0) * c.series.compute_density
    before = sum(macs.values())
    after = sum(macs[name] * d for name, d in density.items())
    result = {
        "patterns": args.patterns or ",".join(str(p) for p in sparse_patterns(load_hw(args.hw))),
        "objective": args.objective,
        "quality": str(constraint),
        "max_terms": args.max_terms,
        "budget": "model" if args.budget else "layer",
        "layers": [c.as_dict(constraint.metric) for c in choices],
        "total": {"macs_before": before, "macs_after": after,
                  "compute_density": after / before if before else 1.0,
                  constraint.metric: weighted_metric(choices), "fallback_layers": sum(c.fallback for c in choices)},
    }
    if args.json:
        print_json(result)
        return 0
    print_table(["layer", "operand", "series", "compute_density", constraint.metric, "note"],
                [[c.name, c.operand, str(c.series), f"{c.series.compute_density:.4f}", f"{c.metric_value:.4g}",
                  "no supported series meets the constraint: dense" if c.fallback else ""] for c in choices])
    print(f"MACs {before:,} -> {after:,.0f} ({result['total']['compute_density']:.1%}); "
          f"MAC-weighted {constraint.metric} {result['total'][constraint.metric]:.4g}")
    if result["total"]["fallback_layers"]:
        print(f"{result['total']['fallback_layers']} layer operand(s) fell back to dense (lossless)")
    return 0
