"""DMA engine: executes LOAD (DRAM -> buffer slot) and STORE (buffer slot -> DRAM).

One in-order queue per buffer (weights, inputs, outputs), sharing the DRAM: each queue offers its
transfer's requests to the memory controller, whose queues take them in order with those of the
other queues, and waits for the transfer's completion event. A transfer takes the longer of its DRAM
time and the buffer's port time (bytes / bytes per cycle); the cause it leaves for a waiting PE
array is "dram" or "sram" accordingly.
"""
from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from tasdsim.components.dram import Dram
from tasdsim.components.sram import SramBuffer
from tasdsim.components.units import Completions, Inbox
from tasdsim.components.probe import Probe
from tasdsim.common import TasdsimError
from tasdsim.traces.isa import Instr


class DmaEngine:
    """DMA queues, one process per buffer."""

    def __init__(self, env: simpy.Environment, dram: Dram, buffers: dict[str, SramBuffer],
                 inboxes: dict[str, Inbox], completions: Completions, where: str = "",
                 probe: Probe | None = None) -> None:
        self.env = env
        self.where = where
        self.probe = probe
        self.dram = dram
        self.buffers = buffers
        self.completions = completions
        self.busy_cycles = {name: 0 for name in inboxes}
        self.transfers = 0
        self.dram_bytes = {"weights": 0, "metadata": 0, "inputs": 0, "psums_read": 0, "outputs": 0}
        self.processes = [env.process(self._run(name, inbox)) for name, inbox in inboxes.items()]

    def _run(self, name: str, inbox: Inbox) -> Generator[simpy.Event, Any, None]:
        buffer, buffers, env, completions, dram = self.buffers[name], self.buffers, self.env, self.completions, self.dram
        dram_bytes = self.dram_bytes
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
                    buffer.fill(f["slot"], nbytes)
                except TasdsimError as err:
                    raise TasdsimError(f"{self.where}{ins.op} {ins.id}: {err}") from None
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
            self.busy_cycles[name] += finish - now
            self.transfers += 1
            if self.probe is not None:
                label = f"{ins.op} {ins.id}"
                self.probe.span("DMA", name, label, now, finish, {"bytes": nbytes, "addr": f["addr"]})
                self.probe.span("DRAM", name, label, now, dram_done, {"bytes": nbytes})
                self.probe.dram_transfer(now, dram_done, nbytes)
            for buf, slot in ins.free:
                buffers[buf].free(slot)
            if finish == now and waited:
                cause = max(waited, key=lambda w: w[1])[0]  # what held this zero-time transfer back
            else:
                cause = "sram" if sram_done > dram_done else "dram"
            completions.done(ins, cause)
