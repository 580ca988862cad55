"""The probe a unit reports its activity to: spans of work and counter samples, in cycles of the
current layer. The simulator's timeline implements it; units never depend on who listens."""
from __future__ import annotations

from typing import Any, Protocol


class Probe(Protocol):
    def span(self, unit: str, track: str, name: str, start: int, end: int, args: dict[str, Any] | None = None,
             busy: bool = True) -> None:
        """Work on `track` of `unit` from cycle `start` to `end`; stall spans pass `busy=False`."""

    def counter(self, unit: str, name: str, value: float) -> None:
        """A sample of a counter (buffer occupancy, ...) at the current cycle."""

    def dram_transfer(self, start: int, end: int, nbytes: int) -> None:
        """`nbytes` moved by DRAM between cycles `start` and `end` (for the bandwidth counter)."""
