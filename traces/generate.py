"""Trace generation: layer + hardware + TASD series -> tiling -> instructions, streamed.

Tiling policy (documented, deterministic):
- WS (weight stationary). A fold holds R rows of the reduction (compressed rows of the sparse
  term) and C columns of N. Output tiles are T rows of M by C columns; T is the largest row count
  whose input tile (T x K words) fits half the input buffer and whose psum tile (T x C psums) fits
  half the output buffer (two slots each: double buffering). Loop order, outer to inner: group,
  column tile, row block, term, fold. Each fold streams the block's T rows:
  2R + C + T - 2 cycles (partial folds pay the full R and C). With unbounded buffers
  (`--memory ideal`) T = M, so a dense layer takes ceil(K/R) * ceil(N/C) * (2R + C + M - 2).
- OS (output stationary). A fold holds R rows of M by C columns of N as psums in the PEs; the
  terms stream through one after another, so a fold costs 2R + C + sum(depth_i) - 2. Input
  (R x K) and weight (K x C) tiles must each fit half their buffer.
- Terms of one output tile run back to back into the same psums. On WS with several terms every
  fold's psums go through the accumulator (the TASD accumulation path) as they leave the array
  (COMPUTE acc=1), and one ACC per output tile drains its adders before the tile is stored.
- Buffers (`BufferPlan`): every buffer has two slots (double buffering) of the largest tile it
  holds: weights (values + metadata), inputs, outputs (the psum tile). A layer whose slots do not
  fit a buffer is an error naming the buffer and the sizes (with unbounded buffers nothing is
  checked).
- Weight terms are loaded compressed (values + metadata); activation terms are loaded dense and
  decomposed on the fly by the TASD units (TASD), and the stationary weights of a fold are then the
  dense K rows its groups cover.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from tasdsim.common import TasdsimError
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import Pattern, Series, runs_on
from tasdsim.traces.workloads import Layer

WEIGHTS_BASE = 0
INPUTS_BASE = 1 << 30  # 1 GiB: tensors sit inside every DRAM preset's capacity
OUTPUTS_BASE = 2 << 30
TILE_ALIGN = 128 * 1024  # tiles start on 16 DRAM rows of 8 KiB, so every channel count sees whole rows


@dataclass(frozen=True)
class Target:
    """The hardware as the trace generator sees it: array shape, dataflow, patterns, word sizes and
    buffer capacities (bytes). The simulator's hardware config gives it (`HwConfig.target()`)."""

    name: str
    rows: int
    cols: int
    dataflow: str  # "ws" or "os"
    patterns: tuple[Pattern, ...]
    word_bytes: int
    psum_bytes: int
    weights_bytes: int
    inputs_bytes: int
    outputs_bytes: int
    tasd_units: int

    def supports(self, pattern: Pattern) -> bool:
        return runs_on(pattern, self.patterns)


def tile_stride(nbytes: int) -> int:
    """Address distance between consecutive tiles of nbytes: rounded up to TILE_ALIGN."""
    return -(-nbytes // TILE_ALIGN) * TILE_ALIGN


@dataclass(frozen=True)
class Slots:
    """How one buffer is used: `slots` slots of `slot_bytes` bytes each."""

    slots: int
    slot_bytes: int


@dataclass(frozen=True)
class BufferPlan:
    """Slots per buffer for one layer (weights hold values and metadata; outputs hold psum tiles)."""

    weights: Slots
    inputs: Slots
    outputs: Slots

    def of(self, buffer: str) -> Slots:
        return getattr(self, buffer)

    @staticmethod
    def from_dict(raw: dict) -> BufferPlan:
        """The plan as `asdict` wrote it (a trace header's tiling.buffers)."""
        return BufferPlan(**{name: Slots(int(raw[name]["slots"]), int(raw[name]["slot_bytes"]))
                             for name in ("weights", "inputs", "outputs")})


@dataclass(frozen=True)
class Tiling:
    """The generator's tiling decisions for one layer."""

    dataflow: str
    sparse_operand: str  # "weights" or "activations"
    block_rows: int  # WS: T rows of M per output tile; OS: R
    row_blocks: int
    col_tiles: int
    folds: int  # COMPUTE instructions
    buffers: BufferPlan

    def as_dict(self) -> dict:
        return asdict(self)


def useful_depth(p: Pattern, k: int) -> int:
    """Compressed rows of a term that hold real (not padded) slots: N*(K//M) + min(N, K%M)."""
    return p.n * (k // p.m) + min(p.n, k % p.m)


def _check_patterns(hw: Target, series: Series, operand: str) -> None:
    for p in series.terms:
        if not hw.supports(p):
            supported = ", ".join(str(q) for q in hw.patterns)
            raise TasdsimError(f"{operand} series {series}: pattern {p} is not supported by hardware "
                               f"{hw.name} (supports {supported})")


def plan(layer: Layer, hw: Target, weights: Series, activations: Series, unbounded: bool) -> Tiling:
    """Choose the tiling and the buffer plan (see the module docstring); errors when a tile cannot
    fit its buffer."""
    _check_patterns(hw, weights, "weights")
    _check_patterns(hw, activations, "activations")
    if not weights.is_dense and not activations.is_dense:
        raise TasdsimError("TASD on both operands at once is not modelled: choose weights or activations")
    sparse_operand = "activations" if not activations.is_dense else "weights"
    if sparse_operand == "activations" and hw.tasd_units == 0:
        raise TasdsimError(f"activation series {activations} needs TASD units; hardware {hw.name} has none")
    act_sparse = sparse_operand == "activations"
    series = activations if act_sparse else weights
    r, c = hw.rows, hw.cols
    cols = min(c, layer.n)
    col_tiles = -(-layer.n // c)
    if hw.dataflow == "ws":
        if unbounded:
            t = layer.m
        else:
            t = min(layer.m, hw.inputs_bytes // 2 // (layer.k * hw.word_bytes),
                    hw.outputs_bytes // 2 // (c * hw.psum_bytes))
            if t < 1:
                raise TasdsimError(f"layer {layer.name}: one row of inputs ({layer.k} words) or psums does not "
                                   f"fit half the input/output buffer of {hw.name}")
        weight_tile = max(values + meta for folds in _ws_folds(layer, hw, series, act_sparse, cols)
                          for _, values, meta, _ in folds)
        buffers = BufferPlan(Slots(2, weight_tile), Slots(2, t * layer.k * hw.word_bytes),
                             Slots(2, t * cols * hw.psum_bytes))
        row_blocks = -(-layer.m // t)
        folds = sum(-(-p.depth(layer.k) // r) for p in series.terms) * col_tiles * row_blocks * layer.groups
        tiling = Tiling("ws", sparse_operand, t, row_blocks, col_tiles, folds, buffers)
    else:
        rows = min(r, layer.m)
        buffers = BufferPlan(Slots(2, sum(_os_weight_bytes(layer.k, cols, hw, series, sparse_operand))),
                             Slots(2, rows * layer.k * hw.word_bytes), Slots(2, rows * cols * hw.psum_bytes))
        row_blocks = -(-layer.m // r)
        folds = len(series.terms) * row_blocks * col_tiles * layer.groups
        tiling = Tiling("os", sparse_operand, r, row_blocks, col_tiles, folds, buffers)
    if not unbounded:
        _check_fits(layer, hw, buffers)
    return tiling


def _check_fits(layer: Layer, hw: Target, buffers: BufferPlan) -> None:
    """Every buffer holds its slots; otherwise one line naming the buffer and the sizes."""
    for name, size in (("weights", hw.weights_bytes), ("inputs", hw.inputs_bytes), ("outputs", hw.outputs_bytes)):
        s = buffers.of(name)
        if s.slots * s.slot_bytes > size:
            raise TasdsimError(f"layer {layer.name}: {s.slots} {name} slots of {s.slot_bytes} bytes (its largest "
                               f"tile) do not fit the {size}-byte {name} buffer of {hw.name}")


def _dense_rows_covered(p: Pattern, k: int, first: int, rows: int) -> int:
    """Dense K rows covered by compressed rows [first, first + rows) of an activation term."""
    g0, g1 = first // p.n, -(-(first + rows) // p.n)
    return min(k, g1 * p.m) - g0 * p.m


def weight_tile_bytes(rows: int, cols: int, hw: Target, weights: Series, term: int = 0) -> tuple[int, int]:
    """(value bytes, metadata bytes) of a weight tile of rows x cols words of term `term`."""
    p = weights.terms[term]
    return rows * cols * hw.word_bytes, -(-rows * cols * p.metadata_bits // 8)


def _os_weight_bytes(k: int, cols: int, hw: Target, series: Series, sparse_operand: str) -> tuple[int, int]:
    if sparse_operand == "activations":
        return k * cols * hw.word_bytes, 0
    values = sum(p.depth(k) for p in series.terms) * cols * hw.word_bytes
    meta = sum(-(-p.depth(k) * cols * p.metadata_bits // 8) for p in series.terms)
    return values, meta


class _Emitter:
    """Numbers instructions and tracks which instruction last freed each buffer slot."""

    def __init__(self) -> None:
        self.next_id = 0
        self.freed_by: dict[tuple[str, int], int] = {}

    def emit(self, op: str, fields: dict, deps: list[int], free: tuple = ()) -> Instr:
        ins = Instr(self.next_id, op, fields, tuple(deps) if len(deps) < 2 else tuple(sorted(set(deps))), tuple(free))
        self.next_id += 1
        for slot in free:
            self.freed_by[slot] = ins.id
        return ins

    def tasd(self, slot: int, term: int, p: Pattern, groups: int, load: int) -> Instr:
        """The TASD units decompose the input tile in `slot` (loaded by `load`) into term `term`."""
        return self.emit("TASD", {"slot": slot, "term": term, "pattern": str(p), "nm_groups": groups}, [load])

    def after_free(self, buf: str, slot: int) -> list[int]:
        """The dependency a new writer of (buf, slot) needs: the last instruction that freed it."""
        last = self.freed_by.get((buf, slot))
        return [] if last is None else [last]


def generate(layer: Layer, hw: Target, weights: Series, activations: Series, tiling: Tiling) -> Iterator[Instr]:
    """The layer's instructions, streamed (see the module docstring for the loop order)."""
    if tiling.dataflow == "ws":
        return _generate_ws(layer, hw, weights, activations, tiling)
    return _generate_os(layer, hw, weights, activations, tiling)


def _generate_ws(layer: Layer, hw: Target, weights: Series, activations: Series, tiling: Tiling) -> Iterator[Instr]:
    e = _Emitter()
    r, c, word, psum = hw.rows, hw.cols, hw.word_bytes, hw.psum_bytes
    act_sparse = tiling.sparse_operand == "activations"
    series = activations if act_sparse else weights
    acc = int(len(series.terms) > 1)
    slots = {name: tiling.buffers.of(name).slots for name in ("weights", "inputs", "outputs")}
    max_folds = max(-(-p.depth(layer.k) // r) for p in series.terms)
    in_stride = tile_stride(tiling.block_rows * layer.k * word)
    w_stride = tile_stride(r * c * word * max(p.m for p in series.terms) * 2)
    out_stride = tile_stride(tiling.block_rows * c * psum)
    tile, fold_count = 0, 0
    for g in range(layer.groups):
        for ct in range(tiling.col_tiles):
            cols = min(c, layer.n - ct * c)
            folds = _ws_folds(layer, hw, series, act_sparse, cols)
            for rb in range(tiling.row_blocks):
                t = min(tiling.block_rows, layer.m - rb * tiling.block_rows)
                slot, out = tile % slots["inputs"], tile % slots["outputs"]
                load_in = e.emit("LOAD", {"buf": "inputs", "slot": slot, "bytes": t * layer.k * word, "meta": 0,
                                          "addr": INPUTS_BASE + (g * tiling.row_blocks + rb) * in_stride},
                                 e.after_free("inputs", slot))
                yield load_in
                out_wait = e.after_free("outputs", out)
                last_compute = None
                for i, p in enumerate(series.terms):
                    source = load_in.id
                    if act_sparse:
                        tasd = e.tasd(slot, i, p, t * p.nm_groups(layer.k), load_in.id)
                        yield tasd
                        source = tasd.id
                    pattern = str(p)
                    last_fold = len(folds[i]) - 1
                    base = ((g * len(series.terms) + i) * tiling.col_tiles + ct) * max_folds
                    for f, (k_rows, values, meta, useful_rows) in enumerate(folds[i]):
                        wslot = fold_count % slots["weights"]
                        fold_count += 1
                        load_w = e.emit("LOAD", {"buf": "weights", "slot": wslot, "bytes": values, "meta": meta,
                                                 "addr": WEIGHTS_BASE + (base + f) * w_stride},
                                        e.after_free("weights", wslot))
                        yield load_w
                        free = [("weights", wslot)]
                        if f == last_fold and i == len(series.terms) - 1:
                            free.append(("inputs", slot))
                        last_compute = e.emit(
                            "COMPUTE", {"w": wslot, "i": slot, "o": out, "term": i, "pattern": pattern,
                                        "k_rows": k_rows, "m_rows": t, "cols": cols, "acc": acc,
                                        "macs": k_rows * cols * t, "useful": useful_rows * cols * t},
                            [load_w.id, source] + out_wait, free)
                        yield last_compute
                        out_wait = []
                done = last_compute
                if acc:
                    done = e.emit("ACC", {"slot": out}, [last_compute.id])
                    yield done
                yield e.emit("STORE", {"buf": "outputs", "slot": out, "bytes": t * cols * psum,
                                       "addr": OUTPUTS_BASE + ((g * tiling.col_tiles + ct) * tiling.row_blocks + rb)
                                       * out_stride},
                             [done.id], [("outputs", out)])
                tile += 1


def _ws_folds(layer: Layer, hw: Target, series: Series, act_sparse: bool,
              cols: int) -> tuple[tuple[tuple[int, int, int, int], ...], ...]:
    """Per term, per fold of a WS column tile `cols` wide: (compressed rows, weight value bytes,
    metadata bytes, useful rows)."""
    r, word = hw.rows, hw.word_bytes
    terms = []
    for i, p in enumerate(series.terms):
        depth, useful = p.depth(layer.k), useful_depth(p, layer.k)
        folds = []
        for f in range(-(-depth // r)):
            rows = min(r, depth - f * r)
            if act_sparse:
                values, meta = _dense_rows_covered(p, layer.k, f * r, rows) * cols * word, 0
            else:
                values, meta = weight_tile_bytes(rows, cols, hw, series, i)
            folds.append((rows, values, meta, min(rows, max(0, useful - f * r))))
        terms.append(tuple(folds))
    return tuple(terms)


def _generate_os(layer: Layer, hw: Target, weights: Series, activations: Series, tiling: Tiling) -> Iterator[Instr]:
    e = _Emitter()
    r, c, word, psum = hw.rows, hw.cols, hw.word_bytes, hw.psum_bytes
    act_sparse = tiling.sparse_operand == "activations"
    series = activations if act_sparse else weights
    in_stride = tile_stride(r * layer.k * word)
    w_stride = tile_stride(sum(_os_weight_bytes(layer.k, c, hw, series, tiling.sparse_operand)))
    out_stride = tile_stride(r * c * psum)
    tile = 0
    for g in range(layer.groups):
        for rb in range(tiling.row_blocks):
            rows = min(r, layer.m - rb * r)
            for ct in range(tiling.col_tiles):
                cols = min(c, layer.n - ct * c)
                slot = tile % tiling.buffers.inputs.slots  # the plan gives every OS buffer as many slots
                load_in = e.emit("LOAD", {"buf": "inputs", "slot": slot, "bytes": rows * layer.k * word, "meta": 0,
                                          "addr": INPUTS_BASE + (g * tiling.row_blocks + rb) * in_stride},
                                 e.after_free("inputs", slot))
                yield load_in
                values, meta = _os_weight_bytes(layer.k, cols, hw, series, tiling.sparse_operand)
                load_w = e.emit("LOAD", {"buf": "weights", "slot": slot, "bytes": values, "meta": meta,
                                         "addr": WEIGHTS_BASE + (g * tiling.col_tiles + ct) * w_stride},
                                e.after_free("weights", slot))
                yield load_w
                deps = e.after_free("outputs", slot)
                last = None
                for i, p in enumerate(series.terms):
                    source = load_in.id
                    if act_sparse:
                        tasd = e.tasd(slot, i, p, rows * p.nm_groups(layer.k), load_in.id)
                        yield tasd
                        source = tasd.id
                    depth = p.depth(layer.k)
                    useful = useful_depth(p, layer.k)
                    free = [("weights", slot), ("inputs", slot)] if i == len(series.terms) - 1 else []
                    last = e.emit("COMPUTE", {"w": slot, "i": slot, "o": slot, "term": i, "pattern": str(p),
                                              "k_rows": depth, "m_rows": rows, "cols": cols, "acc": 0,
                                              "macs": rows * cols * depth,
                                              "useful": rows * cols * useful},
                                  [load_w.id, source] + deps, free)
                    deps = []
                    yield last
                yield e.emit("STORE", {"buf": "outputs", "slot": slot, "bytes": rows * cols * psum,
                                       "addr": OUTPUTS_BASE + ((g * tiling.row_blocks + rb) * tiling.col_tiles + ct)
                                       * out_stride},
                             [last.id], [("outputs", slot)])
                tile += 1
