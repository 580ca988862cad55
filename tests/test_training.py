"""N:M training from scratch (dense, STE, SR-STE) on digits, SAD, and TASD-W / TASDER against training."""
import builtins
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.simulator.cli import main
from tasdsim.traces import mlp
from tasdsim.traces.accuracy_search import compute_density, model_accuracy, search_accuracy
from tasdsim.traces.digits import MISSING_SKLEARN
from tasdsim.traces.nm_masks import mask_size, masks_of, nm_mask, sad
from tasdsim.traces.nm_training import TrainConfig, train
from tasdsim.traces.patterns import Pattern, Series
from tasdsim.traces.search import candidate_series
from tasdsim.traces.tensors import load_tensors


# ---------------------------------------------------------------- masks and SAD (no dataset needed)


def ref_mask(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Pure Python: per group of m along the last axis keep the n largest |w|, ties to the lowest index."""
    rows, k = w.shape
    kept = np.zeros(w.shape, dtype=bool)
    for r in range(rows):
        for base in range(0, k, m):
            group = range(base, min(base + m, k))
            for i in sorted(group, key=lambda i: (-abs(float(w[r, i])), i))[:n]:
                kept[r, i] = True
    return kept


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), k=st.integers(1, 19), m=st.sampled_from([1, 2, 3, 4, 8]), data=st.data())
def test_mask_keeps_top_n_of_every_group_along_in(rows, k, m, data):
    n = data.draw(st.integers(1, m))
    # few distinct values, so ties are common
    w = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=rows * k, max_size=rows * k)),
                 dtype=np.float32).reshape(rows, k)
    assert np.array_equal(nm_mask(w, Pattern(n, m)), ref_mask(w, n, m))


def test_conv_mask_groups_input_channels():
    w = np.random.default_rng(3).standard_normal((4, 8, 3, 3)).astype(np.float32)
    mask = nm_mask(w, Pattern(2, 4))
    channels_last = np.moveaxis(w, 1, -1).reshape(-1, 8)
    assert np.array_equal(np.moveaxis(mask, 1, -1).reshape(-1, 8), ref_mask(channels_last, 2, 4))


def test_sad_counts_flipped_entries():
    a = {"w": np.array([[1, 1, 0, 0], [0, 1, 1, 0]], dtype=bool)}
    b = {"w": np.array([[1, 0, 1, 0], [0, 1, 1, 0]], dtype=bool)}  # one group moved: 2 entries flip
    c = {"w": np.array([[0, 1, 0, 1], [1, 0, 0, 1]], dtype=bool)}  # vs b: every entry flips
    seq = [a, b, c, c]
    counts = [sad(x, y) for x, y in zip(seq, seq[1:])]
    assert counts == [2, 8, 0]
    assert mask_size(a) == 8 and [s / mask_size(a) for s in counts] == [0.25, 1.0, 0.0]
    with pytest.raises(ValueError):
        sad(a, {"v": a["w"]})


def test_masks_of_every_layer():
    params = mlp.init_mlp((8, 12, 4), np.random.default_rng(0))
    masks = masks_of({n: params[n] for n in mlp.layer_names(params)}, Pattern(1, 4))
    assert sorted(masks) == ["fc1.weight", "fc2.weight"]
    assert all(m.reshape(m.shape[0], -1, 4).sum(axis=2).max() == 1 for m in masks.values())


def test_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    params = {k: v.astype(np.float64) for k, v in mlp.init_mlp((6, 5, 3), rng).items()}
    params["fc1.bias"] += 0.1
    x, y = rng.standard_normal((4, 6)), np.array([0, 2, 1, 2])
    weights = {n: params[n] for n in mlp.layer_names(params)}

    def loss() -> float:
        logits, _ = mlp.forward(weights, params, x)
        return mlp.softmax_cross_entropy(logits, y)[0]

    logits, inputs = mlp.forward(weights, params, x)
    grads = mlp.backward(weights, params, inputs, mlp.softmax_cross_entropy(logits, y)[1])
    eps = 1e-6
    for name, tensor in params.items():
        for idx in np.ndindex(tensor.shape):
            saved = tensor[idx]
            tensor[idx] = saved + eps
            up = loss()
            tensor[idx] = saved - eps
            down = loss()
            tensor[idx] = saved
            assert grads[name][idx] == pytest.approx((up - down) / (2 * eps), abs=1e-5), (name, idx)


def test_bad_config_is_a_clear_error():
    from tasdsim.common import TasdsimError
    with pytest.raises(TasdsimError, match="method"):
        TrainConfig(method="sgd")
    with pytest.raises(TasdsimError, match="epochs"):
        TrainConfig(epochs=0)


def test_missing_sklearn_is_one_line_and_exit_2(monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    code = main(["train", "--dataset", "digits", "--method", "dense", "--out", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"tasdsim train: error: {MISSING_SKLEARN}\n"
    assert MISSING_SKLEARN == "the digits dataset needs scikit-learn: pip install 'tasdsim[train]'"


# ---------------------------------------------------------------- training on digits


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from tasdsim.traces.digits import load_digits
    return load_digits()


@pytest.fixture(scope="module")
def trained(digits):
    """dense, STE and SR-STE with 2:4, default epochs, seed 0."""
    return {m: train(digits, TrainConfig(method=m, pattern=Pattern(2, 4), seed=0)) for m in ("dense", "ste", "srste")}


def test_fixed_split(digits):
    assert digits.x_train.shape == (1348, 64) and digits.x_test.shape == (449, 64)
    assert digits.x_train.dtype == np.float32 and 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    assert sorted(set(digits.y_test.tolist())) == list(range(10))


def test_training_is_deterministic_per_seed(digits):
    config = TrainConfig(method="srste", epochs=2, seed=7)
    a, b = train(digits, config), train(digits, config)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert (a.sad, a.accuracy, a.loss) == (b.sad, b.accuracy, b.loss)
    c = train(digits, TrainConfig(method="srste", epochs=2, seed=8))
    assert not np.array_equal(a.params["fc1.weight"], c.params["fc1.weight"])


def test_srste_with_zero_lambda_is_ste(digits):
    ste = train(digits, TrainConfig(method="ste", epochs=2, seed=1))
    srste0 = train(digits, TrainConfig(method="srste", epochs=2, seed=1, lambda_w=0.0))
    assert all(np.array_equal(ste.params[k], srste0.params[k]) for k in ste.params)
    assert ste.sad == srste0.sad


def test_sparse_models_are_exactly_nm(trained):
    for method in ("ste", "srste"):
        for name in mlp.layer_names(trained[method].params):
            w = trained[method].params[name]
            assert np.count_nonzero(w.reshape(w.shape[0], -1, 4), axis=2).max() <= 2
    dense = trained["dense"].params["fc1.weight"]
    assert np.count_nonzero(dense) == dense.size


def test_sad_history(trained):
    for r in trained.values():
        assert len(r.sad) == r.config.epochs == len(r.accuracy)
        assert r.mask_size == 256 * 64 + 128 * 256 + 10 * 128
        assert r.sad_normalized == [s / r.mask_size for s in r.sad]
        assert all(s % 2 == 0 for s in r.sad)  # a group's kept count is fixed: flips come in pairs


def test_srste_within_one_point_of_dense_and_more_stable_than_ste(trained):
    dense, ste, srste = (trained[m] for m in ("dense", "ste", "srste"))
    assert dense.test_accuracy > 0.95
    assert abs(srste.test_accuracy - dense.test_accuracy) <= 0.01
    assert sum(srste.sad) < sum(ste.sad)


def test_tasder_meets_99_percent_of_dense(trained, digits):
    dense = trained["dense"]
    bound = 0.99 * dense.test_accuracy
    candidates = candidate_series((Pattern(1, 4), Pattern(2, 4)), 2)
    result = search_accuracy(dense.params, candidates, digits.x_test, digits.y_test, bound)
    assert result.accuracy >= bound
    assert model_accuracy(dense.params, result.series, digits.x_test, digits.y_test) == result.accuracy
    assert result.compute_density == compute_density(dense.params, result.series) < 1
    # every step taken met the bound, each made a layer cheaper, and the last one is the result
    assert result.steps and all(a >= bound for _, _, a in result.steps)
    assert result.steps[-1][2] == result.accuracy
    final = {}
    for name, series, _ in result.steps:
        assert series.compute_density < final.get(name, Series((Pattern(1, 1),))).compute_density
        final[name] = series
    assert all(result.series[n] == s for n, s in final.items())
    # TASD-W 2:4 on an SR-STE 2:4 model is lossless
    sr = trained["srste"]
    fixed = {n: Series((Pattern(2, 4),)) for n in mlp.layer_names(sr.params)}
    assert model_accuracy(sr.params, fixed, digits.x_test, digits.y_test) == sr.test_accuracy


# ---------------------------------------------------------------- the commands


def test_train_command_json_and_model_file(digits, tmp_path, capsys):
    model, acts = tmp_path / "m.safetensors", tmp_path / "acts.safetensors"
    code = main(["train", "--dataset", "digits", "--pattern", "2:4", "--method", "srste", "--epochs", "3",
                 "--seed", "2", "--out", str(model), "--activations-out", str(acts), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"test_accuracy", "accuracy", "sad", "sad_normalized", "sad_total", "loss", "lambda_w"} <= set(out)
    assert len(out["accuracy"]) == len(out["sad"]) == 3 and out["lambda_w"] == 2e-4
    loaded = load_tensors(str(model))
    assert sorted(loaded) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "fc3.bias", "fc3.weight"]
    assert loaded["fc1.weight"].shape == (256, 64) and loaded["fc1.weight"].dtype == np.float32
    assert mlp.accuracy(loaded, loaded, digits.x_test, digits.y_test) == out["test_accuracy"]
    inputs = load_tensors(str(acts))
    assert inputs["fc1.weight"].shape == (449, 64) and inputs["fc2.weight"].shape == (449, 256)

    assert main(["decompose", f"{model}:fc1.weight", "--series", "2:4", "--json"]) == 0
    dec = json.loads(capsys.readouterr().out)
    assert dec["axis"] == 1 and dec["relative_error"] == 0.0 and dec["density"] <= 0.5
    assert main(["search", "--weights", str(model), "--patterns", "1:4,2:4", "--quality", "relative_error<=0",
                 "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [c["series"] for c in found["layers"]] == ["2:4"] * 3  # biases (1-D) are skipped


def test_train_command_table(digits, tmp_path, capsys):
    assert main(["train", "--method", "dense", "--epochs", "2", "--out", str(tmp_path / "d.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "mlp 64-256-128-10" in out and "test accuracy" in out and "SAD total" in out


def test_train_command_rejects_bad_pattern(tmp_path, capsys):
    assert main(["train", "--method", "ste", "--pattern", "5:4", "--out", str(tmp_path / "m.safetensors")]) == 2
    assert "N must be between 1 and M" in capsys.readouterr().err


def test_tasd_vs_train_command(digits, capsys):
    assert main(["tasd-vs-train", "--pattern", "2:4", "--hw", "vegeta-m4", "--epochs", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["models"]) == ["dense", "tasd_w", "tasder", "srste"]
    for m in out["models"].values():
        assert {"accuracy", "compute_density", "cycles", "energy_pj", "edp", "series", "layers"} <= set(m)
        assert m["cycles"] == sum(layer["cycles"] for layer in m["layers"])
    models = out["models"]
    assert models["dense"]["compute_density"] == 1.0 and models["srste"]["compute_density"] == 0.5
    assert models["srste"]["cycles"] == models["tasd_w"]["cycles"] < models["dense"]["cycles"]
    assert out["tasder"]["meets"] and models["tasder"]["accuracy"] >= 0.99 * out["dense_accuracy"]
    assert len(out["training"]["srste"]["sad"]) == 4

    assert main(["tasd-vs-train", "--pattern", "2:8", "--hw", "vegeta-m4", "--epochs", "1"]) == 2
    assert "not supported by hardware vegeta-m4" in capsys.readouterr().err
