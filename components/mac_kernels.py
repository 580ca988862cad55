"""Functional core of the N:M PE array: Numba MAC kernels on a compressed N:M operand.

One TASD term is the sparse operand S in compressed form: per sparse row s, per group g of M
consecutive K elements, N value slots and their in-group indices (`CompressedTerm.values` and
`.indices`, shape (rows, groups, N)). The metadata decoder turns the indices into the dense K row
each slot selects (`decode_metadata`: k = g * M + index), and every slot multiplies the dense
operand's row k:

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
chunk's psums in eight 8-lane vector registers while the slots stream by (`_row_mac_wide`, written
as LLVM IR because Numba does not keep array chunks in registers across a loop), a pass covers
SLOT_BLOCK slots so the dense rows they select stay in L1, and when a term has enough work its
output chunks are shared among threads (the kernels release the GIL; Numba's thread count).
Every kernel is compiled once and cached on disk (`cache=True`).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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


# ---------------------------------------------------------------- metadata decoder


@njit(cache=True, nogil=True)
def decode_metadata(indices, m):  # pragma: no cover - compiled
    """The dense K row each compressed slot selects: sel[s, g * N + j] = g * M + indices[s, g, j]."""
    rows, groups, n = indices.shape
    sel = np.empty((rows, groups * n), dtype=np.int32)
    for s in range(rows):
        for g in range(groups):
            for j in range(n):
                sel[s, g * n + j] = g * m + indices[s, g, j]
    return sel


# ---------------------------------------------------------------- the fold walk


@njit(cache=True, nogil=True)
def _tile_chunk(u, values, sel, dense_t, psums, tile_s, tile_d, fold_slots, useful, counts):  # pragma: no cover
    """Work unit u: one CHUNK-wide column chunk of one output tile, through all its folds.
    counts[u] = (folds, MACs issued, useful MACs) this unit accounts for."""
    rows, depth = values.shape
    cols = psums.shape[1]
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
    for f0 in range(0, depth, fold_slots):
        f1 = min(depth, f0 + fold_slots)
        if ch == 0:
            folds += 1
        issued += (f1 - f0) * (s1 - s0) * width
        real += max(0, min(f1, useful) - f0) * (s1 - s0) * width
        for b0 in range(f0, f1, SLOT_BLOCK):
            b1 = min(f1, b0 + SLOT_BLOCK)
            for s in range(s0, s1):
                if width == CHUNK:
                    _row_mac_wide(psums, s, c0, values, sel, s, dense_t, c0, b0, b1)
                elif width == HALF_CHUNK:
                    _row_mac_narrow(psums, s, c0, values, sel, s, dense_t, c0, b0, b1)
                else:  # the tile's last, narrower chunk: psums go through a scratch row
                    scratch[0, :width] = psums[s, c0:c0 + width]
                    if width < HALF_CHUNK:
                        _row_mac_narrow(scratch, 0, 0, values, sel, s, dense_t, c0, b0, b1)
                    else:
                        _row_mac_wide(scratch, 0, 0, values, sel, s, dense_t, c0, b0, b1)
                    psums[s, c0:c0 + width] = scratch[0, :width]
    counts[u, 0] = folds
    counts[u, 1] = issued
    counts[u, 2] = real


@njit(cache=True, nogil=True)
def _walk(u0, u1, values, sel, dense_t, psums, tile_s, tile_d, fold_slots, useful, counts):  # pragma: no cover
    """Work units u0..u1-1; releases the GIL, so threads can walk disjoint ranges at once."""
    for u in range(u0, u1):
        _tile_chunk(u, values, sel, dense_t, psums, tile_s, tile_d, fold_slots, useful, counts)


_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """Threads a term runs on: Numba's thread count (NUMBA_NUM_THREADS, default the core count)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def _walk_parallel(units: int, args: tuple) -> None:
    """Split the units into contiguous ranges (a few per thread, for balance) and walk them on a
    thread pool; units write disjoint psums, so no locking."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="mac-kernels")
    pieces = min(units, workers() * 4)
    bounds = [units * i // pieces for i in range(pieces + 1)]
    futures = [_pool.submit(_walk, bounds[i], bounds[i + 1], *args) for i in range(pieces)]
    for future in futures:
        future.result()


def dense_rows(k: int, depth_rows: int, cols: int, dtype: np.dtype) -> np.ndarray:
    """A zeroed dense_t buffer: `depth_rows` >= K rows (the padding of partial groups) and CHUNK
    spare columns, so a chunk never reads past the end. Fill [:k, :cols]."""
    return np.zeros((max(k, depth_rows), cols + CHUNK), dtype=dtype)


def term_macs(values: np.ndarray, sel: np.ndarray, dense_t: np.ndarray, psums: np.ndarray, tile_s: int,
              tile_d: int, fold_slots: int, useful: int, parallel: bool | None = None) -> tuple[int, int, int]:
    """Accumulate one term's MACs into `psums` (sparse rows x dense columns), walking its output
    tiles and folds; returns (folds, MACs issued, useful MACs).

    values: (rows, depth) compressed values (int8 or float32); sel: (rows, depth) int32 from
    decode_metadata; dense_t: (>= every selected row, >= psum columns + CHUNK) from dense_rows;
    psums: (rows, cols) int32 or float32, C-contiguous. `useful` is the count of leading slots of
    a row that are real (not padding). `parallel=None` uses all cores when the term is big enough.
    """
    rows, depth = values.shape
    cols = psums.shape[1]
    if psums.shape[0] != rows or sel.shape != values.shape:
        raise ValueError(f"psums {psums.shape}, values {values.shape} and selection {sel.shape} disagree")
    if dense_t.shape[1] < cols + CHUNK or psums.dtype != psum_dtype(values.dtype) or dense_t.dtype != values.dtype:
        raise ValueError("dense_t must come from dense_rows with the values' dtype, psums in psum_dtype")
    if sel.size and int(sel.max()) >= dense_t.shape[0]:
        raise ValueError(f"a slot selects row {int(sel.max())}, dense_t has {dense_t.shape[0]}")
    if min(tile_s, tile_d, fold_slots) < 1:
        raise ValueError("tile sizes and fold depth must be positive")
    if not all(a.flags.c_contiguous for a in (values, sel, dense_t, psums)) or sel.dtype != np.int32:
        raise ValueError("values, selection (int32), dense_t and psums must be C-contiguous")
    units = -(-rows // tile_s) * -(-cols // tile_d) * -(-min(tile_d, cols) // CHUNK)
    counts = np.zeros((units, 3), dtype=np.int64)
    args = (values, sel, dense_t, psums, tile_s, tile_d, fold_slots, useful, counts)
    if parallel is None:
        parallel = units > 1 and workers() > 1 and rows * cols * depth >= PARALLEL_MIN_MACS
    if parallel:
        _walk_parallel(units, args)
    else:
        _walk(0, units, *args)
    folds, issued, real = (int(x) for x in counts.sum(axis=0))
    return folds, issued, real
