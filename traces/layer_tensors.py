"""The tensors a layer's operands hold: real ones from a model file, or seeded synthetic ones.

Weights are in PyTorch layout ((out, in) for linear, (Cout, Cin/groups, Kh, Kw) for conv) and
decompose along in / input channels. Activations are the layer's im2col input rows (M, K),
decomposed along K; at most `rows` rows are sampled, which keeps the search cheap on big layers.
"""
from __future__ import annotations

import zlib

import numpy as np

from tasdsim.traces import tensors
from tasdsim.traces.workloads import Layer

SAMPLE_ROWS = 256
SAMPLE_COLUMNS = 64


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed that does not depend on the layer's position in the workload."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32


def synthetic_weights(layer: Layer, seed: int, kind: str = "gaussian") -> np.ndarray | None:
    """Seeded synthetic weights of the layer's weight shape (None for activation x activation);
    `nm:N:M` when the layer declares its weights N:M sparse."""
    if layer.weight_shape is None:
        return None
    if layer.sparsity:
        kind = f"nm:{layer.sparsity}"
    return tensors.synthetic(kind, layer.weight_shape, layer_seed(seed, layer.name))


def synthetic_activations(layer: Layer, seed: int, sparsity: float, rows: int = SAMPLE_ROWS) -> np.ndarray:
    """Seeded ReLU-like activation rows (min(M, rows), K) with the given fraction of zeros."""
    return tensors.relu_activations((min(layer.m, rows), layer.k), sparsity, layer_seed(seed + 1, layer.name))


def sample_inputs(k: int, seed: int, columns: int = SAMPLE_COLUMNS) -> np.ndarray:
    """Seeded Gaussian sample inputs (K, columns) for output_error."""
    return tensors.gaussian((k, columns), seed)
