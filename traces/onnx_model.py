"""ONNX models as workloads: their Conv, Gemm and MatMul nodes lowered to GEMM layers, their
initializers as the layers' real weights.

Lowering (the same GEMM view as YAML workloads, see workloads.py), one layer per node, named after
the node (its first output when the node has no name):

- Conv, ConvInteger, QLinearConv (1-D or 2-D): strides, pads, auto_pad (SAME_UPPER, SAME_LOWER,
  VALID), dilations and group; M = batch * Ho * Wo, K = Cin / group * Kh * Kw, N = Cout / group,
  `group` GEMMs. The weight must be a constant.
- Gemm (transA, transB): M x K times K x N; a linear layer when B is a constant, else activation
  x activation (matmul).
- MatMul, MatMulInteger, QLinearMatMul: with a constant 2-D B, a linear layer over every row of A
  (M = the product of A's leading dimensions); otherwise a batched matmul of activations (attention
  scores and context): groups = the product of the broadcast batch dimensions.

Every other op is skipped (`OnnxModel.skipped`). Shapes come from ONNX shape inference once the
graph inputs' shapes are known: `input_shapes` (NAME -> dims) wins, then the model's static dims;
a dynamic first dimension takes `batch` (default 1), a dynamic second one `seq_len`.

Weights read as their values in PyTorch layout ((out, in) for linear, (Cout, Cin/group, Kh, Kw)
for conv): fp16, bf16 and int8 initializers keep their dtype; a weight behind DequantizeLinear
(and QuantizeLinear), or a QLinear op's weight, reads as its dequantized float32 values.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasdsim.common import TasdsimError
from tasdsim.traces.workloads import Layer, Workload

MAX_ONNX_BYTES = 2**31  # protobuf's own limit on one serialised model
MAX_NODES = 200_000
MAX_LAYERS = 20_000
INSTALL_HINT = "pip install 'tasdsim[onnx]'"

# op -> (index of the streamed input A, index of the weight input B)
_LAYER_OPS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
              "Gemm": (0, 1), "MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
_CONV_OPS = ("Conv", "ConvInteger", "QLinearConv")
# ops a constant weight may pass through on its way from an initializer to a layer
_CONSTANT_OPS = ("Identity", "Cast", "Transpose", "Reshape", "QuantizeLinear", "DequantizeLinear")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise TasdsimError(f"ONNX models need the onnx package: {INSTALL_HINT}") from None
    return onnx


@dataclass(frozen=True)
class OnnxLayer:
    """How one lowered layer sits in the graph."""

    layer: Layer
    node: str  # the node's name
    op: str
    data: str  # the streamed input (the GEMM's I operand)
    weight: str | None  # the constant weight input, None when both operands are activations
    trans_a: bool = False  # Gemm's transA: A is (K, M)
    trans_b: bool = False  # Gemm's transB: B is (N, K)
    conv: tuple | None = None  # a conv's (kernel, strides, pads_begin, dilations, out), per spatial axis


class OnnxModel:
    """A loaded ONNX model: its workload, where each layer sits, the skipped ops and the weights."""

    def __init__(self, path: str, model, shapes: dict[str, tuple[int, ...]], input_shapes: dict[str, tuple[int, ...]],
                 layers: tuple[OnnxLayer, ...], skipped: tuple[tuple[str, str], ...]) -> None:
        self.path = path
        self.model = model  # onnx.ModelProto, external data not loaded
        self.shapes = shapes  # every tensor's inferred static shape
        self.input_shapes = input_shapes  # the graph inputs' shapes used
        self.layers = layers
        self.skipped = skipped  # (node name, op type) of the ops that are not layers
        self.workload = Workload(Path(path).stem, tuple(entry.layer for entry in layers))
        self._by_name = {entry.layer.name: entry for entry in layers}
        self._initializers = {t.name: t for t in model.graph.initializer}
        self._producers = {out: node for node in model.graph.node for out in node.output}
        self._nodes = {_node_name(node): node for node in model.graph.node}

    def entry(self, name: str) -> OnnxLayer:
        return self._by_name[name]

    def weights(self, name: str) -> np.ndarray | None:
        """The layer's weights as values in PyTorch layout, None for activation x activation."""
        entry = self._by_name[name]
        if entry.weight is None:
            return None
        node = self._nodes[entry.node]
        w = self.constant(entry.weight)
        if entry.op.startswith("QLinear"):
            axis = 0 if entry.op in _CONV_OPS else -1  # per output channel: Cout, or N of a (K, N) B
            w = _dequantize(w, self.constant(node.input[4]), self.constant(node.input[5]), axis)
        if entry.op in _CONV_OPS:
            return w.reshape(w.shape[0], w.shape[1], *(1,) * (4 - w.ndim), *w.shape[2:])  # 1-D conv: Kh = 1
        return w if entry.trans_b else w.T  # (N, K)

    def constant(self, name: str) -> np.ndarray:
        """The value of a constant tensor: an initializer, a Constant, or a chain of _CONSTANT_OPS."""
        from onnx import helper, numpy_helper

        if name in self._initializers:
            try:
                return numpy_helper.to_array(self._initializers[name], os.path.dirname(self.path) or ".")
            except (OSError, ValueError) as err:
                raise TasdsimError(f"{self.path}: initializer {name}: cannot read its data ({err})") from None
        node = self._producers.get(name)
        if node is None or (node.op_type not in _CONSTANT_OPS and node.op_type != "Constant"):
            raise TasdsimError(f"{self.path}: tensor {name} is not a constant")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Constant":
            if "value" not in attrs:
                raise TasdsimError(f"{self.path}: node {_node_name(node)}: only Constant with a tensor value is read")
            return numpy_helper.to_array(attrs["value"])
        args = [self.constant(i) if i else None for i in node.input]
        x = args[0]
        if node.op_type == "Identity":
            return x
        if node.op_type == "Cast":
            return x.astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
        if node.op_type == "Transpose":
            return np.transpose(x, attrs.get("perm"))
        if node.op_type == "Reshape":
            shape = [d if d != 0 else x.shape[i] for i, d in enumerate(args[1].tolist())]
            return x.reshape(shape)
        zero = args[2] if len(args) > 2 and args[2] is not None else None
        if node.op_type == "DequantizeLinear":
            return _dequantize(x, args[1], zero, attrs.get("axis", 1))
        return _quantize(x, args[1], zero, attrs.get("axis", 1))


def parse_input_shapes(texts: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """`NAME=1x3x224x224` (repeatable) as {NAME: (1, 3, 224, 224)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        name, eq, dims = text.rpartition("=")
        parts = dims.lower().split("x")
        if not eq or not name or not all(p.strip().isdecimal() and int(p) > 0 for p in parts):
            raise TasdsimError(f'--input-shape "{text}": expected NAME=DxDx..., such as input=1x3x224x224')
        if name in shapes:
            raise TasdsimError(f"--input-shape: {name} is given twice")
        shapes[name] = tuple(int(p) for p in parts)
    return shapes


def load_onnx(path: str, input_shapes: Mapping[str, tuple[int, ...]] | None = None, batch: int | None = None,
              seq_len: int | None = None) -> OnnxModel:
    """Load an ONNX model and lower its layers (see the module's docstring). The last two models
    loaded are kept, so the workload and its tensors come from one read of the file."""
    try:
        stat = os.stat(path)
    except OSError as err:
        raise TasdsimError(f"{path}: cannot read: {err.strerror or err}") from None
    shapes = tuple(sorted((k, tuple(v)) for k, v in (input_shapes or {}).items()))
    return _load(path, stat.st_mtime_ns, stat.st_size, shapes, batch, seq_len)


def operand_tensors(model: OnnxModel, operand: str, names: list[str], sample: str | None = None,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """The named layers' real tensors for `operand`: weights (layers without one are left out) or
    input activation rows (one onnxruntime run; `sample` or a seeded random input)."""
    if operand == "weights":
        return {name: w for name in names if (w := model.weights(name)) is not None}
    from tasdsim.traces.onnx_activations import capture

    return capture(model, names, sample, seed)


@functools.lru_cache(maxsize=2)
def _load(path: str, _mtime: int, size: int, input_shapes: tuple, batch: int | None, seq_len: int | None) -> OnnxModel:
    onnx = _onnx()
    input_shapes = dict(input_shapes)
    if size > MAX_ONNX_BYTES:
        raise TasdsimError(f"{path}: {size:,} bytes is more than an ONNX file holds ({MAX_ONNX_BYTES:,})")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises several unrelated types
        raise TasdsimError(f"{path}: not a readable ONNX model ({type(err).__name__}: {err})") from None
    graph = model.graph
    if len(graph.node) > MAX_NODES:
        raise TasdsimError(f"{path}: {len(graph.node):,} nodes, more than the {MAX_NODES:,} tasdsim reads")
    if any(n.op_type in ("If", "Loop", "Scan") for n in graph.node):
        node = next(n for n in graph.node if n.op_type in ("If", "Loop", "Scan"))
        raise TasdsimError(f"{path}: node {_node_name(node)}: control flow ({node.op_type}) cannot be lowered")
    shapes_in = _input_shapes(model, path, dict(input_shapes or {}), batch, seq_len)
    for value in graph.input:
        if value.name in shapes_in:
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes_in[value.name]:
                dims.add().dim_value = d
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as err:  # noqa: BLE001 - onnx raises InferenceError and others
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TasdsimError(f"{path}: ONNX shape inference failed: {first}") from None
    shapes = _static_shapes(inferred)
    constants = _constant_names(model)
    layers, skipped, names = [], [], set()
    for node in graph.node:
        if node.op_type not in _LAYER_OPS or node.domain not in ("", "ai.onnx"):
            skipped.append((_node_name(node), node.op_type))
            continue
        name = _node_name(node)
        if name in names:
            raise TasdsimError(f"{path}: node {name}: two nodes have this name")
        names.add(name)
        layers.append(_lower(node, name, shapes, constants, path))
        if len(layers) > MAX_LAYERS:
            raise TasdsimError(f"{path}: more than {MAX_LAYERS:,} layers")
    if not layers:
        raise TasdsimError(f"{path}: no Conv, Gemm or MatMul node to lower")
    return OnnxModel(path, inferred, shapes, shapes_in, tuple(layers), tuple(skipped))


def _node_name(node) -> str:
    return node.name or node.output[0]


def _input_shapes(model, path: str, given: dict[str, tuple[int, ...]], batch: int | None,
                  seq_len: int | None) -> dict[str, tuple[int, ...]]:
    """Every graph input's shape: as given, else its static dims with batch and seq_len filled in."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    unknown = sorted(set(given) - {v.name for v in inputs})
    if unknown:
        raise TasdsimError(f"{path}: --input-shape {unknown[0]}: no such graph input "
                           f"(inputs: {', '.join(v.name for v in inputs)})")
    for key, value in (("batch", batch), ("seq_len", seq_len)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise TasdsimError(f"{path}: {key}={value!r}: must be a positive integer")
    shapes = {}
    for value in inputs:
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                for d in value.type.tensor_type.shape.dim]
        if value.name in given:
            if len(given[value.name]) != len(dims):
                raise TasdsimError(f"{path}: --input-shape {value.name}: the input has {len(dims)} dimensions, "
                                   f"got {len(given[value.name])}")
            shapes[value.name] = given[value.name]
            continue
        if dims and (dims[0] is None or batch is not None):
            dims[0] = batch or 1
        if len(dims) > 1 and dims[1] is None and seq_len is not None:
            dims[1] = seq_len
        if None in dims:
            shown = "x".join("?" if d is None else str(d) for d in dims)
            raise TasdsimError(f"{path}: input {value.name} has dynamic dimensions ({shown}): "
                               f"give --input-shape {value.name}=" + "x".join(str(d or 1) for d in dims))
        shapes[value.name] = tuple(dims)
    return shapes


def _static_shapes(model) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor whose dims are all known after shape inference."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    return shapes


def _constant_names(model) -> set[str]:
    """Tensors whose value is known without inputs: initializers, Constants and _CONSTANT_OPS of them."""
    constants = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.op_type in _CONSTANT_OPS
                                          and all(not i or i in constants for i in node.input)):
            constants.update(node.output)
    return constants


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _shape(node, name: str, index: int, shapes: dict, path: str) -> tuple[int, ...]:
    tensor = node.input[index] if index < len(node.input) else ""
    if tensor not in shapes:
        raise TasdsimError(f"{path}: node {name} ({node.op_type}): the shape of input {tensor or index} is unknown "
                           "after shape inference (give the inputs' shapes with --input-shape)")
    if 0 in shapes[tensor]:
        raise TasdsimError(f"{path}: node {name} ({node.op_type}): input {tensor} is empty {shapes[tensor]}")
    return shapes[tensor]


def _lower(node, name: str, shapes: dict, constants: set[str], path: str) -> OnnxLayer:
    a_index, b_index = _LAYER_OPS[node.op_type]
    a = _shape(node, name, a_index, shapes, path)
    b = _shape(node, name, b_index, shapes, path)
    weight = node.input[b_index] if node.input[b_index] in constants else None
    where = f"{path}: node {name} ({node.op_type})"
    if node.op_type in _CONV_OPS:
        return _lower_conv(node, name, a, b, weight, shapes, where)
    if node.op_type == "Gemm":
        attrs = _attrs(node)
        trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
        if len(a) != 2 or len(b) != 2:
            raise TasdsimError(f"{where}: Gemm takes 2-D A and B, got {a} and {b}")
        m, k = (a[1], a[0]) if trans_a else a
        k_b, n = (b[1], b[0]) if trans_b else b
        if k != k_b:
            raise TasdsimError(f"{where}: A {a} and B {b} do not share K")
        if weight is None:
            return OnnxLayer(Layer(name, "matmul", m=m, n=n, k=k), name, node.op_type, node.input[a_index], None,
                             trans_a, trans_b)
        return OnnxLayer(Layer(name, "linear", m=m, n=n, k=k, weight_shape=(n, k)), name, node.op_type,
                         node.input[a_index], weight, trans_a, trans_b)
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise TasdsimError(f"{where}: A {a} and B {b} do not share K")
    m, k, n = a2[-2], a2[-1], b2[-1]
    if weight is not None and len(b) == 2:
        rows = math.prod(a2[:-1])
        return OnnxLayer(Layer(name, "linear", m=rows, n=n, k=k, weight_shape=(n, k)), name, node.op_type,
                         node.input[a_index], weight)
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise TasdsimError(f"{where}: batch dimensions of A {a} and B {b} do not broadcast") from None
    return OnnxLayer(Layer(name, "matmul", m=m, n=n, k=k, groups=math.prod(batch)), name, node.op_type,
                     node.input[a_index], None)


def _lower_conv(node, name: str, x: tuple[int, ...], w: tuple[int, ...], weight: str | None, shapes: dict,
                where: str) -> OnnxLayer:
    if weight is None:
        raise TasdsimError(f"{where}: the weight {node.input[_LAYER_OPS[node.op_type][1]]} is not a constant "
                           "(an initializer), so the conv cannot be lowered")
    if len(x) not in (3, 4) or len(w) != len(x):
        raise TasdsimError(f"{where}: only 1-D and 2-D convolutions are lowered (input {x}, weight {w})")
    attrs = _attrs(node)
    spatial = len(x) - 2
    group = int(attrs.get("group", 1))
    kernel = tuple(attrs.get("kernel_shape", w[2:]))
    strides = tuple(attrs.get("strides", (1,) * spatial))
    dilations = tuple(attrs.get("dilations", (1,) * spatial))
    pads = tuple(attrs.get("pads", (0,) * 2 * spatial))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
    cin, cout = x[1], w[0]
    if group < 1 or cin % group or cout % group or w[1] * group != cin:
        raise TasdsimError(f"{where}: input channels {cin}, weight {w} and group {group} do not agree")
    if kernel != tuple(w[2:]) or min(strides + dilations) < 1 or min(pads, default=0) < 0:
        raise TasdsimError(f"{where}: kernel_shape {kernel}, strides {strides}, dilations {dilations} or pads {pads} "
                           f"are not valid for the weight {w}")
    out, begin = [], []
    for axis in range(spatial):
        size, k, s, d = x[2 + axis], kernel[axis], strides[axis], dilations[axis]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max((o - 1) * s + (k - 1) * d + 1 - size, 0)
            first = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            out.append(o)
            begin.append(first)
        elif auto_pad in ("NOTSET", "VALID"):
            pb, pe = (0, 0) if auto_pad == "VALID" else (pads[axis], pads[axis + spatial])
            out.append((size + pb + pe - d * (k - 1) - 1) // s + 1)
            begin.append(pb)
        else:
            raise TasdsimError(f"{where}: unknown auto_pad {auto_pad!r}")
    if min(out) < 1:
        raise TasdsimError(f"{where}: the output of input {x} with kernel {kernel} is empty")
    kernel4 = (1,) * (2 - spatial) + kernel
    layer = Layer(name, "conv", m=x[0] * math.prod(out), n=cout // group, k=cin // group * math.prod(kernel),
                  groups=group, weight_shape=(cout, cin // group, *kernel4))
    return OnnxLayer(layer, name, node.op_type, node.input[0], weight,
                     conv=(kernel, strides, tuple(begin), dilations, tuple(out)))


def _dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    scale, zero = _per_axis(scale, x.ndim, axis), _per_axis(zero, x.ndim, axis)
    values = x.astype(np.float32) - (0 if zero is None else zero.astype(np.float32))
    return (values * scale.astype(np.float32)).astype(np.float32)


def _quantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int) -> np.ndarray:
    dtype = np.uint8 if zero is None else zero.dtype
    scale, zero = _per_axis(scale, x.ndim, axis), _per_axis(zero, x.ndim, axis)
    q = np.rint(x.astype(np.float32) / scale.astype(np.float32)) + (0 if zero is None else zero.astype(np.float32))
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _per_axis(value: np.ndarray | None, ndim: int, axis: int) -> np.ndarray | None:
    """A scalar, or a 1-D per-axis array shaped to broadcast along `axis`."""
    if value is None or value.ndim == 0:
        return value
    shape = [1] * ndim
    shape[axis % ndim] = value.size
    return value.reshape(shape)
