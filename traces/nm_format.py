"""Compressed N:M format of one TASD term.

A term with pattern N:M over a tensor whose reduction axis has length K is stored, per group of M
consecutive elements along K, as the N kept values (in increasing position order) and, per kept
value, its index in the group: ceil(log2 M) bits of metadata. Every group holds exactly N value
slots, zero-valued when the group had fewer non-zeros, because the hardware skips slots, not values.
When M does not divide K the last group is padded with zeros to M; padded slots can only be chosen
when the real part of the group has fewer than N elements, and then they hold zero.

Layout: the reduction axis is moved last and the other axes flattened into rows, so `values` and
`indices` have shape (rows, groups, N). Metadata is packed as one little-endian bit stream over
`indices` in row-major order, `metadata_bits` bits per index: exactly
ceil(rows * groups * N * bits / 8) bytes.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass

import ml_dtypes
import numpy as np

from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import Pattern, parse_pattern

SUPPORTED_DTYPES = {  # the hardware's operand types, plus wider ones for reference tensors
    "int8": np.dtype(np.int8),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
}


def check_dtype(dtype: np.dtype) -> np.dtype:
    """The tensor dtypes the front-end handles: int8, fp16, bf16, fp32 (fp64 and wider ints for
    reference use)."""
    dtype = np.dtype(dtype)
    if dtype in SUPPORTED_DTYPES.values():
        return dtype
    raise TasdsimError(f"unsupported tensor dtype {dtype}: expected int8, float16, bfloat16 or float32")


def check_tensor(a: np.ndarray) -> None:
    """A tensor the front-end can decompose: supported dtype, not empty, finite."""
    check_dtype(a.dtype)
    if a.size == 0:
        raise TasdsimError(f"cannot decompose an empty tensor of shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) and not np.isfinite(a if a.dtype.kind == "f" else
                                                                   a.astype(np.float32)).all():
        raise TasdsimError("tensor has NaN or infinite values")


def to_rows(a: np.ndarray, axis: int) -> np.ndarray:
    """View the tensor as (rows, K) with the reduction axis last (a contiguous copy if needed)."""
    moved = np.moveaxis(a, axis, -1)
    return np.ascontiguousarray(moved).reshape(-1, moved.shape[-1]) if moved.ndim else moved


def from_rows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """Inverse of to_rows: (rows, K) back to `shape` with the reduction axis at `axis`."""
    moved_shape = tuple(np.delete(np.array(shape), axis)) + (shape[axis],)
    return np.moveaxis(rows.reshape(moved_shape), -1, axis)


def pack_metadata(indices: np.ndarray, bits: int) -> np.ndarray:
    """Pack in-group indices into a little-endian bit stream, `bits` bits each (uint8 array)."""
    flat = indices.reshape(-1).astype(np.uint32)
    if bits == 0:
        return np.zeros(0, dtype=np.uint8)
    bitplanes = ((flat[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(bitplanes.reshape(-1), bitorder="little")


def unpack_metadata(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of pack_metadata: `count` indices of `bits` bits each."""
    if bits == 0:
        return np.zeros(count, dtype=np.uint16)
    need = -(-count * bits // 8)
    if packed.size != need:
        raise TasdsimError(f"metadata has {packed.size} bytes, expected {need} for {count} indices of {bits} bits")
    planes = np.unpackbits(packed, count=count * bits, bitorder="little").reshape(count, bits)
    return (planes.astype(np.uint16) << np.arange(bits, dtype=np.uint16)).sum(axis=1, dtype=np.uint16)


@dataclass
class CompressedTerm:
    """One N:M term in compressed form: values and indices of shape (rows, groups, N)."""

    pattern: Pattern
    shape: tuple[int, ...]  # shape of the full tensor
    axis: int  # reduction axis in `shape`
    values: np.ndarray
    indices: np.ndarray

    @property
    def k(self) -> int:
        return self.shape[self.axis]

    @property
    def nnz(self) -> int:
        """Kept values that are non-zero."""
        return int(np.count_nonzero(self.values))

    @property
    def value_bytes(self) -> int:
        """Bytes of the value slots: N per group, padded groups included."""
        return self.values.size * self.values.dtype.itemsize

    @property
    def metadata_bytes(self) -> int:
        """Bytes of the packed metadata: ceil(slots * ceil(log2 M) / 8)."""
        return -(-self.indices.size * self.pattern.metadata_bits // 8)

    def packed_metadata(self) -> np.ndarray:
        return pack_metadata(self.indices, self.pattern.metadata_bits)

    def to_dense(self) -> np.ndarray:
        """The term as a tensor of `shape`, zero outside its kept positions."""
        rows, groups, _ = self.values.shape
        m = self.pattern.m
        dense = np.zeros((rows, groups, m), dtype=self.values.dtype)
        np.put_along_axis(dense, self.indices.astype(np.intp), self.values, axis=2)
        return from_rows(dense.reshape(rows, groups * m)[:, : self.k], self.shape, self.axis)

    @classmethod
    def from_packed(cls, pattern: Pattern, shape: tuple[int, ...], axis: int,
                    values: np.ndarray, metadata: np.ndarray) -> "CompressedTerm":
        """Rebuild a term from its values (rows, groups, N) and packed metadata bytes."""
        rows = int(np.prod(shape)) // shape[axis]
        expect = (rows, pattern.nm_groups(shape[axis]), pattern.n)
        if values.shape != expect:
            raise TasdsimError(f"term {pattern}: values have shape {values.shape}, expected {expect}")
        indices = unpack_metadata(metadata, pattern.metadata_bits, values.size).reshape(expect)
        if indices.size and int(indices.max()) >= pattern.m:
            raise TasdsimError(f"term {pattern}: metadata index {int(indices.max())} is not below M={pattern.m}")
        return cls(pattern, tuple(shape), axis, values, indices)


def save_terms(path: str, terms: list[CompressedTerm], series: str) -> None:
    """Write every term's values and packed metadata to an .npz file.

    Keys: `series`, `shape`, `axis`, `dtype`, and per term i `term{i}.pattern`, `term{i}.values`
    (shape (rows, groups, N); bfloat16 stored as its uint16 bits) and `term{i}.metadata` (uint8)."""
    dtype = terms[0].values.dtype
    arrays = {"series": np.array(series), "shape": np.array(terms[0].shape, dtype=np.int64),
              "axis": np.array(terms[0].axis), "dtype": np.array(_dtype_name(dtype))}
    for i, term in enumerate(terms):
        values = term.values.view(np.uint16) if dtype == SUPPORTED_DTYPES["bfloat16"] else term.values
        arrays[f"term{i}.pattern"] = np.array(str(term.pattern))
        arrays[f"term{i}.values"] = values
        arrays[f"term{i}.metadata"] = term.packed_metadata()
    try:
        np.savez(path, **arrays)
    except OSError as err:
        raise TasdsimError(f"{path}: cannot write: {err.strerror or err}") from None


def load_terms(path: str) -> list[CompressedTerm]:
    """Read the terms written by save_terms; a file that is not one is an error naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return _terms_from(data)
    except TasdsimError as err:
        raise TasdsimError(f"{path}: {err}") from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise TasdsimError(f"{path}: not a term file written by decompose --out ({err})") from None


def _terms_from(data: np.lib.npyio.NpzFile) -> list[CompressedTerm]:
    shape, axis = tuple(int(s) for s in data["shape"]), int(data["axis"])
    if not shape or min(shape) < 1:
        raise TasdsimError(f"shape {shape} must have positive sizes")
    if not 0 <= axis < len(shape):
        raise TasdsimError(f"axis {axis} is out of range for shape {shape}")
    name = str(data["dtype"])
    dtype = SUPPORTED_DTYPES.get(name)
    if dtype is None:
        raise TasdsimError(f"dtype {name!r} is not one of {', '.join(SUPPORTED_DTYPES)}")
    terms, i = [], 0
    while f"term{i}.pattern" in data:
        values, metadata = data[f"term{i}.values"], data[f"term{i}.metadata"]
        if metadata.dtype != np.uint8:
            raise TasdsimError(f"term{i}.metadata must be uint8 bytes, got {metadata.dtype}")
        stored = np.dtype(np.uint16) if dtype == SUPPORTED_DTYPES["bfloat16"] else dtype
        if values.dtype != stored:
            raise TasdsimError(f"term{i}.values are {values.dtype}, expected {stored} for dtype {name}")
        values = values.view(dtype)
        pattern = parse_pattern(str(data[f"term{i}.pattern"]))
        terms.append(CompressedTerm.from_packed(pattern, shape, axis, values, metadata))
        i += 1
    return terms


def _dtype_name(dtype: np.dtype) -> str:
    return "bfloat16" if dtype == SUPPORTED_DTYPES["bfloat16"] else dtype.name
