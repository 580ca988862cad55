"""N:M sparse PE array: R x C MAC PEs with systolic WS or OS timing, one event per fold.

WS: a fold loads R reduction rows x C columns of stationary weights and streams t input rows:
2R + C + t - 2 cycles (partial folds pay the full R and C; SCALE-Sim's formula). OS: a fold keeps
R x C psums stationary; the first term of a fold pays 2R + C + t - 2 and each further term of the
same fold streams right behind it (t cycles), since all terms accumulate into the same psums.
An N:M term streams N * ceil(K/M) compressed rows instead of K (set by the trace).

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


class PeArray:
    """The PE array unit, fed COMPUTE instructions in order."""

    def __init__(self, env: simpy.Environment, config: PeArrayConfig, word_bytes: int, psum_bytes: int,
                 buffers: dict[str, SramBuffer], inbox: Inbox,
                 completions: Completions, decoder: MetadataDecoder, weight_load: dict[int, int],
                 idle_cause: Callable[[], str],
                 probe: Probe | None = None) -> None:
        self.env = env
        self.probe = probe
        self.word_bytes = word_bytes
        self.psum_bytes = psum_bytes
        self.buffers = buffers
        self.completions = completions
        self.decoder = decoder
        self.weight_load = weight_load
        self.idle_cause = idle_cause
        self.stats = PeArrayStats()
        self._os = config.dataflow == "os"
        self._fill_drain = 2 * config.rows + config.cols - 2  # 2R + C - 2
        self._port_traffic: dict[tuple, tuple[int, int, int, int, int]] = {}  # by (rows, cols, t, first term)
        self.process = env.process(self._run(inbox))

    def fold_cycles(self, ins: Instr) -> int:
        """Cycles of one COMPUTE with no stall."""
        f = ins.fields
        if self._os and f["term"] > 0:
            return f["t"]
        return self._fill_drain + f["t"]

    def _port_cycles(self, ins: Instr) -> int:
        """Cycles the buffers' ports need for this fold's operand reads and psum writes; counts them."""
        f = ins.fields
        key = (f["rows"], f["cols"], f["t"], f["term"] == 0)
        traffic = self._port_traffic.get(key)
        if traffic is None:
            traffic = self._port_traffic[key] = self._traffic(*key)
        inputs, weights, psum_reads, psum_writes, port = traffic
        b = self.buffers
        b["inputs"].read(inputs)
        b["weights"].read(weights)
        b["outputs"].read(psum_reads)
        b["outputs"].write(psum_writes)
        return port

    def _traffic(self, rows: int, cols: int, t: int, first_term: bool) -> tuple[int, int, int, int, int]:
        """Bytes a fold reads (inputs, weights, psums), psum bytes it writes, and the port cycles."""
        word, psum = self.word_bytes, self.psum_bytes
        if self._os:
            inputs, weights, psum_reads = rows * t * word, t * cols * word, 0
            psum_writes = rows * cols * psum if first_term else 0
        else:
            inputs, weights, psum_reads, psum_writes = t * rows * word, rows * cols * word, t * cols * psum, t * cols * psum
        b = self.buffers
        port = max(b["inputs"].cycles(inputs), b["weights"].cycles(weights),
                   b["outputs"].cycles(psum_reads + psum_writes))
        return inputs, weights, psum_reads, psum_writes, port

    def _record(self, ins: Instr, idle_start: int, start: int, cycles: int, port: int) -> None:
        tl = self.probe
        tl.span("PE array", "stalls", "waiting", idle_start, start, busy=False)
        f = ins.fields
        tl.span("PE array", "folds", f"fold {ins.id} term {f['term']} {f['pattern']}", start, start + cycles,
                {"rows": f["rows"], "cols": f["cols"], "t": f["t"], "macs": f["macs"]})
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
            load = self.weight_load.pop(ins.id, None)
            if load is not None:
                ready = self.decoder.decode(ins, completions.finished_at.get(load, 0))
                if ready > env.now:
                    stalls["metadata_decoder"] += ready - env.now
                    yield env.timeout(ready - env.now)
            cycles = self.fold_cycles(ins)
            port = self._port_cycles(ins)
            if self.probe is not None:
                self._record(ins, idle_start, env.now, cycles, port)
            if port > cycles:
                stalls["sram"] += port - cycles
                yield env.timeout(port)
            else:
                yield env.timeout(cycles)
            f = ins.fields
            s.compute_cycles += cycles
            s.folds += 1
            s.macs_issued += f["macs"]
            s.macs_useful += f["useful"]
            s.end = env.now
            for buf, slot in ins.free:
                buffers[buf].free(slot)
            completions.done(ins, "pe_array")
