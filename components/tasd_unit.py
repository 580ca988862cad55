"""TASD units: decompose activation tiles into N:M terms on the fly (TASD-A).

U units work in parallel, one group each at a time, up to M cycles per group (the unit scans the
group's M elements); a TASD of G groups takes ceil(G / U) * M cycles. They run in order and can
stall the PE array (cause "tasd_units").
"""
from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Generator
from typing import Any

import simpy

from tasdsim.components.units import Completions, Inbox, take_ready
from tasdsim.components.probe import Probe
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import parse_pattern


@dataclass(frozen=True)
class TasdUnitsConfig:
    count: int  # TASD units decomposing activation tiles on the fly; 0 = none


@dataclass
class TasdUnitsStats:
    nm_groups: int = 0  # N:M groups decomposed
    elements: int = 0  # elements scanned: M per group
    busy_cycles: int = 0

    def actions(self) -> dict[str, int]:
        return {"nm_groups": self.nm_groups, "elements": self.elements, "busy_cycles": self.busy_cycles}


class TasdUnits:
    """`count` TASD units."""

    def __init__(self, env: simpy.Environment, count: int, inbox: Inbox, completions: Completions,
                 probe: Probe | None = None) -> None:
        self.env = env
        self.probe = probe
        self.count = count
        self.completions = completions
        self.stats = TasdUnitsStats()
        self.process = env.process(self._run(inbox))

    def cycles(self, groups: int, m: int) -> int:
        return -(-groups // self.count) * m

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        while True:
            ins: Instr = yield from take_ready(inbox, self.completions)
            m = parse_pattern(str(ins["pattern"])).m
            cycles = self.cycles(ins["nm_groups"], m)
            start = self.env.now
            yield self.env.timeout(cycles)
            self.stats.busy_cycles += cycles
            if self.probe is not None:
                self.probe.span("TASD units", "TASD", f"TASD {ins.id} term {ins['term']} {ins['pattern']}",
                                   start, self.env.now, {"nm_groups": ins["nm_groups"]})
            self.stats.nm_groups += ins["nm_groups"]
            self.stats.elements += ins["nm_groups"] * m
            self.completions.done(ins, "tasd_units")
