"""TASD-W on a trained MLP, no fine-tuning, and TASDER with measured accuracy as its criterion.

TASD-W replaces every linear weight by its TASD approximation (traces.decompose, groups along
`in`) and evaluates the model as it is. Accuracy-constrained TASDER is a greedy search over
one-layer steps, in the manner of traces.search.apply_model_budget: every layer starts dense; each
round measures the model's accuracy for every step that moves one layer to a cheaper candidate
series (traces.search.candidate_series over the hardware's patterns, those with compute density
below 1), and among the steps whose accuracy is at least `min_accuracy` takes the one that saves
the most MACs per accuracy point lost (a step that loses nothing ranks first; ties: more MACs
saved, then layer order, then candidate order); it stops when no step meets the bound. Every step
taken was measured on the whole model with all the choices made so far, so the result meets the
bound by construction (the paper's criterion: at least 99% of the dense model's accuracy).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tasdsim.traces import mlp
from tasdsim.traces.decompose import decompose
from tasdsim.traces.patterns import DENSE, Series

DENSE_SERIES = Series((DENSE,))


def approximate(params: dict[str, np.ndarray], series: dict[str, Series]) -> dict[str, np.ndarray]:
    """The weights with each layer's TASD approximation (dense layers, or ones not named, as they are)."""
    return {n: approximate_layer(params[n], series.get(n, DENSE_SERIES)) for n in mlp.layer_names(params)}


def approximate_layer(weight: np.ndarray, series: Series) -> np.ndarray:
    """One (out, in) weight's TASD approximation along `in` (the weight itself when dense)."""
    return weight if series.is_dense else decompose(weight, series, axis=1).approximation(weight)


def model_accuracy(params: dict[str, np.ndarray], series: dict[str, Series], x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the model with every layer's weights replaced by their TASD approximation."""
    return mlp.accuracy(approximate(params, series), params, x, y)


def layer_macs(params: dict[str, np.ndarray]) -> dict[str, int]:
    """Dense MACs per sample of every linear layer: out * in."""
    return {n: int(params[n].shape[0] * params[n].shape[1]) for n in mlp.layer_names(params)}


def compute_density(params: dict[str, np.ndarray], series: dict[str, Series]) -> float:
    """MAC-weighted compute density of the model: sum(MACs * sum(N/M)) / sum(MACs)."""
    macs = layer_macs(params)
    total = sum(macs.values())
    return sum(m * series.get(n, DENSE_SERIES).compute_density for n, m in macs.items()) / total


@dataclass
class AccuracySearch:
    """TASDER's choice for a model under an accuracy bound, the steps it took and how many it measured."""

    series: dict[str, Series]
    accuracy: float
    min_accuracy: float
    compute_density: float
    steps: list[tuple[str, Series, float]] = field(default_factory=list)  # (layer, new series, model accuracy)
    evaluations: int = 0

    def as_dict(self) -> dict:
        return {"series": {n: str(s) for n, s in self.series.items()}, "accuracy": self.accuracy,
                "min_accuracy": self.min_accuracy, "compute_density": self.compute_density,
                "steps": [{"layer": n, "series": str(s), "accuracy": a} for n, s, a in self.steps],
                "evaluations": self.evaluations}


def search_accuracy(params: dict[str, np.ndarray], candidates: list[Series], x: np.ndarray, y: np.ndarray,
                    min_accuracy: float) -> AccuracySearch:
    """Greedy TASDER under `accuracy >= min_accuracy` measured on (x, y); see the module doc."""
    names = mlp.layer_names(params)
    macs = layer_macs(params)
    cheaper = [s for s in candidates if s.compute_density < 1 - 1e-12]
    approximations: dict[tuple[str, Series], np.ndarray] = {}

    def measure(series: dict[str, Series]) -> float:
        weights = {}
        for n, s in series.items():
            if (n, s) not in approximations:
                approximations[(n, s)] = approximate_layer(params[n], s)
            weights[n] = approximations[(n, s)]
        return mlp.accuracy(weights, params, x, y)

    chosen = {n: DENSE_SERIES for n in names}
    accuracy = measure(chosen)
    result = AccuracySearch(chosen, accuracy, min_accuracy, 1.0)
    while True:
        best = None
        for n in names:
            for s in cheaper:
                saved = (chosen[n].compute_density - s.compute_density) * macs[n]
                if saved <= 0:
                    continue
                trial = {**chosen, n: s}
                value = measure(trial)
                result.evaluations += 1
                if value < min_accuracy:
                    continue
                lost = accuracy - value
                score = (saved / lost if lost > 0 else math.inf, saved)
                if best is None or score > best[0]:
                    best = (score, n, s, trial, value)
        if best is None:
            break
        _, n, s, chosen, accuracy = best
        result.steps.append((n, s, accuracy))
    result.series, result.accuracy = chosen, accuracy
    result.compute_density = compute_density(params, chosen)
    return result
