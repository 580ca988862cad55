"""Timeline export: Chrome / Perfetto trace-event JSON of a run (open in ui.perfetto.dev or
chrome://tracing).

One process per unit (named with metadata events), one thread per queue, channel or kind of
work; complete events ('X', ts and dur in microseconds of the accelerator clock) for tile
transfers, folds per term, metadata decodes, accumulations and TASD decompositions; counter
events ('C') for buffer occupancy and DRAM bandwidth. Layers run one after another on one time
axis. Each track's events come from one in-order unit, so they never overlap and nest properly.
Size is bounded: past `max_events` complete events, no more are recorded, and the file
(`otherData.truncated`) and the terminal say so.
"""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import simpy

UNITS = ("layers", "DRAM", "DMA", "buffer weights", "buffer inputs", "buffer outputs", "PE array",
         "metadata decoder", "accumulator", "TASD units")
BANDWIDTH_WINDOW = 1000  # cycles per DRAM bandwidth counter sample


class Timeline:
    """Collects trace events during a run (accelerator cycles in, microseconds out)."""

    def __init__(self, max_events: int = 500_000) -> None:
        self.clock_ghz = 1.0  # set by the first layer
        self.max_events = max_events
        self.events: list[dict[str, Any]] = []
        self.complete = 0
        self.truncated = False
        self.busy: dict[str, int] = defaultdict(int)  # unit -> cycles covered by its X events
        self._threads: dict[tuple[str, str], int] = {}
        self._env: simpy.Environment | None = None
        self._offset = 0
        self._dram_bytes: dict[int, float] = defaultdict(float)  # window -> bytes

    def _us(self, cycles: float) -> float:
        return (self._offset + cycles) / (self.clock_ghz * 1000)

    def _tid(self, unit: str, track: str) -> int:
        key = (unit, track)
        if key not in self._threads:
            self._threads[key] = sum(1 for u, _ in self._threads if u == unit) + 1
        return self._threads[key]

    def start_layer(self, env: simpy.Environment, clock_ghz: float) -> None:
        self._env = env
        self.clock_ghz = clock_ghz

    def end_layer(self, name: str, cycles: int) -> None:
        self.span("layers", "layers", name, 0, cycles)
        self._offset += cycles

    def span(self, unit: str, track: str, name: str, start: int, end: int, args: dict | None = None,
             busy: bool = True) -> None:
        """A complete event from cycle `start` to `end` of the current layer; `busy` spans count
        toward the unit's busy time (stall spans do not)."""
        if end <= start:
            return
        if self.complete >= self.max_events:
            self.truncated = True
            return
        self.complete += 1
        if busy:
            self.busy[unit] += end - start
        event = {"ph": "X", "name": name, "pid": UNITS.index(unit) + 1, "tid": self._tid(unit, track),
                 "ts": self._us(start), "dur": (end - start) / (self.clock_ghz * 1000)}
        if args:
            event["args"] = args
        self.events.append(event)

    def counter(self, unit: str, name: str, value: float) -> None:
        """A counter sample at the current simulation time."""
        if self._env is None or self.truncated:
            return
        self.events.append({"ph": "C", "name": name, "pid": UNITS.index(unit) + 1, "ts": self._us(self._env.now),
                            "args": {name: value}})

    def dram_transfer(self, start: int, end: int, nbytes: int) -> None:
        """Spread a transfer's bytes over the bandwidth windows it covers."""
        if end <= start:
            return
        first, last = (self._offset + start) // BANDWIDTH_WINDOW, (self._offset + end - 1) // BANDWIDTH_WINDOW
        for window in range(first, last + 1):
            lo = max(self._offset + start, window * BANDWIDTH_WINDOW)
            hi = min(self._offset + end, (window + 1) * BANDWIDTH_WINDOW)
            self._dram_bytes[window] += nbytes * (hi - lo) / (end - start)

    def document(self) -> dict[str, Any]:
        """The whole trace-event document."""
        meta = []
        for pid, unit in enumerate(UNITS, start=1):
            meta.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": unit}})
            meta.append({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}})
        for (unit, track), tid in sorted(self._threads.items(), key=lambda kv: (UNITS.index(kv[0][0]), kv[1])):
            meta.append({"ph": "M", "name": "thread_name", "pid": UNITS.index(unit) + 1, "tid": tid,
                         "args": {"name": track}})
        gbps = []
        pid = UNITS.index("DRAM") + 1
        for window in sorted(self._dram_bytes):
            rate = self._dram_bytes[window] / BANDWIDTH_WINDOW * self.clock_ghz  # bytes/ns = GB/s
            gbps.append({"ph": "C", "name": "DRAM bandwidth (GB/s)", "pid": pid,
                         "ts": window * BANDWIDTH_WINDOW / (self.clock_ghz * 1000), "args": {"GB/s": rate}})
        return {"traceEvents": meta + self.events + gbps, "displayTimeUnit": "ns",
                "otherData": {"clock_ghz": self.clock_ghz, "complete_events": self.complete,
                              "truncated": self.truncated, "max_events": self.max_events}}

    def write(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.document(), f)
