"""Workloads: bundled networks against their published sizes, conv lowering, and strict YAML."""
import re

import pytest

from tasdsim.common import TasdsimError
from tasdsim.traces.workloads import (
    Layer,
    Workload,
    conv_output_size,
    gemm_layer,
    layers_from_weight_shapes,
    list_workloads,
    load_workload,
)


def by_name(workload: Workload) -> dict[str, Layer]:
    return {layer.name: layer for layer in workload.layers}


def test_bundled_workloads_are_listed():
    assert list_workloads() == ["bert-base", "mobilenetv2", "resnet50", "scalesim-resnet50"]


# ResNet-50 v1.5 --------------------------------------------------------------------------------


def test_resnet50_total_macs():
    w = load_workload("resnet50")
    assert w.name == "resnet50"
    assert w.macs == 4_089_184_256
    assert w.macs == pytest.approx(4.09e9, rel=0.01)  # torchvision: 4.09 GMACs


def test_resnet50_has_53_convs_and_the_fc():
    layers = load_workload("resnet50").layers
    assert [layer.kind for layer in layers].count("conv") == 53
    assert len(layers) == 54
    assert len({layer.name for layer in layers}) == 54
    assert layers[-1] == Layer("fc", "linear", m=1, n=1000, k=2048, weight_shape=(1000, 2048))
    downsamples = [layer.name for layer in layers if "downsample" in layer.name]
    assert downsamples == [f"layer{s}.0.downsample.0" for s in (1, 2, 3, 4)]


def test_resnet50_layers_by_hand():
    layers = by_name(load_workload("resnet50"))
    # conv1: 7x7 stride 2 pad 3 on 224 -> (224 + 6 - 7) // 2 + 1 = 112
    assert layers["conv1"] == Layer(
        "conv1", "conv", m=112 * 112, n=64, k=3 * 7 * 7, weight_shape=(64, 3, 7, 7)
    )
    # layer2.0.conv2 carries the stride (v1.5): 3x3 stride 2 pad 1 on 56 -> 28
    conv = layers["layer2.0.conv2"]
    assert (conv.m, conv.n, conv.k, conv.macs) == (28 * 28, 128, 128 * 9, 784 * 128 * 1152)
    # layer4.0.downsample.0: 1x1 stride 2 on 14 -> 7, 1024 -> 2048
    down = layers["layer4.0.downsample.0"]
    assert (down.m, down.n, down.k) == (49, 2048, 1024)


def test_resnet50_macs_scale_with_batch():
    one, four = load_workload("resnet50"), load_workload("resnet50", batch=4)
    assert four.macs == 4 * one.macs
    assert by_name(four)["conv1"].m == 4 * 112 * 112
    assert by_name(four)["fc"].m == 4


# MobileNetV2 -----------------------------------------------------------------------------------


def test_mobilenetv2_total_macs():
    w = load_workload("mobilenetv2")
    assert w.macs == 300_774_272
    assert w.macs == pytest.approx(300e6, rel=0.03)  # paper: 300 M multiply-adds
    assert len(w.layers) == 53  # first conv, 17 blocks (the first without expand), last conv, fc


def test_mobilenetv2_depthwise_layers():
    layers = load_workload("mobilenetv2").layers
    depthwise = [layer for layer in layers if layer.kind == "conv" and layer.n == 1]
    assert len(depthwise) == 17
    for layer in depthwise:
        channels = layer.weight_shape[0]
        assert (layer.groups, layer.k, layer.weight_shape) == (channels, 9, (channels, 1, 3, 3))
    # features.2.conv.1.0: 96 channels, stride 2 on 112 -> 56
    dw = by_name(load_workload("mobilenetv2"))["features.2.conv.1.0"]
    assert (dw.m, dw.n, dw.k, dw.groups, dw.macs) == (56 * 56, 1, 9, 96, 56 * 56 * 96 * 9)


def test_mobilenetv2_pointwise_and_ends_by_hand():
    layers = by_name(load_workload("mobilenetv2"))
    assert layers["features.0.0"].macs == 112 * 112 * 32 * 27
    assert layers["features.17.conv.2"] == Layer(
        "features.17.conv.2", "conv", m=49, n=320, k=960, weight_shape=(320, 960, 1, 1)
    )
    assert layers["features.18.0"].macs == 49 * 320 * 1280
    assert layers["classifier.1"].macs == 1280 * 1000


# BERT-base -------------------------------------------------------------------------------------


def test_bert_base_total_macs():
    w = load_workload("bert-base")
    linear = 128 * (4 * 768 * 768 + 2 * 768 * 3072)
    attention = 2 * 12 * 128 * 128 * 64
    assert w.macs == 12 * (linear + attention) == 11_173_625_856
    assert sum(layer.macs for layer in w.layers if layer.kind == "linear") == 12 * linear
    assert sum(layer.macs for layer in w.layers if layer.kind == "matmul") == 12 * attention
    assert len(w.layers) == 12 * 8


def test_bert_base_layer_shapes():
    layers = by_name(load_workload("bert-base"))
    assert layers["encoder.3.attn.q"] == Layer(
        "encoder.3.attn.q", "linear", m=128, n=768, k=768, weight_shape=(768, 768)
    )
    assert layers["encoder.11.attn.scores"] == Layer("encoder.11.attn.scores", "matmul", 128, 128, 64, 12)
    assert layers["encoder.0.attn.context"] == Layer("encoder.0.attn.context", "matmul", 128, 64, 128, 12)
    assert layers["encoder.0.ffn.fc2"].weight_shape == (768, 3072)


def test_bert_base_seq_len_and_batch():
    layers = by_name(load_workload("bert-base", batch=2, seq_len=384))
    assert layers["encoder.0.attn.q"].m == 2 * 384
    scores = layers["encoder.0.attn.scores"]
    assert (scores.m, scores.n, scores.k, scores.groups) == (384, 384, 64, 24)


# Lowering helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation, expected",
    [
        (224, 7, 2, 3, 1, 112),  # (224 + 6 - 6 - 1) // 2 + 1
        (56, 3, 2, 1, 1, 28),  # (56 + 2 - 2 - 1) // 2 + 1 = 27 + 1
        (56, 1, 2, 0, 1, 28),  # (56 - 1) // 2 + 1
        (7, 3, 1, 1, 1, 7),
        (32, 3, 1, 2, 2, 32),  # dilation 2: effective kernel 5, (32 + 4 - 4 - 1) + 1
        (10, 3, 3, 0, 1, 3),  # (10 - 3) // 3 + 1 = 2 + 1 (floor)
        (5, 7, 1, 0, 1, -1),  # kernel larger than input: empty
    ],
)
def test_conv_output_size(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


def test_gemm_layer():
    assert gemm_layer("1024x1024x2048") == Layer(
        "gemm", "linear", m=1024, n=1024, k=2048, weight_shape=(1024, 2048)
    )
    assert gemm_layer(" 3X5x7 ").macs == 105


@pytest.mark.parametrize("text", ["", "1024x1024", "1x2x3x4", "0x4x4", "-1x4x4", "ax4x4", "1.5x4x4"])
def test_gemm_layer_rejects(text):
    with pytest.raises(TasdsimError, match="MxNxK"):
        gemm_layer(text)


def test_layers_from_weight_shapes():
    shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.weight": (64,),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
        "pos": (1, 2, 3),
    }
    w = layers_from_weight_shapes(shapes, tokens=196, name="model.safetensors")
    assert w.name == "model.safetensors"
    assert w.layers == (
        Layer("conv1.weight", "conv", m=196, n=64, k=3 * 49, weight_shape=(64, 3, 7, 7)),
        Layer("fc.weight", "linear", m=196, n=1000, k=2048, weight_shape=(1000, 2048)),
    )


def test_layers_from_weight_shapes_errors():
    with pytest.raises(TasdsimError, match="m.npz: the file has no 2-D or 4-D weights"):
        layers_from_weight_shapes({"b": (8,), "t": (2, 3, 4)}, tokens=4, name="m.npz")
    with pytest.raises(TasdsimError, match="tokens must be a positive integer"):
        layers_from_weight_shapes({"w": (8, 8)}, tokens=0)
    with pytest.raises(TasdsimError, match="w: weight of shape"):
        layers_from_weight_shapes({"w": (0, 8)}, tokens=4)


def test_select():
    w = load_workload("resnet50")
    picked = w.select(["fc", "conv1"])
    assert [layer.name for layer in picked.layers] == ["fc", "conv1"]
    assert picked.macs == by_name(w)["fc"].macs + by_name(w)["conv1"].macs
    with pytest.raises(TasdsimError, match="no layer named 'conv9'.*include conv1, layer1.0.conv1"):
        w.select(["conv9"])
    with pytest.raises(TasdsimError, match="selected twice"):
        w.select(["fc", "fc"])
    with pytest.raises(TasdsimError, match="no layers selected"):
        w.select([])


def test_layer_rejects_bad_fields():
    with pytest.raises(TasdsimError, match="layer x: kind"):
        Layer("x", "pool", 1, 1, 1)
    with pytest.raises(TasdsimError, match="layer x: k must be a positive integer"):
        Layer("x", "linear", 1, 1, 0)


# YAML files ------------------------------------------------------------------------------------

GOOD = """
parameters: {batch: 2, tokens: 10}
layers:
  - {name: c, kind: conv, in_channels: 8, in_size: [9, 11], out_channels: 4, kernel: [3, 1],
     stride: [2, 1], padding: [1, 0], dilation: [1, 1], groups: 2}
  - name: "b{i}"
    repeat: 2
    start: 3
    layers:
      - {name: l, kind: linear, in_features: 6, out_features: 5, tokens: tokens}
"""


def test_yaml_file_by_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(GOOD)
    w = load_workload(str(path))
    assert w.name == "tiny"
    # conv: Ho = (9 + 2 - 2 - 1) // 2 + 1 = 5, Wo = 11; per group 4 in -> 2 out, kernel 3x1
    assert w.layers[0] == Layer("c", "conv", m=2 * 5 * 11, n=2, k=4 * 3, groups=2, weight_shape=(4, 4, 3, 1))
    assert [layer.name for layer in w.layers] == ["c", "b3.l", "b4.l"]
    assert w.layers[1].m == 2 * 10
    assert load_workload(str(path), batch=1).layers[1].m == 10


@pytest.mark.parametrize(
    "text, message",
    [
        ("layers: [\n  - {name: a", "line 2, column 3: not valid YAML: expected the node content"),
        ("- 1\n- 2\n", "expected a mapping with keys parameters and layers"),
        ("parameters: {batch: 1}\n", "layers: missing required key"),
        ("parameters: {batch: 1}\nlayers: []\nextra: 1\n", "extra: unknown key"),
        ("parameters: {seq_len: 4}\nlayers: []\n", "parameters.batch: missing required key"),
        ("parameters: {batch: 0}\nlayers: []\n", "parameters.batch: must be an integer from 1 to 65,536"),
        ("parameters: {batch: true}\nlayers: []\n", "parameters.batch: must be an integer from 1 to 65,536"),
        ("parameters: {batch: 1}\nlayers: []\n", "layers: expected a non-empty list"),
        ("parameters: {batch: 1}\nlayers: [7]\n", r"layers\[0\]: expected a mapping"),
        ("parameters: {batch: 1}\nlayers: [{name: a}]\n", r"layers\[0\]: expected a layer"),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: pool}]\n",
            r"layers\[0\].kind: must be one of conv, linear, matmul",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{kind: linear, in_features: 2, out_features: 2, tokens: 1}]\n",
            r"layers\[0\].name: missing required key",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: linear, in_features: 2, out_features: 2, tokens: 1,"
            " bias: 1}]\n",
            r"layers\[0\].bias: unknown key",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: linear, in_features: 2, out_features: 2, tokens: seq}]\n",
            r"layers\[0\].tokens: unknown parameter 'seq'",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: matmul, m: 2, n: 2, k: 2.5}]\n",
            r"layers\[0\].k: must be an integer from 1 to 16,777,216",
        ),
        (
            "parameters: {batch: 1}\nlayers:\n  - {name: a, kind: linear, in_features: 2, out_features: 2, tokens: 1}\n"
            "  - {name: b, kind: conv, in_channels: 3, in_size: 8, out_channels: 4, kernel: 3, stride: 0}\n",
            r"layers\[1\].stride: must be an integer from 1 to",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: conv, in_channels: 3, in_size: 8, out_channels: 4,"
            " kernel: 3, padding: -1}]\n",
            r"layers\[0\].padding: must be an integer from 0 to",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: conv, in_channels: 3, in_size: [8, 8, 8],"
            " out_channels: 4, kernel: 3}]\n",
            r"layers\[0\].in_size: expected an integer or a list \[h, w\]",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: conv, in_channels: 3, in_size: 4, out_channels: 4,"
            " kernel: 7}]\n",
            r"layers\[0\]: output size -2x-2 is empty",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: conv, in_channels: 6, in_size: 8, out_channels: 4,"
            " kernel: 3, groups: 3}]\n",
            r"layers\[0\].out_channels: 4 is not divisible by groups \(3\)",
        ),
        (
            "parameters: {batch: 1}\nlayers: [{name: a, kind: conv, in_channels: 4, in_size: 8, out_channels: 6,"
            " kernel: 3, groups: 3}]\n",
            r"layers\[0\].in_channels: 4 is not divisible by groups \(3\)",
        ),
        (
            "parameters: {batch: 1}\nlayers:\n  - name: blk\n    repeat: 2\n    layers:\n"
            "      - {name: a, kind: matmul, m: 2, n: 2, k: 2}\n",
            r"layers\[0\].name: a repeated block's name needs \{i\}",
        ),
        (
            "parameters: {batch: 1}\nlayers:\n  - name: blk\n    layers:\n"
            "      - {name: a, kind: matmul, m: 2, n: 2, k: 0}\n",
            r"layers\[0\].layers\[0\].k: must be an integer from 1 to",
        ),
        (
            "parameters: {batch: 1}\nlayers:\n  - {name: a.b, kind: matmul, m: 2, n: 2, k: 2}\n"
            "  - name: a\n    layers: [{name: b, kind: matmul, m: 2, n: 2, k: 2}]\n",
            "layers: duplicate layer names a.b",
        ),
    ],
)
def test_bad_yaml_names_file_and_path(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TasdsimError, match=f"^{re.escape(str(path))}: .*{message}"):
        load_workload(str(path))


def test_bad_parameter_overrides():
    with pytest.raises(TasdsimError, match="resnet50.yaml: has no parameter seq_len"):
        load_workload("resnet50", seq_len=128)
    with pytest.raises(TasdsimError, match="bert-base.yaml: batch=0: must be an integer from 1 to 65,536"):
        load_workload("bert-base", batch=0)


def test_unknown_workload_and_missing_file(tmp_path):
    with pytest.raises(TasdsimError, match="unknown workload 'resnet51'; bundled: bert-base, mobilenetv2, resnet50"):
        load_workload("resnet51")
    missing = str(tmp_path / "none.yaml")
    with pytest.raises(TasdsimError, match="no such workload file"):
        load_workload(missing)
