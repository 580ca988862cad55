"""Quality of a TASD approximation of one tensor.

All metrics are computed in float64 from the exact terms, so they do not depend on the order of
summation in the tensor's own dtype.
"""
from __future__ import annotations

import numpy as np

from tasdsim.traces.decompose import Decomposition
from tasdsim.common import TasdsimError

ERROR_METRICS = ("relative_error", "output_error")
KEPT_METRICS = ("density", "compute_density", "kept_magnitude")
METRICS = KEPT_METRICS + ERROR_METRICS


SAFE_PEAK = 1e150  # above this |x|, sums of squares could overflow float64: metrics scale first


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def safe_scale(a: np.ndarray) -> float:
    """1, or 1 / max|a| when |a| is so large that sums of squares or products could overflow.
    Every metric is a ratio, so scaling both sides by it changes nothing but the overflow."""
    peak = float(np.abs(_f64(a)).max()) if a.size else 0.0
    return 1.0 / peak if peak > SAFE_PEAK else 1.0


def relative_error(a: np.ndarray, a_hat: np.ndarray) -> float:
    """||A - A_hat||_F / ||A||_F (0 for an all-zero A)."""
    s = safe_scale(a)
    norm = np.linalg.norm(_f64(a) * s)
    return float(np.linalg.norm((_f64(a) - _f64(a_hat)) * s) / norm) if norm else 0.0


def relative_error_from_residual(a: np.ndarray, residual: np.ndarray) -> float:
    """||R||_F / ||A||_F: the same value as relative_error, without forming A_hat."""
    s = safe_scale(a)
    norm = np.linalg.norm(_f64(a) * s)
    return float(np.linalg.norm(_f64(residual) * s) / norm) if norm else 0.0


def kept_magnitude(a: np.ndarray, a_hat: np.ndarray) -> float:
    """sum|A_hat| / sum|A| (1 for an all-zero A)."""
    s = safe_scale(a)
    total = (np.abs(_f64(a)) * s).sum()
    return float((np.abs(_f64(a_hat)) * s).sum() / total) if total else 1.0


def density(a_hat: np.ndarray) -> float:
    """Non-zeros kept / elements."""
    return np.count_nonzero(a_hat) / a_hat.size


def output_error(a: np.ndarray, a_hat: np.ndarray, b: np.ndarray, axis: int) -> float:
    """||(A - A_hat)·B||_F / ||A·B||_F, contracting A's reduction `axis` with B's first axis.

    For a conv weight (Cout, Cin, Kh, Kw) the reduction is Cin*Kh*Kw: pass B of shape
    (Cin*Kh*Kw, samples) and axis=1; the weight is flattened as (Cout, Cin*Kh*Kw)."""
    flat_a, flat_a_hat = _as_matrix(a, axis), _as_matrix(a_hat, axis)
    if b.shape[0] != flat_a.shape[1]:
        raise TasdsimError(f"sample inputs have {b.shape[0]} rows, expected {flat_a.shape[1]} (the reduction size)")
    s, b = safe_scale(flat_a), _f64(b) * safe_scale(b)
    reference = (flat_a * s) @ b
    norm = np.linalg.norm(reference)
    return float(np.linalg.norm(((flat_a - flat_a_hat) * s) @ b) / norm) if norm else 0.0


def _as_matrix(a: np.ndarray, axis: int) -> np.ndarray:
    """(rows, reduction) view: for 2-D, the reduction axis last; for 4-D (Cout, Cin, Kh, Kw), Cout rows."""
    a = _f64(a)
    if a.ndim == 4 and axis == 1:
        return a.reshape(a.shape[0], -1)
    return np.moveaxis(a, axis, -1).reshape(-1, a.shape[axis])


def reduction_size(shape: tuple[int, ...], axis: int) -> int:
    """Length of the contraction in output_error: Cin*Kh*Kw for a conv weight, else shape[axis]."""
    if len(shape) == 4 and axis == 1:
        return int(np.prod(shape[1:]))
    return shape[axis]


def quality(a: np.ndarray, dec: Decomposition, b: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of a decomposition; output_error only when sample inputs `b` are given."""
    a_hat = dec.approximation(a)
    out = {
        "density": density(a_hat),
        "compute_density": dec.series.compute_density,
        "relative_error": relative_error(a, a_hat),
        "kept_magnitude": kept_magnitude(a, a_hat),
    }
    if b is not None:
        out["output_error"] = output_error(a, a_hat, b, dec.axis)
    return out
