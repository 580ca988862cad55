"""DMA engine: executes LOAD (DRAM -> buffer slot) and STORE (buffer slot -> DRAM).

One in-order queue per buffer (weights, inputs, outputs), sharing the DRAM: each queue offers its
transfer's requests to the memory controller, whose queues take them in order with those of the
other queues, and waits for the transfer's completion event. A transfer takes the longer of its DRAM
time and the buffer's port time (bytes / bytes per cycle); the cause it leaves for a waiting PE
array is "dram" or "sram" accordingly.
"""
from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from tasdsim.components.dram import Dram
from tasdsim.components.sram import SramBuffer
from tasdsim.components.units import Completions, Inbox
from tasdsim.components.probe import Probe
from tasdsim.common import TasdsimError
from tasdsim.traces.isa import Instr


@dataclass
class DmaStats:
    transfers: int = 0
    busy_cycles: int = 0  # summed over the queues
    dram_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("weights", "metadata", "inputs", "psums_read", "outputs"), 0))  # by operand, metadata apart

    def actions(self) -> dict[str, int]:
        return {"transfers": self.transfers, "busy_cycles": self.busy_cycles}


class DmaEngine:
    """DMA queues, one process per buffer."""

    def __init__(self, env: simpy.Environment, dram: Dram, buffers: dict[str, SramBuffer],
                 inboxes: dict[str, Inbox], completions: Completions,
                 weights_arrived: Callable[[int, int], None], where: str = "", probe: Probe | None = None) -> None:
        self.env = env
        self.where = where
        self.probe = probe
        self.dram = dram
        self.buffers = buffers
        self.completions = completions
        self.weights_arrived = weights_arrived  # port to the metadata decoder: (slot, cycle) of each weight tile
        self.stats = DmaStats()
        self.processes = [env.process(self._run(name, inbox)) for name, inbox in inboxes.items()]

    def _run(self, name: str, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        buffer, env, completions, dram = self.buffers[name], self.env, self.completions, self.dram
        stats = self.stats
        dram_bytes = stats.dram_bytes
        operand = "psums_read" if name == "outputs" else name
        while True:
            ins: Instr = inbox.pop()
            if ins is None:
                ins = yield from inbox.take()
            waited = (yield from completions.wait(ins)) if completions.pending(ins) else ()
            f = ins.fields
            load = ins.op == "LOAD"
            if load:
                nbytes = f["bytes"] + f["meta"]
                try:
                    buffer.reserve(f["slot"], nbytes)
                except TasdsimError as err:
                    raise TasdsimError(f"{self.where}{ins.op} {ins.id}: {err}") from None
                buffer.write(nbytes)
                dram_bytes[operand] += f["bytes"]
                dram_bytes["metadata"] += f["meta"]
            else:
                nbytes = f["bytes"]
                dram_bytes["outputs"] += nbytes
                buffer.read(nbytes)
            now = env.now
            sram_done = now + buffer.cycles(nbytes)
            dram_event = dram.request(f["addr"], nbytes, not load)
            dram_done = now if dram_event is None else (yield dram_event)
            if sram_done > dram_done:
                yield env.timeout(sram_done - dram_done)
            finish = env.now
            stats.busy_cycles += finish - now
            stats.transfers += 1
            if self.probe is not None:
                label = f"{ins.op} {ins.id}"
                self.probe.span("DMA", name, label, now, finish, {"bytes": nbytes, "addr": f["addr"]})
                self.probe.span("DRAM", name, label, now, dram_done, {"bytes": nbytes})
                self.probe.dram_transfer(now, dram_done, nbytes)
            if load and name == "weights":
                self.weights_arrived(f["slot"], finish)
            for _, slot in ins.free:  # the dispatcher checks a transfer frees only its own buffer's slots
                buffer.free(slot)
            if finish == now and waited:
                cause = max(waited, key=lambda w: w[1])[0]  # what held this zero-time transfer back
            else:
                cause = "sram" if sram_done > dram_done else "dram"
            completions.done(ins, cause)
