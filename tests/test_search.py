"""TASDER search: constraints, candidate series, the per-layer choice and the model budget."""
import itertools

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import DENSE, Pattern, Series, parse_pattern_set, parse_series
from tasdsim.traces.search import (
    Constraint,
    apply_model_budget,
    candidate_series,
    choose,
    evaluate,
    parse_constraint,
    weighted_metric,
)
from tasdsim.traces.tensors import nm_sparse



# ---------------------------------------------------------------- independent reference


def ref_approx(a: np.ndarray, series: str, axis: int) -> np.ndarray:
    """Pure-Python greedy TASD (ties to the lowest index, last group padded): A_hat in float64."""
    moved = np.moveaxis(a.astype(np.float64), axis, -1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1]).tolist()
    kept = [[0.0] * shape[-1] for _ in rows]
    if series != "dense":
        for term in series.split("+"):
            n, m = (int(x) for x in term.split(":"))
            for r, row in enumerate(rows):
                k = len(row)
                for base in range(0, k, m):
                    real = list(range(base, min(base + m, k)))
                    order = sorted(real, key=lambda p: (-abs(row[p]), p))[:n]
                    for p in order:
                        kept[r][p] += row[p]
                        row[p] = 0.0
    else:
        kept = rows
    return np.moveaxis(np.array(kept).reshape(shape), -1, axis)


def ref_metric(a, series, axis, metric, b=None):
    a64 = a.astype(np.float64)
    a_hat = ref_approx(a, series, axis)
    if metric == "relative_error":
        n = np.sqrt((a64 ** 2).sum())
        return np.sqrt(((a64 - a_hat) ** 2).sum()) / n if n else 0.0
    if metric == "kept_magnitude":
        t = np.abs(a64).sum()
        return np.abs(a_hat).sum() / t if t else 1.0
    flat = a64.reshape(a.shape[0], -1) if a.ndim == 4 else np.moveaxis(a64, axis, -1).reshape(-1, a.shape[axis])
    flat_hat = a_hat.reshape(a.shape[0], -1) if a.ndim == 4 else np.moveaxis(a_hat, axis, -1).reshape(
        -1, a.shape[axis])
    ref = flat @ b
    n = np.linalg.norm(ref)
    return np.linalg.norm((flat - flat_hat) @ b) / n if n else 0.0


def cd(text):
    return sum(int(t.split(":")[0]) / int(t.split(":")[1]) for t in text.split("+"))


# ---------------------------------------------------------------- constraints


@pytest.mark.parametrize("text, metric, op, threshold", [
    ("relative_error<=0.05", "relative_error", "<=", 0.05),
    (" relative_error <= 0.3 ", "relative_error", "<=", 0.3),
    ("output_error<=1e-3", "output_error", "<=", 1e-3),
    ("kept_magnitude>=0.9", "kept_magnitude", ">=", 0.9),
    ("kept_magnitude>=1", "kept_magnitude", ">=", 1.0),
    ("relative_error<=0", "relative_error", "<=", 0.0),
    ("relative_error<=.25", "relative_error", "<=", 0.25),
])
def test_parse_constraint(text, metric, op, threshold):
    c = parse_constraint(text)
    assert (c.metric, c.op, c.threshold) == (metric, op, threshold)
    assert parse_constraint(str(c)) == c


@pytest.mark.parametrize("text, message", [
    ("relative_error>=0.1", "relative_error is bounded with <="),
    ("output_error>=0.1", "output_error is bounded with <="),
    ("kept_magnitude<=0.9", "kept_magnitude is bounded with >="),
    ("accuracy<=0.1", 'unknown metric "accuracy"'),
    ("density<=0.5", 'unknown metric "density"'),
    ("relative_error<=1.2.3", '"1.2.3" is not a number'),
    ("relative_error<=e", '"e" is not a number'),
    ("relative_error<=abc", "expected METRIC>=X or METRIC<=X"),
    ("relative_error<0.1", "expected METRIC>=X or METRIC<=X"),
    ("relative_error=0.1", "expected METRIC>=X or METRIC<=X"),
    ("relative_error<=", "expected METRIC>=X or METRIC<=X"),
    ("", "expected METRIC>=X or METRIC<=X"),
    ("0.1>=relative_error", "expected METRIC>=X or METRIC<=X"),
])
def test_parse_constraint_errors(text, message):
    with pytest.raises(TasdsimError) as err:
        parse_constraint(text)
    assert message in str(err.value)
    assert f'quality "{text}"' in str(err.value)


def test_constraint_holds():
    le = Constraint("relative_error", "<=", 0.3)
    assert le.holds(0.3) and le.holds(0.0) and not le.holds(0.30001)
    ge = Constraint("kept_magnitude", ">=", 0.9)
    assert ge.holds(0.9) and ge.holds(1.0) and not ge.holds(0.8999)


# ---------------------------------------------------------------- candidates


M4 = "1:4,2:4"
M8 = "1:8,2:8,4:8"

EXPECTED = {
    (M4, 1): ["1:4", "2:4"],
    (M4, 2): ["1:4", "2:4", "1:4+1:4", "2:4+1:4"],
    (M4, 3): ["1:4", "2:4", "1:4+1:4", "2:4+1:4", "1:4+1:4+1:4"],
    (M8, 1): ["1:8", "2:8", "4:8"],
    (M8, 2): ["1:8", "2:8", "1:8+1:8", "2:8+1:8", "4:8", "2:8+2:8", "4:8+1:8", "4:8+2:8"],
    (M8, 3): ["1:8", "2:8", "1:8+1:8", "2:8+1:8", "1:8+1:8+1:8", "4:8", "2:8+2:8", "2:8+1:8+1:8",
              "4:8+1:8", "2:8+2:8+1:8", "4:8+2:8", "2:8+2:8+2:8", "4:8+1:8+1:8", "4:8+2:8+1:8"],
}


@pytest.mark.parametrize("patterns, max_terms", list(EXPECTED))
def test_candidate_series_by_hand(patterns, max_terms):
    got = [str(s) for s in candidate_series(parse_pattern_set(patterns), max_terms)]
    assert got == EXPECTED[(patterns, max_terms)]


def brute_candidates(patterns, max_terms):
    """Every multiset of 1..max_terms patterns with sum(N/M) < 1, as a sorted-term string."""
    found = set()
    for count in range(1, max_terms + 1):
        for combo in itertools.product(patterns, repeat=count):
            if sum(p.n / p.m for p in combo) < 1 - 1e-12:
                found.add(tuple(sorted(combo, key=lambda p: (-p.n / p.m, -p.m, p.n))))
    return found


@pytest.mark.parametrize("patterns", [M4, M8, "1:4,2:4,4:4", "1:8,1:4,2:4", "2:8,1:4", "1:2,1:3,2:3"])
@pytest.mark.parametrize("max_terms", [1, 2, 3])
def test_candidate_series_properties(patterns, max_terms):
    ps = parse_pattern_set(patterns)
    cands = candidate_series(ps, max_terms)
    densities = [s.compute_density for s in cands]
    assert all(d < 1 - 1e-12 for d in densities)
    assert densities == sorted(densities)  # cheapest first
    for a, b in zip(cands, cands[1:]):
        assert (a.compute_density, len(a.terms)) <= (b.compute_density, len(b.terms)) or \
            abs(a.compute_density - b.compute_density) < 1e-12
    assert not any(s.is_dense for s in cands)
    assert all(1 <= len(s.terms) <= max_terms for s in cands)
    assert all(p in ps for s in cands for p in s.terms)
    # each series runs its denser terms first, then larger M
    for s in cands:
        keys = [(-p.density, -p.m, p.n) for p in s.terms]
        assert keys == sorted(keys)
    # exactly the multisets the hardware supports, each once
    assert len({s.terms for s in cands}) == len(cands)
    assert {s.terms for s in cands} == brute_candidates(ps, max_terms)


def test_candidate_series_mixed_m_term_order():
    cands = [str(s) for s in candidate_series(parse_pattern_set("1:4,2:8"), 2)]
    assert cands[:2] == ["1:4", "2:8"]  # same density and length: ties broken by name
    assert "2:8+1:4" in cands and "1:4+2:8" not in cands


def test_candidate_series_max_terms_error():
    with pytest.raises(TasdsimError, match="max-terms must be from 1 to 8, got 0"):
        candidate_series(parse_pattern_set(M4), 0)


# ---------------------------------------------------------------- choose


TENSORS = {
    "gauss": lambda: np.random.default_rng(0).standard_normal((8, 32)).astype(np.float32),
    "pruned": lambda: np.where(np.random.default_rng(2).random((8, 24)) < 0.6, 0,
                               np.random.default_rng(3).standard_normal((8, 24))).astype(np.float16),
    "nm24": lambda: nm_sparse((8, 32), 2, 4, seed=4),
    "conv": lambda: np.random.default_rng(5).standard_normal((4, 8, 3, 3)).astype(np.float32),
    "int8": lambda: np.random.default_rng(6).integers(-128, 128, size=(6, 24)).astype(np.int8),
}


def thresholds(values, metric):
    """Thresholds halfway between distinct candidate values (so rounding cannot flip a comparison),
    making different candidates the answer, and one beyond every value that none meets."""
    v = sorted(set(values))
    mids = [(x + y) / 2 for x, y in zip(v, v[1:]) if y - x > 1e-9]
    picks = sorted({mids[0], mids[len(mids) // 2], mids[-1]}) if mids else []
    if metric == "kept_magnitude":
        return picks + [v[-1] + 1e-3, max(0.0, v[0] - 1e-3)]
    return picks + [v[0] - 1e-3, v[-1] + 1e-3]


@pytest.mark.parametrize("name", list(TENSORS))
@pytest.mark.parametrize("patterns, max_terms", [(M4, 2), (M8, 3)])
@pytest.mark.parametrize("metric", ["relative_error", "kept_magnitude", "output_error"])
def test_choose_is_the_cheapest_meeting_the_threshold(name, patterns, max_terms, metric):
    a = TENSORS[name]()
    axis = 1
    cands = candidate_series(parse_pattern_set(patterns), max_terms)
    k = int(np.prod(a.shape[1:])) if a.ndim == 4 else a.shape[1]
    b = np.random.default_rng(9).standard_normal((k, 16))
    values = {str(s): ref_metric(a, str(s), axis, metric, b) for s in cands}
    op = ">=" if metric == "kept_magnitude" else "<="
    for threshold in thresholds(list(values.values()), metric):
        constraint = Constraint(metric, op, threshold)
        choice = choose(name, "weights", 1000, a, cands, constraint, b, axis)
        meets = [s for s in cands if constraint.holds(values[str(s)])]
        assert choice.name == name and choice.operand == "weights" and choice.macs == 1000
        if not meets:
            assert choice.fallback
            assert choice.series.is_dense
            assert len(choice.tried) == len(cands)
            continue
        assert not choice.fallback
        chosen = str(choice.series)
        assert chosen == str(meets[0])
        assert choice.metric_value == pytest.approx(values[chosen], rel=1e-9, abs=1e-12)
        # every strictly cheaper candidate fails the threshold (by the independent reference)
        for s in cands:
            if s.compute_density < choice.series.compute_density - 1e-12:
                assert not constraint.holds(values[str(s)]), str(s)
        # the candidates tried are a prefix of the list, in order, with their values
        assert [str(s) for s, _ in choice.tried] == [str(s) for s in cands[: len(choice.tried)]]
        assert str(choice.tried[-1][0]) == chosen
        for s, v in choice.tried:
            assert v == pytest.approx(values[str(s)], rel=1e-9, abs=1e-12)


@given(st.integers(0, 2 ** 20), st.floats(0.0, 1.0), st.sampled_from([M4, M8, "1:4,2:4,1:8", "1:2,1:3"]),
       st.integers(1, 2), st.sampled_from(["float32", "float16", "bfloat16", "int8"]),
       st.sampled_from([((4, 16), 1), ((10, 3), 0), ((2, 3, 7), 2), ((3, 6, 2, 2), 1), ((3, 2, 2, 5), 3)]),
       st.sampled_from(["relative_error", "kept_magnitude"]))
@settings(max_examples=60, deadline=None)
def test_choose_random(seed, threshold, patterns, max_terms, dtype, shape_axis, metric):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape) * 50
    a[rng.random(a.shape) < rng.random()] = 0
    a = np.clip(a, -128, 127).astype(np.int8) if dtype == "int8" else a.astype(np.float32).astype(
        np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else dtype)
    op = ">=" if metric == "kept_magnitude" else "<="
    constraint = Constraint(metric, op, threshold)
    cands = candidate_series(parse_pattern_set(patterns), max_terms)
    choice = choose("l", "weights", 1, a, cands, constraint, None, axis)
    values = [ref_metric(a, str(s), axis, metric) for s in cands]
    for (s, v), r in zip(choice.tried, values):
        assert v == pytest.approx(r, rel=1e-9, abs=1e-12), str(s)
    ok = [i for i, v in enumerate(values) if constraint.holds(v)]
    if any(abs(v - threshold) < 1e-9 for v in values):
        return  # a value on the threshold: rounding decides
    if not ok:
        assert choice.fallback and choice.series.is_dense
        assert choice.metric_value == (1.0 if metric == "kept_magnitude" else 0.0)
    else:
        assert str(choice.series) == str(cands[ok[0]])
        assert all(not constraint.holds(values[i]) for i in range(len(cands))
                   if cands[i].compute_density < choice.series.compute_density - 1e-12)


def test_fallback_to_dense_when_nothing_meets():
    a = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    cands = candidate_series(parse_pattern_set(M4), 1)
    c = choose("fc", "weights", 100, a, cands, parse_constraint("relative_error<=0"))
    assert c.fallback and c.series.is_dense and c.series.terms == (DENSE,)
    assert c.metric_value == 0.0
    assert len(c.tried) == len(cands)
    c = choose("fc", "weights", 100, a, cands, parse_constraint("kept_magnitude>=1"))
    assert c.fallback and c.series.is_dense and c.metric_value == 1.0
    assert c.as_dict("kept_magnitude") == {"name": "fc", "operand": "weights", "series": "dense",
                                           "compute_density": 1.0, "kept_magnitude": 1.0, "fallback": True}


def test_zero_error_on_a_dense_tensor_runs_dense():
    """A series at density 1 (2:4+2:4) is no candidate: it costs what dense costs, plus metadata."""
    a = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    c = choose("fc", "weights", 1, a, candidate_series(parse_pattern_set(M4), 2), parse_constraint("relative_error<=0"))
    assert c.series.is_dense and c.fallback and c.metric_value == 0.0


def test_nm_sparse_weight_chooses_its_own_pattern():
    a = nm_sparse((16, 32), 2, 4, seed=1)
    c = choose("fc", "weights", 1, a, candidate_series(parse_pattern_set(M4), 2), parse_constraint("relative_error<=0"))
    assert str(c.series) == "2:4"


def test_exhaustive_evaluates_every_candidate():
    a = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    cands = candidate_series(parse_pattern_set(M8), 2)
    c = choose("fc", "weights", 1, a, cands, parse_constraint("relative_error<=0.6"), exhaustive=True)
    assert [s for s, _ in c.tried] == cands
    lazy = choose("fc", "weights", 1, a, cands, parse_constraint("relative_error<=0.6"))
    assert lazy.series == c.series
    # The exhaustive and the lazy search, and `evaluate`, reach the metric through different numpy
    # reductions whose last bits depend on the BLAS kernel of the machine: equal to 1e-12 relative.
    assert lazy.metric_value == pytest.approx(c.metric_value, rel=1e-12)
    assert evaluate(a, c.series, "relative_error", None) == pytest.approx(c.metric_value, rel=1e-12)


# ---------------------------------------------------------------- model budget


def layers(seed, count=4):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        shape = (int(rng.integers(2, 9)), int(rng.integers(4, 33)))
        a = rng.standard_normal(shape).astype(np.float32)
        if i % 2:
            a[rng.random(shape) < 0.5] = 0
        out.append((f"l{i}", int(rng.integers(1, 10_000)), a))
    return out


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric, limits", [("relative_error", [0.0, 0.1, 0.3, 0.6]),
                                            ("kept_magnitude", [1.0, 0.95, 0.8])])
@pytest.mark.parametrize("patterns, max_terms", [(M4, 2), (M8, 3)])
def test_apply_model_budget(seed, metric, limits, patterns, max_terms):
    cands = candidate_series(parse_pattern_set(patterns), max_terms)
    model = layers(seed)
    op = ">=" if metric == "kept_magnitude" else "<="
    # the exhaustive evaluation depends on the metric only, not on the threshold
    choices = [choose(name, "weights", macs, a, cands, Constraint(metric, op, limits[0]), exhaustive=True)
               for name, macs, a in model]
    for c in choices:
        assert [s for s, _ in c.tried] == cands
    by_name = {name: a for name, _, a in model}
    for limit in limits:
        constraint = Constraint(metric, op, limit)
        result = apply_model_budget(choices, constraint)
        assert [c.name for c in result] == [c.name for c in choices]
        assert [c.macs for c in result] == [c.macs for c in choices]
        value = weighted_metric(result)
        assert constraint.holds(value), (limit, value)
        # independent recomputation of the MAC-weighted metric from the chosen series
        total = sum(c.macs for c in result)
        ref = sum(c.macs * ref_metric(by_name[c.name], str(c.series), 1, metric) for c in result) / total
        assert ref == pytest.approx(value, rel=1e-9, abs=1e-12)
        dense_macs = sum(c.macs for c in result)
        after = sum(c.macs * c.series.compute_density for c in result)
        assert after <= dense_macs + 1e-9
        for c in result:
            assert c.series.is_dense or c.series in cands
            assert not c.fallback
        # a layer meeting the constraint on its own with a cheaper series is a feasible first step,
        # so the budget saves something whenever the per-layer choice does
        per_layer = [next((s for s, v in c.tried if constraint.holds(v)), None) for c in choices]
        if any(s is not None and s.compute_density < 1 - 1e-12 for s in per_layer):
            assert after < dense_macs


def test_model_budget_trades_between_layers():
    """A big loose layer and a small one: the budget lets the big one go cheaper than per layer."""
    rng = np.random.default_rng(0)
    big = rng.standard_normal((8, 32)).astype(np.float32)
    small = rng.standard_normal((8, 32)).astype(np.float32)
    constraint = parse_constraint("relative_error<=0.3")
    cands = candidate_series(parse_pattern_set(M4), 2)
    per_layer = [choose("big", "weights", 1000, big, cands, constraint),
                 choose("small", "weights", 10, small, cands, constraint)]
    exhaustive = [choose("big", "weights", 1000, big, cands, constraint, exhaustive=True),
                  choose("small", "weights", 10, small, cands, constraint, exhaustive=True)]
    budget = apply_model_budget(exhaustive, constraint)
    assert constraint.holds(weighted_metric(budget))
    cost = lambda cs: sum(c.macs * c.series.compute_density for c in cs)  # noqa: E731
    assert cost(budget) <= cost(per_layer) + 1e-9


def test_weighted_metric():
    a = np.zeros((2, 4), dtype=np.float32)
    c1 = choose("a", "weights", 100, a, [parse_series("2:4")], parse_constraint("relative_error<=1"))
    c2 = choose("b", "weights", 300, a, [parse_series("2:4")], parse_constraint("relative_error<=1"))
    c1.metric_value, c2.metric_value = 0.4, 0.2
    assert weighted_metric([c1, c2]) == pytest.approx((0.4 * 100 + 0.2 * 300) / 400)
    assert weighted_metric([]) == 0.0


def test_series_type_of_candidates():
    for s in candidate_series((Pattern(1, 4), Pattern(2, 4)), 2):
        assert isinstance(s, Series)
        assert s.compute_density == pytest.approx(cd(str(s)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("patterns", [M4, "1:4,1:8"])
@pytest.mark.parametrize("metric", ["relative_error<=0.3", "kept_magnitude>=0.9"])
def test_choose_rejects_nan_or_inf_tensor(bad, patterns, metric):
    """Whatever shortcut evaluates the candidates, a tensor with NaN/inf is an error, as in decompose."""
    a = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    a[2, 5] = bad
    with pytest.raises(TasdsimError, match="NaN or infinite"):
        choose("fc", "weights", 1, a, candidate_series(parse_pattern_set(patterns), 2), parse_constraint(metric))


@pytest.mark.parametrize("dtype", [np.uint8, np.bool_])
def test_choose_rejects_unsupported_dtype(dtype):
    a = np.ones((4, 16), dtype=dtype)
    with pytest.raises(TasdsimError, match="unsupported tensor dtype"):
        choose("fc", "weights", 1, a, candidate_series(parse_pattern_set(M4), 2), parse_constraint("relative_error<=0.3"))


def test_choose_rejects_empty_tensor():
    with pytest.raises(TasdsimError, match="empty tensor"):
        choose("fc", "weights", 1, np.zeros((0, 16), np.float32), candidate_series(parse_pattern_set(M4), 2),
               parse_constraint("relative_error<=0.3"))
