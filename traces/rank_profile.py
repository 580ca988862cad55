"""Quality of every same-M series from one pass over the tensor.

With equal M, a greedy series keeps exactly the top sum(N) magnitudes of every group (BRIEF), so
its relative_error and kept_magnitude follow from the per-group magnitudes sorted in decreasing
order: for each rank r, the sum over groups of the r-th largest |x| and of its square. One pass
per M then answers every candidate with that M, instead of one decomposition per candidate.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from tasdsim.traces.decompose import magnitude
from tasdsim.traces.metrics import safe_scale
from tasdsim.traces.nm_format import check_tensor, to_rows
from tasdsim.traces.patterns import Series

_CHUNK_ROWS = 256


def _rank_sums_py(mag, m):  # pragma: no cover - compiled
    """Per rank r in 0..m-1: sum over groups of the r-th largest magnitude, and of its square."""
    rows, k = mag.shape
    groups = (k + m - 1) // m
    chunks = (rows + _CHUNK_ROWS - 1) // _CHUNK_ROWS
    abs_parts = np.zeros((chunks, m))
    sq_parts = np.zeros((chunks, m))
    for c in prange(chunks):
        group = np.empty(m)
        for r in range(c * _CHUNK_ROWS, min(rows, (c + 1) * _CHUNK_ROWS)):
            for g in range(groups):
                base = g * m
                width = min(m, k - base)
                for i in range(m):  # insertion sort, decreasing
                    v = mag[r, base + i] if i < width else 0.0
                    j = i
                    while j > 0 and group[j - 1] < v:
                        group[j] = group[j - 1]
                        j -= 1
                    group[j] = v
                for rank in range(m):
                    v = group[rank]
                    abs_parts[c, rank] += v
                    sq_parts[c, rank] += v * v
    return abs_parts.sum(axis=0), sq_parts.sum(axis=0)


_rank_sums_serial = njit(cache=True, nogil=True)(_rank_sums_py)
_rank_sums_parallel = njit(cache=True, nogil=True, parallel=True)(_rank_sums_py)


def _rank_sums(mag: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    kernel = _rank_sums_parallel if mag.shape[0] > _CHUNK_ROWS else _rank_sums_serial
    return kernel(mag, m)


@dataclass
class RankProfile:
    """Per-rank magnitude sums of one tensor along its reduction axis, per group size M."""

    rows: np.ndarray
    by_m: dict[int, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def of(cls, a: np.ndarray, axis: int) -> "RankProfile":
        a = np.asarray(a)
        check_tensor(a)
        mag = magnitude(to_rows(a, axis))
        scale = safe_scale(mag)  # squares of |x| > 1e154 would overflow
        return cls(mag * scale if scale != 1.0 else mag, {})

    def _sums(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        if m not in self.by_m:
            self.by_m[m] = _rank_sums(self.rows, m)
        return self.by_m[m]

    def answers(self, series: Series, metric: str) -> bool:
        """Whether this profile gives `metric` for `series` (same M throughout, no output_error)."""
        return metric in ("relative_error", "kept_magnitude") and len({p.m for p in series.terms}) == 1

    def metric(self, series: Series, metric: str) -> float:
        """relative_error or kept_magnitude of a same-M series."""
        m = series.terms[0].m
        kept = min(sum(p.n for p in series.terms), m)
        abs_sums, sq_sums = self._sums(m)
        if metric == "relative_error":
            total = sq_sums.sum()
            return float(np.sqrt(sq_sums[kept:].sum() / total)) if total else 0.0
        total = abs_sums.sum()
        return float(abs_sums[:kept].sum() / total) if total else 1.0
