"""The analytical model's own reading of the tiling and buffer policy (README, "Tiling policy").

Derived from the hardware config and the layer alone; a test checks it against the trace
generator's plan on many shapes. Every buffer has two slots (double buffering), each of the
largest tile it holds; tiles start on multiples of TILE_ALIGN bytes (16 DRAM rows of 8 KiB).

- WS: a fold holds R compressed rows of K by C columns of N; a psum tile is T rows of M by C
  columns, T the most rows whose two input tiles (T x K words) fit the inputs buffer and whose
  two psum tiles (T x C psums) fit the outputs buffer (T = M with unbounded buffers).
- OS: a fold holds R rows of M by C columns of N as psums; its input tile is R x K words and its
  weight tile all terms' K x C weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import Pattern
from tasdsim.traces.workloads import Layer

TILE_ALIGN = 128 * 1024  # bytes
SLOTS = 2  # per buffer: double buffering


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def covered_rows_by_fold(p: Pattern, k: int, r: int) -> list[int]:
    """The dense K rows each WS fold of an activation term needs: its compressed rows
    [fR, fR + rows) touch N:M groups floor(fR/N) .. ceil((fR + rows)/N) - 1, M rows each, the
    last one clipped at K."""
    d = p.depth(k)
    return [min(k, _cdiv(f * r + min(r, d - f * r), p.n) * p.m) - (f * r // p.n) * p.m
            for f in range(_cdiv(d, r))]


def metadata_bytes(p: Pattern, k_rows: int, cols: int) -> int:
    """Bytes of the N:M indices of a k_rows x cols weight tile (rounded up to bytes)."""
    return _cdiv(k_rows * cols * p.metadata_bits, 8)


@dataclass(frozen=True)
class ModelTiling:
    """The model's tiling of one layer and its buffer plan (slots, slot bytes) per buffer."""

    dataflow: str
    sparse_operand: str  # "weights" or "activations"
    block_rows: int  # WS: T; OS: R
    row_blocks: int
    col_tiles: int
    folds: int
    buffers: dict[str, tuple[int, int]]  # buffer -> (slots, slot bytes)


def derive_tiling(layer: Layer, hw: Any, terms: tuple[Pattern, ...], sparse_operand: str,
                  unbounded: bool) -> ModelTiling:
    """The tiling of `layer` on hardware config `hw` (a `HwConfig`) for the sparse operand's terms."""
    r, c = hw.pe_array.rows, hw.pe_array.cols
    word, psum, k, m, n = hw.word_bytes, hw.psum_bytes, layer.k, layer.m, layer.n
    act = sparse_operand == "activations"
    width = min(c, n)  # the widest column tile
    size = {name: getattr(hw.buffers, name).size_kib * 1024 for name in ("weights", "inputs", "outputs")}
    if hw.pe_array.dataflow == "ws":
        if unbounded:
            t = m
        else:
            t = min(m, size["inputs"] // (SLOTS * k * word), size["outputs"] // (SLOTS * c * psum))
            if t == 0:
                raise TasdsimError(f"layer {layer.name}: not one row of M fits the inputs or outputs buffer")
        if act:
            weight_tile = max(rows * width * word for p in terms for rows in covered_rows_by_fold(p, k, r))
        else:
            weight_tile = max(min(r, p.depth(k)) * width * word + metadata_bytes(p, min(r, p.depth(k)), width)
                              for p in terms)
        block = {"weights": weight_tile, "inputs": t * k * word, "outputs": t * width * psum}
        row_blocks = _cdiv(m, t)
        folds = layer.groups * _cdiv(n, c) * row_blocks * sum(_cdiv(p.depth(k), r) for p in terms)
        dataflow = "ws"
    else:
        t, rows = r, min(r, m)
        if act:
            weight_tile = k * width * word
        else:
            weight_tile = sum(p.depth(k) * width * word + metadata_bytes(p, p.depth(k), width) for p in terms)
        block = {"weights": weight_tile, "inputs": rows * k * word, "outputs": rows * width * psum}
        row_blocks = _cdiv(m, r)
        folds = layer.groups * _cdiv(n, c) * row_blocks * len(terms)
        dataflow = "os"
    if not unbounded:
        for name, nbytes in block.items():
            if SLOTS * nbytes > size[name]:
                raise TasdsimError(f"layer {layer.name}: two {name} tiles of {nbytes} bytes do not fit the "
                                   f"{size[name]}-byte {name} buffer")
    return ModelTiling(dataflow, sparse_operand, t, row_blocks, _cdiv(n, c), folds,
                       {name: (SLOTS, nbytes) for name, nbytes in block.items()})
