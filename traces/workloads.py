"""Workloads: DNN layers lowered to GEMM, O[M x N] = I[M x K] . W[K x N].

A workload is a YAML file (bundled ones live in `configs/workloads/`) or the weight shapes of a real
model. Every layer lowers exactly:

- conv (im2col): M = batch * Ho * Wo, K = (Cin / groups) * Kh * Kw, N = Cout / groups, with
  `groups` independent GEMMs; weight shape (Cout, Cin / groups, Kh, Kw).
- linear: M = batch * tokens, K = in_features, N = out_features; weight shape (out, in).
- matmul (activation x activation, e.g. attention): M, N, K as given, groups * batch GEMMs; no weight.

YAML format::

    parameters: {batch: 1, seq_len: 128}     # positive integers; batch is required
    layers:
      - {name: conv1, kind: conv, in_channels: 3, in_size: 224, out_channels: 64,
         kernel: 7, stride: 2, padding: 3}   # optional: stride 1, padding 0, dilation 1, groups 1
      - {name: fc, kind: linear, in_features: 2048, out_features: 1000, tokens: 1}
      - {name: scores, kind: matmul, m: seq_len, n: seq_len, k: 64, groups: 12}
      - name: "encoder.{i}"                  # a block: its layers are named encoder.0.q, ...
        repeat: 12                           # optional, default 1; {i} runs from start
        start: 0                             # optional, default 0
        layers: [...]

Any integer field may name a parameter instead. `in_size`, `kernel`, `stride`, `padding` and
`dilation` take an integer (square) or a list [h, w].
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn


from tasdsim.common import bundled_files, integer, read_preset, TasdsimError
from tasdsim.traces.limits import MAX_BATCH, MAX_DIM, MAX_FIELD, MAX_GROUPS, MAX_LAYER_MACS, MAX_LAYERS, MAX_REPEAT

KINDS = ("conv", "linear", "matmul")

_LAYER_KEYS = {
    "conv": (
        {"name", "kind", "in_channels", "in_size", "out_channels", "kernel"},
        {"stride", "padding", "dilation", "groups"},
    ),
    "linear": ({"name", "kind", "in_features", "out_features", "tokens"}, set()),
    "matmul": ({"name", "kind", "m", "n", "k"}, {"groups"}),
}
_BLOCK_KEYS = ({"name", "layers"}, {"repeat", "start"})
_TOP_KEYS = ({"parameters", "layers"}, set())


@dataclass(frozen=True)
class Layer:
    """One layer as `groups` independent GEMMs of shape (M x K) . (K x N)."""

    name: str
    kind: str  # "conv", "linear" or "matmul" (activation x activation, e.g. attention)
    m: int  # GEMM rows: batch * output positions (or tokens)
    n: int  # GEMM columns: output channels per group
    k: int  # reduction: input channels per group * kh * kw (or in_features)
    groups: int = 1  # independent GEMMs of this shape (conv groups; heads * batch for attention)
    weight_shape: tuple[int, ...] | None = None  # static weight, PyTorch layout; None for matmul
    sparsity: str | None = None  # N:M the weights follow (a SCALE-Sim topology's Sparsity column)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            kinds = ", ".join(KINDS)
            raise TasdsimError(f"layer {self.name}: kind must be one of {kinds}, got {self.kind!r}")
        for field in ("m", "n", "k", "groups"):
            value = getattr(self, field)
            if not _is_int(value) or value < 1:
                raise TasdsimError(f"layer {self.name}: {field} must be a positive integer, got {value!r}")
            limit = MAX_GROUPS if field == "groups" else MAX_DIM
            if value > limit:
                raise TasdsimError(f"layer {self.name}: {field}={value:,} exceeds the limit of {limit:,}")
        if self.macs > MAX_LAYER_MACS:
            raise TasdsimError(f"layer {self.name}: {self.macs:,} MACs exceed the limit of {MAX_LAYER_MACS:,} per layer")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense layer."""
        return self.m * self.n * self.k * self.groups


@dataclass(frozen=True)
class Workload:
    """A named, ordered list of layers with unique names."""

    name: str
    layers: tuple[Layer, ...]

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all layers, dense."""
        return sum(layer.macs for layer in self.layers)

    def select(self, names: list[str]) -> Workload:
        """The named layers, in the order given."""
        if not names:
            raise TasdsimError(f"{self.name}: no layers selected")
        by_name = {layer.name: layer for layer in self.layers}
        for name in names:
            if name not in by_name:
                shown = ", ".join(list(by_name)[:5])
                raise TasdsimError(
                    f"{self.name}: no layer named {name!r}; its {len(by_name)} layers include {shown}, ..."
                )
        if len(set(names)) != len(names):
            raise TasdsimError(f"{self.name}: a layer is selected twice in {', '.join(names)}")
        return Workload(self.name, tuple(by_name[name] for name in names))


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output positions along one axis, PyTorch's formula: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def gemm_layer(text: str) -> Layer:
    """A linear layer from "MxNxK", e.g. "1024x1024x2048"."""
    parts = text.strip().lower().split("x")
    if len(parts) != 3 or not all(p.strip().isascii() and p.strip().isdecimal() and int(p) > 0 for p in parts):
        raise TasdsimError(f'"{text}": expected MxNxK with positive integers, e.g. 1024x1024x2048')
    if any(len(p.strip()) > 12 for p in parts):
        raise TasdsimError(f'"{text}": M, N and K must each be at most {MAX_DIM:,}')
    m, n, k = (int(p) for p in parts)
    return Layer(name="gemm", kind="linear", m=m, n=n, k=k, weight_shape=(n, k))


def layers_from_weight_shapes(
    shapes: Mapping[str, tuple[int, ...]], tokens: int, name: str = "weights"
) -> Workload:
    """A workload from a model's weight shapes, one layer per tensor, named after the tensor.

    2-D (out, in) -> linear with K = in, N = out; 4-D (Cout, Cin, Kh, Kw) -> conv with
    K = Cin * Kh * Kw, N = Cout, groups 1 (grouping is not recoverable from the weight alone).
    M = tokens (tokens or output positions) for both; tensors of other ranks are skipped.
    `name` (the file) names the workload and prefixes errors.
    """
    if not _is_int(tokens) or tokens < 1:
        raise TasdsimError(f"{name}: tokens must be a positive integer, got {tokens!r}")
    layers = []
    for tensor, shape in shapes.items():
        shape = tuple(int(d) for d in shape)
        if len(shape) not in (2, 4):
            continue
        if 0 in shape:
            raise TasdsimError(f"{name}: {tensor}: weight of shape {shape} is empty")
        kind = "linear" if len(shape) == 2 else "conv"
        k = shape[1] * (shape[2] * shape[3] if kind == "conv" else 1)
        layers.append(Layer(tensor, kind, m=tokens, n=shape[0], k=k, weight_shape=shape))
    if not layers:
        raise TasdsimError(f"{name}: the file has no 2-D or 4-D weights, so no linear or conv layers")
    return Workload(name, tuple(layers))


def list_workloads() -> list[str]:
    """Names of the bundled workloads (YAML and SCALE-Sim topologies)."""
    from tasdsim.traces.topology_csv import bundled_topologies

    return sorted([*bundled_files("workloads"), *bundled_topologies()])


def load_workload(name_or_path: str, batch: int | None = None, seq_len: int | None = None,
                  input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Workload:
    """A bundled workload by name, or a file by path: YAML (ending in .yaml/.yml or containing "/"),
    an ONNX model (.onnx, see onnx_model) or a SCALE-Sim topology (.csv, see topology_csv).

    `batch` and `seq_len` override the file's parameters of that name; `input_shapes` sets an ONNX
    model's input shapes.
    """
    text = str(name_or_path)
    if text.lower().endswith(".onnx"):
        from tasdsim.traces.onnx_model import load_onnx  # here: onnx is imported only for ONNX files

        return load_onnx(text, input_shapes, batch, seq_len).workload
    from tasdsim.traces.topology_csv import bundled_topologies, load_topology

    topologies = bundled_topologies()
    if text.lower().endswith(".csv") or text in topologies:
        if seq_len is not None:
            raise TasdsimError(f"{text}: a SCALE-Sim topology has no seq_len to set")
        if text in topologies:
            return load_topology(topologies[text], batch, f"workloads/{text}.csv")
        if not Path(text).is_file():
            raise TasdsimError(f"{text}: no such workload file")
        return load_topology(text, batch)
    data, label = read_preset("workloads", name_or_path, "workload")
    if not isinstance(data, dict):
        raise TasdsimError(f"{label}: expected a mapping with keys parameters and layers")
    _check_keys(data, *_TOP_KEYS, label, "")
    params = _parameters(data["parameters"], label)
    for key, value in (("batch", batch), ("seq_len", seq_len)):
        if value is None:
            continue
        if key not in params:
            declared = ", ".join(params)
            raise TasdsimError(f"{label}: has no parameter {key} to set (its parameters: {declared})")
        limit = MAX_BATCH if key == "batch" else MAX_FIELD
        if not _is_int(value) or not 1 <= value <= limit:
            raise TasdsimError(f"{label}: {key}={value!r}: must be an integer from 1 to {limit:,}")
        params[key] = value
    layers = _layers(data["layers"], params, label, "layers")
    counts = Counter(layer.name for layer in layers)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise TasdsimError(f"{label}: layers: duplicate layer names {', '.join(duplicates)}")
    return Workload(Path(name_or_path).stem, tuple(layers))


def _fail(label: str, path: str, message: str) -> NoReturn:
    raise TasdsimError(f"{label}: {path}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(entry: dict, required: set[str], optional: set[str], label: str, path: str) -> None:
    where = f"{path}." if path else ""
    for key in entry:
        if key not in required | optional:
            allowed = ", ".join(sorted(required | optional))
            raise TasdsimError(f"{label}: {where}{key}: unknown key (allowed: {allowed})")
    for key in sorted(required - entry.keys()):
        raise TasdsimError(f"{label}: {where}{key}: missing required key")


def _parameters(raw: Any, label: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        _fail(label, "parameters", "expected a mapping of names to positive integers")
    if "batch" not in raw:
        _fail(label, "parameters.batch", "missing required key")
    for key, value in raw.items():
        if not isinstance(key, str) or not key.isidentifier():
            _fail(label, f"parameters.{key}", "a parameter name must be an identifier")
        limit = MAX_BATCH if key == "batch" else MAX_FIELD
        if integer(value) is None or not 1 <= integer(value) <= limit:
            _fail(label, f"parameters.{key}", f"must be an integer from 1 to {limit:,}, got {value!r}")
    return {key: integer(value) for key, value in raw.items()}


def _int(value: Any, params: dict[str, int], label: str, path: str, minimum: int = 1) -> int:
    """An integer field: a literal or the name of a parameter."""
    if isinstance(value, str):
        if value not in params:
            _fail(label, path, f"unknown parameter {value!r} (parameters: {', '.join(params)})")
        return params[value]
    number = integer(value)
    if number is None or not minimum <= number <= MAX_FIELD:
        _fail(label, path, f"must be an integer from {minimum} to {MAX_FIELD:,} or a parameter name, got {value!r}")
    return number


def _pair(value: Any, params: dict[str, int], label: str, path: str, minimum: int = 1) -> tuple[int, int]:
    """An (h, w) field: one integer for both, or a list [h, w]."""
    if isinstance(value, list):
        if len(value) != 2:
            _fail(label, path, f"expected an integer or a list [h, w], got {value!r}")
        return (
            _int(value[0], params, label, f"{path}[0]", minimum),
            _int(value[1], params, label, f"{path}[1]", minimum),
        )
    v = _int(value, params, label, path, minimum)
    return v, v


def _name(entry: dict, label: str, path: str) -> str:
    name = entry["name"]
    if not isinstance(name, str) or not name.strip():
        _fail(label, f"{path}.name", "must be a non-empty string")
    return name


def _layers(raw: Any, params: dict[str, int], label: str, path: str) -> list[Layer]:
    """Lower a list of layer and block entries, block layers named `<block>.<layer>`."""
    if not isinstance(raw, list) or not raw:
        _fail(label, path, "expected a non-empty list of layers")
    layers: list[Layer] = []
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(entry, dict):
            _fail(label, where, "expected a mapping")
        if "kind" in entry:
            layers.append(_layer(entry, params, label, where))
        elif "layers" in entry:
            layers.extend(_block(entry, params, label, where))
        else:
            _fail(label, where, f"expected a layer (with kind: {', '.join(KINDS)}) or a block (with layers)")
        if len(layers) > MAX_LAYERS:
            _fail(label, where, f"the workload has more than {MAX_LAYERS:,} layers, the limit")
    return layers


def _block(entry: dict, params: dict[str, int], label: str, path: str) -> list[Layer]:
    _check_keys(entry, *_BLOCK_KEYS, label, path)
    name = _name(entry, label, path)
    repeat = _int(entry.get("repeat", 1), params, label, f"{path}.repeat")
    start = _int(entry.get("start", 0), params, label, f"{path}.start", minimum=0)
    if repeat > MAX_REPEAT:
        _fail(label, f"{path}.repeat", f"{repeat:,} exceeds the limit of {MAX_REPEAT:,}")
    if repeat > 1 and "{i}" not in name:
        _fail(label, f"{path}.name", "a repeated block's name needs {i}, the repetition index")
    inner = _layers(entry["layers"], params, label, f"{path}.layers")
    if repeat * len(inner) > MAX_LAYERS:
        _fail(label, path, f"{repeat:,} repeats of {len(inner)} layers exceed the limit of {MAX_LAYERS:,} layers")
    return [
        dataclasses.replace(layer, name=f"{name.replace('{i}', str(i))}.{layer.name}")
        for i in range(start, start + repeat)
        for layer in inner
    ]


def _layer(entry: dict, params: dict[str, int], label: str, path: str) -> Layer:
    kind = entry["kind"]
    if kind not in KINDS:
        _fail(label, f"{path}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    _check_keys(entry, *_LAYER_KEYS[kind], label, path)
    name = _name(entry, label, path)
    batch = params["batch"]

    def get(key: str, default: int | None = None, minimum: int = 1) -> int:
        return _int(entry.get(key, default), params, label, f"{path}.{key}", minimum)

    if kind == "linear":
        k, n = get("in_features"), get("out_features")
        return Layer(name, kind, m=batch * get("tokens"), n=n, k=k, weight_shape=(n, k))
    if kind == "matmul":
        return Layer(name, kind, m=get("m"), n=get("n"), k=get("k"), groups=get("groups", 1) * batch)

    def pair(key: str, default: int | None = None, minimum: int = 1) -> tuple[int, int]:
        return _pair(entry.get(key, default), params, label, f"{path}.{key}", minimum)

    cin, cout, groups = get("in_channels"), get("out_channels"), get("groups", 1)
    size, kernel = pair("in_size"), pair("kernel")
    stride, padding, dilation = pair("stride", 1), pair("padding", 0, minimum=0), pair("dilation", 1)
    for key, channels in (("in_channels", cin), ("out_channels", cout)):
        if channels % groups:
            _fail(label, f"{path}.{key}", f"{channels} is not divisible by groups ({groups})")
    out = [conv_output_size(size[a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1)]
    if min(out) < 1:
        given = {"in_size": size, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
        detail = ", ".join(f"{key} {h}x{w}" for key, (h, w) in given.items())
        _fail(label, path, f"output size {out[0]}x{out[1]} is empty ({detail})")
    return Layer(
        name, kind, m=batch * out[0] * out[1], n=cout // groups, k=cin // groups * kernel[0] * kernel[1],
        groups=groups, weight_shape=(cout, cin // groups, kernel[0], kernel[1]),
    )
