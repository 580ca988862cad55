"""Metadata decoder: decodes each fold's N:M metadata before the PE array can use its weights.

Accepts only the hardware's patterns: a COMPUTE with another pattern is an error naming the
instruction. Decodes fold by fold in order, `latency` cycles each, as soon as the fold's weight
tile has arrived, so it runs ahead of the array (its latency hides behind the previous fold).
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from components.units import Inbox
from simulator.config import HwConfig
from simulator.timeline import Timeline
from traces.errors import TasdsimError
from traces.isa import Instr
from traces.patterns import Pattern, parse_pattern


class MetadataDecoder:
    """Metadata decoder unit; `decoded[id]` fires when fold `id` may start."""

    def __init__(self, env: simpy.Environment, hw: HwConfig, inbox: Inbox, events: dict[int, simpy.Event],
                 where: str, timeline: Timeline | None = None) -> None:
        self.env = env
        self.timeline = timeline
        self.hw = hw
        self.latency = hw.metadata_decoder.latency
        self.decoded = events
        self.where = where
        self.folds = 0
        self.indices = 0  # N:M indices decoded (one per weight slot of a fold)
        self.busy_cycles = 0
        self.error: TasdsimError | None = None
        self.process = env.process(self._run(inbox))

    def check(self, ins: Instr) -> Pattern:
        """The pattern of a COMPUTE or TASD, if the hardware supports it; dense folds carry no
        metadata to decode."""
        try:
            pattern = parse_pattern(str(ins["pattern"]))
        except TasdsimError as err:
            raise TasdsimError(f"{self.where}{ins.op} {ins.id}: {err}") from None
        if not self.hw.supports(pattern):
            supported = ", ".join(str(p) for p in self.hw.pe_array.patterns)
            raise TasdsimError(f"{self.where}{ins.op} {ins.id}: pattern {pattern} is not supported by the metadata "
                               f"decoder of {self.hw.name} (supports {supported})")
        return pattern

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        while True:
            ins, weights_loaded = yield from inbox.take()
            if weights_loaded is not None:
                yield weights_loaded
            if self.latency:
                start = self.env.now
                yield self.env.timeout(self.latency)
                self.busy_cycles += self.latency
                if self.timeline is not None:
                    self.timeline.span("metadata decoder", "decode", f"decode {ins.id} {ins.fields['pattern']}",
                                       start, self.env.now)
            self.folds += 1
            self.indices += ins.fields["rows"] * ins.fields["cols"]
            self.decoded.pop(ins.id).succeed()
