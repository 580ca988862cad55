"""Functional datapath: the MAC kernels against an independent numpy computation, their agreement
with the timing model (MACs issued, folds), and `tasdsim simulate --functional`.

The reference never uses the simulator's decomposition: `numpy_tasd` below is greedy TASD written
directly in numpy (per group of M along `in`, keep the N largest |x|, ties to the lowest index,
the last group padded with zeros), and the expected output is a numpy int64 (int8) or float64
product of the approximated operand.
"""
import json

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.components import mac_kernels
from tasdsim.simulator import functional
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.functional import LayerTensors, run_layer
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.traces import tensors
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import plan
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import gemm_layer
from cli_helpers import assert_one_line_error, cli

SERIES = ["2:4", "1:4", "2:4+1:4", "1:8+1:4"]
RAGGED = [(37, 19, 45), (100, 70, 50), (5, 3, 3), (64, 33, 130)]  # K % 4 or K % 8 != 0 (and K < M)
NO_DECODER = ["metadata_decoder.latency=0"]


def numpy_tasd(a: np.ndarray, series: str) -> np.ndarray:
    """Independent greedy TASD along the last axis: returns the approximation sum(A_i)."""
    residual = a.astype(np.float64)
    rows, k = a.shape
    for term in series.split("+"):
        n, m = (int(x) for x in term.split(":"))
        groups = -(-k // m)
        padded = np.zeros((rows, groups * m))
        padded[:, :k] = residual
        grouped = padded.reshape(rows, groups, m)
        order = np.argsort(-np.abs(grouped), axis=2, kind="stable")[:, :, :n]
        np.put_along_axis(grouped, order, 0, axis=2)
        residual = padded[:, :k].copy()
    return np.where(residual != 0, 0, a.astype(np.float64))


def expected(weights: np.ndarray, inputs: np.ndarray, series: str, operand: str) -> np.ndarray:
    """inputs . weights^T with the decomposed operand approximated, in int64 / float64."""
    wide = np.int64 if weights.dtype == np.int8 else np.float64
    w, x = weights.astype(wide), inputs.astype(wide)
    if operand == "weights":
        w = numpy_tasd(weights, series).astype(wide)
    else:
        x = numpy_tasd(inputs, series).astype(wide)
    return x @ w.T


def hardware(dataflow: str = "ws", rows: int = 32, cols: int = 32, extra=()):
    return load_hw("ttc-m8", [*NO_DECODER, "pe_array.patterns=[1:4, 2:4, 1:8, 2:8, 4:8]", "tasd_units.count=4",
                              f"pe_array.dataflow={dataflow}", f"pe_array.rows={rows}", f"pe_array.cols={cols}",
                              *extra])


def run(weights, inputs, series: str, operand: str, hw, ideal: bool = True, parallel=None):
    m, k = inputs.shape
    layer = gemm_layer(f"{m}x{weights.shape[0]}x{k}")
    s = LayerSeries(weights=parse_series(series)) if operand == "weights" else \
        LayerSeries(activations=parse_series(series))
    tiling = plan(layer, hw.target(), s.weights, s.activations, unbounded=ideal)
    out = run_layer(LayerTensors(weights, inputs, {}), s, tiling, hw, parallel)
    return out, simulate_layer(layer, hw, s, ideal)


def int8_operands(m, n, k, seed=0, relu=0.0):
    rng = np.random.default_rng(seed)
    weights = rng.integers(-128, 128, (n, k)).astype(np.int8)
    inputs = rng.integers(-128, 128, (m, k)).astype(np.int8)
    if relu:
        inputs = tensors.quantize_int8(tensors.relu_activations((m, k), relu, seed))
    return weights, inputs


# ----------------------------------------------------------------------------- 0. the kernel itself


@pytest.mark.parametrize("dtype", [np.int8, np.float32])
@pytest.mark.parametrize("tile_s,tile_d,fold", [(32, 500, 32), (5, 7, 3), (1, 1, 1), (64, 64, 100), (3, 40, 64)])
def test_term_macs_matches_numpy_for_any_tiling(dtype, tile_s, tile_d, fold):
    """One term, compressed values against a dense operand: the product does not depend on how
    the walk tiles it; the counts are rows x cols x slots and one fold per (tile, fold)."""
    from tasdsim.traces.decompose import decompose
    from tasdsim.traces.generate import useful_depth

    rng = np.random.default_rng(tile_s * 100 + tile_d)
    rows, cols, k = 45, 130, 77
    if dtype == np.int8:
        sparse = rng.integers(-128, 128, (rows, k)).astype(np.int8)
        dense = rng.integers(-128, 128, (cols, k)).astype(np.int8)
    else:
        sparse = rng.standard_normal((rows, k)).astype(np.float32)
        dense = rng.standard_normal((cols, k)).astype(np.float32)
    (term,) = decompose(sparse, parse_series("2:8")).terms
    op = mac_kernels.term_operand(term.values, term.indices, 8, useful_depth(term.pattern, k), tile_s, fold)
    dense_t = mac_kernels.dense_rows(k, op.selected_rows, cols, dtype)
    dense_t[:k, :cols] = dense.T
    psums = np.zeros((rows, cols), mac_kernels.psum_dtype(dtype))
    folds, issued, useful = mac_kernels.term_macs(op, dense_t, psums, tile_d)
    exp = numpy_tasd(sparse, "2:8") @ dense.astype(np.float64).T
    if dtype == np.int8:
        assert np.array_equal(psums.astype(np.int64), exp.astype(np.int64))
    else:
        np.testing.assert_allclose(psums, exp, rtol=1e-5, atol=1e-5 * np.abs(exp).max())
    depth = 2 * -(-k // 8)
    assert issued == rows * cols * depth
    assert useful == rows * cols * (2 * (k // 8) + min(2, k % 8))
    assert folds == -(-rows // tile_s) * -(-cols // tile_d) * -(-depth // fold)


def test_term_macs_rejects_mismatched_buffers():
    values = np.zeros((4, 3, 2), np.float32)
    op = mac_kernels.term_operand(values, np.zeros((4, 3, 2), np.uint8), 4, 6, 2, 2)
    good = mac_kernels.dense_rows(12, op.selected_rows, 5, np.float32)
    with pytest.raises(ValueError):
        mac_kernels.term_macs(op, good, np.zeros((4, 5), np.int32), 5)  # psums dtype
    with pytest.raises(ValueError):
        mac_kernels.term_macs(op, np.zeros((12, 5), np.float32), np.zeros((4, 5), np.float32), 5)  # no spare cols
    with pytest.raises(ValueError):
        mac_kernels.term_macs(op, good, np.zeros((3, 5), np.float32), 5)  # rows
    with pytest.raises(ValueError):
        mac_kernels.term_operand(values.astype(np.float64), np.zeros((4, 3, 2), np.uint8), 4, 6, 2, 2)


# ----------------------------------------------------------------------------- 1. int8, bit-exact


@pytest.mark.parametrize("operand", ["weights", "activations"])
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("shape", RAGGED)
def test_int8_bit_exact_ragged(shape, series, operand):
    m, n, k = shape
    weights, inputs = int8_operands(m, n, k, seed=m + n + k)
    out, _ = run(weights, inputs, series, operand, hardware())
    assert out.output.dtype == np.int32
    assert out.output.shape == (m, n)
    assert np.array_equal(out.output.astype(np.int64), expected(weights, inputs, series, operand))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("operand", ["weights", "activations"])
@pytest.mark.parametrize("series", ["2:4+1:4", "1:8+1:4", "dense"])
def test_int8_bit_exact_relu_activations_both_dataflows(dataflow, operand, series):
    """ReLU-sparse inputs (many all-zero groups), -128 in the weights, several tiles and folds."""
    weights, inputs = int8_operands(150, 70, 200, seed=3, relu=0.7)
    weights[0, :8] = -128
    out, _ = run(weights, inputs, series, operand if series != "dense" else "weights", hardware(dataflow, 16, 16),
                 ideal=False)
    exp = expected(weights, inputs, series, operand) if series != "dense" else \
        inputs.astype(np.int64) @ weights.astype(np.int64).T
    assert np.array_equal(out.output.astype(np.int64), exp)


def test_int8_extremes_do_not_overflow():
    """-128 x -128 over the whole reduction: the largest psum int8 can make."""
    weights = np.full((3, 1000), -128, dtype=np.int8)
    inputs = np.full((2, 1000), -128, dtype=np.int8)
    out, _ = run(weights, inputs, "2:4+2:4", "weights", hardware())
    assert (out.output == 1000 * 128 * 128).all()


def test_int8_reduction_too_long_for_int32_is_an_error():
    k = mac_kernels.INT8_MAX_K + 1
    with pytest.raises(TasdsimError, match="overflow"):
        functional.check_tensors(np.zeros((1, k), np.int8), np.zeros((1, k), np.int8))


# ----------------------------------------------------------------------------- 2. floats


@pytest.mark.parametrize("operand", ["weights", "activations"])
@pytest.mark.parametrize("series", SERIES)
@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_fp32_within_1e5_relative(series, operand, dataflow):
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((70, 133)).astype(np.float32)
    inputs = tensors.relu_activations((90, 133), 0.5, 8)
    out, _ = run(weights, inputs, series, operand, hardware(dataflow, 16, 32), ideal=False)
    exp = expected(weights, inputs, series, operand)
    assert out.output.dtype == np.float32
    np.testing.assert_allclose(out.output, exp, rtol=1e-5, atol=1e-5 * np.abs(exp).max())
    assert np.linalg.norm(out.output - exp) <= 1e-6 * np.linalg.norm(exp)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("operand", ["weights", "activations"])
def test_fp16_bf16_against_fp32_of_upcast_values(dtype, operand):
    rng = np.random.default_rng(11)
    weights = rng.standard_normal((40, 77)).astype(dtype)
    inputs = rng.standard_normal((50, 77)).astype(dtype)
    out, _ = run(weights, inputs, "2:4+1:4", operand, hardware())
    assert out.output.dtype == np.float32
    approx = numpy_tasd(weights if operand == "weights" else inputs, "2:4+1:4").astype(np.float32)
    w32, x32 = weights.astype(np.float32), inputs.astype(np.float32)
    exp = x32 @ approx.T if operand == "weights" else approx @ w32.T  # numpy fp32 of the upcast values
    np.testing.assert_allclose(out.output, exp, rtol=1e-5, atol=1e-5 * np.abs(exp).max())


def test_serial_and_parallel_walks_agree_bit_for_bit():
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((200, 300)).astype(np.float32)
    inputs = rng.standard_normal((260, 300)).astype(np.float32)
    one, _ = run(weights, inputs, "2:4+1:4", "weights", hardware(), parallel=False)
    two, _ = run(weights, inputs, "2:4+1:4", "weights", hardware(), parallel=True)
    assert np.array_equal(one.output, two.output)
    assert (one.folds, one.macs_issued) == (two.folds, two.macs_issued)


# ----------------------------------------------------------------------------- 3. functional vs timing


@pytest.mark.parametrize("ideal", [True, False])
@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("operand,series", [("weights", "2:4+1:4"), ("activations", "1:8+1:4"),
                                            ("weights", "dense"), ("activations", "2:4")])
def test_macs_and_folds_agree_with_timing(operand, series, dataflow, ideal):
    weights, inputs = int8_operands(77, 45, 101, seed=1)
    out, stats = run(weights, inputs, series, operand, hardware(dataflow, 8, 16), ideal=ideal)
    assert out.folds == stats.folds
    assert out.macs_issued == stats.macs_issued
    assert out.macs_useful == stats.macs_useful


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 90), rows=st.sampled_from([4, 8, 16]),
       cols=st.sampled_from([4, 8, 32]), dataflow=st.sampled_from(["ws", "os"]),
       operand=st.sampled_from(["weights", "activations"]), series=st.sampled_from(SERIES + ["4:8+2:8+1:8"]),
       seed=st.integers(0, 2**16))
def test_property_exact_and_agrees_with_timing(m, n, k, rows, cols, dataflow, operand, series, seed):
    weights, inputs = int8_operands(m, n, k, seed)
    out, stats = run(weights, inputs, series, operand, hardware(dataflow, rows, cols))
    assert np.array_equal(out.output.astype(np.int64), expected(weights, inputs, series, operand))
    assert (out.folds, out.macs_issued, out.macs_useful) == (stats.folds, stats.macs_issued, stats.macs_useful)


def test_timing_does_not_run_the_kernels(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the timing model ran a MAC kernel")

    monkeypatch.setattr(mac_kernels, "term_macs", boom)
    stats = simulate_layer(gemm_layer("100x70x50"), hardware(), LayerSeries(weights=parse_series("2:4+1:4")), False)
    assert stats.cycles > 0


# ----------------------------------------------------------------------------- 4. CLI


@pytest.mark.parametrize("extra", [[], ["--set", "pe_array.dataflow=os"], ["--memory", "ideal"],
                                   ["--operand", "activations", "--set", "tasd_units.count=4"],
                                   ["--set", "word_bytes=4"]])
def test_cli_functional_json_and_cycles_unchanged(capsys, extra):
    base = ["simulate", "--hw", "vegeta-m4", "--gemm", "100x70x50", "--tasd", "2:4+1:4", "--json", *extra]
    code, out, _ = cli(capsys, *base)
    assert code == 0
    timing = json.loads(out)
    code, out, _ = cli(capsys, *base, "--functional")
    assert code == 0
    res = json.loads(out)
    assert res["layers"] == timing["layers"]  # cycles, stalls, traffic: all unchanged
    f = res["functional"]
    assert f["agrees_with_timing"] is True
    assert f["macs_issued"] == res["layers"][0]["macs_issued"] and f["folds"] == res["layers"][0]["folds"]
    assert f["output_shape"] == [100, 70]
    assert 0 < f["tasd_output_error"] < 1
    if "word_bytes=4" in extra:
        assert f["dtype"]["output"] == "float32" and f["max_abs_error"] < 1e-3
    else:
        assert f["dtype"] == {"weights": "int8", "inputs": "int8", "output": "int32"}
        assert f["max_abs_error"] == 0 and f["exact"] is True


def test_cli_functional_files_dump_int32(tmp_path, capsys):
    weights, inputs = int8_operands(40, 24, 66, seed=9, relu=0.6)
    np.save(tmp_path / "w.npy", weights)
    np.savez(tmp_path / "x.npz", act=inputs)
    dump = tmp_path / "out.npy"
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--weights", str(tmp_path / "w.npy"), "--inputs",
                       f"{tmp_path / 'x.npz'}:act", "--tasd", "2:4", "--functional", "--dump-output", str(dump),
                       "--json")
    assert code == 0
    res = json.loads(out)
    saved = np.load(dump)
    assert saved.dtype == np.int32 and saved.shape == (40, 24)
    assert np.array_equal(saved.astype(np.int64), expected(weights, inputs, "2:4", "weights"))
    assert res["functional"]["output"] == str(dump)
    dense = inputs.astype(np.float64) @ weights.astype(np.float64).T
    assert res["functional"]["tasd_output_error"] == pytest.approx(
        np.linalg.norm(saved - dense) / np.linalg.norm(dense))
    # the layer shape came from the tensors: same timing as the GEMM it makes
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "40x24x66", "--tasd", "2:4", "--json")
    assert json.loads(out)["layers"][0]["cycles"] == res["layers"][0]["cycles"]


def test_cli_functional_safetensors_bf16_and_auto(tmp_path, capsys):
    rng = np.random.default_rng(4)
    path = tmp_path / "m.safetensors"
    tensors.save_safetensors(path, {"fc.weight": rng.standard_normal((32, 64)).astype(ml_dtypes.bfloat16),
                                    "fc.input": rng.standard_normal((20, 64)).astype(ml_dtypes.bfloat16)})
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--weights", f"{path}:fc.weight", "--inputs",
                       f"{path}:fc.input", "--tasd", "auto", "--functional", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["layers"][0]["name"] == "fc.weight"
    assert res["functional"]["dtype"]["weights"] == "bfloat16"
    assert res["functional"]["series"] == res["layers"][0]["series"]["weights"]
    assert res["functional"]["max_rel_error"] < 1e-5


def test_cli_functional_table(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "64x40x72", "--tasd", "1:4", "--functional")
    assert code == 0
    assert "functional: int8 x int8 -> int32" in out and "bit-exact" in out and "agree with timing" in out


@pytest.mark.parametrize("argv,needles", [
    (["--weights", "{d}/w.npy", "--inputs", "{d}/bad_k.npy"], ["disagree on in", "40", "41"]),
    (["--weights", "{d}/missing.npy", "--inputs", "{d}/x.npy"], ["missing.npy", "no such file"]),
    (["--weights", "{d}/w3.npy", "--inputs", "{d}/x.npy"], ["2-D"]),
    (["--weights", "{d}/w.npy", "--inputs", "{d}/xf.npy"], ["int8"]),
    (["--weights", "{d}/w.npy", "--inputs", "{d}/x.npy", "--gemm", "9x9x9"], ["--gemm", "9x9x9"]),
    (["--weights", "{d}/w.npy"], ["--inputs"]),
    (["--workload", "resnet50", "--layers", "fc"], ["--workload"]),
])
def test_cli_functional_bad_input_one_line(tmp_path, capsys, argv, needles):
    np.save(tmp_path / "w.npy", np.ones((8, 40), np.int8))
    np.save(tmp_path / "x.npy", np.ones((5, 40), np.int8))
    np.save(tmp_path / "bad_k.npy", np.ones((5, 41), np.int8))
    np.save(tmp_path / "w3.npy", np.ones((2, 8, 40), np.int8))
    np.save(tmp_path / "xf.npy", np.ones((5, 40), np.float32))
    args = [a.replace("{d}", str(tmp_path)) for a in argv]
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--functional", *args)
    assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize("argv,needles", [
    (["--gemm", "8x8x8", "--dump-output", "o.npy"], ["--dump-output", "--functional"]),
    (["--weights", "w.npy", "--inputs", "x.npy"], ["--weights", "--functional"]),
    ([], ["--gemm"]),
])
def test_cli_functional_options_need_functional(capsys, argv, needles):
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", *argv)
    assert_one_line_error(code, err, *needles)
