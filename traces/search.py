"""TASDER: choose, per layer, the cheapest TASD series the hardware supports that keeps quality.

Candidates are every multiset of the supported patterns with 1..max_terms terms whose compute
density sum(N/M) is below 1 (a series at density 1 costs what dense costs, plus its metadata), each ordered as the greedy decomposition runs it: denser terms first,
then larger M. Candidates are tried from cheapest (compute density, then fewer terms, then name) and
the first that meets the quality constraint wins. When none does, the layer runs dense (compute
density 1, lossless) and the result says so. With a whole-model budget the constraint applies to the
MAC-weighted mean of the metric over layers instead of to each layer.
"""
from __future__ import annotations

import itertools
import math
import operator
import re
from dataclasses import dataclass, field

import numpy as np

from tasdsim.traces.decompose import decompose, normalize_axis
from tasdsim.common import TasdsimError
from tasdsim.traces.limits import MAX_CANDIDATES, MAX_TERMS
from tasdsim.traces.metrics import ERROR_METRICS, quality, relative_error_from_residual
from tasdsim.traces.patterns import DENSE, Pattern, Series
from tasdsim.traces.rank_profile import RankProfile

QUALITY_METRICS = ("relative_error", "output_error", "kept_magnitude")
_OPS = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Constraint:
    """A quality constraint such as relative_error<=0.05 or kept_magnitude>=0.9."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.threshold:g}"

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


def parse_constraint(text: str) -> Constraint:
    """Parse "METRIC>=X" or "METRIC<=X"; error metrics take <=, kept_magnitude takes >=."""
    match = re.fullmatch(r"\s*([a-z_]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*", text)
    if not match:
        raise TasdsimError(f'quality "{text}": expected METRIC>=X or METRIC<=X, such as relative_error<=0.05')
    metric, op, value = match.groups()
    if metric not in QUALITY_METRICS:
        raise TasdsimError(f'quality "{text}": unknown metric "{metric}"; expected one of {", ".join(QUALITY_METRICS)}')
    expected = "<=" if metric in ERROR_METRICS else ">="
    if op != expected:
        raise TasdsimError(f'quality "{text}": {metric} is bounded with {expected}')
    try:
        threshold = float(value)
    except ValueError:
        raise TasdsimError(f'quality "{text}": "{value}" is not a number') from None
    return Constraint(metric, op, threshold)


def candidate_series(patterns: tuple[Pattern, ...], max_terms: int) -> list[Series]:
    """Every supported series of 1..max_terms terms with compute density below 1, cheapest first."""
    if not 1 <= max_terms <= MAX_TERMS:
        raise TasdsimError(f"max-terms must be from 1 to {MAX_TERMS}, got {max_terms}")
    combinations = sum(math.comb(len(patterns) + count - 1, count) for count in range(1, max_terms + 1))
    if combinations > MAX_CANDIDATES:
        raise TasdsimError(f"{len(patterns)} patterns in series of up to {max_terms} terms make {combinations:,} "
                           f"candidates, more than the limit of {MAX_CANDIDATES:,}: give fewer patterns or terms")
    found = []
    for count in range(1, max_terms + 1):
        for combo in itertools.combinations_with_replacement(patterns, count):
            terms = tuple(sorted(combo, key=lambda p: (-p.density, -p.m, p.n)))
            series = Series(terms)
            if series.compute_density < 1 - 1e-12:
                found.append(series)
    return sorted(found, key=lambda s: (s.compute_density, len(s.terms), str(s)))


def _lossless(metric: str) -> float:
    return 1.0 if metric == "kept_magnitude" else 0.0


@dataclass
class Choice:
    """The series chosen for one operand of one layer and what it costs."""

    name: str
    operand: str
    macs: int
    series: Series
    metric_value: float
    fallback: bool = False
    tried: list[tuple[Series, float]] = field(default_factory=list)  # every candidate evaluated

    def as_dict(self, metric: str) -> dict:
        return {
            "name": self.name,
            "operand": self.operand,
            "series": str(self.series),
            "compute_density": self.series.compute_density,
            metric: self.metric_value,
            "fallback": self.fallback,
        }


def evaluate(tensor: np.ndarray, series: Series, metric: str, samples: np.ndarray | None,
             axis: int | None = None) -> float:
    """The metric of one candidate series on one tensor."""
    dec = decompose(tensor, series, axis)
    if metric == "relative_error":
        return relative_error_from_residual(tensor, dec.residual)
    return quality(tensor, dec, samples if metric == "output_error" else None)[metric]


def choose(name: str, operand: str, macs: int, tensor: np.ndarray, candidates: list[Series],
           constraint: Constraint, samples: np.ndarray | None = None, axis: int | None = None,
           exhaustive: bool = False) -> Choice:
    """The cheapest candidate meeting the constraint on `tensor`, or dense when none does.
    `exhaustive` evaluates every candidate (the model budget needs them all). Same-M candidates
    are answered from one rank profile of the tensor (see rank_profile); others are decomposed."""
    tried = []
    chosen = None
    profile = RankProfile.of(tensor, normalize_axis(tensor.shape, axis))
    for series in candidates:
        if profile.answers(series, constraint.metric):
            value = profile.metric(series, constraint.metric)
        else:
            value = evaluate(tensor, series, constraint.metric, samples, axis)
        tried.append((series, value))
        if chosen is None and constraint.holds(value):
            chosen = Choice(name, operand, macs, series, value, tried=tried)
            if not exhaustive:
                break
    if chosen is None:
        chosen = Choice(name, operand, macs, Series((DENSE,)), _lossless(constraint.metric), True, tried)
    return chosen


def weighted_metric(choices: list[Choice]) -> float:
    """MAC-weighted mean of the chosen metric values."""
    total = sum(c.macs for c in choices)
    return sum(c.metric_value * c.macs for c in choices) / total if total else 0.0


def apply_model_budget(choices: list[Choice], constraint: Constraint) -> list[Choice]:
    """Re-choose per layer so that the MAC-weighted mean of the metric meets the constraint.

    Greedy: start every layer dense (lossless) and repeatedly take the one step, to a cheaper
    evaluated candidate of one layer, that saves the most MACs per unit of metric lost while the
    model-wide constraint still holds. `choices` must come from choose(..., exhaustive=True)."""
    dense = (Series((DENSE,)), _lossless(constraint.metric))
    current = [Choice(c.name, c.operand, c.macs, *dense, tried=c.tried) for c in choices]
    total_macs = sum(c.macs for c in current) or 1
    weighted = sum(c.metric_value * c.macs for c in current)
    while True:
        best = None
        for i, c in enumerate(current):
            for series, value in c.tried:
                saved = (c.series.compute_density - series.compute_density) * c.macs
                trial = weighted + (value - c.metric_value) * c.macs
                if saved <= 0 or not constraint.holds(trial / total_macs):
                    continue
                lost = abs(value - c.metric_value) * c.macs
                score = saved / lost if lost else float("inf")
                if best is None or score > best[0]:
                    best = (score, i, series, value, trial)
        if best is None:
            return current
        _, i, series, value, weighted = best
        c = current[i]
        current[i] = Choice(c.name, c.operand, c.macs, series, value, tried=c.tried)
