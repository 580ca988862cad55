"""Tensor sources: real tensors from .npy / .npz / .safetensors files, and seeded synthetic ones.

A tensor spec names a file and, for archives, a tensor in it: "w.npy", "model.npz:fc1",
"model.safetensors:layer.0.weight". A name may itself hold ':' (the path ends at the first
".npz:" or ".safetensors:"). Every failure raises TasdsimError naming the file and what is wrong.

Synthetic tensors come from np.random.default_rng(seed), so a seed gives the same tensor every
time; `synthetic` parses the small spec language the CLI and workloads use (see SYNTHETIC_USAGE).
"""
from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import ml_dtypes  # registers bfloat16 as a numpy dtype
import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from tasdsim.common import TasdsimError
from tasdsim.traces.limits import check_elements
from tasdsim.traces.patterns import Pattern

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

# safetensors dtype names and the numpy dtypes they load as.
SAFETENSORS_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": BFLOAT16,
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U64": np.dtype(np.uint64),
    "U32": np.dtype(np.uint32),
    "U16": np.dtype(np.uint16),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}

_ARCHIVES = (".npz", ".safetensors")
_SHOWN_NAMES = 5  # how many available names an error lists


# ---------------------------------------------------------------- file loaders


def load_tensor(spec: str) -> np.ndarray:
    """Load one tensor: "path.npy", "path.npz:key" or "path.safetensors:name".

    An archive without a key is accepted only when it holds exactly one tensor.
    The stored dtype is kept (BF16 loads as ml_dtypes.bfloat16). A tensor holding NaN or an
    infinity, or more than MAX_TENSOR_ELEMENTS elements, is an error naming it.
    """
    return _finite(_load_tensor(spec), spec)


def _load_tensor(spec: str) -> np.ndarray:
    path, key = _split_spec(spec)
    kind = _file_kind(path)
    if kind == ".npy":
        return _read_npy(lambda: open(path, "rb"), path)
    if key is None:
        names = list(tensor_shapes(path))
        if len(names) != 1:
            raise TasdsimError(
                f"{path}: holds {len(names)} tensors, name one as {path}:NAME"
                + (f" (has: {_some(names)})" if names else "")
            )
        key = names[0]
    if kind == ".npz":
        with _reading(path), zipfile.ZipFile(path) as zf:
            members = _npz_members(zf, path)
            if key not in members:
                raise _no_tensor(path, key, list(members))
            member = members[key]
            return _read_npy(lambda: zf.open(member), f"{path}:{key}")
    with _reading(path), safe_open(path, framework="np") as f:
        names = sorted(f.keys())
        if key not in names:
            raise _no_tensor(path, key, names)
        return _read_safetensor(f, key, f"{path}:{key}")


def load_tensors(path: str) -> dict[str, np.ndarray]:
    """All tensors of a file: .npz in archive order, .safetensors sorted by name;
    a .npy file gives one tensor named after the file's stem."""
    kind = _file_kind(path)
    if kind == ".npy":
        return {Path(path).stem: load_tensor(path)}
    if kind == ".npz":
        with _reading(path), zipfile.ZipFile(path) as zf:
            return {
                key: _finite(_read_npy(lambda: zf.open(member), f"{path}:{key}"), f"{path}:{key}")
                for key, member in _npz_members(zf, path).items()
            }
    with _reading(path), safe_open(path, framework="np") as f:
        return {key: _finite(_read_safetensor(f, key, f"{path}:{key}"), f"{path}:{key}") for key in sorted(f.keys())}


def _finite(tensor: np.ndarray, where: str) -> np.ndarray:
    """The tensor, after checking that it holds no NaN or infinity."""
    values = tensor if tensor.dtype.kind in "biuf" else tensor.astype(np.float32)  # bfloat16
    if not np.isfinite(values).all():
        raise TasdsimError(f"{where}: the tensor holds NaN or infinite values")
    return tensor


def tensor_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """Shapes of all tensors of a file, in load_tensors order, read from headers only."""
    kind = _file_kind(path)
    if kind == ".npy":
        with _reading(path), open(path, "rb") as fh:
            return {Path(path).stem: _npy_header(fh, path)[0]}
    if kind == ".npz":
        shapes = {}
        with _reading(path), zipfile.ZipFile(path) as zf:
            for key, member in _npz_members(zf, path).items():
                with zf.open(member) as fh:
                    shapes[key] = _npy_header(fh, f"{path}:{key}")[0]
        return shapes
    with _reading(path), safe_open(path, framework="np") as f:
        return {key: tuple(f.get_slice(key).get_shape()) for key in sorted(f.keys())}


def save_safetensors(path: str | Path, tensors: dict[str, np.ndarray]) -> None:
    """Write tensors to a .safetensors file (dtypes as in SAFETENSORS_DTYPES)."""
    supported = set(SAFETENSORS_DTYPES.values())
    arrays = {}
    for name, tensor in tensors.items():
        array = np.ascontiguousarray(tensor)
        if array.dtype not in supported:
            raise TasdsimError(f'{path}: cannot save tensor "{name}" of dtype {array.dtype} to safetensors')
        arrays[name] = array
    with _reading(str(path), "cannot write"):
        save_file(arrays, path)


def _split_spec(spec: str) -> tuple[str, str | None]:
    """Split "path.npz:key" / "path.safetensors:name" at the first ':' that follows an archive
    extension, so tensor names may hold ':'; anything else is a bare path."""
    lower = spec.lower()
    for i, char in enumerate(spec):
        if char == ":" and lower[:i].endswith(_ARCHIVES):
            path, key = spec[:i], spec[i + 1 :]
            if not key:
                raise TasdsimError(f'{spec}: empty tensor name after ":"')
            return path, key
    head, sep, key = spec.rpartition(":")
    if sep and head.lower().endswith(".npy") and not Path(spec).exists():
        raise TasdsimError(f'{spec}: an .npy file holds one tensor, drop the ":{key}"')
    return spec, None


def _file_kind(path: str) -> str:
    """The file's extension, after checking it is known and the file exists."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".npy", *_ARCHIVES):
        found = f'"{suffix}"' if suffix else "no extension"
        raise TasdsimError(f"{path}: unknown tensor file type ({found}), expected .npy, .npz or .safetensors")
    if not Path(path).exists():
        raise TasdsimError(f"{path}: no such file")
    if not Path(path).is_file():
        raise TasdsimError(f"{path}: not a regular file")
    return suffix


@contextmanager
def _reading(where: str, failure: str = "unreadable, corrupt or truncated file") -> Iterator[None]:
    """Turn the errors of file access and parsing into one TasdsimError naming the file."""
    try:
        yield
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, SafetensorError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise TasdsimError(f"{where}: {failure} ({reason})") from None


def _npz_members(zf: zipfile.ZipFile, path: str) -> dict[str, str]:
    """Tensor names of an .npz archive mapped to their members, in archive order."""
    members = {name[: -len(".npy")]: name for name in zf.namelist() if name.endswith(".npy")}
    if not members:
        raise TasdsimError(f"{path}: not an .npz of tensors (no .npy members)")
    return members


def _npy_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header, without reading the data."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise TasdsimError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}")
    return tuple(shape), dtype


def _read_npy(open_file: Callable[[], IO[bytes]], where: str) -> np.ndarray:
    """Read an .npy stream after checking from its header that it holds numbers."""
    with _reading(where):
        with open_file() as fh:
            shape, dtype = _npy_header(fh, where)
        _check_numeric(dtype, where)
        check_elements(shape, where)
        with open_file() as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)


def _read_safetensor(f: safe_open, key: str, where: str) -> np.ndarray:
    stored = f.get_slice(key).get_dtype()
    if stored not in SAFETENSORS_DTYPES:
        expected = ", ".join(SAFETENSORS_DTYPES)
        raise TasdsimError(f"{where}: unsupported dtype {stored}, expected one of {expected}")
    check_elements(tuple(f.get_slice(key).get_shape()), where)
    return f.get_tensor(key)


def _check_numeric(dtype: np.dtype, where: str) -> None:
    if dtype.kind in "biuf" or dtype == BFLOAT16:
        return
    hint = ""
    if dtype.kind == "V" and dtype.names is None:
        hint = " (raw bytes, as numpy saves bfloat16; store bfloat16 in .safetensors)"
    raise TasdsimError(f"{where}: dtype {dtype} is not a numeric tensor{hint}")


def _no_tensor(path: str, key: str, names: list[str]) -> TasdsimError:
    return TasdsimError(f'{path}: no tensor "{key}" (has: {_some(names)})')


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN_NAMES])
    more = len(names) - _SHOWN_NAMES
    return f"{shown}, ... {more} more" if more > 0 else shown


# ---------------------------------------------------------------- synthetic tensors


def gaussian(shape: int | Sequence[int], seed: int, std: float = 1.0, dtype=np.float32) -> np.ndarray:
    """Dense N(0, std^2) weights."""
    shape, dtype = _shape(shape), _float_dtype(dtype)
    _positive("std", std)
    values = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    if std != 1.0:
        values *= np.float32(std)
    return values.astype(dtype, copy=False)


def laplacian(shape: int | Sequence[int], seed: int, scale: float = 1.0, dtype=np.float32) -> np.ndarray:
    """Dense Laplace(0, scale) weights (heavier tails than Gaussian, like trained weights)."""
    shape, dtype = _shape(shape), _float_dtype(dtype)
    _positive("scale", scale)
    return np.random.default_rng(seed).laplace(0.0, scale, shape).astype(dtype)


def magnitude_pruned(tensor: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured magnitude pruning: a copy with the round(sparsity * size) smallest |x| set to 0
    (ties: the lower flat index is pruned first)."""
    tensor = np.asarray(tensor)
    flat = tensor.flatten()
    order = np.argsort(np.abs(flat.astype(np.float64)), kind="stable")
    flat[order[: _count(sparsity, flat.size)]] = 0
    return flat.reshape(tensor.shape)


def relu_activations(shape: int | Sequence[int], sparsity: float, seed: int, dtype=np.float32) -> np.ndarray:
    """Post-ReLU activations: exactly round(sparsity * size) zeros at random positions,
    the rest |N(0, 1)|, strictly positive."""
    shape, dtype = _shape(shape), _float_dtype(dtype)
    rng = np.random.default_rng(seed)
    zeros = _count(sparsity, int(np.prod(shape)))
    values = np.abs(_nonzero_normal(rng, shape, dtype))
    values.flat[rng.permutation(values.size)[:zeros]] = 0
    return values


def nm_sparse(
    shape: int | Sequence[int], n: int, m: int, seed: int, axis: int = -1, dtype=np.float32
) -> np.ndarray:
    """An N:M sparse tensor: every group of m consecutive elements along `axis` holds exactly n
    non-zeros at random slots (a last partial group of length L holds min(n, L)); the non-zeros
    are N(0, 1) and never exactly 0."""
    shape, dtype = _shape(shape), _float_dtype(dtype)
    Pattern(n, m)  # validates 1 <= n <= m
    if not -len(shape) <= axis < len(shape):
        raise TasdsimError(f"axis {axis} is out of range for a {len(shape)}-D shape {shape}")
    axis %= len(shape)
    rng = np.random.default_rng(seed)
    k, groups = shape[axis], -(-shape[axis] // m)
    lanes = (*shape[:axis], *shape[axis + 1 :], k)  # the reduction axis last
    keys = rng.random((*lanes[:-1], groups * m))
    keys[..., k:] = 2.0  # padding slots of the last group sort after every real slot
    ranks = keys.reshape(*lanes[:-1], groups, m).argsort(axis=-1).argsort(axis=-1)
    kept = (ranks < n).reshape(*lanes[:-1], groups * m)[..., :k]
    values = _nonzero_normal(rng, lanes, dtype)
    values[~kept] = 0
    return np.ascontiguousarray(np.moveaxis(values, -1, axis))


def quantize_int8(tensor: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor int8: scale = max|x| / 127, round half to even, clip to [-127, 127]."""
    x = np.asarray(tensor).astype(np.float64)
    if not np.isfinite(x).all():
        raise TasdsimError("cannot quantize to int8: the tensor holds NaN or inf")
    peak = np.abs(x).max() if x.size else 0.0
    if peak == 0:
        return np.zeros(x.shape, dtype=np.int8)
    return np.clip(np.rint(x / (peak / 127)), -127, 127).astype(np.int8)


SYNTHETIC_USAGE = (
    "gaussian[:std=S][:pruned=P], laplacian[:scale=B][:pruned=P], relu:sparsity=P or nm:N:M[:axis=A], "
    "optionally followed by ,float32 ,float16 ,bfloat16 or ,int8"
)
_PARAMS = {
    "gaussian": ("std", "pruned"),
    "laplacian": ("scale", "pruned"),
    "relu": ("sparsity",),
    "nm": ("axis",),
}
_SYNTHETIC_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": BFLOAT16, "int8": np.int8}


def synthetic(spec: str, shape: int | Sequence[int], seed: int) -> np.ndarray:
    """A synthetic tensor from a spec such as "gaussian", "laplacian:pruned=0.7", "relu:sparsity=0.6",
    "nm:2:4" or "gaussian,int8" (grammar in SYNTHETIC_USAGE).

    "nm" groups along axis 1 unless told otherwise: `in` of a (out, in) weight, `Cin` of a
    (Cout, Cin, Kh, Kw) one, as in PyTorch's layout (axis 0 for a 1-D shape).
    With ",int8" the tensor is made in float32 and quantized by quantize_int8, except that a
    non-zero never rounds to 0 (it becomes +-1), so the zero pattern and sparsity are kept.
    """
    try:
        return _synthetic(spec, shape, seed)
    except TasdsimError as err:
        raise TasdsimError(f'synthetic tensor "{spec}": {err}') from None


def _synthetic(spec: str, shape: int | Sequence[int], seed: int) -> np.ndarray:
    body, _, dtype_name = spec.strip().partition(",")
    dtype_name = dtype_name.strip().lower() or "float32"
    if dtype_name not in _SYNTHETIC_DTYPES:
        raise TasdsimError(f'unknown dtype "{dtype_name}", expected {", ".join(_SYNTHETIC_DTYPES)}')
    kind, *args = (part.strip() for part in body.split(":"))
    kind = kind.lower()
    if kind not in _PARAMS:
        raise TasdsimError(f'unknown kind "{kind}", expected {SYNTHETIC_USAGE}')
    if kind == "nm":
        if len(args) < 2:
            raise TasdsimError("nm needs N and M, as in nm:2:4")
        n, m = (_number(kind, name, text, int) for name, text in zip(("N", "M"), args[:2]))
        args = args[2:]
    params = _params(kind, args)
    dtype = np.float32 if dtype_name == "int8" else _SYNTHETIC_DTYPES[dtype_name]
    if kind == "gaussian":
        tensor = gaussian(shape, seed, _number(kind, "std", params.get("std", "1"), float), dtype)
    elif kind == "laplacian":
        tensor = laplacian(shape, seed, _number(kind, "scale", params.get("scale", "1"), float), dtype)
    elif kind == "relu":
        if "sparsity" not in params:
            raise TasdsimError("relu needs its sparsity, as in relu:sparsity=0.6")
        tensor = relu_activations(shape, _number(kind, "sparsity", params["sparsity"], float), seed, dtype)
    else:
        default_axis = "1" if len(_shape(shape)) > 1 else "0"
        tensor = nm_sparse(shape, n, m, seed, _number(kind, "axis", params.get("axis", default_axis), int), dtype)
    if "pruned" in params:
        tensor = magnitude_pruned(tensor, _number(kind, "pruned", params["pruned"], float))
    if dtype_name == "int8":
        quantized = quantize_int8(tensor)
        lost = (quantized == 0) & (tensor != 0)
        quantized[lost] = np.sign(tensor[lost].astype(np.float64))
        tensor = quantized
    return tensor


def _params(kind: str, args: list[str]) -> dict[str, str]:
    """Parse "key=value" arguments, allowing only the kind's keys, each once."""
    params: dict[str, str] = {}
    for arg in args:
        key, eq, value = (part.strip() for part in arg.partition("="))
        if not eq or key not in _PARAMS[kind]:
            raise TasdsimError(f'{kind} takes {", ".join(k + "=..." for k in _PARAMS[kind])}, not "{arg}"')
        if key in params:
            raise TasdsimError(f"{key} is given twice")
        params[key] = value
    return params


def _number(kind: str, name: str, text: str, type_: type[int] | type[float]) -> int | float:
    try:
        return type_(text)
    except ValueError:
        wanted = "an integer" if type_ is int else "a number"
        raise TasdsimError(f'{kind}: {name} must be {wanted}, not "{text}"') from None


# ---------------------------------------------------------------- argument checks


def _shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not (
        isinstance(dims, Sequence)
        and dims
        and all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims)
    ):
        raise TasdsimError(f"shape {shape} must be one or more positive integers")
    check_elements(tuple(int(d) for d in dims), f"shape {tuple(int(d) for d in dims)}")
    return tuple(int(d) for d in dims)


def _float_dtype(dtype) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TasdsimError(f"{dtype} is not a dtype") from None
    if dtype.kind != "f" and dtype != BFLOAT16:
        raise TasdsimError(f"dtype {dtype} is not a floating type (use quantize_int8 for int8)")
    return dtype


def _positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise TasdsimError(f"{name} must be a positive number, not {value}")


def _count(sparsity: float, size: int) -> int:
    """round(sparsity * size) after checking 0 <= sparsity <= 1."""
    if not 0 <= sparsity <= 1:
        raise TasdsimError(f"sparsity {sparsity} must be between 0 and 1")
    return round(sparsity * size)


def _nonzero_normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """N(0, 1) values in dtype, redrawing any that are exactly 0 after the cast."""
    values = rng.standard_normal(shape).astype(dtype)
    zero = values == 0
    while zero.any():
        values[zero] = rng.standard_normal(int(zero.sum())).astype(dtype)
        zero = values == 0
    return values
