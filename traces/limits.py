"""The numeric limits of the input contract: the documented range of every number a hardware
config, trace, workload, sweep or command line may carry.

Inside these ranges nothing overflows a kernel's int64 or float64 arithmetic, no run holds more
than a few GB, and one layer simulates in about half a minute at most; beyond them loading fails
with one line naming the key and the limit (`common.check_range`).
"""
from __future__ import annotations

from tasdsim.common import TasdsimError, check_range

MAX_DIM = 1 << 32  # a GEMM dimension (M, N, K) of one layer
MAX_GROUPS = 1 << 24  # independent GEMMs of one layer
MAX_FIELD = 1 << 24  # a workload parameter or layer field (channels, sizes, kernel, tokens, ...)
MAX_LAYER_MACS = 1 << 53  # dense MACs of one layer: exact in float64
MAX_LAYERS = 10_000  # layers of a workload, repeats included
MAX_REPEAT = 10_000  # repetitions of one workload block
MAX_BATCH = 1 << 16
MAX_FOLDS = 1 << 19  # COMPUTE instructions of one layer (about 20 s of simulation)
MAX_TENSOR_ELEMENTS = 1 << 26  # a tensor the front-end decomposes or synthesises
MAX_FUNCTIONAL_BYTES = 1 << 30  # a layer's weights, inputs and outputs in functional mode
MAX_TERMS = 8  # terms of a TASD series, --max-terms
MAX_CANDIDATES = 4096  # series TASDER compares per operand
MAX_SEED = (1 << 32) - 1
MAX_JOBS = 1024
MAX_SWEEP_POINTS = 100_000  # points of a sweep (grid x zip), counted before any is built
MAX_TIMELINE_EVENTS = 50_000_000


def check_seed(seed: object, what: str = "--seed") -> int:
    """A seed of numpy's generators: 0 to 2^32 - 1."""
    return check_range(seed, 0, MAX_SEED, what)


def check_fraction(value: object, what: str) -> float:
    """A number from 0 to 1 (a sparsity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise TasdsimError(f"{what}: must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_folds(name: str, folds: int) -> None:
    """A layer's COMPUTE instruction count against MAX_FOLDS (checked before a trace is generated)."""
    if folds > MAX_FOLDS:
        raise TasdsimError(f"layer {name}: {folds:,} folds exceed the limit of {MAX_FOLDS:,} per layer "
                           "(use a larger PE array or split the layer)")


def check_elements(shape: tuple[int, ...], what: str) -> None:
    """A tensor of `shape` against MAX_TENSOR_ELEMENTS, before it is made or read."""
    elements = 1
    for dim in shape:
        elements *= int(dim)
    if elements > MAX_TENSOR_ELEMENTS:
        raise TasdsimError(f"{what}: {elements:,} elements exceed the limit of {MAX_TENSOR_ELEMENTS:,}")


def check_functional(m: int, n: int, k: int, word_bytes: int) -> None:
    """A layer's operands and int32/fp32 output in functional mode against MAX_FUNCTIONAL_BYTES."""
    nbytes = (m * k + n * k) * word_bytes + m * n * 4
    if nbytes > MAX_FUNCTIONAL_BYTES:
        raise TasdsimError(f"functional layer {m}x{n}x{k}: its tensors take {nbytes:,} bytes, more than the limit "
                           f"of {MAX_FUNCTIONAL_BYTES:,}")
