"""Quality metrics of a TASD approximation against direct float64 numpy formulas."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.traces.decompose import decompose
from tasdsim.common import TasdsimError
from tasdsim.traces.metrics import (
    ERROR_METRICS,
    KEPT_METRICS,
    METRICS,
    density,
    kept_magnitude,
    output_error,
    quality,
    reduction_size,
    relative_error,
    relative_error_from_residual,
)
from tasdsim.traces.patterns import parse_series


BF16 = np.dtype(ml_dtypes.bfloat16)


def make(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.int8:
        a = rng.integers(-128, 128, size=shape).astype(np.int8)
    else:
        a = (rng.standard_normal(shape) * 2).astype(np.float32).astype(dtype)
    a[rng.random(shape) < 0.2] = 0
    return a


def ref_relative_error(a, a_hat):
    a, a_hat = a.astype(np.float64), a_hat.astype(np.float64)
    norm = np.sqrt((a ** 2).sum())
    return 0.0 if norm == 0 else np.sqrt(((a - a_hat) ** 2).sum()) / norm


def ref_kept(a, a_hat):
    total = np.abs(a.astype(np.float64)).sum()
    return 1.0 if total == 0 else np.abs(a_hat.astype(np.float64)).sum() / total


def ref_output_error(a, a_hat, b, axis):
    a, a_hat, b = a.astype(np.float64), a_hat.astype(np.float64), b.astype(np.float64)
    if a.ndim == 4 and axis == 1:
        flat, flat_hat = a.reshape(a.shape[0], -1), a_hat.reshape(a.shape[0], -1)
    else:
        flat = np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])
        flat_hat = np.moveaxis(a_hat, axis, -1).reshape(-1, a.shape[axis])
    ref = np.einsum("rk,ks->rs", flat, b)
    err = np.einsum("rk,ks->rs", flat - flat_hat, b)
    norm = np.sqrt((ref ** 2).sum())
    return 0.0 if norm == 0 else np.sqrt((err ** 2).sum()) / norm


def conv_output_error(w, w_hat, x):
    """The conv's own view: out[co, s] = sum_{ci,kh,kw} w[co,ci,kh,kw] * x[ci,kh,kw,s]."""
    w, w_hat = w.astype(np.float64), w_hat.astype(np.float64)
    xs = x.astype(np.float64).reshape(w.shape[1], w.shape[2], w.shape[3], -1)
    ref = np.einsum("oihw,ihws->os", w, xs)
    err = np.einsum("oihw,ihws->os", w - w_hat, xs)
    return np.linalg.norm(err) / np.linalg.norm(ref)


def test_metric_names():
    assert set(METRICS) == set(KEPT_METRICS) | set(ERROR_METRICS)
    assert set(ERROR_METRICS) == {"relative_error", "output_error"}
    assert {"density", "compute_density", "kept_magnitude"} == set(KEPT_METRICS)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4", "1:4", "2:4+1:4", "1:8+1:4", "4:8+2:8+1:8", "2:4+2:4", "3:5"])
def test_quality_2d_against_numpy(dtype, series):
    a = make((12, 40), dtype, seed=1)
    b = np.random.default_rng(2).standard_normal((40, 9))
    s = parse_series(series)
    dec = decompose(a, s)
    a_hat = dec.approximation(a)
    q = quality(a, dec, b)
    assert set(q) == {"density", "compute_density", "relative_error", "kept_magnitude", "output_error"}
    assert q["density"] == pytest.approx(np.count_nonzero(a_hat) / a.size, rel=1e-12)
    assert q["compute_density"] == pytest.approx(sum(p.n / p.m for p in s.terms), rel=1e-12)
    assert q["relative_error"] == pytest.approx(ref_relative_error(a, a_hat), rel=1e-9, abs=1e-15)
    assert q["kept_magnitude"] == pytest.approx(ref_kept(a, a_hat), rel=1e-9)
    assert q["output_error"] == pytest.approx(ref_output_error(a, a_hat, b, 1), rel=1e-9, abs=1e-15)
    assert all(isinstance(v, float) for v in q.values())
    if series == "2:4+2:4":
        assert q["relative_error"] == 0 and q["kept_magnitude"] == 1 and q["output_error"] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4", "2:4+1:4", "1:8+1:4", "2:8+1:8"])
def test_quality_4d_conv_weight_against_numpy(dtype, series):
    w = make((6, 16, 3, 3), dtype, seed=3)
    x = np.random.default_rng(4).standard_normal((16 * 3 * 3, 7))
    dec = decompose(w, parse_series(series))
    assert dec.axis == 1
    w_hat = dec.approximation(w)
    q = quality(w, dec, x)
    assert q["density"] == pytest.approx(np.count_nonzero(w_hat) / w.size, rel=1e-12)
    assert q["relative_error"] == pytest.approx(ref_relative_error(w, w_hat), rel=1e-9)
    assert q["kept_magnitude"] == pytest.approx(ref_kept(w, w_hat), rel=1e-9)
    assert q["output_error"] == pytest.approx(ref_output_error(w, w_hat, x, 1), rel=1e-9)
    assert q["output_error"] == pytest.approx(conv_output_error(w, w_hat, x), rel=1e-9)


@given(st.integers(1, 8), st.integers(1, 12), st.integers(1, 5), st.integers(0, 2 ** 16),
       st.sampled_from(["2:4", "1:2+1:4", "3:5", "1:3"]))
@settings(max_examples=100, deadline=None)
def test_metrics_2d_any_axis(rows, k, samples, seed, series):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, k)).astype(np.float32)
    a[rng.random(a.shape) < 0.3] = 0
    for axis in (0, 1):
        dec = decompose(a, parse_series(series), axis)
        a_hat = dec.approximation(a)
        b = rng.standard_normal((a.shape[axis], samples))
        q = quality(a, dec, b)
        assert q["relative_error"] == pytest.approx(ref_relative_error(a, a_hat), rel=1e-9, abs=1e-12)
        assert q["kept_magnitude"] == pytest.approx(ref_kept(a, a_hat), rel=1e-9)
        assert q["output_error"] == pytest.approx(ref_output_error(a, a_hat, b, axis), rel=1e-9, abs=1e-12)
        assert 0 <= q["relative_error"] <= 1 + 1e-12
        assert 0 <= q["kept_magnitude"] <= 1 + 1e-12
        padded = any(a.shape[axis] % t.pattern.m for t in dec.terms)
        assert q["density"] <= q["compute_density"] + 1e-12 or padded


def test_direct_functions_examples():
    a = np.array([[3.0, -4.0, 0.0, 0.0]])
    a_hat = np.array([[3.0, 0.0, 0.0, 0.0]])
    assert relative_error(a, a_hat) == pytest.approx(4 / 5)
    assert kept_magnitude(a, a_hat) == pytest.approx(3 / 7)
    assert density(a_hat) == 0.25
    b = np.array([[1.0], [1.0], [5.0], [7.0]])
    assert output_error(a, a_hat, b, 1) == pytest.approx(4 / 1)  # |(-4)| / |3 - 4|


def test_metrics_are_computed_in_float64():
    # fp16 values whose squares overflow fp16 still give the right ratio
    a = np.array([[300.0, 400.0, 0.0, 0.0]], dtype=np.float16)
    a_hat = np.array([[300.0, 0.0, 0.0, 0.0]], dtype=np.float16)
    assert relative_error(a, a_hat) == pytest.approx(0.8)
    i8 = np.array([[-128, 127, 0, 0]], dtype=np.int8)
    i8_hat = np.array([[-128, 0, 0, 0]], dtype=np.int8)
    assert kept_magnitude(i8, i8_hat) == pytest.approx(128 / 255)
    assert relative_error(i8, i8_hat) == pytest.approx(127 / np.hypot(128, 127))


@pytest.mark.parametrize("shape", [(4, 8), (2, 8, 3, 3)])
def test_zero_tensor_edge_cases(shape):
    z = np.zeros(shape, dtype=np.float32)
    assert relative_error(z, z) == 0.0
    assert kept_magnitude(z, z) == 1.0
    assert density(z) == 0.0
    k = reduction_size(shape, 1)
    b = np.ones((k, 3))
    assert output_error(z, z, b, 1) == 0.0
    dec = decompose(z, parse_series("2:4"))
    q = quality(z, dec, b)
    assert q == {"density": 0.0, "compute_density": 0.5, "relative_error": 0.0, "kept_magnitude": 1.0,
                 "output_error": 0.0}


def test_zero_output_reference_gives_zero_output_error():
    a = np.array([[1.0, -1.0, 0.0, 0.0]], dtype=np.float32)
    b = np.ones((4, 2))  # A.B = 0
    assert output_error(a, np.zeros_like(a), b, 1) == 0.0


def test_quality_without_samples_has_no_output_error():
    a = make((4, 8), np.float32, seed=9)
    q = quality(a, decompose(a, parse_series("2:4")))
    assert "output_error" not in q
    assert set(q) == {"density", "compute_density", "relative_error", "kept_magnitude"}


@pytest.mark.parametrize("shape, axis, size", [((4, 8), 1, 8), ((4, 8), 0, 4), ((6, 16, 3, 3), 1, 144),
                                               ((6, 16, 3, 3), 0, 6), ((5,), 0, 5), ((2, 3, 7), 2, 7)])
def test_reduction_size(shape, axis, size):
    assert reduction_size(shape, axis) == size


def test_output_error_wrong_sample_rows():
    a = make((6, 16, 3, 3), np.float32, seed=1)
    with pytest.raises(TasdsimError, match="sample inputs have 16 rows, expected 144"):
        output_error(a, a, np.ones((16, 3)), 1)
    with pytest.raises(TasdsimError, match="expected 8"):
        output_error(np.ones((3, 8)), np.ones((3, 8)), np.ones((3, 2)), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4", "1:8+1:4", "3:5", "2:4+2:4"])
def test_relative_error_from_residual(dtype, series):
    a = make((6, 2, 10), dtype, seed=7)
    dec = decompose(a, parse_series(series))
    ref = ref_relative_error(a, dec.approximation(a))
    assert relative_error_from_residual(a, dec.residual) == pytest.approx(ref, rel=1e-12, abs=1e-15)
    z = np.zeros((3, 4), dtype=dtype)
    assert relative_error_from_residual(z, z) == 0.0
