"""Greedy TASD decomposition along the reduction axis.

    R0 = A;  for each Ni:Mi:  Ai = the Ni largest |x| of every Mi-group of R(i-1);  Ri = R(i-1) - Ai

Ties go to the lowest index in the group. When Mi does not divide K the last group is padded with
zeros (see nm_format). Magnitudes are taken in a wider type, so |-128| of int8 is 128, and values
move bit for bit, so every term and the residual are exact in the tensor's own dtype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tasdsim.common import TasdsimError
from tasdsim.traces.nm_format import CompressedTerm, check_tensor, from_rows, to_rows
from tasdsim.traces.patterns import Series


_CHUNK_ROWS = 256


def _extract_term_py(bits, mag, n, m):  # pragma: no cover - compiled
    """Take one N:M term out of the residual, in place.

    bits: (rows, K) raw bits of the residual (zeroed where taken); mag: (rows, K) magnitudes (zeroed
    where taken). Per group, n passes each take the largest remaining magnitude (strict >, so ties
    go to the lowest index); padded slots rank below every real element and taken ones below those
    (a rank per slot, so magnitudes may use their type's whole range). Returns in-group indices
    (rows, groups, n), increasing, and the taken value bits.
    """
    rows, k = bits.shape
    groups = (k + m - 1) // m
    indices = np.empty((rows, groups, n), dtype=np.uint8)
    values = np.zeros((rows, groups, n), dtype=bits.dtype)
    chunks = (rows + _CHUNK_ROWS - 1) // _CHUNK_ROWS
    for c in prange(chunks):
        group_mag = np.zeros(m, dtype=mag.dtype)
        slot_rank = np.empty(m, dtype=np.uint8)  # 0 real, 1 padded, 2 taken
        for r in range(c * _CHUNK_ROWS, min(rows, (c + 1) * _CHUNK_ROWS)):
            for g in range(groups):
                base = g * m
                width = min(m, k - base)
                for i in range(m):
                    slot_rank[i] = 0 if i < width else 1
                    group_mag[i] = mag[r, base + i] if i < width else 0
                for _ in range(n):
                    best = 0
                    for i in range(1, m):
                        if slot_rank[i] < slot_rank[best] or (
                                slot_rank[i] == slot_rank[best] and group_mag[i] > group_mag[best]):
                            best = i
                    slot_rank[best] = 2
                j = 0
                for i in range(m):
                    if slot_rank[i] == 2:
                        indices[r, g, j] = i
                        if i < width:
                            values[r, g, j] = bits[r, base + i]
                            bits[r, base + i] = 0
                            mag[r, base + i] = 0
                        j += 1
    return indices, values


_extract_term_serial = njit(cache=True, nogil=True)(_extract_term_py)
_extract_term_parallel = njit(cache=True, nogil=True, parallel=True)(_extract_term_py)


def _extract_term(bits: np.ndarray, mag: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel, on the thread pool only when there is more than one chunk of rows."""
    kernel = _extract_term_parallel if bits.shape[0] > _CHUNK_ROWS else _extract_term_serial
    return kernel(bits, mag, n, m)


def magnitude(a: np.ndarray) -> np.ndarray:
    """|a| in a type wide enough to be exact: uint64 for integers (|-2^63| = 2^63 included),
    float32/float64 for floats."""
    if np.issubdtype(a.dtype, np.integer):
        return np.abs(a.astype(np.int64, copy=False)).view(np.uint64)
    wide = np.float64 if a.dtype == np.float64 else np.float32
    return np.abs(a.astype(wide, copy=False))


def normalize_axis(shape: tuple[int, ...], axis: int | None) -> int:
    """The reduction axis: given, or by default the last for 2-D and input channels (1) for 4-D."""
    ndim = len(shape)
    if ndim == 0:
        raise TasdsimError("cannot decompose a scalar: the tensor needs a reduction axis")
    if axis is None:
        axis = 1 if ndim == 4 else ndim - 1
    if not -ndim <= axis < ndim:
        raise TasdsimError(f"axis {axis} is out of range for a tensor of shape {tuple(shape)}")
    return axis % ndim


@dataclass
class Decomposition:
    """A tensor split into TASD terms plus the residual that the series drops."""

    series: Series
    shape: tuple[int, ...]
    axis: int
    terms: list[CompressedTerm]
    residual: np.ndarray

    def approximation(self, original: np.ndarray) -> np.ndarray:
        """A_hat = sum of the terms = A where the residual is zero, exactly."""
        return np.where(self.residual != 0, np.zeros((), original.dtype), original)


def decompose(a: np.ndarray, series: Series, axis: int | None = None) -> Decomposition:
    """Greedy TASD decomposition of `a` with `series` along `axis` (see normalize_axis)."""
    a = np.asarray(a)
    check_tensor(a)
    axis = normalize_axis(a.shape, axis)
    rows = to_rows(a, axis)
    bits = rows.view(np.dtype(f"u{a.dtype.itemsize}")).copy()
    mag = magnitude(rows)
    terms = []
    for pattern in series.terms:
        indices, value_bits = _extract_term(bits, mag, pattern.n, pattern.m)
        terms.append(CompressedTerm(pattern, a.shape, axis, value_bits.view(a.dtype), indices))
    residual = from_rows(bits.view(a.dtype), a.shape, axis)
    return Decomposition(series, tuple(a.shape), axis, terms, residual)
