"""Wires the units into an accelerator and runs one layer's instruction stream on it.

The dispatcher streams instructions into the units' inboxes (bounded FIFOs, so a huge
layer never sits in memory whole): LOAD/STORE to the DMA queue of their buffer, TASD to the TASD
units, COMPUTE to the PE array (which asks the metadata decoder), ACC to the accumulator. Units run
each inbox in order and synchronise only through the dependencies the trace names. The dispatcher
takes no time: it fills the inboxes at cycle 0 and, whenever an instruction finds its inbox full,
stops until that inbox's unit takes an item and calls it back (no SimPy event per refill).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import simpy

from tasdsim.components.accumulator import Accumulator
from tasdsim.components.dma import DmaEngine
from tasdsim.components.dram import Dram
from tasdsim.components.metadata_decoder import MetadataDecoder
from tasdsim.components.pe_array import PeArray
from tasdsim.components.sram import SramBuffer
from tasdsim.components.tasd_unit import TasdUnits
from tasdsim.components.units import Completions, Inbox
from tasdsim.simulator.config import HwConfig
from tasdsim.simulator.stats import LayerStats, collect
from tasdsim.simulator.timeline import Timeline
from tasdsim.common import TasdsimError
from tasdsim.traces.generate import BufferPlan
from tasdsim.traces.isa import BUFFERS, Instr

ROUTES = {"TASD": "tasd", "COMPUTE": "array", "ACC": "acc"}
QUEUE_DEPTH = 256  # instructions buffered per unit inbox
BLOCKED_CAUSE = {"weights": "dram", "inputs": "dram", "outputs": "dram", "tasd": "tasd_units", "array": "dram",
                 "acc": "accumulator"}  # what the array reports while the dispatcher is held by a full inbox


class Accelerator:
    """One accelerator instance for one layer run."""

    def __init__(self, hw: HwConfig, buffers: BufferPlan, ideal_memory: bool, where: str = "",
                 timeline: Timeline | None = None) -> None:
        self.hw = hw
        self.where = where
        self.env = env = simpy.Environment()
        timing = hw.dram.timing()
        self.dram = Dram(env, timing, hw.clock_ghz, ideal=ideal_memory)
        self.buffers = {name: SramBuffer(name, getattr(hw.buffers, name), buffers.of(name).slots,
                                         buffers.of(name).slot_bytes, ideal_memory, timeline)
                        for name in BUFFERS}
        self.completions = Completions(env)
        self.inboxes = {name: Inbox(env, QUEUE_DEPTH)
                        for name in ("weights", "inputs", "outputs", "tasd", "array", "acc")}
        self._stream: Iterator[Instr] = iter(())
        self._held: tuple[str, Instr] | None = None  # the instruction waiting for room in its inbox
        self.blocked_on = "dram"
        self.decoder = MetadataDecoder(hw.metadata_decoder, hw.pe_array.patterns, hw.name, where, timeline)
        self.dma = DmaEngine(env, self.dram, self.buffers, {b: self.inboxes[b] for b in BUFFERS}, self.completions,
                             self.decoder.weights_arrived, where, timeline)
        self.accumulator = Accumulator(env, hw.accumulator, self.buffers["outputs"], hw.psum_bytes,
                                       self.inboxes["acc"], self.completions, timeline)
        self.array = PeArray(env, hw.pe_array, hw.word_bytes, hw.psum_bytes, self.buffers, self.inboxes["array"],
                             self.completions, self.decoder, lambda: self.blocked_on,
                             self.accumulator.take, timeline)
        self.tasd_units = TasdUnits(env, hw.tasd_units.count, self.inboxes["tasd"], self.completions, timeline)
        if timeline is not None:
            timeline.start_layer(env, hw.clock_ghz)

    UNIT_NAMES = {"weights": "DMA weights queue", "inputs": "DMA inputs queue", "outputs": "DMA outputs queue",
                  "tasd": "TASD units", "array": "PE array", "acc": "accumulator"}

    def _route(self, ins: Instr) -> str:
        """The inbox an instruction goes to: its buffer's DMA queue, or its unit."""
        return ins.fields["buf"] if ins.op in ("LOAD", "STORE") else ROUTES[ins.op]

    def _dispatch(self) -> None:
        """Put instructions in stream order into their inboxes until one finds its inbox full; it
        is held there and dispatching resumes when that inbox's unit takes an item."""
        if self._held is not None:
            route, ins = self._held
            if not self.inboxes[route].put(ins):
                self.inboxes[route].on_room = self._dispatch
                return
            self._held = None
        completions, inboxes = self.completions, self.inboxes
        for ins in self._stream:
            completions.open(ins)
            op = ins.op
            if op == "COMPUTE":
                self.decoder.check(ins)
                route = "array"
            elif op == "LOAD" or op == "STORE":
                route = ins.fields["buf"]
            else:
                if op == "TASD":
                    if self.hw.tasd_units.count == 0:
                        raise TasdsimError(f"{self.where}TASD {ins.id}: hardware {self.hw.name} has no TASD units")
                    self.decoder.check(ins)
                route = ROUTES[op]
            if ins.id % 4096 == 0:
                completions.forget(ins.id - 4 * QUEUE_DEPTH * len(inboxes))
            if not inboxes[route].put(ins):
                self._held = (route, ins)
                self.blocked_on = BLOCKED_CAUSE[route]
                inboxes[route].on_room = self._dispatch
                return

    def run(self, instrs: Iterable[Instr], name: str, where: str) -> LayerStats:
        """Run the instructions to completion and collect the layer's statistics."""
        self._stream = iter(instrs)
        self.env.timeout(0).callbacks.append(lambda _: self._dispatch())  # first fill: once every unit waits
        self.env.run()
        if self.completions.waiting:
            stuck = [self.completions.waiting[i] for i in sorted(self.completions.waiting)[:5]]
            listed = "; ".join(f"{ins.op} {ins.id} in the {self.UNIT_NAMES[self._route(ins)]} "
                               f"(deps {','.join(map(str, ins.deps)) or 'none'})" for ins in stuck)
            raise TasdsimError(f"{where}simulation stopped making progress with {len(self.completions.waiting)} "
                               f"instructions unfinished: {listed}")
        return collect(name, self)
