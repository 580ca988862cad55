"""ONNX models as workloads: layers, GEMM shapes and MACs against independent counts, real weights
and activations, and one-line errors. The models are built in code (tests/onnx_models.py)."""
import json
import sys

import ml_dtypes
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from tasdsim.common import TasdsimError
from tasdsim.traces.onnx_activations import capture
from tasdsim.traces.onnx_model import load_onnx, parse_input_shapes
from tasdsim.traces.workloads import load_workload

from cli_helpers import assert_one_line_error, cli
from onnx_models import conv_net, quantized_linear, transformer_block


def shapes(workload):
    return [(l.name, l.kind, l.m, l.n, l.k, l.groups) for l in workload.layers]


def test_conv_net_layers_by_hand(tmp_path):
    w = load_workload(conv_net(tmp_path / "c.onnx"))
    assert shapes(w) == [
        ("stem", "conv", 16 * 16, 16, 3 * 9, 1),         # (32 + 2 - 3) // 2 + 1 = 16
        ("dw", "conv", 16 * 16, 1, 9, 16),               # SAME_UPPER, stride 1: 16
        ("grouped", "conv", 16 * 14, 8, 4 * 9, 4),       # dilation 2: (16 + 4 - 5) + 1, (16 + 2 - 5) + 1
        ("pw", "conv", 8 * 14, 24, 32, 1),               # VALID, strides (2, 1): (16 - 1) // 2 + 1, 14
        ("fc", "linear", 1, 10, 24, 1),
    ]
    assert w.macs == 256 * 16 * 27 + 256 * 9 * 16 + 224 * 8 * 36 * 4 + 112 * 24 * 32 + 10 * 24 == 491_760
    assert [l.weight_shape for l in w.layers] == [(16, 3, 3, 3), (16, 1, 3, 3), (32, 4, 3, 3), (24, 32, 1, 1), (10, 24)]


def test_conv_output_sizes_match_onnxruntime(tmp_path):
    """Every conv's Ho x Wo against the shape onnxruntime computes, at batch 2."""
    path = conv_net(tmp_path / "c.onnx")
    model = onnx.load(path)
    convs = {n.name: n.output[0] for n in model.graph.node if n.op_type == "Conv"}
    model.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in convs.values())
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip(convs, session.run(list(convs.values()), {"x": np.zeros((2, 3, 32, 32), np.float32)})))
    w = load_workload(path, input_shapes={"x": (2, 3, 32, 32)})
    for layer in w.layers[:4]:
        n, c, h, wd = outs[layer.name].shape
        assert (layer.m, layer.n * layer.groups) == (n * h * wd, c), layer.name


def test_transformer_block_attention(tmp_path):
    path = transformer_block(tmp_path / "t.onnx")
    w = load_workload(path, batch=2, seq_len=16)
    assert shapes(w) == [
        ("attn.q", "linear", 32, 64, 64, 1), ("attn.k", "linear", 32, 64, 64, 1), ("attn.v", "linear", 32, 64, 64, 1),
        ("attn.scores", "matmul", 16, 16, 16, 8),    # per head: (S x hd) . (hd x S), batch 2 x 4 heads
        ("attn.context", "matmul", 16, 16, 16, 8),   # (S x S) . (S x hd)
        ("attn.out", "linear", 32, 64, 64, 1), ("ffn.1", "linear", 32, 128, 64, 1), ("ffn.2", "linear", 32, 64, 128, 1),
    ]
    assert w.macs == 4 * 32 * 64 * 64 + 2 * 8 * 16 ** 3 + 2 * 32 * 128 * 64
    assert load_workload(path, input_shapes={"x": (1, 8, 64)}).layers[3].m == 8


def test_weights_in_pytorch_layout(tmp_path):
    path = conv_net(tmp_path / "c.onnx")
    model = load_onnx(path)
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    np.testing.assert_array_equal(model.weights("grouped"), init["w_g"])
    np.testing.assert_array_equal(model.weights("fc"), init["fc_w"])  # Gemm transB: already (out, in)
    t = load_onnx(transformer_block(tmp_path / "t.onnx"), seq_len=4)
    np.testing.assert_array_equal(t.weights("ffn.1"), numpy_helper.to_array(
        next(i for i in onnx.load(str(tmp_path / "t.onnx")).graph.initializer if i.name == "w1")).T)
    assert t.weights("attn.scores") is None


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_fp16_and_bf16_initializers_keep_their_dtype(tmp_path, dtype):
    model = load_onnx(conv_net(tmp_path / "c.onnx", dtype=dtype))
    assert model.weights("stem").dtype == np.dtype(dtype)


def test_quantized_weights_read_as_values(tmp_path):
    path = quantized_linear(tmp_path / "q.onnx")
    model = load_onnx(path)
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(path).graph.initializer}
    expected1 = (init["wq8"].astype(np.float32) * init["wq8_scale"]).T  # per-column scales, zero point 0
    np.testing.assert_allclose(model.weights("fc1"), expected1, rtol=1e-6)
    q = np.clip(np.rint(init["wf"] / 0.02), -128, 127)
    np.testing.assert_allclose(model.weights("fc2"), (q * np.float32(0.02)).T, rtol=1e-6)


def test_int8_initializer_of_matmulinteger(tmp_path):
    w8 = np.arange(-64, 64, dtype=np.int8).reshape(16, 8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["x", "w8"], ["y"], name="qfc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [3, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [3, 8])],
                              [numpy_helper.from_array(w8, "w8")])
    path = tmp_path / "i8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    model = load_onnx(str(path))
    assert shapes(model.workload) == [("qfc", "linear", 3, 8, 16, 1)]
    assert model.weights("qfc").dtype == np.int8
    np.testing.assert_array_equal(model.weights("qfc"), w8.T)


def independent_choice(weights, bound):
    """The cheapest of 1:4, 2:4, 1:4+1:4, 2:4+1:4 (compute density, then terms) whose relative error
    meets the bound: with one M a series keeps the top sum(N) of every 4 input channels."""
    w = np.asarray(weights, np.float64)
    w = np.moveaxis(w, 1, -1) if w.ndim == 4 else w  # groups run along input channels
    k = w.shape[-1]
    padded = np.zeros((*w.shape[:-1], -(-k // 4) * 4))
    padded[..., :k] = w
    groups = padded.reshape(*w.shape[:-1], -1, 4)
    ranks = np.argsort(np.argsort(-np.abs(groups), axis=-1, kind="stable"), axis=-1, kind="stable")
    for series, kept in (("1:4", 1), ("2:4", 2), ("1:4+1:4", 2), ("2:4+1:4", 3)):
        error = np.linalg.norm(np.where(ranks < kept, 0, groups)) / np.linalg.norm(groups)
        if error <= bound:
            return series
    return "dense"


def test_search_weights_picks_the_cheapest_series_that_meets_the_bound(tmp_path, capsys):
    path = conv_net(tmp_path / "c.onnx")
    code, out, _ = cli(capsys, "search", "--weights", path, "--patterns", "1:4,2:4", "--quality",
                       "relative_error<=0.2", "--json")
    assert code == 0
    chosen = {c["name"]: c["series"] for c in json.loads(out)["layers"]}
    model = load_onnx(path)
    assert chosen == {name: independent_choice(model.weights(name), 0.2) for name in chosen}
    assert list(chosen) == ["stem", "dw", "grouped", "pw", "fc"]


def test_captured_activations_are_the_layers_im2col_rows(tmp_path):
    """rows . W_g^T equals onnxruntime's conv output at the sampled positions."""
    path = conv_net(tmp_path / "c.onnx")
    x = np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    model = load_onnx(path, {"x": (2, 3, 32, 32)})
    rows = capture(model, ["stem", "grouped", "fc"], str(tmp_path / "x.npy"), rows=40)
    full = onnx.load(path)
    full.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in ("c1", "c3"))
    session = onnxruntime.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = dict(zip(("c1", "c3"), session.run(["c1", "c3"], {"x": x})))
    for name, out in (("stem", outs["c1"]), ("grouped", outs["c3"])):
        layer, weights = model.entry(name).layer, model.weights(name)
        assert rows[name].shape == (40, layer.k)
        w_rows = weights.transpose(0, 2, 3, 1).reshape(weights.shape[0], -1)  # (Cout, Kh*Kw*Cin/g)
        batch, _, ho, wo = out.shape
        for i, position in enumerate(np.linspace(0, batch * ho * wo - 1, 40).round().astype(int)):
            n, rest = divmod(position, ho * wo)
            g = i % layer.groups
            expected = out[n, g * layer.n:(g + 1) * layer.n, rest // wo, rest % wo]
            np.testing.assert_allclose(rows[name][i] @ w_rows[g * layer.n:(g + 1) * layer.n].T, expected,
                                       rtol=1e-4, atol=1e-4)
    assert rows["fc"].shape == (2, 24)


def test_simulate_onnx_with_real_tensors(tmp_path, capsys):
    path = transformer_block(tmp_path / "t.onnx")
    for operand in ("weights", "activations"):
        code, out, err = cli(capsys, "simulate", "--hw", "ttc-m8", "--workload", path, "--input-shape", "x=1x16x64",
                             "--tasd", "auto", "--operand", operand, "--memory", "ideal", "--jobs", "1", "--json")
        assert code == 0, err
        series = {l["name"]: l["series"][operand] for l in json.loads(out)["layers"]}
        assert len(series) == 8 and any(s != "dense" for s in series.values())
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", path, "--seq-len", "8", "--verbose",
                       "--jobs", "1")
    assert code == 0 and "skipped Softmax softmax" in err


def test_without_onnxruntime_one_line_says_what_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    path = conv_net(tmp_path / "c.onnx")
    code, _, err = cli(capsys, "search", "--workload", path, "--patterns", "2:4", "--quality", "relative_error<=0.3",
                       "--operand", "activations")
    assert_one_line_error(code, err, "onnxruntime", "pip install 'tasdsim[onnx]'")


def test_a_conv_with_a_computed_weight_names_the_node(tmp_path, capsys):
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv_from_input")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 2, 1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", path)
    assert_one_line_error(code, err, "bad.onnx: node conv_from_input (Conv)", "not a constant")


@pytest.mark.parametrize("args, message", [
    (["--input-shape", "y=1x3"], "--input-shape y: no such graph input (inputs: x)"),
    (["--input-shape", "x=1x3x32"], "the input has 4 dimensions, got 3"),
    (["--input-shape", "x=1x3xfoo"], "expected NAME=DxDx..."),
])
def test_bad_input_shapes(tmp_path, capsys, args, message):
    path = conv_net(tmp_path / "c.onnx")
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", path, *args)
    assert_one_line_error(code, err, message)


def test_dynamic_dims_need_a_shape_and_bad_files_fail_in_one_line(tmp_path, capsys):
    path = transformer_block(tmp_path / "t.onnx")
    with pytest.raises(TasdsimError, match=r"input x has dynamic dimensions \(1x\?x64\): give --input-shape x=1x1x64"):
        load_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", tmp_path / "junk.onnx")
    assert_one_line_error(code, err, "junk.onnx: not a readable ONNX model")
    assert parse_input_shapes(["a=1x2", "b:0=3"]) == {"a": (1, 2), "b:0": (3,)}


def test_validate_points_take_onnx_and_topology_layers(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"points:\n  - {{name: onnx-grouped, hw: dense-ws-32x32, memory: ideal, "
                     f"layer: {{workload: {conv_net(tmp_path / 'c.onnx')}, name: grouped}}}}\n"
                     "  - {name: csv, hw: dense-ws-32x32, memory: ideal, layer: {workload: scalesim-resnet50, name: FC6}}\n")
    code, out, err = cli(capsys, "validate", "--suite", suite, "--no-scalesim")
    assert code == 0, err
    assert "2 points: 2 exact" in out
