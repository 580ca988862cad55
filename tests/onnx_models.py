"""Small ONNX models built in code with onnx.helper (no downloads), for the importer's tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, inputs, outputs, initializers, path) -> str:
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def conv_net(path, dtype=np.float32, batch_dim="N") -> str:
    """conv (pad 1, stride 2) -> ReLU -> depthwise 3x3 (SAME_UPPER) -> grouped 3x3 (dilation 2, groups 4)
    -> 1x1 VALID -> GlobalAveragePool -> Flatten -> Gemm (transB) ; input (N, 3, 32, 32)."""
    rng = np.random.default_rng(0)
    w = {
        "w1": rng.standard_normal((16, 3, 3, 3)).astype(dtype),
        "w_dw": rng.standard_normal((16, 1, 3, 3)).astype(dtype),
        "w_g": rng.standard_normal((32, 4, 3, 3)).astype(dtype),
        "w_pw": rng.standard_normal((24, 32, 1, 1)).astype(dtype),
        "fc_w": rng.standard_normal((10, 24)).astype(dtype),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="stem", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w_dw"], ["c2"], name="dw", group=16, auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w_g"], ["c3"], name="grouped", group=4, dilations=[2, 2], pads=[2, 1, 2, 1]),
        helper.make_node("Conv", ["c3", "w_pw"], ["c4"], name="pw", auto_pad="VALID", strides=[2, 1]),
        helper.make_node("GlobalAveragePool", ["c4"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w"], ["y"], name="fc", transB=1),
    ]
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inputs = [helper.make_tensor_value_info("x", elem, [batch_dim, 3, 32, 32])]
    outputs = [helper.make_tensor_value_info("y", elem, [batch_dim, 10])]
    return _model(nodes, inputs, outputs, w, path)


def transformer_block(path, seq="S", d=64, heads=4, ffn=128) -> str:
    """One encoder block: Q, K, V projections (MatMul with constant B), heads split by Reshape and
    Transpose, scores = Q K^T and context = P V (batched MatMul of activations), output projection
    (MatMul) and an FFN of two Gemm-free MatMuls; input (B, S, d)."""
    rng = np.random.default_rng(1)
    hd = d // heads
    init = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in
            [("wq", (d, d)), ("wk", (d, d)), ("wv", (d, d)), ("wo", (d, d)), ("w1", (d, ffn)), ("w2", (ffn, d))]}
    init["split"] = np.array([0, 0, heads, hd], dtype=np.int64)
    init["merge"] = np.array([0, 0, d], dtype=np.int64)
    nodes = [helper.make_node("MatMul", ["x", f"w{t}"], [t], name=f"attn.{t}") for t in "qkv"]
    for t in "qkv":
        nodes.append(helper.make_node("Reshape", [t, "split"], [f"{t}4"], name=f"split.{t}"))
        perm = [0, 2, 3, 1] if t == "k" else [0, 2, 1, 3]
        nodes.append(helper.make_node("Transpose", [f"{t}4"], [f"{t}h"], name=f"heads.{t}", perm=perm))
    nodes += [
        helper.make_node("MatMul", ["qh", "kh"], ["scores"], name="attn.scores"),
        helper.make_node("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["probs", "vh"], ["ctx"], name="attn.context"),
        helper.make_node("Transpose", ["ctx"], ["ctx2"], name="merge.t", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx2", "merge"], ["ctx3"], name="merge.r"),
        helper.make_node("MatMul", ["ctx3", "wo"], ["o"], name="attn.out"),
        helper.make_node("Add", ["x", "o"], ["h"], name="residual"),
        helper.make_node("MatMul", ["h", "w1"], ["f1"], name="ffn.1"),
        helper.make_node("Relu", ["f1"], ["f1r"], name="ffn.relu"),
        helper.make_node("MatMul", ["f1r", "w2"], ["y"], name="ffn.2"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", seq, d])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", seq, d])]
    return _model(nodes, inputs, outputs, init, path)


def quantized_linear(path) -> str:
    """int8 weights two ways: an int8 initializer through DequantizeLinear (per-channel scales) into
    MatMul, and a float initializer through QuantizeLinear and DequantizeLinear into Gemm."""
    rng = np.random.default_rng(2)
    init = {
        "wq8": rng.integers(-127, 128, (16, 8)).astype(np.int8),  # (K, N)
        "wq8_scale": np.linspace(0.01, 0.08, 8).astype(np.float32),
        "wq8_zero": np.zeros(8, dtype=np.int8),
        "wf": rng.standard_normal((8, 4)).astype(np.float32),  # (K, N)
        "wf_scale": np.array(0.02, dtype=np.float32),
        "wf_zero": np.array(0, dtype=np.int8),
    }
    nodes = [
        helper.make_node("DequantizeLinear", ["wq8", "wq8_scale", "wq8_zero"], ["w1"], name="dq1", axis=1),
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("QuantizeLinear", ["wf", "wf_scale", "wf_zero"], ["wfq"], name="q2"),
        helper.make_node("DequantizeLinear", ["wfq", "wf_scale", "wf_zero"], ["w2"], name="dq2"),
        helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2"),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])]
    return _model(nodes, inputs, outputs, init, path)
