"""N:M patterns and TASD series: parsing, validation and their compute and metadata cost.

A pattern N:M keeps at most N non-zeros in every group of M consecutive elements along the
reduction (K) axis. A series "N1:M1+N2:M2+..." is the list of TASD terms, in decomposition order.
The dense case is the series "dense", represented as the single pattern 1:1.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from tasdsim.common import TasdsimError
from tasdsim.traces.limits import MAX_TERMS


MAX_M = 256  # in-group indices fit one byte


@dataclass(frozen=True, order=True)
class Pattern:
    """An N:M structured-sparsity pattern."""

    n: int
    m: int

    def __post_init__(self) -> None:
        if not 1 <= self.m <= MAX_M:
            raise TasdsimError(f'"{self.n}:{self.m}": M must be between 1 and {MAX_M}')
        if not 1 <= self.n <= self.m:
            raise TasdsimError(f'"{self.n}:{self.m}": N must be between 1 and M')

    def __str__(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def density(self) -> float:
        """Fraction of slots kept: N/M."""
        return self.n / self.m

    @property
    def metadata_bits(self) -> int:
        """Bits of metadata per kept value: its index in the group, ceil(log2 M)."""
        return math.ceil(math.log2(self.m)) if self.m > 1 else 0

    def nm_groups(self, k: int) -> int:
        """N:M groups along a reduction axis of length k; the last one is zero-padded to M."""
        return -(-k // self.m)

    def depth(self, k: int) -> int:
        """Reduction depth of a term with this pattern: N * ceil(K/M)."""
        return self.n * self.nm_groups(k)


DENSE = Pattern(1, 1)


def runs_on(pattern: Pattern, patterns: tuple[Pattern, ...]) -> bool:
    """True when an array whose MAC lanes accept `patterns` runs a term of `pattern` natively:
    dense (and any N:N pattern, which keeps every slot) always runs; a sparse pattern when listed."""
    return pattern.n == pattern.m or pattern in patterns


@functools.lru_cache(maxsize=1024)
def parse_pattern(text: str) -> Pattern:
    """Parse "N:M"; errors name the text and what is wrong."""
    text = text.strip()
    if not text:
        raise TasdsimError("empty pattern: expected N:M such as 2:4")
    parts = text.split(":")
    if len(parts) != 2:
        raise TasdsimError(f'"{text}": expected N:M such as 2:4')
    try:
        n, m = (int(p) for p in parts)
    except ValueError:
        raise TasdsimError(f'"{text}": N and M must be integers') from None
    return Pattern(n, m)


@dataclass(frozen=True)
class Series:
    """A TASD series: the terms A1, A2, ... in decomposition order."""

    terms: tuple[Pattern, ...]

    def __post_init__(self) -> None:
        if not self.terms:
            raise TasdsimError("a series needs at least one term")

    def __str__(self) -> str:
        if self.is_dense:
            return "dense"
        return "+".join(str(p) for p in self.terms)

    @property
    def is_dense(self) -> bool:
        return self.terms == (DENSE,)

    @property
    def compute_density(self) -> float:
        """Compute relative to dense: the sum of N/M over the terms."""
        return sum(p.density for p in self.terms)

    def depth(self, k: int) -> int:
        """Total reduction depth streamed for all terms: sum of N_i * ceil(K/M_i)."""
        return sum(p.depth(k) for p in self.terms)


def parse_series(text: str) -> Series:
    """Parse "dense" or "N1:M1+N2:M2+..."; errors name the bad term."""
    text = text.strip()
    if text.lower() == "dense":
        return Series((DENSE,))
    if not text:
        raise TasdsimError('empty series: expected N:M terms joined by "+", such as 2:4+1:4')
    parts = text.split("+")
    if len(parts) > MAX_TERMS:
        raise TasdsimError(f'series "{text[:40]}...": {len(parts)} terms, more than the limit of {MAX_TERMS}')
    terms = []
    for i, part in enumerate(parts):
        if not part.strip():
            raise TasdsimError(f'series "{text}": term {i + 1} is empty')
        try:
            terms.append(parse_pattern(part))
        except TasdsimError as err:
            if part.strip() == text:
                raise
            raise TasdsimError(f'series "{text}": {err}') from None
    return Series(tuple(terms))


def parse_pattern_set(text: str) -> tuple[Pattern, ...]:
    """Parse a comma-separated set of supported patterns, such as "1:4,2:4"."""
    items = [s for s in text.split(",")]
    if not any(s.strip() for s in items):
        raise TasdsimError("empty pattern set: expected patterns such as 1:4,2:4")
    patterns = []
    for s in items:
        p = parse_pattern(s)
        if p not in patterns:
            patterns.append(p)
    return tuple(sorted(patterns, key=lambda p: (p.m, p.n)))
