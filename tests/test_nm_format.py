"""Compressed N:M format: metadata bit packing, exact byte sizes, dense round trips and term files."""
import math
import zipfile

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.traces.decompose import decompose
from tasdsim.common import TasdsimError
from tasdsim.traces.nm_format import (
    CompressedTerm,
    check_dtype,
    from_rows,
    load_terms,
    pack_metadata,
    save_terms,
    to_rows,
    unpack_metadata,
)
from tasdsim.traces.patterns import Pattern, parse_series


BF16 = np.dtype(ml_dtypes.bfloat16)
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32}


def bits_of(x):
    return np.ascontiguousarray(x).view(UINT[x.dtype.itemsize])


def sample(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.int8:
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    return (rng.standard_normal(shape) * 4).astype(np.float32).astype(dtype)


# ---------------------------------------------------------------- metadata packing


@given(st.integers(1, 8).flatmap(lambda b: st.tuples(
    st.just(b), st.lists(st.integers(0, 2 ** b - 1), min_size=0, max_size=300))))
@settings(max_examples=200, deadline=None)
def test_pack_unpack_round_trip(case):
    bits, values = case
    indices = np.array(values, dtype=np.uint8)
    packed = pack_metadata(indices, bits)
    assert packed.dtype == np.uint8
    assert packed.size == math.ceil(len(values) * bits / 8)
    back = unpack_metadata(packed, bits, len(values))
    assert back.tolist() == values


@given(st.integers(1, 8), st.lists(st.integers(0, 255), min_size=1, max_size=40))
@settings(max_examples=100, deadline=None)
def test_packing_is_a_little_endian_bit_stream(bits, raw):
    values = [v % (2 ** bits) for v in raw]
    packed = pack_metadata(np.array(values, dtype=np.uint8), bits)
    stream = sum(v << (i * bits) for i, v in enumerate(values))
    assert int.from_bytes(packed.tobytes(), "little") == stream


def test_packing_examples():
    assert pack_metadata(np.array([1, 2, 3, 0]), 2).tolist() == [1 | 2 << 2 | 3 << 4]
    assert pack_metadata(np.array([1]), 2).tolist() == [1]
    assert pack_metadata(np.array([7, 7, 7]), 3).tolist() == [0xFF, 0x01]
    assert pack_metadata(np.array([5, 1, 2]), 3).tolist() == [5 | 1 << 3 | (2 & 3) << 6, 2 >> 2]
    assert pack_metadata(np.array([255, 0, 128]), 8).tolist() == [255, 0, 128]
    indices = np.array([[[0, 3], [1, 2]], [[2, 3], [0, 1]]])
    assert pack_metadata(indices, 2).tolist() == [0 | 3 << 2 | 1 << 4 | 2 << 6, 2 | 3 << 2 | 0 << 4 | 1 << 6]


def test_zero_bits_is_no_metadata():
    assert pack_metadata(np.zeros(10, dtype=np.uint8), 0).size == 0
    assert unpack_metadata(np.zeros(0, dtype=np.uint8), 0, 7).tolist() == [0] * 7


@pytest.mark.parametrize("size, bits, count", [(1, 2, 8), (3, 2, 8), (0, 3, 1), (1, 3, 3), (3, 3, 3), (4, 8, 3)])
def test_unpack_wrong_size_is_an_error(size, bits, count):
    with pytest.raises(TasdsimError, match=f"metadata has {size} bytes, expected"):
        unpack_metadata(np.zeros(size, dtype=np.uint8), bits, count)


# ---------------------------------------------------------------- byte sizes


def test_2_4_on_16x16_fp16_sizes_by_hand():
    a = sample((16, 16), np.float16)
    term = decompose(a, parse_series("2:4")).terms[0]
    assert term.values.shape == (16, 4, 2)
    assert term.value_bytes == 16 * 4 * 2 * 2 == 256
    assert term.metadata_bytes == 16 * 4 * 2 * 2 // 8 == 32
    assert term.packed_metadata().size == 32


def test_1_8_on_8x16_fp32_sizes_by_hand():
    term = decompose(sample((8, 16), np.float32), parse_series("1:8")).terms[0]
    assert term.value_bytes == 8 * 2 * 1 * 4 == 64
    assert term.metadata_bytes == math.ceil(8 * 2 * 1 * 3 / 8) == 6
    assert term.packed_metadata().size == 6


def test_3_5_on_int8_with_padding_sizes_by_hand():
    # K = 7: two groups of 5 (the last padded), 3 slots each, 3 bits per index: 18 * 3 = 54 bits = 7 bytes
    term = decompose(sample((3, 7), np.int8), parse_series("3:5")).terms[0]
    assert term.values.shape == (3, 2, 3)
    assert term.value_bytes == 18
    assert term.metadata_bytes == 7
    assert term.packed_metadata().size == 7


def test_conv_weight_sizes_by_hand():
    # (Cout, Cin, Kh, Kw) = (2, 8, 3, 3) along Cin: rows 2*3*3 = 18, groups 2, N 2, bf16 2 bytes
    term = decompose(sample((2, 8, 3, 3), BF16), parse_series("2:4")).terms[0]
    assert term.values.shape == (18, 2, 2)
    assert term.value_bytes == 18 * 2 * 2 * 2 == 144
    assert term.metadata_bytes == 18 * 2 * 2 * 2 // 8 == 18


def test_dense_1_1_has_no_metadata():
    term = decompose(sample((4, 5), np.float32), parse_series("dense")).terms[0]
    assert term.pattern == Pattern(1, 1)
    assert term.metadata_bytes == 0
    assert term.value_bytes == 4 * 5 * 4
    assert term.packed_metadata().size == 0


@pytest.mark.parametrize("dtype", [np.int8, np.float16, BF16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4+1:4", "4:8+2:8+1:8", "1:8+1:4", "3:5", "7:16", "1:256"])
@pytest.mark.parametrize("shape, axis", [((6, 20), 1), ((3, 10, 2, 2), 1), ((11, 3), 0), ((37,), 0)])
def test_byte_size_formulas(dtype, series, shape, axis):
    a = sample(shape, dtype)
    dec = decompose(a, parse_series(series), axis)
    k = shape[axis]
    rows = math.prod(shape) // k
    itemsize = np.dtype(dtype).itemsize
    for term in dec.terms:
        n, m = term.pattern.n, term.pattern.m
        groups = math.ceil(k / m)
        assert term.k == k
        assert term.value_bytes == rows * groups * n * itemsize
        assert term.metadata_bytes == math.ceil(rows * groups * n * math.ceil(math.log2(m)) / 8)
        assert term.packed_metadata().size == term.metadata_bytes
        assert term.nnz == np.count_nonzero(term.to_dense())


# ---------------------------------------------------------------- dense round trips


@pytest.mark.parametrize("dtype", [np.int8, np.float16, BF16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series, shape, axis", [
    ("2:4+1:4", (6, 20), None), ("1:8+1:4", (3, 12, 3, 3), None), ("3:5", (7, 9), 0), ("2:4+1:8", (2, 3, 13), 2),
])
def test_to_dense_and_from_packed_round_trip(dtype, series, shape, axis):
    a = sample(shape, dtype, seed=5)
    a[..., ::3] = 0
    dec = decompose(a, parse_series(series), axis)
    total = np.zeros(shape, dtype=np.float64)
    for term in dec.terms:
        dense = term.to_dense()
        assert dense.shape == a.shape
        assert dense.dtype == a.dtype
        # kept positions hold the original value; the term has at most N non-zeros per group
        nz = dense != 0
        assert np.all(dense[nz] == a[nz])
        rows = to_rows(dense, dec.axis)
        m = term.pattern.m
        pad = (-rows.shape[1]) % m
        grouped = np.pad(rows, ((0, 0), (0, pad))).reshape(rows.shape[0], -1, m)
        assert np.count_nonzero(grouped, axis=2).max() <= term.pattern.n
        total += dense.astype(np.float64)
        again = CompressedTerm.from_packed(term.pattern, term.shape, term.axis, term.values,
                                           term.packed_metadata())
        np.testing.assert_array_equal(again.indices, term.indices)
        np.testing.assert_array_equal(bits_of(again.to_dense()), bits_of(dense))
    np.testing.assert_array_equal(total, dec.approximation(a).astype(np.float64))


@pytest.mark.parametrize("shape, axis", [((3, 5), 0), ((3, 5), 1), ((2, 3, 4, 5), 1), ((2, 3, 4, 5), 3), ((7,), 0)])
def test_to_rows_from_rows_inverse(shape, axis):
    a = np.arange(math.prod(shape)).reshape(shape)
    rows = to_rows(a, axis)
    assert rows.shape == (math.prod(shape) // shape[axis], shape[axis])
    np.testing.assert_array_equal(rows, np.moveaxis(a, axis, -1).reshape(-1, shape[axis]))
    np.testing.assert_array_equal(from_rows(rows, shape, axis), a)


def test_from_packed_wrong_values_shape():
    values = np.zeros((4, 4, 3), dtype=np.float32)
    with pytest.raises(TasdsimError, match=r"term 2:4: values have shape \(4, 4, 3\), expected \(4, 4, 2\)"):
        CompressedTerm.from_packed(Pattern(2, 4), (4, 16), 1, values, np.zeros(8, dtype=np.uint8))


def test_from_packed_wrong_metadata_size():
    values = np.zeros((4, 4, 2), dtype=np.float32)
    with pytest.raises(TasdsimError, match="metadata has 7 bytes, expected 8"):
        CompressedTerm.from_packed(Pattern(2, 4), (4, 16), 1, values, np.zeros(7, dtype=np.uint8))


def test_from_packed_index_not_below_m():
    values = np.zeros((1, 2, 3), dtype=np.float32)
    metadata = pack_metadata(np.array([0, 1, 2, 0, 1, 7]), 3)  # 7 >= M = 5
    with pytest.raises(TasdsimError, match="metadata index 7 is not below M=5"):
        CompressedTerm.from_packed(Pattern(3, 5), (1, 10), 1, values, metadata)


def test_from_packed_valid_example():
    values = np.array([[[5.0, -1.0], [2.0, 3.0]]], dtype=np.float32)
    metadata = pack_metadata(np.array([1, 3, 0, 2]), 2)
    term = CompressedTerm.from_packed(Pattern(2, 4), (1, 8), 1, values, metadata)
    np.testing.assert_array_equal(term.to_dense(), np.float32([[0, 5, 0, -1, 2, 0, 3, 0]]))
    assert term.nnz == 4


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.complex64])
def test_check_dtype_rejects(dtype):
    with pytest.raises(TasdsimError, match="unsupported tensor dtype"):
        check_dtype(np.dtype(dtype))


# ---------------------------------------------------------------- term files


@pytest.mark.parametrize("dtype", [np.int8, np.float16, BF16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series, shape, axis", [
    ("2:4+1:4", (8, 16), 1), ("4:8+2:8+1:8", (4, 8, 3, 3), 1), ("2:4+1:8", (5, 13), 1), ("3:5", (9, 4), 0),
    ("dense", (3, 3), 1),
])
def test_save_load_round_trip(tmp_path, dtype, series, shape, axis):
    a = sample(shape, dtype, seed=11)
    dec = decompose(a, parse_series(series), axis)
    path = str(tmp_path / "terms.npz")
    save_terms(path, dec.terms, series)
    loaded = load_terms(path)
    assert len(loaded) == len(dec.terms)
    with np.load(path) as data:
        assert str(data["series"]) == series
    for got, want in zip(loaded, dec.terms):
        assert got.pattern == want.pattern
        assert got.shape == tuple(shape)
        assert got.axis == axis
        assert got.values.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(bits_of(got.values), bits_of(want.values))
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(bits_of(got.to_dense()), bits_of(want.to_dense()))
    approx = sum(t.to_dense().astype(np.float64) for t in loaded)
    np.testing.assert_array_equal(approx, dec.approximation(a).astype(np.float64))


def test_load_garbage_file_is_an_error(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not an npz file at all" * 10)
    with pytest.raises(TasdsimError, match="not a term file"):
        load_terms(str(path))


def test_load_truncated_file_is_an_error(tmp_path):
    dec = decompose(sample((8, 16), np.float32), parse_series("2:4+1:4"))
    good = tmp_path / "good.npz"
    save_terms(str(good), dec.terms, "2:4+1:4")
    data = good.read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(TasdsimError, match="truncated.npz"):
        load_terms(str(bad))


def test_load_missing_file_is_an_error(tmp_path):
    with pytest.raises(TasdsimError, match="not a term file"):
        load_terms(str(tmp_path / "nope.npz"))


def test_load_npz_without_term_keys_is_an_error(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(TasdsimError, match="not a term file"):
        load_terms(str(path))


def test_load_file_with_inconsistent_metadata_is_an_error(tmp_path):
    dec = decompose(sample((4, 16), np.float32), parse_series("2:4"))
    path = tmp_path / "t.npz"
    save_terms(str(path), dec.terms, "2:4")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["term0.metadata"] = arrays["term0.metadata"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(TasdsimError, match="metadata has"):
        load_terms(str(path))


def test_save_to_unwritable_path_is_an_error(tmp_path):
    dec = decompose(sample((4, 16), np.float32), parse_series("2:4"))
    with pytest.raises(TasdsimError, match="cannot write"):
        save_terms(str(tmp_path / "no" / "such" / "dir.npz"), dec.terms, "2:4")


def test_saved_file_is_a_plain_npz(tmp_path):
    dec = decompose(sample((4, 16), BF16), parse_series("2:4+1:4"))
    path = tmp_path / "t.npz"
    save_terms(str(path), dec.terms, "2:4+1:4")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
    assert {"series.npy", "shape.npy", "axis.npy", "dtype.npy", "term0.pattern.npy", "term0.values.npy",
            "term0.metadata.npy", "term1.values.npy"} <= names
    with np.load(path, allow_pickle=False) as data:
        assert str(data["dtype"]) == "bfloat16"
        assert data["term0.values"].dtype == np.uint16
        assert data["term0.metadata"].dtype == np.uint8
        assert data["shape"].tolist() == [4, 16]


@pytest.mark.parametrize("field, value", [
    ("axis", np.array(5)),
    ("shape", np.array([8, 0])),
    ("dtype", np.array("foo")),
    ("term0.pattern", np.array("5:4")),
    ("term0.metadata", np.zeros(8, dtype=np.int64)),
], ids=["axis-out-of-range", "zero-length-axis", "unknown-dtype", "bad-pattern", "metadata-not-bytes"])
def test_load_corrupt_term_fields_is_an_error(tmp_path, field, value):
    """A term file with a bad field is a TasdsimError naming the file, not a crash."""
    dec = decompose(sample((8, 16), np.float32), parse_series("2:4"))
    path = tmp_path / "corrupt.npz"
    save_terms(str(path), dec.terms, "2:4")
    with np.load(path) as data:
        arrays = dict(data)
    arrays[field] = value
    np.savez(path, **arrays)
    with pytest.raises(TasdsimError, match="corrupt.npz"):
        load_terms(str(path))
