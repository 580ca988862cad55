"""`tasdsim decompose` and `tasdsim search` end to end, checked against independent numpy references."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from tasdsim.simulator.cli import main
from tasdsim.traces.nm_format import load_terms
from tasdsim.traces.tensors import nm_sparse, save_safetensors


BF16 = np.dtype(ml_dtypes.bfloat16)


# ---------------------------------------------------------------- independent reference


def ref_decompose(a: np.ndarray, series: str, axis: int):
    """Pure-Python greedy TASD. Returns A_hat (float64, a's shape) and per term (pattern, nnz, value_bytes,
    metadata_bytes)."""
    moved = np.moveaxis(a.astype(np.float64), axis, -1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1]).tolist()
    k = shape[-1]
    kept = [[0.0] * k for _ in rows]
    terms = []
    for term in series.split("+"):
        n, m = (int(x) for x in term.split(":"))
        nnz = 0
        for r, row in enumerate(rows):
            for base in range(0, k, m):
                real = list(range(base, min(base + m, k)))
                for p in sorted(real, key=lambda q: (-abs(row[q]), q))[:n]:
                    nnz += row[p] != 0
                    kept[r][p] += row[p]
                    row[p] = 0.0
        slots = len(rows) * math.ceil(k / m) * n
        bits = math.ceil(math.log2(m)) if m > 1 else 0
        terms.append({"pattern": f"{n}:{m}", "nnz": nnz, "value_bytes": slots * a.dtype.itemsize,
                      "metadata_bytes": math.ceil(slots * bits / 8)})
    a_hat = np.moveaxis(np.array(kept).reshape(shape), -1, axis)
    return a_hat, terms


def ref_metrics(a, a_hat):
    a = a.astype(np.float64)
    norm = np.sqrt((a ** 2).sum())
    return {
        "density": np.count_nonzero(a_hat) / a.size,
        "relative_error": np.sqrt(((a - a_hat) ** 2).sum()) / norm if norm else 0.0,
        "kept_magnitude": np.abs(a_hat).sum() / np.abs(a).sum() if np.abs(a).sum() else 1.0,
    }


def run(capsys, *argv):
    code = main([str(x) for x in argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def weights(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.int8:
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    a = (rng.standard_normal(shape) * 2).astype(np.float32)
    a[rng.random(shape) < 0.25] = 0
    return a.astype(dtype)


def check_decompose_json(result, a, series, axis):
    a_hat, terms = ref_decompose(a, series, axis)
    ref = ref_metrics(a, a_hat)
    for key in ("shape", "series", "density", "compute_density", "relative_error", "kept_magnitude", "terms"):
        assert key in result
    assert result["shape"] == list(a.shape)
    assert result["series"] == series
    assert result["axis"] == axis
    assert result["compute_density"] == pytest.approx(
        sum(int(t.split(":")[0]) / int(t.split(":")[1]) for t in series.split("+")), rel=1e-12)
    for key in ("density", "relative_error", "kept_magnitude"):
        assert result[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-12), key
    assert result["terms"] == terms
    return a_hat


# ---------------------------------------------------------------- decompose


@pytest.mark.parametrize("series", ["2:4", "2:4+1:4", "4:8+2:8+1:8", "1:8+1:4", "2:4+1:8", "3:5"])
def test_decompose_npy(tmp_path, capsys, series):
    a = weights((12, 30), np.float32, seed=1)
    path = tmp_path / "w.npy"
    np.save(path, a)
    result = run_json(capsys, "decompose", path, "--series", series)
    check_decompose_json(result, a, series, 1)
    assert result["dtype"] == "float32"


@pytest.mark.parametrize("series", ["2:4+1:4", "2:8+1:4"])
@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.float32], ids=lambda d: np.dtype(d).name)
def test_decompose_npz_key_4d(tmp_path, capsys, series, dtype):
    conv = weights((4, 12, 3, 3), dtype, seed=2)
    path = tmp_path / "model.npz"
    np.savez(path, fc=weights((3, 8), np.float32, 0), conv=conv)
    result = run_json(capsys, "decompose", f"{path}:conv", "--series", series)
    check_decompose_json(result, conv, series, 1)  # default axis: input channels
    assert result["dtype"] == np.dtype(dtype).name


@pytest.mark.parametrize("series", ["2:4", "2:4+1:4", "1:8+1:4", "4:8+1:8"])
@pytest.mark.parametrize("dtype", [BF16, np.int8, np.float16], ids=lambda d: np.dtype(d).name)
def test_decompose_safetensors_name(tmp_path, capsys, series, dtype):
    a = weights((16, 24), dtype, seed=3)
    path = tmp_path / "model.safetensors"
    save_safetensors(path, {"layer.0.weight": a, "layer.1.weight": weights((2, 4), np.float32, 4)})
    result = run_json(capsys, "decompose", f"{path}:layer.0.weight", "--series", series)
    check_decompose_json(result, a, series, 1)
    if dtype == BF16:
        assert result["dtype"] == "bfloat16"


def test_decompose_explicit_axis(tmp_path, capsys):
    a = weights((20, 6), np.float32, seed=5)
    path = tmp_path / "w.npy"
    np.save(path, a)
    result = run_json(capsys, "decompose", path, "--series", "2:4+1:8", "--axis", "0")
    check_decompose_json(result, a, "2:4+1:8", 0)
    result = run_json(capsys, "decompose", path, "--series", "1:4", "--axis", "-2")
    check_decompose_json(result, a, "1:4", 0)


@pytest.mark.parametrize("spec", ["npy", "npz", "safetensors"])
def test_2_4_plus_2_4_is_lossless(tmp_path, capsys, spec):
    a = weights((8, 19), BF16 if spec == "safetensors" else np.float32, seed=6)
    if spec == "npy":
        np.save(tmp_path / "w.npy", a)
        target = tmp_path / "w.npy"
    elif spec == "npz":
        np.savez(tmp_path / "w.npz", w=a)
        target = f"{tmp_path / 'w.npz'}:w"
    else:
        save_safetensors(tmp_path / "w.safetensors", {"w": a})
        target = f"{tmp_path / 'w.safetensors'}:w"
    result = run_json(capsys, "decompose", target, "--series", "2:4+2:4")
    assert result["relative_error"] == 0
    assert result["kept_magnitude"] == 1
    assert result["output_error"] == 0
    assert result["density"] == pytest.approx(np.count_nonzero(a) / a.size)


def test_decompose_nm_sparse_is_one_exact_term(tmp_path, capsys):
    a = nm_sparse((16, 32), 2, 4, seed=7)
    np.save(tmp_path / "w.npy", a)
    result = run_json(capsys, "decompose", tmp_path / "w.npy", "--series", "2:4")
    assert result["relative_error"] == 0
    assert result["terms"] == [{"pattern": "2:4", "nnz": 16 * 16, "value_bytes": 16 * 8 * 2 * 4,
                                "metadata_bytes": 16 * 8 * 2 * 2 // 8}]


def test_decompose_output_error_with_given_inputs(tmp_path, capsys):
    a = weights((6, 16), np.float32, seed=8)
    b = np.random.default_rng(9).standard_normal((16, 5)).astype(np.float32)
    np.save(tmp_path / "w.npy", a)
    np.save(tmp_path / "x.npy", b)
    result = run_json(capsys, "decompose", tmp_path / "w.npy", "--series", "2:4+1:8", "--inputs", tmp_path / "x.npy")
    a_hat, _ = ref_decompose(a, "2:4+1:8", 1)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    expect = np.linalg.norm((a.astype(np.float64) - a_hat) @ b.astype(np.float64)) / np.linalg.norm(ref)
    assert result["output_error"] == pytest.approx(expect, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.int8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("series", ["2:4+1:4", "2:4+1:8", "4:8+2:8+1:8"])
def test_decompose_out_file_round_trip(tmp_path, capsys, dtype, series):
    a = weights((5, 4, 2, 3), dtype, seed=10)  # 4-D: default axis 1 (K = 4, not divisible by 8)
    save_safetensors(tmp_path / "w.safetensors", {"conv": a})
    out = tmp_path / "terms.npz"
    result = run_json(capsys, "decompose", f"{tmp_path / 'w.safetensors'}:conv", "--series", series, "--out", out)
    assert result["out"] == str(out)
    terms = load_terms(str(out))
    assert [str(t.pattern) for t in terms] == series.split("+")
    assert all(t.shape == a.shape and t.axis == 1 and t.values.dtype == a.dtype for t in terms)
    a_hat, ref_terms = ref_decompose(a, series, 1)
    approx = sum(t.to_dense().astype(np.float64) for t in terms)
    np.testing.assert_array_equal(approx, a_hat)
    assert [{"pattern": str(t.pattern), "nnz": t.nnz, "value_bytes": t.value_bytes,
             "metadata_bytes": t.metadata_bytes} for t in terms] == ref_terms
    # kept positions hold the original values bit for bit
    mask = approx != 0
    dense = sum(np.where(t.to_dense() != 0, t.to_dense(), np.zeros((), a.dtype)) for t in terms)
    np.testing.assert_array_equal(dense.astype(np.float64)[mask], a.astype(np.float64)[mask])


@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.int32, np.int64], ids=lambda d: np.dtype(d).name)
def test_decompose_out_of_any_accepted_dtype_loads_back(tmp_path, capsys, dtype):
    """decompose accepts these dtypes (np.save writes float64 by default): a term file it writes must
    load back, or it must refuse the dtype up front as one line on stderr."""
    a = (np.random.default_rng(16).standard_normal((4, 8)) * 50).astype(dtype)
    np.save(tmp_path / "w.npy", a)
    code, out, err = run(capsys, "decompose", tmp_path / "w.npy", "--series", "2:4", "--out", tmp_path / "t.npz")
    if code != 0:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        return
    terms = load_terms(str(tmp_path / "t.npz"))
    a_hat, _ = ref_decompose(a, "2:4", 1)
    np.testing.assert_array_equal(sum(t.to_dense().astype(np.float64) for t in terms), a_hat)
    assert all(t.values.dtype == a.dtype for t in terms)


def test_decompose_plain_text(tmp_path, capsys):
    a = weights((8, 16), np.float32, seed=11)
    np.save(tmp_path / "w.npy", a)
    code, out, err = run(capsys, "decompose", tmp_path / "w.npy", "--series", "2:4+1:8", "--out", tmp_path / "t.npz")
    assert code == 0 and err == ""
    assert "2:4+1:8" in out
    assert "relative_error" in out and "kept_magnitude" in out
    a_hat, terms = ref_decompose(a, "2:4+1:8", 1)
    assert f"{ref_metrics(a, a_hat)['relative_error']:.4g}" in out
    for t in terms:
        assert t["pattern"] in out
        assert str(t["value_bytes"]) in out
    assert "t.npz" in out
    assert not out.lstrip().startswith("{")


# ---------------------------------------------------------------- search


TOKENS = 128
M4_CANDIDATES = ["1:4", "2:4", "1:4+1:4", "2:4+1:4", "2:4+2:4"]  # max_terms 2, cheapest first


def cd(series):
    if series == "dense":
        return 1.0
    return sum(int(t.split(":")[0]) / int(t.split(":")[1]) for t in series.split("+"))


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(12)
    pruned = rng.standard_normal((12, 32)).astype(np.float32)
    pruned[rng.random(pruned.shape) < 0.7] = 0
    tensors = {
        "fc1": rng.standard_normal((16, 32)).astype(np.float32),
        "fc2": nm_sparse((8, 16), 2, 4, seed=13),
        "fc3": pruned,
        "bias": np.zeros(16, dtype=np.float32),  # 1-D: not a layer
        "conv": rng.laplace(size=(6, 8, 3, 3)).astype(np.float32),
        "head": (rng.standard_normal((4, 24)) * 3).astype(np.float16),
    }
    path = tmp_path / "model.npz"
    np.savez(path, **tensors)
    return path, tensors


def layer_macs(w):
    return TOKENS * w.shape[0] * int(np.prod(w.shape[1:]))


def test_search_weights_cheapest_meeting_threshold(capsys, model):
    path, tensors = model
    result = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                      "relative_error<=0.3")
    layers = [t for t in tensors if tensors[t].ndim in (2, 4)]
    assert [entry["name"] for entry in result["layers"]] == layers
    assert result["budget"] == "layer"
    assert result["quality"] == "relative_error<=0.3"
    for entry in result["layers"]:
        w = tensors[entry["name"]]
        assert entry["operand"] == "weights"
        values = {s: ref_metrics(w, ref_decompose(w, s, 1)[0])["relative_error"] for s in M4_CANDIDATES}
        chosen = entry["series"]
        if entry["fallback"]:
            assert chosen == "dense"
            assert all(v > 0.3 for v in values.values())
            continue
        assert chosen in M4_CANDIDATES
        assert values[chosen] <= 0.3
        assert entry["relative_error"] == pytest.approx(values[chosen], rel=1e-6, abs=1e-12)
        assert entry["compute_density"] == pytest.approx(cd(chosen))
        for s, v in values.items():
            if cd(s) < cd(chosen) - 1e-12:
                assert v > 0.3, (entry["name"], s, v)
    by_name = {e["name"]: e for e in result["layers"]}
    assert by_name["fc2"]["series"] == "2:4"  # a 2:4 weight is one exact term
    assert by_name["fc2"]["relative_error"] == 0
    total = result["total"]
    before = sum(layer_macs(tensors[name]) for name in layers)
    after = sum(layer_macs(tensors[e["name"]]) * cd(e["series"]) for e in result["layers"])
    assert total["macs_before"] == before
    assert total["macs_after"] == pytest.approx(after)
    assert total["compute_density"] == pytest.approx(after / before)
    assert total["fallback_layers"] == sum(e["fallback"] for e in result["layers"])
    weighted = sum(layer_macs(tensors[e["name"]]) * e["relative_error"] for e in result["layers"]) / before
    assert total["relative_error"] == pytest.approx(weighted)


def test_search_kept_magnitude_and_max_terms(capsys, model):
    path, tensors = model
    result = run_json(capsys, "search", "--weights", path, "--patterns", "1:8,2:8,4:8", "--max-terms", "3",
                      "--quality", "kept_magnitude>=0.9")
    assert result["max_terms"] == 3
    for entry in result["layers"]:
        assert entry["kept_magnitude"] >= 0.9
        assert entry["series"] == "dense" or all(t.endswith(":8") for t in entry["series"].split("+"))
        assert entry["compute_density"] <= 1


def test_search_activations_and_both(capsys, model):
    path, tensors = model
    layers = [t for t in tensors if tensors[t].ndim in (2, 4)]
    for operand in ("activations", "both"):
        result = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                          "relative_error<=0.3", "--operand", operand)
        operands = ["weights", "activations"] if operand == "both" else ["activations"]
        assert [(e["name"], e["operand"]) for e in result["layers"]] == [(n, o) for n in layers for o in operands]
        for entry in result["layers"]:
            assert entry["series"] in M4_CANDIDATES or entry["fallback"]
            assert entry["relative_error"] <= 0.3 or entry["fallback"]
        total = result["total"]
        assert total["macs_before"] == sum(layer_macs(tensors[n]) for n in layers)
        assert 0 < total["macs_after"] <= total["macs_before"]


def test_search_activations_from_file(capsys, tmp_path, model):
    path, tensors = model
    acts = {n: np.abs(np.random.default_rng(1).standard_normal((10, int(np.prod(w.shape[1:]))))).astype(np.float32)
            for n, w in tensors.items() if w.ndim in (2, 4)}
    for a in acts.values():
        a[:, ::2] = 0  # at most 2 non-zeros in every 4: 2:4 is exact
    np.savez(tmp_path / "acts.npz", **acts)
    result = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                      "relative_error<=0", "--operand", "activations", "--activations", tmp_path / "acts.npz")
    assert {e["series"] for e in result["layers"]} == {"2:4"}


@pytest.mark.parametrize("quality", ["relative_error<=0.3", "kept_magnitude>=0.9"])
def test_search_budget(capsys, model, quality):
    path, tensors = model
    per_layer = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality", quality)
    result = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality", quality, "--budget")
    assert result["budget"] == "model"
    metric, bound = quality.split("<=" if "<=" in quality else ">=")
    total = result["total"]
    if "<=" in quality:
        assert total[metric] <= float(bound)
    else:
        assert total[metric] >= float(bound)
    before = total["macs_before"]
    weighted = sum(layer_macs(tensors[e["name"]]) * e[metric] for e in result["layers"]) / before
    assert total[metric] == pytest.approx(weighted)
    assert total["macs_after"] <= before
    assert total["macs_after"] == pytest.approx(
        sum(layer_macs(tensors[e["name"]]) * cd(e["series"]) for e in result["layers"]))
    assert per_layer["total"]["macs_after"] < per_layer["total"]["macs_before"]
    assert total["macs_after"] < before


def test_search_seq_len_sets_the_tokens(capsys, model):
    path, tensors = model
    result = run_json(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                      "relative_error<=0.3", "--seq-len", "64")
    layers = [t for t in tensors if tensors[t].ndim in (2, 4)]
    assert result["total"]["macs_before"] == sum(64 * tensors[n].size for n in layers)


def test_search_seq_len_zero_is_an_error(capsys, model):
    """--seq-len 0 is not a token count: an error, not silently the default of 128."""
    path, _ = model
    code, out, err = run(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                         "relative_error<=0.3", "--seq-len", "0")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_search_nan_weights_is_an_error(capsys, tmp_path):
    """A NaN weight is bad input (as for decompose), not a silent dense fallback with error 0."""
    a = weights((8, 16), np.float32, seed=17)
    a[1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", fc=a)
    code, out, err = run(capsys, "search", "--weights", tmp_path / "nan.npz", "--patterns", "1:4,2:4",
                         "--quality", "relative_error<=0.3")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "NaN" in err and "Traceback" not in err


def test_search_plain_text(capsys, model):
    path, _ = model
    code, out, err = run(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                         "relative_error<=0.3")
    assert code == 0 and err == ""
    assert "fc1" in out and "conv" in out and "MACs" in out


# ---------------------------------------------------------------- bad input


@pytest.fixture
def files(tmp_path):
    a = weights((8, 16), np.float32, seed=14)
    np.save(tmp_path / "w.npy", a)
    np.savez(tmp_path / "m.npz", fc=a)
    (tmp_path / "garbage.npy").write_bytes(b"\x00garbage bytes, not numpy" * 8)
    (tmp_path / "garbage.npz").write_bytes(b"\x00garbage bytes, not a zip" * 8)
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00garbage bytes, not safetensors" * 8)
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    return tmp_path


BAD = [
    ("decompose", "{d}/w.npy", "--series", "2:4+"),
    ("decompose", "{d}/w.npy", "--series", "5:4"),
    ("decompose", "{d}/w.npy", "--series", "a:4"),
    ("decompose", "{d}/w.npy", "--series", "2:4:8"),
    ("decompose", "{d}/w.npy", "--series", "1:300"),
    ("decompose", "{d}/missing.npy", "--series", "2:4"),
    ("decompose", "{d}/m.npz:nokey", "--series", "2:4"),
    ("decompose", "{d}/missing.npz:fc", "--series", "2:4"),
    ("decompose", "{d}/w.npy", "--series", "2:4", "--axis", "2"),
    ("decompose", "{d}/w.npy", "--series", "2:4", "--axis", "-3"),
    ("decompose", "{d}/garbage.npy", "--series", "2:4"),
    ("decompose", "{d}/garbage.npz:fc", "--series", "2:4"),
    ("decompose", "{d}/garbage.safetensors:fc", "--series", "2:4"),
    ("decompose", "{d}/truncated.npz:fc", "--series", "2:4"),
    ("decompose", "{d}/w.npy", "--series", "2:4", "--out", "{d}/no/such/dir/t.npz"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "1:4,2:4", "--quality", "relative_error>=0.3"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "1:4,2:4", "--quality", "accuracy<=0.3"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "1:4,2:4", "--quality", "relative_error<=x"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "1:4,5:4", "--quality", "relative_error<=0.3"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "", "--quality", "relative_error<=0.3"),
    ("search", "--weights", "{d}/missing.npz", "--patterns", "1:4", "--quality", "relative_error<=0.3"),
    ("search", "--weights", "{d}/garbage.npz", "--patterns", "1:4", "--quality", "relative_error<=0.3"),
    ("search", "--weights", "{d}/m.npz", "--patterns", "1:4", "--quality", "relative_error<=0.3",
     "--max-terms", "0"),
]


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a[2:]) if a[0] == "search" else " ".join(a[1:]))
def test_bad_input_is_one_line_and_exit_2(capsys, files, argv):
    code, out, err = run(capsys, *(a.format(d=files) for a in argv))
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"tasdsim {argv[0]}: error: ")
    assert out == ""


def test_console_script_subprocess(tmp_path):
    """The installed `tasdsim` script: errors exit 2 with one line and no traceback."""
    script = Path(sys.executable).with_name("tasdsim")
    assert script.exists()
    np.save(tmp_path / "w.npy", weights((4, 8), np.float32, seed=15))
    env = dict(os.environ)
    proc = subprocess.run([str(script), "decompose", str(tmp_path / "w.npy"), "--series", "2:4+"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ['tasdsim decompose: error: series "2:4+": term 2 is empty']
    assert proc.stdout == ""
