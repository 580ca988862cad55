"""TASD accumulation path: adds each term's psums into the shared output tile.

An ACC of `words` psums takes latency + ceil(words / width) cycles; ACCs run in order. The PE
array waits on it when a term's staging slot is still being accumulated (cause "accumulator").
"""
from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Generator
from typing import Any

import simpy

from tasdsim.components.sram import SramBuffer
from tasdsim.components.units import Completions, Inbox, take_ready
from tasdsim.components.probe import Probe
from tasdsim.traces.isa import Instr


@dataclass(frozen=True)
class AccumulatorConfig:
    width: int  # psum words added per cycle
    latency: int  # cycles of the adder pipeline


class Accumulator:
    """Adder array of `width` psum words per cycle with a `latency`-cycle pipeline."""

    def __init__(self, env: simpy.Environment, config: AccumulatorConfig, outputs: SramBuffer, psum_bytes: int,
                 inbox: Inbox, completions: Completions, probe: Probe | None = None) -> None:
        self.env = env
        self.probe = probe
        self.config = config
        self.outputs = outputs
        self.psum_bytes = psum_bytes
        self.completions = completions
        self.adds = 0
        self.busy_cycles = 0
        self.process = env.process(self._run(inbox))

    def cycles(self, words: int) -> int:
        return self.config.latency + -(-words // self.config.width)

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        while True:
            ins: Instr = yield from take_ready(inbox, self.completions)
            words = ins["words"]
            cycles = self.cycles(words)
            start = self.env.now
            yield self.env.timeout(cycles)
            self.busy_cycles += cycles
            if self.probe is not None:
                self.probe.span("accumulation path", "ACC", f"ACC {ins.id}", start, self.env.now, {"words": words})
            self.adds += words
            self.outputs.read(2 * words * self.psum_bytes)
            self.outputs.write(words * self.psum_bytes)
            self.completions.done(ins, "accumulator")
