"""SCALE-Sim topology CSV files as workloads, with SCALE-Sim's semantics.

Two formats, told apart by the header's second column:

- conv: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
  Strides[, Sparsity]``. No padding: Ho = ceil((H - Fh + S) / S) (the same stride both ways); the
  layer is the im2col GEMM M = batch * Ho * Wo, K = Fh * Fw * Channels, N = Num Filter. A layer
  whose name holds "DP" is depthwise, as in SCALE-Sim: one GEMM per channel (groups = Channels),
  each K = Fh * Fw, N = Num Filter.
- GEMM: ``Layer name, M, N, K[, Sparsity]``: a linear layer O[M x N] = I[M x K] . W[K x N].

The first line is the header; blank lines are skipped; rows may end in commas (SCALE-Sim's files
do). The optional Sparsity column is the N:M pattern the layer's weights follow ("1:1" is dense);
it is kept as `Layer.sparsity`. Layer names are the file's, stripped of spaces.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import parse_pattern
from tasdsim.traces.workloads import Layer, Workload

MAX_FILE_BYTES = 16 * 2**20  # a topology of a million layers is a mistake, not a network
_CONV_COLUMNS = ("layer name", "ifmap height", "ifmap width", "filter height", "filter width", "channels",
                 "num filter", "strides")
_GEMM_COLUMNS = ("layer name", "m", "n", "k")


def bundled_topologies() -> dict[str, Path]:
    """The bundled `configs/workloads/*.csv` files, by name (file stem)."""
    directory = Path(str(importlib.resources.files("tasdsim.configs").joinpath("workloads")))
    return {file.stem: file for file in sorted(directory.glob("*.csv"))}


def load_topology(path: str | Path, batch: int | None = None, label: str | None = None) -> Workload:
    """A SCALE-Sim topology CSV as a workload; `batch` (default 1) multiplies every layer's M."""
    label = label or str(path)
    batch = 1 if batch is None else batch
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise TasdsimError(f"{label}: batch={batch!r}: must be a positive integer")
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            raise TasdsimError(f"{label}: larger than {MAX_FILE_BYTES // 2**20} MiB, not a topology file")
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TasdsimError(f"{label}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    if not lines:
        raise TasdsimError(f"{label}: empty file, expected a SCALE-Sim topology header")
    header = tuple(c.strip().lower() for c in _cells(lines[0]))
    if header[:len(_GEMM_COLUMNS)] == _GEMM_COLUMNS or header[:4] == ("layer", "m", "n", "k"):
        columns, parse = len(_GEMM_COLUMNS), _gemm
    elif header[:len(_CONV_COLUMNS)] == _CONV_COLUMNS:
        columns, parse = len(_CONV_COLUMNS), _conv
    else:
        raise TasdsimError(f"{label}: line 1: expected SCALE-Sim's conv header ({', '.join(_CONV_COLUMNS)}) "
                           f"or GEMM header ({', '.join(_GEMM_COLUMNS)})")
    layers: list[Layer] = []
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        cells = _cells(line)
        if not cells:
            continue
        where = f"{label}: line {number}"
        if len(cells) not in (columns, columns + 1):
            raise TasdsimError(f"{where}: expected {columns} columns (and an optional Sparsity N:M), got {len(cells)}")
        name = cells[0].strip()
        if not name:
            raise TasdsimError(f"{where}: empty layer name")
        if name in seen:
            raise TasdsimError(f"{where}: duplicate layer name {name!r}")
        seen.add(name)
        values = [_positive(cell, where, column) for cell, column in zip(cells[1:columns], header[1:])]
        sparsity = _sparsity(cells[columns], where) if len(cells) > columns else None
        layers.append(parse(name, values, batch, sparsity, where))
    if not layers:
        raise TasdsimError(f"{label}: no layers after the header")
    return Workload(Path(path).stem, tuple(layers))


def _cells(line: str) -> list[str]:
    """The comma-separated cells of a line, without the empty cells at its end."""
    cells = line.strip().split(",")
    while cells and not cells[-1].strip():
        cells.pop()
    return cells


def _positive(cell: str, where: str, column: str) -> int:
    text = cell.strip()
    if not text.isdecimal() or int(text) < 1:
        raise TasdsimError(f"{where}: {column}: must be a positive integer, got {text!r}")
    return int(text)


def _sparsity(cell: str, where: str) -> str | None:
    """The Sparsity column's N:M, or None for dense (1:1 or any N:N)."""
    try:
        pattern = parse_pattern(cell)
    except TasdsimError as err:
        raise TasdsimError(f"{where}: Sparsity: {err}") from None
    return None if pattern.n == pattern.m else str(pattern)


def _conv(name: str, values: list[int], batch: int, sparsity: str | None, where: str) -> Layer:
    height, width, filter_h, filter_w, channels, filters, stride = values
    if filter_h > height or filter_w > width:
        raise TasdsimError(f"{where}: filter {filter_h}x{filter_w} is larger than the IFMAP {height}x{width}")
    out_h = -(-(height - filter_h + stride) // stride)
    out_w = -(-(width - filter_w + stride) // stride)
    if "DP" in name:  # SCALE-Sim's depthwise convention: one single-channel conv per channel
        return Layer(name, "conv", m=batch * out_h * out_w, n=filters, k=filter_h * filter_w, groups=channels,
                     weight_shape=(channels * filters, 1, filter_h, filter_w), sparsity=sparsity)
    return Layer(name, "conv", m=batch * out_h * out_w, n=filters, k=filter_h * filter_w * channels,
                 weight_shape=(filters, channels, filter_h, filter_w), sparsity=sparsity)


def _gemm(name: str, values: list[int], batch: int, sparsity: str | None, where: str) -> Layer:
    m, n, k = values
    return Layer(name, "linear", m=batch * m, n=n, k=k, weight_shape=(n, k), sparsity=sparsity)
