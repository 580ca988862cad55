"""N:M sparse PE array: R x C MAC PEs with systolic WS or OS timing, one event per fold.

WS: a fold loads k_rows (<= R) reduction rows x C columns of stationary weights and streams m_rows
input rows: 2R + C + m_rows - 2 cycles (partial folds pay the full R and C; SCALE-Sim's formula);
its psums leave the array one row per cycle over its last m_rows cycles. OS: a fold keeps m_rows x
C psums stationary and streams k_rows; the first term of a fold pays 2R + C + k_rows - 2 and each
further term of the same fold streams right behind it (k_rows cycles), since all terms accumulate
into the same psums. An N:M term streams N * ceil(K/M) compressed rows instead of K (set by the trace).

A fold with acc=1 hands its psums to the accumulator through the `psum_port` as they leave, and
ends no earlier than the accumulator has taken the last row (cause "accumulator").

Buffer ports can stretch a fold: if reading its operands or writing its psums takes longer than
the fold, the difference is an "sram" stall. Every cycle the array is not computing is attributed
to what it was waiting for (the cause of the dependency, the metadata decoder, or the dispatcher).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from tasdsim.components.sram import SramBuffer
from tasdsim.components.metadata_decoder import MetadataDecoder
from tasdsim.components.units import Completions, Inbox
from tasdsim.components.probe import Probe
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import Pattern, runs_on


@dataclass(frozen=True)
class PeArrayConfig:
    """The R x C MAC array, its dataflow and the N:M patterns its lanes accept."""

    rows: int
    cols: int
    dataflow: str  # "ws" or "os"
    patterns: tuple[Pattern, ...]  # sorted by (M, N); dense is DENSE (1:1)

    def supports(self, pattern: Pattern) -> bool:
        return runs_on(pattern, self.patterns)


@dataclass
class PeArrayStats:
    folds: int = 0
    compute_cycles: int = 0
    macs_issued: int = 0
    macs_useful: int = 0
    stall_cycles: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    end: int = 0  # cycle the last fold finished

    def actions(self) -> dict[str, int]:
        return {"macs": self.macs_issued, "folds": self.folds, "busy_cycles": self.compute_cycles}


class PeArray:
    """The PE array unit, fed COMPUTE instructions in order."""

    def __init__(self, env: simpy.Environment, config: PeArrayConfig, word_bytes: int, psum_bytes: int,
                 buffers: dict[str, SramBuffer], inbox: Inbox,
                 completions: Completions, decoder: MetadataDecoder, idle_cause: Callable[[], str],
                 psum_port: Callable[[Instr, int], int],
                 probe: Probe | None = None) -> None:
        self.env = env
        self.probe = probe
        self.word_bytes = word_bytes
        self.psum_bytes = psum_bytes
        self.buffers = buffers
        self.completions = completions
        self.decoder = decoder
        self.idle_cause = idle_cause
        self.psum_port = psum_port  # the accumulator: takes a fold's psums, returns when the last row is taken
        self.stats = PeArrayStats()
        self._os = config.dataflow == "os"
        self._fill_drain = 2 * config.rows + config.cols - 2  # 2R + C - 2
        self._port_traffic: dict[tuple, tuple[int, int, int, int, int]] = {}  # by (rows, cols, t, first term)
        self.process = env.process(self._run(inbox))

    def fold_cycles(self, ins: Instr) -> int:
        """Cycles of one COMPUTE with no stall."""
        f = ins.fields
        if self._os:
            return f["k_rows"] if f["term"] > 0 else self._fill_drain + f["k_rows"]
        return self._fill_drain + f["m_rows"]

    def _port_cycles(self, ins: Instr) -> int:
        """Cycles the buffers' ports need for this fold's operand reads and psum writes; counts the
        bytes the array moves (the accumulator counts the psums it adds)."""
        f = ins.fields
        key = (f["k_rows"], f["m_rows"], f["cols"], f["term"] == 0)
        traffic = self._port_traffic.get(key)
        if traffic is None:
            traffic = self._port_traffic[key] = self._traffic(*key)
        inputs, weights, psum_reads, psum_writes, port = traffic
        b = self.buffers
        b["inputs"].read(inputs)
        b["weights"].read(weights)
        if not f["acc"]:
            b["outputs"].read(psum_reads)
            b["outputs"].write(psum_writes)
        return port

    def _traffic(self, k_rows: int, m_rows: int, cols: int, first_term: bool) -> tuple[int, int, int, int, int]:
        """Bytes a fold reads (inputs, weights, psums), psum bytes it writes, and the port cycles."""
        word, psum = self.word_bytes, self.psum_bytes
        inputs, weights = m_rows * k_rows * word, k_rows * cols * word
        if self._os:
            psum_reads, psum_writes = 0, m_rows * cols * psum if first_term else 0
        else:
            psum_reads = psum_writes = m_rows * cols * psum
        b = self.buffers
        port = max(b["inputs"].cycles(inputs), b["weights"].cycles(weights),
                   b["outputs"].cycles(psum_reads + psum_writes))
        return inputs, weights, psum_reads, psum_writes, port

    def _record(self, ins: Instr, idle_start: int, start: int, cycles: int, port: int) -> None:
        tl = self.probe
        tl.span("PE array", "stalls", "waiting", idle_start, start, busy=False)
        f = ins.fields
        tl.span("PE array", "folds", f"fold {ins.id} term {f['term']} {f['pattern']}", start, start + cycles,
                {"k_rows": f["k_rows"], "m_rows": f["m_rows"], "cols": f["cols"], "macs": f["macs"]})
        tl.span("PE array", "stalls", "sram ports", start + cycles, start + port, busy=False)

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        s, env, completions, buffers = self.stats, self.env, self.completions, self.buffers
        stalls = s.stall_cycles
        while True:
            idle_start = env.now
            ins: Instr = inbox.pop()
            if ins is None:
                cause = self.idle_cause()
                ins = yield from inbox.take()
                stalls[cause] += env.now - idle_start
            if completions.pending(ins):
                for cause, cycles in (yield from completions.wait(ins)):
                    stalls[cause] += cycles
            ready = self.decoder.decode(ins)
            if ready > env.now:
                stalls["metadata_decoder"] += ready - env.now
                yield env.timeout(ready - env.now)
            f = ins.fields
            cycles = self.fold_cycles(ins)
            port = self._port_cycles(ins)
            buffers["outputs"].reserve(f["o"], f["m_rows"] * f["cols"] * self.psum_bytes)
            if self.probe is not None:
                self._record(ins, idle_start, env.now, cycles, port)
            span = port if port > cycles else cycles
            stalls["sram"] += span - cycles
            if f["acc"]:
                taken = self.psum_port(ins, env.now + self._fill_drain) - env.now
                if taken > span:
                    stalls["accumulator"] += taken - span
                    span = taken
            yield env.timeout(span)
            s.compute_cycles += cycles
            s.folds += 1
            s.macs_issued += f["macs"]
            s.macs_useful += f["useful"]
            s.end = env.now
            for buf, slot in ins.free:
                buffers[buf].free(slot)
            completions.done(ins, "pe_array")
