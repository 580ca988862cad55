"""N:M masks of weights and SAD, the sparse architecture divergence between two sets of masks.

A mask keeps, in every group of M consecutive elements along a weight's reduction axis (`in` of
a linear (out, in) weight), the N largest |w| (ties: the lowest index) — exactly the elements the
first term of a TASD decomposition with that pattern takes, so it is computed by traces.decompose.
SAD (Zhou et al., ICLR 2021) counts mask entries that flipped between two masks; normalised, it
is divided by the mask size.
"""
from __future__ import annotations

import numpy as np

from tasdsim.traces.decompose import decompose
from tasdsim.traces.nm_format import from_rows
from tasdsim.traces.patterns import Pattern, Series


def nm_mask(weight: np.ndarray, pattern: Pattern, axis: int | None = None) -> np.ndarray:
    """Boolean mask of the N:M kept slots of `weight` (grouped along `axis`, default as decompose)."""
    term = decompose(weight, Series((pattern,)), axis).terms[0]
    rows, groups, _ = term.indices.shape
    slots = np.arange(rows * groups, dtype=np.intp).reshape(rows, groups, 1) * pattern.m + term.indices
    kept = np.zeros(rows * groups * pattern.m, dtype=bool)
    kept[slots.ravel()] = True
    k = weight.shape[term.axis]
    kept = kept.reshape(rows, groups * pattern.m)[:, :k]  # drop the last group's padding
    return np.ascontiguousarray(from_rows(kept, weight.shape, term.axis))


def masks_of(weights: dict[str, np.ndarray], pattern: Pattern) -> dict[str, np.ndarray]:
    """The N:M mask of every weight."""
    return {name: nm_mask(w, pattern) for name, w in weights.items()}


def sad(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> int:
    """Mask entries that differ between two sets of masks with the same names and shapes."""
    if before.keys() != after.keys():
        raise ValueError(f"masks name different tensors: {sorted(before)} vs {sorted(after)}")
    return int(sum(np.count_nonzero(before[n] != after[n]) for n in before))


def mask_size(masks: dict[str, np.ndarray]) -> int:
    """Entries of all masks: what a normalised SAD is divided by."""
    return int(sum(m.size for m in masks.values()))
