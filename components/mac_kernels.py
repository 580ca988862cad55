"""Functional core of the N:M PE array: Numba MAC kernels on a compressed N:M operand.

One TASD term is the sparse operand S in compressed form: per sparse row s, per group g of M
consecutive K elements, N value slots and their in-group indices (`CompressedTerm.values` and
`.indices`, shape (rows, groups, N)). The metadata decoder turns an index into the dense K row
its slot selects, k = g * M + index (`term_operand`), and every slot multiplies that row of the
dense operand:

    psum[s, c] += value[s, slot] * dense_t[k(s, slot), c]      for every compressed slot of row s

`dense_t` is the dense operand with its K axis first, so a slot reads one contiguous row. Either
operand can be the sparse one (see simulator/functional.py): sparse weights (out, in) against
dense_t = inputs^T (in, tokens) give psum (out, tokens); sparse inputs (tokens, in) against
dense_t = weights^T (in, out) give psum (tokens, out). Padded slots of a last partial group select
rows K..groups*M-1, which `dense_t` holds as zeros (the hardware's zero padding).

Arithmetic, per output element, slot after slot in compressed-row order (the order a psum runs
down a PE column and from fold to fold):
- int8 x int8: products and sums in int32, exact (the caller bounds K so int32 cannot overflow);
- fp32 (fp16 and bf16 are widened to fp32 exactly by the caller): fused multiply-add in fp32.

Work is walked as the timing trace walks it (traces/generate.py): output tiles of `tile_s` sparse
rows x `tile_d` dense columns, and in each tile the folds of `fold_slots` compressed rows (R on a
WS array; the whole depth on OS, where a fold keeps its psums while the term streams through).
The walk counts what the array issues: a fold per (tile, fold) and rows x cols x slots MACs per
fold, `useful` ones on real (not padded) slots, the numbers LayerStats reports for the same run.

Speed: an output tile is split into chunks of CHUNK dense columns; the micro-kernel keeps a
chunk's psums in eight 8-lane vector registers while the slots stream by (`_make_row_mac`,
written as LLVM IR because Numba does not keep array chunks in registers across a loop); a pass
covers SLOT_BLOCK slots, so the dense rows they select stay in L1; the compressed term is laid
out tile after tile (as a weight buffer holds it), so a tile's slots stream from memory in order;
and when a term has enough work its output chunks are shared among threads (the kernels release
the GIL; Numba's thread count). Every kernel is compiled once and cached on disk (`cache=True`).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

LANES = 8  # 32-bit lanes of a 256-bit vector register
VECTORS = 8  # vector registers of psums per chunk
CHUNK = LANES * VECTORS  # dense columns per micro-kernel call
HALF_CHUNK = CHUNK // 2  # the narrow micro-kernel, for tiles of 32 columns (activation operands on WS)
SLOT_BLOCK = 32  # compressed rows per pass over a tile's sparse rows
PARALLEL_MIN_MACS = 1 << 20  # below this a term runs on one core (thread start-up would dominate)
INT8_MAX_K = (2**31 - 1) // (128 * 128)  # longest reduction whose int8 psums cannot overflow int32

_KINDS = {  # value dtype -> psum dtype the kernels accept
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.int8): np.dtype(np.int32),
}


def psum_dtype(values_dtype: np.dtype) -> np.dtype:
    """The psum dtype of a kernel operand dtype: int32 for int8, float32 for float32."""
    try:
        return _KINDS[np.dtype(values_dtype)]
    except KeyError:
        raise ValueError(f"MAC kernels take int8 or float32 operands, not {values_dtype}") from None


# ---------------------------------------------------------------- micro-kernel (LLVM IR)


def _make_row_mac(vectors: int):
    """The micro-kernel over W = vectors x LANES dense columns, called as

        row_mac(acc, acc_row, acc_col, values, sel, s, dense_t, col, d0, d1)

    acc[acc_row, acc_col:acc_col+W] += sum over slots d = d0..d1-1 of sparse row s of
    values[s, d] * dense_t[sel[s, d], col:col+W], slot after slot, the psums in registers.
    No bounds checks: the caller guarantees acc_col + W <= acc.shape[1],
    col + W <= dense_t.shape[1] and every sel[s, d] < dense_t.shape[0]."""

    @intrinsic
    def row_mac(typingctx, acc, acc_row, acc_col, values, sel, s, dense_t, col, d0, d1):
        arrays = (acc, values, sel, dense_t)
        if not all(isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C" for a in arrays):
            raise TypingError("row_mac takes C-contiguous 2-D arrays")
        if sel.dtype != types.int32:
            raise TypingError("row_mac: the decoded selection must be int32")
        if values.dtype == types.float32 and dense_t.dtype == types.float32 and acc.dtype == types.float32:
            integer = False
        elif values.dtype == types.int8 and dense_t.dtype == types.int8 and acc.dtype == types.int32:
            integer = True
        else:
            raise TypingError(f"row_mac: unsupported operands {values.dtype} x {dense_t.dtype} -> {acc.dtype}")
        sig = types.void(acc, types.intp, types.intp, values, sel, types.intp, dense_t, types.intp, types.intp,
                         types.intp)
        return sig, _row_mac_codegen(vectors, integer)

    return row_mac


def _row_mac_codegen(vectors: int, integer: bool):
    """LLVM IR of the micro-kernel: psums in `vectors` registers, slot after slot."""

    def codegen(context, builder, signature, args):
        acc_a, values_a, sel_a, dense_a = (context.make_array(signature.args[i])(context, builder, args[i])
                                           for i in (0, 3, 4, 6))
        acc_row_v, acc_col_v, s_v, col_v, d0_v, d1_v = (args[i] for i in (1, 2, 5, 7, 8, 9))
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        lane = ir.IntType(32) if integer else ir.FloatType()
        word = i8 if integer else ir.FloatType()  # element of values and dense_t
        word_bytes = 1 if integer else 4
        vec = ir.VectorType(lane, LANES)
        wvec = ir.VectorType(word, LANES)

        def address(arr, row, col, elem, elem_bytes):
            """Pointer to arr[row, col] as `elem*` (C layout: row stride from the array)."""
            row_stride = cgutils.unpack_tuple(builder, arr.strides, 2)[0]
            offset = builder.add(builder.mul(row, row_stride), builder.mul(col, ir.Constant(i64, elem_bytes)))
            base = builder.bitcast(arr.data, i8.as_pointer())
            return builder.bitcast(builder.gep(base, [offset]), elem.as_pointer())

        def vector_at(ptr, j, ty):
            return builder.bitcast(builder.gep(ptr, [ir.Constant(i64, j * LANES)]), ty.as_pointer())

        def splat(scalar):
            one = builder.insert_element(ir.Constant(vec, ir.Undefined), scalar, ir.Constant(i32, 0))
            return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(i32, LANES), [0] * LANES))

        if not integer:
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec, vec, vec]),
                                                 f"llvm.fma.v{LANES}f32")
        acc_ptr = address(acc_a, acc_row_v, acc_col_v, lane, 4)
        psums = []
        for j in range(vectors):  # allocas in the entry block: mem2reg keeps them in registers
            slot = cgutils.alloca_once(builder, vec)
            builder.store(builder.load(vector_at(acc_ptr, j, vec), align=4), slot)
            psums.append(slot)
        with cgutils.for_range(builder, builder.sub(d1_v, d0_v)) as loop:
            d = builder.add(d0_v, loop.index)
            value = builder.load(address(values_a, s_v, d, word, word_bytes))
            k = builder.sext(builder.load(address(sel_a, s_v, d, i32, 4)), i64)
            row = address(dense_a, k, col_v, word, word_bytes)
            v = splat(builder.sext(value, i32) if integer else value)
            for j in range(vectors):
                x = builder.load(vector_at(row, j, wvec), align=word_bytes)
                old = builder.load(psums[j])
                if integer:
                    new = builder.add(old, builder.mul(v, builder.sext(x, vec)))
                else:
                    new = builder.call(fma, [v, x, old])
                builder.store(new, psums[j])
        for j in range(vectors):
            builder.store(builder.load(psums[j]), vector_at(acc_ptr, j, vec), align=4)
        return context.get_dummy_value()

    return codegen


_row_mac_wide = _make_row_mac(VECTORS)
_row_mac_narrow = _make_row_mac(VECTORS // 2)  # the same over HALF_CHUNK columns


# ---------------------------------------------------------------- the term as the array holds it


@njit(cache=True, nogil=True)
def _passes(depth, fold_slots, pass_slots):  # pragma: no cover - compiled
    """Slot ranges [start, end) of the walk, in order: fold after fold, pass_slots at a time."""
    count = 0
    for f0 in range(0, depth, fold_slots):
        count += (min(depth, f0 + fold_slots) - f0 + pass_slots - 1) // pass_slots
    bounds = np.empty((count, 2), dtype=np.int64)
    p = 0
    for f0 in range(0, depth, fold_slots):
        f1 = min(depth, f0 + fold_slots)
        for b0 in range(f0, f1, pass_slots):
            bounds[p, 0], bounds[p, 1] = b0, min(f1, b0 + pass_slots)
            p += 1
    return bounds


@njit(cache=True, nogil=True)
def _decode_tiles(values, indices, m, bounds, pass_slots, tile_s):  # pragma: no cover - compiled
    """The metadata decoder, and the term laid out tile after tile as the weight buffer holds it.

    Slot d = g * N + j of sparse row s selects dense row g * M + indices[s, g, j]. The slots of
    pass p of row s (tile ts = s // tile_s) go to row (ts * passes + p) * tile_s + s % tile_s of
    (tiles * passes * tile_s, pass_slots) arrays, so a work unit streams one contiguous block.
    Slots past a pass's end stay (0, row 0) and are never read."""
    rows, groups, n = values.shape
    passes = bounds.shape[0]
    tiles = (rows + tile_s - 1) // tile_s
    vals = np.zeros((tiles * passes * tile_s, pass_slots), dtype=values.dtype)
    sel = np.zeros((tiles * passes * tile_s, pass_slots), dtype=np.int32)
    for s in range(rows):
        ts = s // tile_s
        for p in range(passes):
            r = (ts * passes + p) * tile_s + s - ts * tile_s
            for d in range(bounds[p, 0], bounds[p, 1]):
                g = d // n
                vals[r, d - bounds[p, 0]] = values[s, g, d - g * n]
                sel[r, d - bounds[p, 0]] = g * m + indices[s, g, d - g * n]
    return vals, sel


@dataclass(frozen=True)
class TermOperand:
    """One TASD term of the sparse operand as the PE array consumes it: compressed values and
    the dense row each slot selects, tile after tile and fold after fold (see _decode_tiles)."""

    values: np.ndarray  # (tiles * passes * tile_s, pass_slots), int8 or float32
    sel: np.ndarray  # same shape, int32
    bounds: np.ndarray  # (passes, 2): slot range of each pass, in walk order
    rows: int  # sparse rows
    depth: int  # compressed slots per row: N * ceil(K / M)
    useful: int  # leading slots of a row that are real, not padding: N * (K // M) + min(N, K % M)
    selected_rows: int  # dense rows the slots may select: ceil(K / M) * M
    tile_s: int  # sparse rows per output tile
    fold_slots: int  # compressed rows per fold


def term_operand(values: np.ndarray, indices: np.ndarray, m: int, useful: int, tile_s: int,
                 fold_slots: int) -> TermOperand:
    """Decode a compressed term (values and in-group indices, (rows, groups, N), as in
    CompressedTerm) and lay it out for output tiles of tile_s sparse rows and folds of fold_slots
    compressed rows. Values must be int8 or float32 (widen fp16 and bf16 first)."""
    psum_dtype(values.dtype)
    if values.ndim != 3 or values.shape != indices.shape:
        raise ValueError(f"values {values.shape} and indices {indices.shape} must both be (rows, groups, N)")
    if min(tile_s, fold_slots) < 1:
        raise ValueError("tile rows and fold depth must be positive")
    if indices.size and int(indices.max()) >= m:
        raise ValueError(f"an index {int(indices.max())} is not below M={m}")
    rows, groups, n = values.shape
    depth = groups * n
    pass_slots = min(fold_slots, SLOT_BLOCK)
    bounds = _passes(depth, fold_slots, pass_slots)
    vals, sel = _decode_tiles(np.ascontiguousarray(values), np.ascontiguousarray(indices), m, bounds, pass_slots,
                              tile_s)
    return TermOperand(vals, sel, bounds, rows, depth, useful, groups * m, tile_s, fold_slots)


# ---------------------------------------------------------------- the fold walk


@njit(cache=True, nogil=True)
def _tile_chunk(u, rows, vals, sel, bounds, dense_t, psums, tile_s, tile_d, fold_slots, useful,
                counts):  # pragma: no cover - compiled
    """Work unit u: one CHUNK-wide column chunk of one output tile, through all its folds.
    counts[u] = (folds, MACs issued, useful MACs) this unit accounts for."""
    cols = psums.shape[1]
    depth = bounds[bounds.shape[0] - 1, 1]
    tiles_s = (rows + tile_s - 1) // tile_s
    chunks = (min(tile_d, cols) + CHUNK - 1) // CHUNK
    ts = u % tiles_s  # units sharing a dense chunk are consecutive: its rows stay in cache
    ch = (u // tiles_s) % chunks
    td = u // (tiles_s * chunks)
    s0, t0 = ts * tile_s, td * tile_d
    s1, t1 = min(rows, s0 + tile_s), min(cols, t0 + tile_d)
    c0 = t0 + ch * CHUNK
    if c0 >= t1:
        return
    width = min(CHUNK, t1 - c0)
    scratch = np.zeros((1, CHUNK), dtype=psums.dtype)
    folds = issued = real = 0
    p = 0
    for f0 in range(0, depth, fold_slots):
        f1 = min(depth, f0 + fold_slots)
        if ch == 0:
            folds += 1
        issued += (f1 - f0) * (s1 - s0) * width
        real += max(0, min(f1, useful) - f0) * (s1 - s0) * width
        while p < bounds.shape[0] and bounds[p, 1] <= f1:  # the fold's passes
            n = bounds[p, 1] - bounds[p, 0]
            for s in range(s0, s1):
                r = (ts * bounds.shape[0] + p) * tile_s + s - s0
                if width == CHUNK:
                    _row_mac_wide(psums, s, c0, vals, sel, r, dense_t, c0, 0, n)
                elif width == HALF_CHUNK:
                    _row_mac_narrow(psums, s, c0, vals, sel, r, dense_t, c0, 0, n)
                else:  # the tile's last, narrower chunk: psums go through a scratch row
                    scratch[0, :width] = psums[s, c0:c0 + width]
                    if width < HALF_CHUNK:
                        _row_mac_narrow(scratch, 0, 0, vals, sel, r, dense_t, c0, 0, n)
                    else:
                        _row_mac_wide(scratch, 0, 0, vals, sel, r, dense_t, c0, 0, n)
                    psums[s, c0:c0 + width] = scratch[0, :width]
            p += 1
    counts[u, 0] = folds
    counts[u, 1] = issued
    counts[u, 2] = real


@njit(cache=True, nogil=True)
def _walk(u0, u1, rows, vals, sel, bounds, dense_t, psums, tile_s, tile_d, fold_slots, useful,
          counts):  # pragma: no cover - compiled
    """Work units u0..u1-1; releases the GIL, so threads can walk disjoint ranges at once."""
    for u in range(u0, u1):
        _tile_chunk(u, rows, vals, sel, bounds, dense_t, psums, tile_s, tile_d, fold_slots, useful, counts)


_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it, pool): a forked child makes its own


def workers() -> int:
    """Threads a term runs on: Numba's thread count (NUMBA_NUM_THREADS, default the core count)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _walk_parallel(units: int, args: tuple) -> None:
    """Split the units into one contiguous range per thread and walk them at once: the calling
    thread takes the first range, a pool the others. Units write disjoint psums: no locking."""
    global _pool
    threads = min(units, workers())
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(max_workers=max(1, workers() - 1),
                                                 thread_name_prefix="mac-kernels"))
    cuts = [units * i // threads for i in range(threads + 1)]
    futures = [_pool[1].submit(_walk, cuts[i], cuts[i + 1], *args) for i in range(1, threads)]
    _walk(cuts[0], cuts[1], *args)
    for future in futures:
        future.result()


def aligned_zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A zeroed C-contiguous array whose data starts on a 64-byte cache line, so the
    micro-kernel's vector loads do not straddle lines."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = np.zeros(nbytes + 64, dtype=np.uint8)
    start = -buf.ctypes.data % 64
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def dense_rows(k: int, selected_rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A zeroed dense_t buffer: max(K, selected_rows) rows (zero rows pad the last groups) and
    at least CHUNK spare columns, so a chunk never reads past the end. Fill [:k, :cols].
    Rows are an odd number of cache lines long, so the rows a fold selects spread over the L1 sets."""
    itemsize = np.dtype(dtype).itemsize
    lines = -(-(cols + CHUNK) * itemsize // 64)
    lines += 1 - lines % 2
    return aligned_zeros((max(k, selected_rows), lines * 64 // itemsize), dtype)


def term_macs(term: TermOperand, dense_t: np.ndarray, psums: np.ndarray, tile_d: int,
              parallel: bool | None = None) -> tuple[int, int, int]:
    """Accumulate one term's MACs into `psums` (sparse rows x dense columns), walking its output
    tiles of term.tile_s x tile_d and their folds; returns (folds, MACs issued, useful MACs).

    dense_t comes from dense_rows (the term's dtype, K-major, zero padding rows); psums are int32
    for int8 terms and float32 for float32 ones, C-contiguous. `parallel=None` shares the work
    among Numba's threads when the term is big enough to pay for it."""
    rows, cols = psums.shape
    if rows != term.rows:
        raise ValueError(f"psums have {rows} rows, the term {term.rows}")
    if (dense_t.dtype != term.values.dtype or psums.dtype != psum_dtype(term.values.dtype)
            or not (dense_t.flags.c_contiguous and psums.flags.c_contiguous)):
        raise ValueError("dense_t must have the term's dtype and psums its psum_dtype, both C-contiguous")
    if dense_t.shape[0] < term.selected_rows or dense_t.shape[1] < cols + CHUNK:
        raise ValueError(f"dense_t {dense_t.shape} is smaller than dense_rows makes for this term")
    if tile_d < 1:
        raise ValueError("tile columns must be positive")
    units = -(-rows // term.tile_s) * -(-cols // tile_d) * -(-min(tile_d, cols) // CHUNK)
    counts = np.zeros((units, 3), dtype=np.int64)
    args = (rows, term.values, term.sel, term.bounds, dense_t, psums, term.tile_s, tile_d, term.fold_slots,
            term.useful, counts)
    if parallel is None:
        parallel = units > 1 and workers() > 1 and rows * cols * term.depth >= PARALLEL_MIN_MACS
    if parallel:
        _walk_parallel(units, args)
    else:
        _walk(0, units, *args)
    folds, issued, real = (int(x) for x in counts.sum(axis=0))
    return folds, issued, real
