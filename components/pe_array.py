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

from components.sram import SramBuffer
from components.metadata_decoder import MetadataDecoder
from components.units import Completions, Inbox
from simulator.timeline import Timeline
from simulator.config import HwConfig
from traces.isa import Instr


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

    def __init__(self, env: simpy.Environment, hw: HwConfig, buffers: dict[str, SramBuffer], inbox: Inbox,
                 completions: Completions, decoder: MetadataDecoder, weight_load: dict[int, int],
                 idle_cause: Callable[[], str],
                 timeline: Timeline | None = None) -> None:
        self.env = env
        self.timeline = timeline
        self.hw = hw
        self.buffers = buffers
        self.completions = completions
        self.decoder = decoder
        self.weight_load = weight_load
        self.idle_cause = idle_cause
        self.stats = PeArrayStats()
        self._os = hw.pe_array.dataflow == "os"
        self._fill_drain = 2 * hw.pe_array.rows + hw.pe_array.cols - 2  # 2R + C - 2
        self.process = env.process(self._run(inbox))

    def fold_cycles(self, ins: Instr) -> int:
        """Cycles of one COMPUTE with no stall."""
        f = ins.fields
        if self._os and f["term"] > 0:
            return f["t"]
        return self._fill_drain + f["t"]

    def _port_cycles(self, ins: Instr) -> int:
        """Cycles the buffers' ports need for this fold's operand reads and psum writes."""
        f = ins.fields
        word, psum = self.hw.word_bytes, self.hw.psum_bytes
        rows, cols, t = f["rows"], f["cols"], f["t"]
        if self.hw.pe_array.dataflow == "ws":
            inputs, weights, psum_reads, psum_writes = t * rows * word, rows * cols * word, t * cols * psum, t * cols * psum
        else:
            inputs, weights, psum_reads = rows * t * word, t * cols * word, 0
            psum_writes = rows * cols * psum if f["term"] == 0 else 0
        b_in, b_w, b_out = self.buffers["inputs"], self.buffers["weights"], self.buffers["outputs"]
        b_in.read(inputs)
        b_w.read(weights)
        b_out.read(psum_reads)
        b_out.write(psum_writes)
        return max(b_in.cycles(inputs), b_w.cycles(weights), b_out.cycles(psum_reads + psum_writes))

    def _record(self, ins: Instr, idle_start: int, start: int, cycles: int, port: int) -> None:
        tl = self.timeline
        tl.span("PE array", "stalls", "waiting", idle_start, start, busy=False)
        f = ins.fields
        tl.span("PE array", "folds", f"fold {ins.id} term {f['term']} {f['pattern']}", start, start + cycles,
                {"rows": f["rows"], "cols": f["cols"], "t": f["t"], "macs": f["macs"]})
        tl.span("PE array", "stalls", "sram ports", start + cycles, start + port, busy=False)

    def _run(self, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        s = self.stats
        while True:
            idle_start = self.env.now
            cause = None if inbox.items else self.idle_cause()
            ins: Instr = yield from inbox.take()
            if cause is not None:
                s.stall_cycles[cause] += self.env.now - idle_start
            for cause, cycles in (yield from self.completions.wait(ins)):
                s.stall_cycles[cause] += cycles
            load = self.weight_load.pop(ins.id, None)
            if load is not None:
                ready = self.decoder.decode(ins, self.completions.finished_at.get(load, 0))
                if ready > self.env.now:
                    s.stall_cycles["metadata_decoder"] += ready - self.env.now
                    yield self.env.timeout(ready - self.env.now)
            cycles = self.fold_cycles(ins)
            port = self._port_cycles(ins)
            start = self.env.now
            if self.timeline is not None:
                self._record(ins, idle_start, start, cycles, port)
            yield self.env.timeout(max(cycles, port))
            s.compute_cycles += cycles
            s.stall_cycles["sram"] += max(0, port - cycles)
            s.folds += 1
            s.macs_issued += ins.fields["macs"]
            s.macs_useful += ins.fields["useful"]
            s.end = self.env.now
            for buf, slot in ins.free:
                self.buffers[buf].free(slot)
            self.completions.done(ins, "pe_array")
