"""What the commands take from an ONNX workload: its layers (skipped ops listed with --verbose) and
the real tensors TASDER searches on (initializers, or activations captured with onnxruntime)."""
from __future__ import annotations

import argparse
import sys

import numpy as np

from tasdsim.traces.onnx_model import OnnxModel, load_onnx, operand_tensors, parse_input_shapes
from tasdsim.traces.workloads import Layer


def add_model_options(p: argparse.ArgumentParser) -> None:
    """--input-shape, --sample and --verbose, for commands that take a workload."""
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=DxDx...",
                   help="an ONNX model's input shape, e.g. input=1x3x224x224 (repeatable; default: the "
                        "model's static shape, dynamic batch 1)")
    p.add_argument("--sample", metavar="FILE.npy",
                   help="ONNX activations: run the model on this input (.npz: one array per input) "
                        "instead of a seeded random one (needs onnxruntime)")
    p.add_argument("--verbose", action="store_true", help="list the ONNX ops that are not layers")


def is_onnx(workload: str | None) -> bool:
    return bool(workload) and workload.lower().endswith(".onnx")


def onnx_model(args: argparse.Namespace, path: str) -> OnnxModel:
    """The ONNX model of `path` with the command's input shapes, batch and seq_len; with --verbose
    the skipped ops go to stderr."""
    model = load_onnx(path, parse_input_shapes(args.input_shape), args.batch, args.seq_len)
    if args.verbose:
        print(f"{path}: {len(model.layers)} layers; {len(model.skipped)} ops are not layers:", file=sys.stderr)
        for name, op in model.skipped:
            print(f"  skipped {op} {name}", file=sys.stderr)
    return model


def real_tensors(args: argparse.Namespace, layers: list[Layer],
                 operand: str) -> dict[str, dict[str, np.ndarray]] | None:
    """The layers' real tensors (operand -> layer name -> tensor) for `operand` (weights,
    activations or both) when the workload is an ONNX model, else None."""
    if not is_onnx(getattr(args, "workload", None)):
        return None
    model = load_onnx(args.workload, parse_input_shapes(args.input_shape), args.batch, args.seq_len)
    names = [layer.name for layer in layers]
    return {op: operand_tensors(model, op, names, args.sample, args.seed)
            for op in (("weights", "activations") if operand == "both" else (operand,))}
