"""Real activations of an ONNX model: run it once on CPU with onnxruntime and capture every lowered
layer's input, as the im2col rows (M, K) the layer streams, at most `rows` of them.

The input is a sample (`.npy` for a one-input model, `.npz` keyed by input name) or a seeded
random one: N(0, 1) for float inputs, 0 or 1 for integer ones (token ids, masks, segment ids).
A conv's rows order K as (Kh, Kw, Cin / group), so N:M groups run along input channels at a fixed
kernel position, as for weights; row i samples output position i (evenly spaced) of group i % group.
"""
from __future__ import annotations

import math

import numpy as np

from tasdsim.common import TasdsimError
from tasdsim.traces import tensors
from tasdsim.traces.layer_tensors import SAMPLE_ROWS
from tasdsim.traces.onnx_model import INSTALL_HINT, OnnxLayer, OnnxModel

MAX_CAPTURE_BYTES = 4 * 2**30  # the captured inputs of all layers are held at once


def capture(model: OnnxModel, names: list[str], sample: str | None = None, seed: int = 0,
            rows: int = SAMPLE_ROWS) -> dict[str, np.ndarray]:
    """The input rows (min(M, rows), K) of the named layers, from one run of the model."""
    try:
        import onnxruntime
    except ImportError:
        raise TasdsimError(f"real activations of an ONNX model need onnxruntime: {INSTALL_HINT}") from None
    import onnx

    entries = [model.entry(name) for name in names]
    wanted = sorted({e.data for e in entries})
    size = sum(math.prod(model.shapes[t]) * 4 for t in wanted)
    if size > MAX_CAPTURE_BYTES:
        raise TasdsimError(f"{model.path}: the layers' inputs take {size / 2**30:.1f} GiB, more than "
                           f"{MAX_CAPTURE_BYTES // 2**30} GiB: give a smaller --input-shape or select --layers")
    full = onnx.load(model.path)  # with its weights, external data included
    graph_inputs = {v.name for v in full.graph.input} - {t.name for t in full.graph.initializer}
    types = {v.name: v for v in [*model.model.graph.value_info, *model.model.graph.input, *model.model.graph.output]}
    outputs = {o.name for o in full.graph.output}
    fetched = [name for name in wanted if name not in graph_inputs]
    for name in fetched:
        if name not in outputs:
            full.graph.output.append(types[name])
    feeds = _feeds(model, full, sample, seed)
    try:
        session = onnxruntime.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
        values = {**feeds, **dict(zip(fetched, session.run(fetched, feeds)))}
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TasdsimError(f"{model.path}: onnxruntime could not run the model: {first}") from None
    return {e.layer.name: layer_rows(e, values[e.data], rows) for e in entries}


def _feeds(model: OnnxModel, full, sample: str | None, seed: int) -> dict[str, np.ndarray]:
    from onnx import helper

    inputs = [v for v in full.graph.input if v.name in model.input_shapes]
    dtypes = {v.name: helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type) for v in inputs}
    if sample is None:
        rng = np.random.default_rng(seed)
        return {name: (rng.standard_normal(shape) if np.dtype(dtypes[name]).kind == "f"
                       else rng.integers(0, 2, shape)).astype(dtypes[name])
                for name, shape in model.input_shapes.items()}
    if sample.lower().endswith(".npz"):
        given = tensors.load_tensors(sample)
    elif len(inputs) == 1:
        given = {inputs[0].name: tensors.load_tensor(sample)}
    else:
        raise TasdsimError(f"{sample}: the model has {len(inputs)} inputs; give an .npz with one array per input "
                           f"({', '.join(v.name for v in inputs)})")
    feeds = {}
    for name, shape in model.input_shapes.items():
        if name not in given:
            raise TasdsimError(f"{sample}: no array for input {name}")
        if tuple(given[name].shape) != tuple(shape):
            raise TasdsimError(f"{sample}: input {name} has shape {tuple(given[name].shape)}, the model takes "
                               f"{tuple(shape)} (set it with --input-shape {name}=...)")
        feeds[name] = given[name].astype(dtypes[name])
    return feeds


def layer_rows(entry: OnnxLayer, x: np.ndarray, rows: int = SAMPLE_ROWS) -> np.ndarray:
    """The layer's input as at most `rows` im2col rows (rows, K), evenly spaced over M."""
    layer = entry.layer
    if entry.conv is None:
        a = np.swapaxes(x, -1, -2) if entry.trans_a else x
        a = a.reshape(-1, layer.k)
        return np.ascontiguousarray(a[_spaced(a.shape[0], rows)])
    kernel, strides, begin, dilations, out = entry.conv
    if len(kernel) == 1:  # 1-D: height 1
        x, kernel, strides, begin, dilations, out = (x[:, :, None, :], (1, *kernel), (1, *strides), (0, *begin),
                                                     (1, *dilations), (1, *out))
    batch, channels, height, width = x.shape
    per_group = channels // layer.groups
    reach = [(kernel[a] - 1) * dilations[a] + (out[a] - 1) * strides[a] + 1 for a in (0, 1)]
    padded = np.zeros((batch, channels, max(height + begin[0], reach[0]), max(width + begin[1], reach[1])), x.dtype)
    padded[:, :, begin[0]:begin[0] + height, begin[1]:begin[1] + width] = x
    picked = _spaced(batch * out[0] * out[1], rows)
    result = np.empty((len(picked), layer.k), dtype=x.dtype)
    kh = np.arange(kernel[0]) * dilations[0]
    kw = np.arange(kernel[1]) * dilations[1]
    for i, position in enumerate(picked):
        n, rest = divmod(int(position), out[0] * out[1])
        oh, ow = divmod(rest, out[1])
        g = i % layer.groups
        patch = padded[n, g * per_group:(g + 1) * per_group][:, oh * strides[0] + kh][:, :, ow * strides[1] + kw]
        result[i] = patch.transpose(1, 2, 0).reshape(-1)  # (Kh, Kw, Cin/group): channels innermost
    return result


def _spaced(count: int, rows: int) -> np.ndarray:
    """min(count, rows) indices evenly spaced over range(count)."""
    if count <= rows:
        return np.arange(count)
    return np.linspace(0, count - 1, rows).round().astype(np.int64)
