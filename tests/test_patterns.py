"""N:M patterns and TASD series: parsing, validation, error messages and their costs."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import (
    DENSE,
    MAX_M,
    Pattern,
    Series,
    parse_pattern,
    parse_pattern_set,
    parse_series,
)


# ---------------------------------------------------------------- single patterns


@pytest.mark.parametrize("text, n, m", [
    ("2:4", 2, 4), ("1:4", 1, 4), ("4:8", 4, 8), ("3:5", 3, 5), ("1:1", 1, 1),
    (" 2:4 ", 2, 4), ("2 : 4", 2, 4), ("256:256", 256, 256), ("1:256", 1, 256),
])
def test_parse_pattern_valid(text, n, m):
    p = parse_pattern(text)
    assert p == Pattern(n, m)
    assert (p.n, p.m) == (n, m)
    assert str(p) == f"{n}:{m}"


@pytest.mark.parametrize("text, message", [
    ("5:4", '"5:4": N must be between 1 and M'),
    ("0:4", '"0:4": N must be between 1 and M'),
    ("-1:4", '"-1:4": N must be between 1 and M'),
    ("2:257", '"2:257": M must be between 1 and 256'),
    ("1:1000", '"1:1000": M must be between 1 and 256'),
    ("1:0", '"1:0": M must be between 1 and 256'),
    ("a:4", '"a:4": N and M must be integers'),
    ("2:b", '"2:b": N and M must be integers'),
    ("2.0:4", '"2.0:4": N and M must be integers'),
    ("2:4:8", '"2:4:8": expected N:M such as 2:4'),
    ("24", '"24": expected N:M such as 2:4'),
    ("", "empty pattern"),
    ("   ", "empty pattern"),
    (":", '":": N and M must be integers'),
])
def test_parse_pattern_errors(text, message):
    with pytest.raises(TasdsimError) as err:
        parse_pattern(text)
    assert message in str(err.value)


@pytest.mark.parametrize("n, m", [(0, 4), (5, 4), (1, 0), (1, 257), (-2, 4)])
def test_pattern_constructor_validates(n, m):
    with pytest.raises(TasdsimError):
        Pattern(n, m)


def test_max_m_is_256():
    assert MAX_M == 256
    Pattern(1, 256)
    with pytest.raises(TasdsimError, match="M must be between 1 and 256"):
        Pattern(1, 257)


@pytest.mark.parametrize("m, bits", [
    (1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (7, 3), (8, 3), (9, 4), (16, 4), (17, 5), (128, 7),
    (129, 8), (256, 8),
])
def test_metadata_bits(m, bits):
    assert Pattern(1, m).metadata_bits == bits
    assert Pattern(m, m).metadata_bits == bits


@given(st.integers(1, MAX_M))
def test_metadata_bits_is_ceil_log2(m):
    expect = 0 if m == 1 else math.ceil(math.log2(m))
    assert Pattern(1, m).metadata_bits == expect
    # the smallest number of bits that can address every slot of the group
    assert 2 ** Pattern(1, m).metadata_bits >= m
    if m > 1:
        assert 2 ** (Pattern(1, m).metadata_bits - 1) < m


@pytest.mark.parametrize("n, m, density", [(1, 4, 0.25), (2, 4, 0.5), (4, 8, 0.5), (3, 5, 0.6), (1, 1, 1.0)])
def test_pattern_density(n, m, density):
    assert Pattern(n, m).density == density


@pytest.mark.parametrize("n, m, k, depth", [
    (2, 4, 16, 8), (2, 4, 17, 10), (2, 4, 1, 2), (1, 8, 8, 1), (1, 8, 9, 2), (3, 5, 7, 6),
    (4, 8, 64, 32), (1, 1, 13, 13),
])
def test_pattern_depth_examples(n, m, k, depth):
    assert Pattern(n, m).depth(k) == depth
    assert Pattern(n, m).nm_groups(k) == math.ceil(k / m)


@given(st.integers(1, 64).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))), st.integers(1, 5000))
def test_pattern_depth_is_n_times_ceil_k_over_m(nm, k):
    n, m = nm
    p = Pattern(n, m)
    assert p.nm_groups(k) == -(-k // m) == math.ceil(k / m)
    assert p.depth(k) == n * math.ceil(k / m)


def test_patterns_are_hashable_and_ordered():
    assert len({Pattern(2, 4), Pattern(2, 4), Pattern(1, 4)}) == 2
    assert Pattern(1, 4) < Pattern(2, 4)


# ---------------------------------------------------------------- series


@pytest.mark.parametrize("text, terms", [
    ("2:4", [(2, 4)]),
    ("2:4+1:4", [(2, 4), (1, 4)]),
    ("4:8+2:8+1:8", [(4, 8), (2, 8), (1, 8)]),
    ("1:8+1:4", [(1, 8), (1, 4)]),
    ("2:4+1:8", [(2, 4), (1, 8)]),
    (" 2:4 + 1:4 ", [(2, 4), (1, 4)]),
    ("3:5", [(3, 5)]),
    ("2:4+2:4", [(2, 4), (2, 4)]),
])
def test_parse_series_valid(text, terms):
    s = parse_series(text)
    assert [(p.n, p.m) for p in s.terms] == terms
    assert not s.is_dense
    assert str(s) == "+".join(f"{n}:{m}" for n, m in terms)


@pytest.mark.parametrize("text", ["dense", "DENSE", " Dense "])
def test_parse_series_dense(text):
    s = parse_series(text)
    assert s.is_dense
    assert s.terms == (DENSE,)
    assert DENSE == Pattern(1, 1)
    assert str(s) == "dense"
    assert s.compute_density == 1.0
    assert s.depth(37) == 37


@pytest.mark.parametrize("text, message", [
    ("2:4+", 'series "2:4+": term 2 is empty'),
    ("+2:4", 'series "+2:4": term 1 is empty'),
    ("2:4++1:4", 'series "2:4++1:4": term 2 is empty'),
    ("2:4+ +1:4", "term 2 is empty"),
    ("2:4+5:4", 'series "2:4+5:4": "5:4": N must be between 1 and M'),
    ("2:4+a:4", '"a:4": N and M must be integers'),
    ("2:4+2:4:8", '"2:4:8": expected N:M'),
    ("1:300+1:4", '"1:300": M must be between 1 and 256'),
    ("0:4+1:4", '"0:4": N must be between 1 and M'),
    ("5:4", '"5:4": N must be between 1 and M'),
    ("a:4", '"a:4": N and M must be integers'),
    ("2:4:8", '"2:4:8": expected N:M'),
    ("", "empty series"),
    ("   ", "empty series"),
    ("dense+2:4", '"dense"'),
])
def test_parse_series_errors(text, message):
    with pytest.raises(TasdsimError) as err:
        parse_series(text)
    assert message in str(err.value)


def test_series_error_of_a_single_term_is_not_wrapped():
    with pytest.raises(TasdsimError) as err:
        parse_series("5:4")
    assert str(err.value) == '"5:4": N must be between 1 and M'


def test_series_needs_a_term():
    with pytest.raises(TasdsimError, match="at least one term"):
        Series(())


@pytest.mark.parametrize("text, density", [
    ("1:4", 0.25), ("2:4", 0.5), ("2:4+1:4", 0.75), ("2:4+2:4", 1.0),
    ("2:8+1:8", 0.375), ("4:8+1:8", 0.625), ("4:8+2:8", 0.75), ("4:8+2:8+1:8", 0.875),
    ("1:8+1:4", 0.375), ("2:4+1:8", 0.625), ("3:5", 0.6),
])
def test_series_compute_density(text, density):
    assert parse_series(text).compute_density == pytest.approx(density, abs=1e-12)


@pytest.mark.parametrize("text, k, depth", [
    ("2:4+1:4", 16, 8 + 4),
    ("2:4+1:4", 18, 10 + 5),
    ("4:8+2:8+1:8", 20, 12 + 6 + 3),
    ("2:4+1:8", 10, 6 + 2),
    ("3:5", 11, 9),
])
def test_series_depth_is_sum_of_term_depths(text, k, depth):
    s = parse_series(text)
    assert s.depth(k) == depth == sum(p.n * math.ceil(k / p.m) for p in s.terms)


@given(st.lists(st.integers(1, 16).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m))),
                min_size=1, max_size=4))
@settings(max_examples=150)
def test_series_round_trips_through_text(terms):
    text = "+".join(f"{n}:{m}" for n, m in terms)
    s = parse_series(text)
    assert [(p.n, p.m) for p in s.terms] == terms
    assert parse_series(str(s)) == s
    assert s.compute_density == pytest.approx(sum(n / m for n, m in terms))


# ---------------------------------------------------------------- pattern sets


def test_pattern_set_sorted_and_deduplicated():
    assert parse_pattern_set("2:4,1:4") == (Pattern(1, 4), Pattern(2, 4))
    assert parse_pattern_set("4:8, 1:8 ,2:8,1:8") == (Pattern(1, 8), Pattern(2, 8), Pattern(4, 8))
    assert parse_pattern_set("2:8,1:4,2:4") == (Pattern(1, 4), Pattern(2, 4), Pattern(2, 8))
    assert parse_pattern_set("2:4") == (Pattern(2, 4),)


@pytest.mark.parametrize("text, message", [
    ("", "empty pattern set"),
    (" , ", "empty pattern set"),
    ("1:4,,2:4", "empty pattern"),
    ("1:4,5:4", '"5:4": N must be between 1 and M'),
    ("1:4,x", '"x": expected N:M'),
    ("1:4;2:4", "expected N:M"),
])
def test_pattern_set_errors(text, message):
    with pytest.raises(TasdsimError) as err:
        parse_pattern_set(text)
    assert message in str(err.value)
