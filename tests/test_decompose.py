"""Greedy TASD decomposition against a brute-force reference, and the properties of the BRIEF."""
import math
import zlib

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.traces.decompose import decompose, normalize_axis
from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.tensors import nm_sparse


BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.int8), BF16]
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


# ---------------------------------------------------------------- brute-force reference


def _mag(x, integer):
    return abs(int(x)) if integer else abs(float(x))


def reference(a: np.ndarray, terms: list[tuple[int, int]], axis: int):
    """Pure-Python greedy TASD: per term, per group of M along `axis` (last group padded), sort the
    positions by (-|x|, index) with padded slots after every real one, keep the first N, subtract.

    Returns per term (indices (rows, groups, N), value bits (rows, groups, N), dense term bits
    (rows, K)) and the residual bits (rows, K), all in the moved-axis-last row layout."""
    moved = np.moveaxis(a, axis, -1)
    rows = np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])
    nrows, k = rows.shape
    integer = np.issubdtype(a.dtype, np.integer)
    bits = rows.view(UINT[a.dtype.itemsize]).tolist()
    mags = [[_mag(x, integer) for x in row] for row in rows]
    out = []
    for n, m in terms:
        groups = -(-k // m)
        idx = [[[0] * n for _ in range(groups)] for _ in range(nrows)]
        vals = [[[0] * n for _ in range(groups)] for _ in range(nrows)]
        dense = [[0] * k for _ in range(nrows)]
        for r in range(nrows):
            for g in range(groups):
                base = g * m

                def key(i):
                    pos = base + i
                    return (0, -mags[r][pos], i) if pos < k else (1, 0, i)

                chosen = sorted(sorted(range(m), key=key)[:n])
                for j, i in enumerate(chosen):
                    idx[r][g][j] = i
                    pos = base + i
                    if pos < k:
                        vals[r][g][j] = bits[r][pos]
                        dense[r][pos] = bits[r][pos]
                        bits[r][pos] = 0
                        mags[r][pos] = 0
        out.append((np.array(idx, dtype=np.int64).reshape(nrows, groups, n),
                    np.array(vals, dtype=np.uint64).reshape(nrows, groups, n),
                    np.array(dense, dtype=np.uint64).reshape(nrows, k)))
    return out, np.array(bits, dtype=np.uint64).reshape(nrows, k)


def as_bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).view(UINT[x.dtype.itemsize]).astype(np.uint64)


def rows_of(x: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(x, axis, -1)
    return np.ascontiguousarray(moved).reshape(-1, moved.shape[-1])


def terms_of(text):
    return [(p.n, p.m) for p in parse_series(text).terms]


# ---------------------------------------------------------------- strategies


SERIES = ["2:4", "1:4", "2:4+1:4", "1:8+1:4", "2:4+1:8", "3:5", "4:8+2:8+1:8", "2:4+2:4", "1:1",
          "1:2+1:3", "3:3", "2:8", "7:8+1:8"]


@st.composite
def pattern_lists(draw):
    if draw(st.booleans()):
        return terms_of(draw(st.sampled_from(SERIES)))
    count = draw(st.integers(1, 3))
    same_m = draw(st.booleans())
    m0 = draw(st.sampled_from([1, 2, 3, 4, 5, 8]))
    out = []
    for _ in range(count):
        m = m0 if same_m else draw(st.sampled_from([1, 2, 3, 4, 5, 8]))
        out.append((draw(st.integers(1, m)), m))
    return out


def _values(dtype):
    if dtype == np.int8:
        return st.one_of(st.integers(-128, 127), st.sampled_from([0, 0, -128, 127, 1, -1]))
    return st.one_of(
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5]),
        st.floats(-1000, 1000, width=16, allow_nan=False, allow_infinity=False),
    )


@st.composite
def tensors(draw, max_dims=4):
    ndim = draw(st.integers(1, max_dims))
    dtype = draw(st.sampled_from(DTYPES))
    cap = {1: 40, 2: 13, 3: 7, 4: 5}[ndim]
    shape = tuple(draw(st.lists(st.integers(1, cap), min_size=ndim, max_size=ndim)))
    size = math.prod(shape)
    vals = draw(st.lists(_values(dtype), min_size=size, max_size=size))
    if dtype == np.int8:
        a = np.array(vals, dtype=np.int8)
    else:
        a = np.array(vals, dtype=np.float32).astype(dtype)
    return a.reshape(shape)


@st.composite
def cases(draw):
    a = draw(tensors())
    axis = draw(st.one_of(st.none(), st.integers(-a.ndim, a.ndim - 1)))
    return a, axis, draw(pattern_lists())


def check_against_reference(a, axis, terms):
    text = "+".join(f"{n}:{m}" for n, m in terms)
    dec = decompose(a, parse_series(text), axis)
    ax = normalize_axis(a.shape, axis)
    ref_terms, ref_residual = reference(a, terms, ax)
    assert dec.axis == ax
    assert dec.shape == a.shape
    assert len(dec.terms) == len(terms)
    for term, (n, m), (idx, vals, dense) in zip(dec.terms, terms, ref_terms):
        assert (term.pattern.n, term.pattern.m) == (n, m)
        assert term.values.dtype == a.dtype
        assert term.values.shape == idx.shape
        np.testing.assert_array_equal(term.indices.astype(np.int64), idx)
        np.testing.assert_array_equal(as_bits(term.values), vals)
        np.testing.assert_array_equal(as_bits(rows_of(term.to_dense(), ax)), dense)
    assert dec.residual.dtype == a.dtype
    assert dec.residual.shape == a.shape
    np.testing.assert_array_equal(as_bits(rows_of(dec.residual, ax)), ref_residual)
    return dec


# ---------------------------------------------------------------- against the reference


@given(cases())
@settings(max_examples=200, deadline=None)
def test_terms_equal_brute_force_bitwise(case):
    a, axis, terms = case
    check_against_reference(a, axis, terms)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4+1:4", "1:8+1:4", "2:4+1:8", "3:5", "4:8+2:8+1:8"])
@pytest.mark.parametrize("shape, axis", [((6, 20), None), ((3, 16, 3, 3), None), ((22,), None),
                                         ((5, 7, 9), 1), ((4, 10, 2, 3), 0), ((9, 6), 0)])
def test_random_tensors_equal_brute_force(dtype, series, shape, axis):
    rng = np.random.default_rng(zlib.crc32(f"{np.dtype(dtype).name} {series} {shape}".encode()))
    if dtype == np.int8:
        a = rng.integers(-128, 128, size=shape).astype(np.int8)
    else:
        a = (rng.standard_normal(shape) * 3).astype(np.float32).astype(dtype)
        a[rng.random(shape) < 0.3] = 0
    check_against_reference(a, axis, terms_of(series))


# ---------------------------------------------------------------- BRIEF properties


@given(tensors(max_dims=3), st.sampled_from([(2, 4), (1, 8), (3, 5), (2, 3)]), st.data())
@settings(max_examples=150, deadline=None)
def test_same_m_series_keeps_the_top_sum_n(a, nm, data):
    """With equal M, a series n1:M+n2:M+... keeps the same elements as the single pattern sum(n):M."""
    n_total, m = nm
    parts, left = [], n_total
    while left:
        p = data.draw(st.integers(1, left))
        parts.append(p)
        left -= p
    series = "+".join(f"{p}:{m}" for p in parts)
    single = decompose(a, parse_series(f"{n_total}:{m}"))
    multi = decompose(a, parse_series(series))
    # same values (a -0.0 left in one residual equals the +0.0 of the other)
    np.testing.assert_array_equal(multi.residual.astype(np.float64), single.residual.astype(np.float64))
    np.testing.assert_array_equal(as_bits(multi.approximation(a)), as_bits(single.approximation(a)))
    # and exactly the top sum(N) of each group by the reference
    (idx, vals, dense), = reference(a, [(n_total, m)], normalize_axis(a.shape, None))[0]
    summed = sum(rows_of(t.to_dense(), multi.axis).astype(np.float64) for t in multi.terms)
    expect = rows_of(a, multi.axis).astype(np.float64) * (dense != 0)
    ref_kept = np.zeros_like(expect)
    flat_a = rows_of(a, multi.axis).astype(np.float64)
    k = flat_a.shape[1]
    for r in range(idx.shape[0]):
        for g in range(idx.shape[1]):
            for i in idx[r, g]:
                if g * m + i < k:
                    ref_kept[r, g * m + i] = flat_a[r, g * m + i]
    np.testing.assert_array_equal(summed, ref_kept)
    np.testing.assert_array_equal(summed, expect)


def test_2_4_plus_1_4_equals_3_4_example():
    a = np.array([[0.1, -5.0, 3.0, 0.2, 7.0, 1.0, -1.5, 2.0]], dtype=np.float32)
    dec = decompose(a, parse_series("2:4+1:4"))
    np.testing.assert_array_equal(dec.approximation(a), np.float32([[0, -5.0, 3.0, 0.2, 7.0, 0, -1.5, 2.0]]))
    np.testing.assert_array_equal(dec.residual, np.float32([[0.1, 0, 0, 0, 0, 1.0, 0, 0]]))
    np.testing.assert_array_equal(dec.terms[0].indices, [[[1, 2], [0, 3]]])
    np.testing.assert_array_equal(dec.terms[1].indices, [[[3], [2]]])


@given(tensors(max_dims=3), st.sampled_from(["2:4+1:4", "1:4+1:4", "2:8+1:8", "4:8+2:8+1:8", "1:5+2:5", "2:4"]),
       st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_lossless_when_groups_have_at_most_sum_n_nonzeros(a, series, rnd):
    s = parse_series(series)
    m = s.terms[0].m
    budget = sum(p.n for p in s.terms)
    rows = rows_of(a, a.ndim - 1).copy()
    for r in range(rows.shape[0]):
        for g in range(0, rows.shape[1], m):
            slots = list(range(g, min(g + m, rows.shape[1])))
            rnd.shuffle(slots)
            for pos in slots[budget:]:
                rows[r, pos] = 0
    sparse = rows.reshape(a.shape)
    dec = decompose(sparse, s)
    assert not np.any(dec.residual != 0)
    np.testing.assert_array_equal(dec.approximation(sparse), sparse)
    total = sum(t.to_dense().astype(np.float64) for t in dec.terms)
    np.testing.assert_array_equal(total, sparse.astype(np.float64))


@given(tensors())
@settings(max_examples=100, deadline=None)
def test_2_4_plus_2_4_is_exact_for_any_tensor(a):
    dec = decompose(a, parse_series("2:4+2:4"))
    assert not np.any(dec.residual != 0)
    total = sum(t.to_dense().astype(np.float64) for t in dec.terms)
    np.testing.assert_array_equal(total, a.astype(np.float64))
    np.testing.assert_array_equal(as_bits(dec.approximation(a)), as_bits(a))


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape, n, m, axis", [
    ((8, 16), 2, 4, -1), ((8, 18), 2, 4, -1), ((5, 24), 1, 8, 1), ((4, 8, 3, 3), 2, 4, 1),
    ((4, 10, 3, 3), 4, 8, 1), ((9, 7), 3, 5, 0), ((3, 6, 5), 1, 2, 2), ((31,), 2, 4, 0),
])
def test_nm_sparse_tensor_is_one_exact_term(dtype, shape, n, m, axis):
    a = nm_sparse(shape, n, m, seed=3, axis=axis, dtype=dtype)
    dec = decompose(a, parse_series(f"{n}:{m}"), axis)
    assert not np.any(dec.residual != 0)
    assert len(dec.terms) == 1
    np.testing.assert_array_equal(as_bits(dec.terms[0].to_dense()), as_bits(a))
    assert dec.terms[0].nnz == np.count_nonzero(a)


@given(st.integers(1, 5), st.integers(1, 30), st.sampled_from(["2:4", "1:4+1:4", "3:8+1:8", "2:3", "1:8+1:4"]),
       st.sampled_from(DTYPES))
@settings(max_examples=100, deadline=None)
def test_ties_go_to_the_lowest_index(rows, k, series, dtype):
    a = np.full((rows, k), 3, dtype=dtype)
    dec = decompose(a, parse_series(series))
    taken = np.zeros(k, dtype=bool)
    for term in dec.terms:
        n, m = term.pattern.n, term.pattern.m
        for g in range(-(-k // m)):
            base = g * m
            free = [i for i in range(m) if base + i < k and not taken[base + i]]
            width = min(m, k - base)
            # untaken real slots first (in index order), then already-taken real slots (magnitude 0),
            # then padded slots
            order = free + [i for i in range(width) if i not in free] + list(range(width, m))
            expect = sorted(order[:n])
            for r in range(rows):
                assert term.indices[r, g].tolist() == expect
            for i in expect:
                if base + i < k:
                    taken[base + i] = True


def test_ties_all_equal_example():
    a = np.ones((2, 8), dtype=np.float32)
    dec = decompose(a, parse_series("2:4+1:4"))
    assert dec.terms[0].indices.tolist() == [[[0, 1], [0, 1]]] * 2
    assert dec.terms[1].indices.tolist() == [[[2], [2]]] * 2
    np.testing.assert_array_equal(dec.residual, [[0, 0, 0, 1, 0, 0, 0, 1]] * 2)
    b = np.array([[-2, 2, -2, 2]], dtype=np.float16)
    d = decompose(b, parse_series("1:4"))
    assert d.terms[0].indices.tolist() == [[[0]]]
    assert d.terms[0].values.tolist() == [[[-2.0]]]


@pytest.mark.parametrize("row, series, kept", [
    ([127, -128, 0, 1], "1:4", [1]),
    ([-128, 127, -127, 126], "1:4", [0]),
    ([126, 127, -127, -128], "1:4", [3]),
    ([-127, 127, 5, -128], "2:4", [0, 3]),
    ([1, 2, -128, 127, 0, 0, 0, -128], "1:8", [2]),
])
def test_int8_minus_128_has_magnitude_128(row, series, kept):
    a = np.array([row], dtype=np.int8)
    dec = decompose(a, parse_series(series))
    assert dec.terms[0].indices[0, 0].tolist() == kept
    assert dec.terms[0].values[0, 0].tolist() == [row[i] for i in kept]
    assert dec.terms[0].values.dtype == np.int8


def test_int8_minus_128_goes_first_in_a_series():
    a = np.array([[127, -128, 127, -128, -127, 100, 1, 0]], dtype=np.int8)
    dec = decompose(a, parse_series("1:8+1:8+1:8"))
    assert [t.values[0, 0, 0] for t in dec.terms] == [-128, -128, 127]
    assert [t.indices[0, 0, 0] for t in dec.terms] == [1, 3, 0]  # 127 at 0 and 2, -127 at 4: 0 wins
    np.testing.assert_array_equal(dec.residual, [[0, 0, 127, 0, -127, 100, 1, 0]])


@pytest.mark.parametrize("k, series", [(1, "2:4"), (3, "2:4"), (5, "2:4"), (7, "1:8+1:4"), (9, "4:8+2:8+1:8"),
                                        (6, "3:5"), (2, "2:3+1:3"), (13, "2:4+1:8")])
def test_k_not_divisible_by_m(k, series):
    rng = np.random.default_rng(k)
    a = rng.standard_normal((4, k)).astype(np.float32)
    dec = check_against_reference(a, None, terms_of(series))
    for term in dec.terms:
        n, m = term.pattern.n, term.pattern.m
        groups = -(-k // m)
        assert term.values.shape == (4, groups, n)
        width = k - (groups - 1) * m
        last = term.indices[:, -1, :]
        assert np.all(np.diff(term.indices.astype(int), axis=-1) > 0)  # increasing, distinct
        # padded slots are only chosen when the real part is smaller than N, and then hold 0
        padded = last >= width
        assert padded.sum(axis=1).tolist() == [max(0, n - width)] * 4
        assert np.all(term.values[:, -1, :][padded] == 0)
        assert term.to_dense().shape == a.shape


@given(cases())
@settings(max_examples=150, deadline=None)
def test_approximation_plus_residual_is_a_exactly(case):
    a, axis, terms = case
    text = "+".join(f"{n}:{m}" for n, m in terms)
    dec = decompose(a, parse_series(text), axis)
    a_hat = dec.approximation(a)
    assert a_hat.dtype == a.dtype
    assert np.all(a_hat + dec.residual == a)
    # at every position one of them is zero
    assert not np.any((a_hat != 0) & (dec.residual != 0))
    # A_hat is the sum of the terms, exactly
    total = sum(t.to_dense().astype(np.float64) for t in dec.terms)
    np.testing.assert_array_equal(total, a_hat.astype(np.float64))
    # the input is not modified
    assert a.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.int8, BF16], ids=lambda d: np.dtype(d).name)
def test_many_rows_use_several_chunks(dtype):
    """More than 256 rows: several row chunks on the parallel kernel."""
    rng = np.random.default_rng(7)
    a = (rng.standard_normal((700, 12)) * 40).astype(np.float32)
    a[rng.random(a.shape) < 0.3] = 0
    a = a.astype(dtype) if dtype != np.int8 else np.clip(a, -128, 127).astype(np.int8)
    check_against_reference(a, None, terms_of("2:4+1:8"))
    check_against_reference(a, 0, terms_of("3:5"))


def test_input_is_not_modified():
    a = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    before = a.copy()
    decompose(a, parse_series("2:4+1:4"))
    np.testing.assert_array_equal(a, before)


def test_non_contiguous_input():
    base = np.random.default_rng(1).standard_normal((8, 32)).astype(np.float32)
    a = base[::2, ::3]
    assert not a.flags.c_contiguous
    check_against_reference(a, None, terms_of("2:4+1:8"))
    check_against_reference(np.asfortranarray(base), 0, terms_of("2:4"))


# ---------------------------------------------------------------- axes


@pytest.mark.parametrize("shape, axis", [((5,), 0), ((3, 8), 1), ((2, 3, 8), 2), ((4, 8, 3, 3), 1),
                                         ((2, 2, 2, 2, 4), 4)])
def test_default_axis(shape, axis):
    a = np.arange(math.prod(shape), dtype=np.float32).reshape(shape) - 7
    dec = decompose(a, parse_series("1:2"))
    assert dec.axis == axis
    assert normalize_axis(shape, None) == axis
    expect = decompose(a, parse_series("1:2"), axis)
    np.testing.assert_array_equal(dec.residual, expect.residual)


def test_default_axis_for_conv_groups_input_channels():
    """A (Cout, Cin, Kh, Kw) weight is grouped along Cin at fixed (cout, kh, kw)."""
    a = np.zeros((2, 4, 2, 2), dtype=np.float32)
    a[0, :, 1, 0] = [1, 4, 2, 3]
    a[1, :, 0, 1] = [5, -6, 7, 0]
    dec = decompose(a, parse_series("2:4"))
    kept = dec.approximation(a)
    np.testing.assert_array_equal(kept[0, :, 1, 0], [0, 4, 0, 3])
    np.testing.assert_array_equal(kept[1, :, 0, 1], [0, -6, 7, 0])
    assert dec.terms[0].values.shape == (2 * 2 * 2, 1, 2)


@pytest.mark.parametrize("shape, axis, norm", [((3, 8), -1, 1), ((3, 8), -2, 0), ((4, 8, 3, 3), -3, 1),
                                               ((4, 8, 3, 3), 3, 3)])
def test_negative_and_explicit_axes(shape, axis, norm):
    assert normalize_axis(shape, axis) == norm
    a = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    assert decompose(a, parse_series("1:4"), axis).axis == norm


@pytest.mark.parametrize("shape, axis", [((3, 8), 2), ((3, 8), -3), ((8,), 1), ((2, 3, 4, 5), 4),
                                         ((2, 3, 4, 5), -5)])
def test_bad_axis_is_an_error(shape, axis):
    a = np.ones(shape, dtype=np.float32)
    with pytest.raises(TasdsimError, match=f"axis {axis} is out of range"):
        decompose(a, parse_series("2:4"), axis)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_input_is_an_error(dtype, bad):
    a = np.ones((2, 8), dtype=np.float32)
    a[1, 3] = bad
    with pytest.raises(TasdsimError, match="NaN or infinite"):
        decompose(a.astype(dtype), parse_series("2:4"))


def test_finite_float64_beyond_float32_range_is_accepted():
    """float64 is an accepted dtype; a finite value above float32's range is not infinite."""
    a = np.array([[1e300, 2.0, -3e299, 4.0]], dtype=np.float64)
    dec = decompose(a, parse_series("2:4"))
    np.testing.assert_array_equal(dec.approximation(a), [[1e300, 0, -3e299, 0]])


@pytest.mark.parametrize("shape", [(0,), (0, 4), (4, 0), (2, 0, 3, 3)])
def test_empty_tensor_is_an_error(shape):
    with pytest.raises(TasdsimError, match="empty tensor"):
        decompose(np.zeros(shape, dtype=np.float32), parse_series("2:4"))


def test_scalar_is_an_error():
    with pytest.raises(TasdsimError, match="scalar"):
        decompose(np.float32(3.0), parse_series("2:4"))


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.complex64, np.uint16])
def test_unsupported_dtype_is_an_error(dtype):
    with pytest.raises(TasdsimError, match="unsupported tensor dtype"):
        decompose(np.ones((2, 4), dtype=dtype), parse_series("2:4"))


def test_wider_reference_dtypes_are_accepted():
    for dtype in (np.float64, np.int16, np.int32, np.int64):
        a = np.array([[3, -9, 1, 4, -2, 8, 8, 0]], dtype=dtype)
        check_against_reference(a, None, terms_of("1:4+1:8"))
