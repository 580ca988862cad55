"""The accumulator (TASD accumulation path): adders between the PE array and the psum tiles.

On a WS array with a multi-term series every fold's psums leave the array one row of `cols` words
per cycle and the accumulator adds them into the psum tile in the outputs buffer as they come
(reading the tile's psums and writing the sums back). It takes `width` words per cycle: when that
is below the array's output rate a fold's psums take ceil(m_rows * cols / width) cycles instead of
m_rows and the array waits for it (cause "accumulator"). Its adders have a `latency`-cycle pipeline,
which shows only where nothing hides it: an ACC instruction drains it after a psum tile's last fold,
before the tile is stored.

It is a passive unit for the psum streams (the PE array offers each fold's psums through its
`take` port and learns when the last row is taken) and an active one for ACC instructions.
"""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import simpy

from tasdsim.components.probe import Probe
from tasdsim.components.sram import SramBuffer
from tasdsim.components.units import Completions, Inbox, take_ready
from tasdsim.traces.isa import Instr


@dataclass(frozen=True)
class AccumulatorConfig:
    width: int  # psum words added per cycle
    latency: int  # cycles of the adder pipeline


@dataclass
class AccumulatorStats:
    adds: int = 0  # psum words added
    busy_cycles: int = 0  # cycles taking psums plus cycles draining the pipeline

    def actions(self) -> dict[str, int]:
        return {"adds": self.adds, "busy_cycles": self.busy_cycles}


class Accumulator:
    """Adders of `width` psum words per cycle with a `latency`-cycle pipeline."""

    def __init__(self, env: simpy.Environment, config: AccumulatorConfig, outputs: SramBuffer, psum_bytes: int,
                 inbox: Inbox, completions: Completions, probe: Probe | None = None) -> None:
        self.env = env
        self.probe = probe
        self.config = config
        self.outputs = outputs
        self.psum_bytes = psum_bytes
        self.completions = completions
        self.stats = AccumulatorStats()
        self.free_at = 0  # cycle the adders have taken every psum offered so far
        self.process = env.process(self._run(inbox))

    def take_cycles(self, m_rows: int, cols: int) -> int:
        """Cycles to take a fold's m_rows x cols psums arriving one row per cycle."""
        return max(m_rows, -(-m_rows * cols // self.config.width))

    def take(self, ins: Instr, first_row: int) -> int:
        """Take the psums of fold `ins`, whose first row leaves the array at cycle `first_row`;
        returns the cycle the last row is taken (the array cannot end the fold before)."""
        f = ins.fields
        m_rows, cols = f["m_rows"], f["cols"]
        start = max(first_row, self.free_at)
        cycles = self.take_cycles(m_rows, cols)
        self.free_at = start + cycles
        words = m_rows * cols
        s = self.stats
        s.adds += words
        s.busy_cycles += cycles
        self.outputs.read(words * self.psum_bytes)
        self.outputs.write(words * self.psum_bytes)
        if self.probe is not None:
            self.probe.span("accumulator", "adds", f"fold {ins.id}", start, self.free_at, {"words": words})
        return self.free_at

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        latency = self.config.latency
        while True:
            ins: Instr = yield from take_ready(inbox, self.completions)
            start = self.env.now
            if latency:
                yield self.env.timeout(latency)
            self.stats.busy_cycles += latency
            if self.probe is not None:
                self.probe.span("accumulator", "drain", f"ACC {ins.id}", start, self.env.now)
            self.completions.done(ins, "accumulator")
