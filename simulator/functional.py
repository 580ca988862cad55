"""Functional mode: a layer's real multiply-accumulates, through the PE array's MAC kernels.

Tensors are 2-D, in PyTorch's linear layout: weights (out, in), inputs (tokens, in), and the
output (tokens, out) = inputs · weights^T, so the GEMM has M = tokens, N = out, K = in. The
operand that TASD decomposes (`--operand`) is split along `in` into its series' N:M terms
(traces.decompose); every term runs through the MAC kernels (components/mac_kernels.py) in
compressed form — values plus the metadata decoder's selection — against the other, dense
operand, walking the same output tiles and folds as the layer's timing trace, so the MACs
issued and the folds it counts are the ones the timing run reports. The TASD accumulation path
sums the terms' psums: on a WS array each term's psums are added to the output tile in term order
(ACC); on an OS array all terms accumulate into the same psums.

Arithmetic: int8 x int8 in int32 (exact); fp16, bf16 and fp32 in fp32 (fp16 and bf16 widen to
fp32 exactly). The output is checked against an independent float64 numpy product of the
approximated operand (`max_abs_error`, 0 for integers: int8 products and sums are exact in
float64) and compared with the dense, undecomposed product (`tasd_output_error`,
‖out − dense‖F / ‖dense‖F: what the TASD series costs in output error).

Timing never runs the kernels: the layer is simulated exactly as without --functional, then run
functionally on the same tiling.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasdsim.components import mac_kernels
from tasdsim.simulator.config import HwConfig
from tasdsim.simulator.run import LayerSeries, choose_series, simulate_layer, sparse_patterns
from tasdsim.simulator.stats import LayerStats
from tasdsim.traces import tensors
from tasdsim.traces.decompose import Decomposition, decompose
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import Tiling, plan, useful_depth
from tasdsim.traces.layer_tensors import layer_seed
from tasdsim.traces.limits import check_functional
from tasdsim.traces.nm_format import SUPPORTED_DTYPES
from tasdsim.traces.patterns import Series
from tasdsim.traces.search import candidate_series, choose, parse_constraint
from tasdsim.traces.workloads import Layer, gemm_layer

# Synthetic tensors take the hardware's operand width.
SYNTHETIC_DTYPES = {1: "int8", 2: "float16", 4: "float32"}
INT8 = np.dtype(np.int8)
FLOAT_DTYPES = (SUPPORTED_DTYPES["float16"], SUPPORTED_DTYPES["bfloat16"], SUPPORTED_DTYPES["float32"])


@dataclass
class LayerTensors:
    """A layer's two operands and where they came from."""

    weights: np.ndarray  # (out, in) = (N, K)
    inputs: np.ndarray  # (tokens, in) = (M, K)
    sources: dict[str, str]

    @property
    def integer(self) -> bool:
        return self.weights.dtype == INT8


@dataclass
class FunctionalOutput:
    """What running a layer functionally produced."""

    output: np.ndarray  # (tokens, out): int32 for int8 operands, float32 otherwise
    operand: str  # the decomposed operand: "weights" or "activations"
    series: Series
    decomposition: Decomposition
    folds: int
    macs_issued: int
    macs_useful: int
    seconds: float  # decomposition + MAC kernels + accumulation


# ---------------------------------------------------------------- tensors


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if dtype == SUPPORTED_DTYPES["bfloat16"] else np.dtype(dtype).name


def check_tensor(tensor: np.ndarray, name: str, layout: str) -> None:
    """One operand: 2-D, not empty, int8 / fp16 / bf16 / fp32, finite."""
    if tensor.ndim != 2:
        raise TasdsimError(f"{name}: functional mode takes a 2-D {layout} tensor, got shape {tensor.shape}")
    if 0 in tensor.shape:
        raise TasdsimError(f"{name}: empty tensor of shape {tensor.shape}")
    if tensor.dtype != INT8 and tensor.dtype not in FLOAT_DTYPES:
        raise TasdsimError(f"{name}: dtype {_dtype_name(tensor.dtype)} is not supported in functional mode "
                           "(int8, float16, bfloat16 or float32)")
    if tensor.dtype != INT8 and not np.isfinite(tensor.astype(np.float32)).all():
        raise TasdsimError(f"{name}: tensor has NaN or infinite values")


def check_tensors(weights: np.ndarray, inputs: np.ndarray, where: tuple[str, str] = ("weights", "inputs")) -> None:
    """Both operands valid, agreeing on `in`, int8 with int8 or floats (fp16, bf16, fp32) with
    floats, and an int8 reduction short enough for int32 psums."""
    check_tensor(weights, where[0], "(out, in)")
    check_tensor(inputs, where[1], "(tokens, in)")
    if weights.shape[1] != inputs.shape[1]:
        raise TasdsimError(f"{where[0]} {weights.shape} (out, in) and {where[1]} {inputs.shape} (tokens, in) "
                           f"disagree on in: {weights.shape[1]} vs {inputs.shape[1]}")
    if (weights.dtype == INT8) != (inputs.dtype == INT8):
        raise TasdsimError(f"{where[0]} are {_dtype_name(weights.dtype)} but {where[1]} are "
                           f"{_dtype_name(inputs.dtype)}: int8 runs only with int8")
    if weights.dtype == INT8 and weights.shape[1] > mac_kernels.INT8_MAX_K:
        raise TasdsimError(f"in = {weights.shape[1]} is too long for int8: int32 psums could overflow "
                           f"beyond {mac_kernels.INT8_MAX_K}")


def synthetic_tensors(layer: Layer, dtype: str, seed: int, act_sparsity: float) -> LayerTensors:
    """Seeded Gaussian weights (N, K) (the ones `--tasd auto` searches on) and ReLU-like inputs
    (M, K) with `act_sparsity` zeros, in `dtype` (int8: symmetric per-tensor quantisation)."""
    weights = tensors.synthetic(f"gaussian,{dtype}", (layer.n, layer.k), layer_seed(seed, layer.name))
    inputs = tensors.synthetic(f"relu:sparsity={act_sparsity},{dtype}", (layer.m, layer.k),
                               layer_seed(seed + 1, layer.name))
    source = f"synthetic seed {seed}"
    return LayerTensors(weights, inputs, {"weights": f"{source} gaussian,{dtype}",
                                          "inputs": f"{source} relu:sparsity={act_sparsity},{dtype}"})


def _tensor_name(spec: str) -> str:
    """A layer name from a tensor spec: the archive key, or the .npy file's stem."""
    for ext in (".npz:", ".safetensors:"):
        i = spec.lower().find(ext)
        if i >= 0:
            return spec[i + len(ext):]
    return Path(spec).stem


def layer_and_tensors(weights: str | None, inputs: str | None, gemm: str | None, hw: HwConfig, seed: int,
                      act_sparsity: float) -> tuple[Layer, LayerTensors]:
    """The layer and its operands: files where given (the shape comes from them), else seeded
    synthetic ones of --gemm's shape in the hardware's operand width."""
    if gemm is None and (weights is None or inputs is None):
        raise TasdsimError("--functional needs --weights FILE and --inputs FILE, or --gemm MxNxK for synthetic "
                           "tensors")
    dtype = SYNTHETIC_DTYPES.get(hw.word_bytes)
    if dtype is None:
        raise TasdsimError(f"no synthetic tensors for word_bytes {hw.word_bytes}")
    base = gemm_layer(gemm) if gemm else None
    if base is not None:
        check_functional(base.m, base.n, base.k, hw.word_bytes)
    if weights is None and inputs is None:
        return base, synthetic_tensors(base, dtype, seed, act_sparsity)
    loaded = {"weights": tensors.load_tensor(weights) if weights else None,
              "inputs": tensors.load_tensor(inputs) if inputs else None}
    sources = {"weights": weights, "inputs": inputs}
    if weights is None or inputs is None:  # the missing operand is synthetic, in the given one's dtype
        spec = weights or inputs
        given = loaded["weights" if weights else "inputs"]
        check_tensor(given, spec, "(out, in)" if weights else "(tokens, in)")
        synth = synthetic_tensors(base, _dtype_name(given.dtype), seed, act_sparsity)
        missing = "inputs" if weights else "weights"
        loaded[missing], sources[missing] = getattr(synth, missing), synth.sources[missing]
    check_tensors(loaded["weights"], loaded["inputs"], (sources["weights"], sources["inputs"]))
    (n, k), m = loaded["weights"].shape, loaded["inputs"].shape[0]
    check_functional(m, n, k, loaded["weights"].dtype.itemsize)
    if base is not None and (base.m, base.n, base.k) != (m, n, k):
        raise TasdsimError(f"--gemm {gemm} disagrees with the tensors: inputs {loaded['inputs'].shape} and weights "
                           f"{loaded['weights'].shape} make {m}x{n}x{k}")
    name = _tensor_name(weights) if weights else (base.name if base else "layer")
    layer = Layer(name=name, kind="linear", m=m, n=n, k=k, weight_shape=(n, k))
    return layer, LayerTensors(loaded["weights"], loaded["inputs"], sources)


# ---------------------------------------------------------------- running a layer


def _kernel_array(a: np.ndarray) -> np.ndarray:
    """int8 stays int8; fp16, bf16 and fp32 become fp32 (exactly)."""
    return np.ascontiguousarray(a if a.dtype == INT8 else a.astype(np.float32))


def tile_shape(tiling: Tiling, hw: HwConfig) -> tuple[int, int, int | None]:
    """(sparse rows, dense columns) of an output tile and compressed rows per fold (None: the
    whole term, as an OS fold streams it), as the trace generator tiles the layer."""
    r, c = hw.pe_array.rows, hw.pe_array.cols
    weights_sparse = tiling.sparse_operand == "weights"
    if tiling.dataflow == "ws":
        return (c, tiling.block_rows, r) if weights_sparse else (tiling.block_rows, c, r)
    return (c, r, None) if weights_sparse else (r, c, None)


@dataclass
class PreparedLayer:
    """A layer's operands as the PE array's buffers hold them: every term of the sparse operand
    compressed (values and the metadata decoder's selection, tile by tile) and the dense
    operand K-major."""

    terms: list[mac_kernels.TermOperand]
    dense_t: np.ndarray
    output: np.ndarray  # (sparse rows, dense columns): the output buffer
    psums: np.ndarray  # a term's psums: on WS with several terms a buffer of their own, which the
    #                    ACC path adds to the output; otherwise the output itself
    tile_d: int  # dense columns of an output tile


def prepare_layer(t: LayerTensors, series: LayerSeries, tiling: Tiling, hw: HwConfig) -> tuple[PreparedLayer,
                                                                                                Decomposition]:
    """Decompose the sparse operand along `in` and lay both operands out for the kernels."""
    weights_sparse = tiling.sparse_operand == "weights"
    terms_series = series.weights if weights_sparse else series.activations
    sparse, dense = (t.weights, t.inputs) if weights_sparse else (t.inputs, t.weights)
    dec = decompose(sparse, terms_series, axis=1)
    k, rows, cols = sparse.shape[1], sparse.shape[0], dense.shape[0]
    kernel_dtype = INT8 if t.integer else np.dtype(np.float32)
    tile_s, tile_d, fold = tile_shape(tiling, hw)
    terms = [mac_kernels.term_operand(_kernel_array(term.values), term.indices, term.pattern.m,
                                      useful_depth(term.pattern, k), tile_s, fold or term.pattern.depth(k))
             for term in dec.terms]
    dense_t = mac_kernels.dense_rows(k, max(term.selected_rows for term in terms), cols, kernel_dtype)
    dense_t[:k, :cols] = _kernel_array(dense).T
    output = mac_kernels.aligned_zeros((rows, cols), mac_kernels.psum_dtype(kernel_dtype))
    separate = tiling.dataflow == "ws" and len(terms) > 1
    psums = mac_kernels.aligned_zeros(output.shape, output.dtype) if separate else output
    return PreparedLayer(terms, dense_t, output, psums, tile_d), dec


def execute(prep: PreparedLayer, parallel: bool | None = None) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Every term's MACs over the tiles and folds, and the TASD accumulation of their psums.
    Returns the output buffer (sparse rows x dense columns; the next call overwrites it) and
    (folds, MACs issued, useful MACs)."""
    separate = prep.psums is not prep.output
    prep.output.fill(0)
    totals = np.zeros(3, dtype=np.int64)
    for term in prep.terms:
        if separate:
            prep.psums.fill(0)
        totals += mac_kernels.term_macs(term, prep.dense_t, prep.psums, prep.tile_d, parallel)
        if separate:
            prep.output += prep.psums  # the TASD accumulation path, term after term
    return prep.output, (int(totals[0]), int(totals[1]), int(totals[2]))


def run_layer(t: LayerTensors, series: LayerSeries, tiling: Tiling, hw: HwConfig,
              parallel: bool | None = None) -> FunctionalOutput:
    """Decompose the sparse operand, run every term's MACs over the layer's tiles and folds, and
    sum the terms' psums through the TASD accumulation path; the output is (tokens, out)."""
    start = time.perf_counter()
    prep, dec = prepare_layer(t, series, tiling, hw)
    psums, (folds, issued, useful) = execute(prep, parallel)
    weights_sparse = tiling.sparse_operand == "weights"
    output = np.ascontiguousarray(psums.T) if weights_sparse else psums  # weight psums are (out, tokens)
    return FunctionalOutput(output, tiling.sparse_operand, dec.series, dec, folds, issued, useful,
                            time.perf_counter() - start)


def reference(t: LayerTensors, out: FunctionalOutput) -> tuple[np.ndarray, np.ndarray]:
    """float64 numpy products: (approximated operand, dense operands). Exact for int8."""
    weights, inputs = t.weights.astype(np.float64), t.inputs.astype(np.float64)
    dense = inputs @ weights.T
    approx = out.decomposition.approximation(t.weights if out.operand == "weights" else t.inputs).astype(np.float64)
    approximated = inputs @ approx.T if out.operand == "weights" else approx @ weights.T
    return approximated, dense


def errors(t: LayerTensors, out: FunctionalOutput) -> dict:
    """max_abs_error against the approximated product and tasd_output_error against the dense one."""
    approximated, dense = reference(t, out)
    got = out.output.astype(np.float64)
    diff = np.abs(got - approximated)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(approximated).max()) if approximated.size else 0.0
    norm = float(np.linalg.norm(dense))
    return {
        "max_abs_error": int(max_abs) if t.integer else max_abs,
        "max_rel_error": max_abs / scale if scale else 0.0,
        "exact": bool(max_abs == 0.0),
        "tasd_output_error": float(np.linalg.norm(got - dense) / norm) if norm else 0.0,
    }


# ---------------------------------------------------------------- `tasdsim simulate --functional`


def requested(args: argparse.Namespace) -> bool:
    """Whether the simulate command asks for functional mode; its options need --functional."""
    extra = [name for name in ("weights", "inputs", "dump_output") if getattr(args, name, None)]
    if extra and not getattr(args, "functional", False):
        raise TasdsimError(f"--{extra[0].replace('_', '-')} needs --functional")
    if getattr(args, "functional", False) and args.operand == "both":
        raise TasdsimError("--functional decomposes one operand: --operand weights or activations")
    if getattr(args, "functional", False) and (args.workload or args.trace):
        raise TasdsimError("--functional runs one layer from --gemm MxNxK or --weights/--inputs, "
                           f"not --{'workload' if args.workload else 'trace'}")
    return bool(getattr(args, "functional", False))


def _series(args: argparse.Namespace, layer: Layer, hw: HwConfig, t: LayerTensors, synthetic: bool) -> LayerSeries:
    """As without --functional; but `--tasd auto` on real tensors searches on those tensors."""
    constraint = parse_constraint(args.quality)
    if args.tasd != "auto" or synthetic:
        return choose_series(layer, hw, args.tasd, args.operand, constraint, args.max_terms, args.seed,
                             args.act_sparsity)
    patterns = sparse_patterns(hw)
    if not patterns:
        return LayerSeries()
    tensor, other = (t.weights, t.inputs) if args.operand == "weights" else (t.inputs, t.weights)
    samples = other.astype(np.float32).T if constraint.metric == "output_error" else None
    chosen = choose(layer.name, args.operand, layer.macs, tensor, candidate_series(patterns, args.max_terms),
                    constraint, samples, axis=1).series
    return LayerSeries(weights=chosen) if args.operand == "weights" else LayerSeries(activations=chosen)


def simulate(args: argparse.Namespace, hw: HwConfig, ideal: bool) -> tuple[LayerStats, dict]:
    """Simulate the layer (timing exactly as without --functional), run it functionally on the
    same tiling, check it; returns the timing stats and the JSON `functional` object."""
    layer, t = layer_and_tensors(args.weights, args.inputs, args.gemm, hw, args.seed, args.act_sparsity)
    series = _series(args, layer, hw, t, synthetic=not (args.weights or args.inputs))
    stats = simulate_layer(layer, hw, series, ideal)
    tiling = plan(layer, hw.target(), series.weights, series.activations, unbounded=ideal)
    out = run_layer(t, series, tiling, hw)
    if args.dump_output:
        dump(args.dump_output, out.output)
    agrees = (out.folds, out.macs_issued, out.macs_useful) == (stats.folds, stats.macs_issued, stats.macs_useful)
    return stats, {
        "weights": t.sources["weights"],
        "inputs": t.sources["inputs"],
        "dtype": {"weights": _dtype_name(t.weights.dtype), "inputs": _dtype_name(t.inputs.dtype),
                  "output": out.output.dtype.name},
        "output_shape": list(out.output.shape),
        "operand": out.operand,
        "series": str(out.series),
        "folds": out.folds,
        "macs_issued": out.macs_issued,
        "macs_useful": out.macs_useful,
        "agrees_with_timing": agrees,
        **errors(t, out),
        "seconds": round(out.seconds, 6),
        "output": args.dump_output,
    }


def dump(path: str, output: np.ndarray) -> None:
    """Write the output as .npy to exactly `path`."""
    try:
        with open(path, "wb") as f:
            np.save(f, output)
    except OSError as err:
        raise TasdsimError(f"{path}: cannot write the output: {err.strerror or err}") from None


def summary(f: dict) -> str:
    """The table mode's lines about the functional run."""
    timing = "agree with" if f["agrees_with_timing"] else "DISAGREE with"
    check = "bit-exact" if f["exact"] else f"max_abs_error {f['max_abs_error']:.3g}"
    lines = [f"functional: {f['dtype']['weights']} x {f['dtype']['inputs']} -> {f['dtype']['output']} output "
             f"{f['output_shape'][0]}x{f['output_shape'][1]}, {f['operand']} {f['series']}; folds {f['folds']} and "
             f"MACs issued {f['macs_issued']} {timing} timing",
             f"  {check} against the approximated product; tasd_output_error {f['tasd_output_error']:.4f} "
             f"against the dense product ({f['seconds']:.3f} s)"]
    if f["output"]:
        lines.append(f"  output written to {f['output']}")
    return "\n".join(lines)
