"""Each unit driven alone, PyMTL3-style: a source puts instructions into the unit's inbox with a
chosen initial delay and interval, a sink (the completions port) logs `(cycle, event)` as the unit
finishes them, and the run stops at a max-cycles guard instead of hanging. Expected logs are
derived by hand in each test."""
from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy

from tasdsim.components.accumulator import Accumulator, AccumulatorConfig
from tasdsim.components.dma import DmaEngine
from tasdsim.components.metadata_decoder import MetadataDecoder, MetadataDecoderConfig
from tasdsim.components.pe_array import PeArray, PeArrayConfig
from tasdsim.components.sram import BufferConfig, SramBuffer
from tasdsim.components.tasd_unit import TasdUnits
from tasdsim.components.units import Completions, Inbox
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import DENSE, parse_pattern

MAX_CYCLES = 10_000


class Sink(Completions):
    """The completions port, logging (cycle, "OP ID") as each instruction finishes."""

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env)
        self.log: list[tuple[int, str]] = []

    def done(self, ins: Instr, cause: str) -> None:
        self.log.append((self.env.now, f"{ins.op} {ins.id}"))
        super().done(ins, cause)


def source(env: simpy.Environment, inbox: Inbox, sink: Sink, instrs: list[Instr], init_delay: int,
           interval: int) -> Generator[simpy.Event, Any, None]:
    """Offer `instrs` to `inbox`: the first after `init_delay` cycles, then one every `interval`
    cycles, retrying each cycle while the inbox is full."""
    yield env.timeout(init_delay)
    for i, ins in enumerate(instrs):
        sink.open(ins)
        while not inbox.put(ins):
            yield env.timeout(1)
        if i < len(instrs) - 1 and interval:
            yield env.timeout(interval)


def run(env: simpy.Environment, sink: Sink, count: int) -> list[tuple[int, str]]:
    """Run to the max-cycles guard; every one of `count` instructions must have finished."""
    env.run(until=MAX_CYCLES)
    assert len(sink.log) == count, f"not finished within {MAX_CYCLES} cycles: {sink.log}"
    return sink.log


def compute(i: int, k_rows: int, m_rows: int, cols: int, acc: int = 0, pattern: str = "1:1", w: int = 0,
            term: int = 0, deps: tuple[int, ...] = ()) -> Instr:
    return Instr(i, "COMPUTE", {"w": w, "i": 0, "o": 0, "term": term, "pattern": pattern, "k_rows": k_rows,
                                "m_rows": m_rows, "cols": cols, "acc": acc, "macs": k_rows * m_rows * cols,
                                "useful": k_rows * m_rows * cols}, deps)


def buffers(ideal: bool = True) -> dict[str, SramBuffer]:
    config = BufferConfig(size_kib=64, banks=1, bank_bytes=8, ports=1)  # 8 bytes per cycle
    return {name: SramBuffer(name, config, 2, 32 * 1024, ideal) for name in ("weights", "inputs", "outputs")}


# ----------------------------------------------------------------------------- PE array


def pe_array(env: simpy.Environment, sink: Sink, dataflow: str = "ws", decoder_latency: int = 0,
             psum_port: Callable[[Instr, int], int] | None = None) -> tuple[PeArray, Inbox, MetadataDecoder]:
    patterns = (DENSE, parse_pattern("2:4"))
    decoder = MetadataDecoder(MetadataDecoderConfig(decoder_latency), patterns, "test", "")
    inbox = Inbox(env, 4)
    array = PeArray(env, PeArrayConfig(4, 4, dataflow, patterns), 1, 4, buffers(), inbox, sink, decoder,
                    lambda: "dram", psum_port or (lambda ins, first_row: first_row + ins["m_rows"]))
    return array, inbox, decoder


@pytest.mark.parametrize("init_delay,interval,expected,idle", [
    (0, 0, [(20, "COMPUTE 0"), (40, "COMPUTE 1"), (60, "COMPUTE 2")], 0),
    (3, 0, [(23, "COMPUTE 0"), (43, "COMPUTE 1"), (63, "COMPUTE 2")], 3),
    (3, 30, [(23, "COMPUTE 0"), (53, "COMPUTE 1"), (83, "COMPUTE 2")], 3 + 10 + 10),
])
def test_pe_array_ws_folds_back_to_back(init_delay, interval, expected, idle):
    # R = C = 4: a WS fold of m_rows = 10 takes 2R + C + m_rows - 2 = 8 + 4 + 10 - 2 = 20 cycles;
    # a fold arriving late starts when it arrives, the array idles in between.
    env = simpy.Environment()
    sink = Sink(env)
    array, inbox, _ = pe_array(env, sink)
    env.process(source(env, inbox, sink, [compute(i, 4, 10, 4) for i in range(3)], init_delay, interval))
    assert run(env, sink, 3) == expected
    assert array.stats.compute_cycles == 60
    assert array.stats.stall_cycles["dram"] == idle


def test_pe_array_os_later_terms_stream_behind_the_first():
    # OS: term 0 pays 2R + C + k_rows - 2 = 8 + 4 + 12 - 2 = 22; term 1 streams its 6 rows behind.
    env = simpy.Environment()
    sink = Sink(env)
    _, inbox, _ = pe_array(env, sink, "os")
    folds = [compute(0, 12, 4, 4, term=0), compute(1, 6, 4, 4, term=1)]
    env.process(source(env, inbox, sink, folds, 0, 0))
    assert run(env, sink, 2) == [(22, "COMPUTE 0"), (28, "COMPUTE 1")]


def test_pe_array_waits_for_the_accumulator_to_take_its_psums():
    # Psums leave after 2R + C - 2 = 10 cycles of a fold. The accumulator takes the 10 rows in 25
    # cycles instead of 10: the fold that would end at 20 ends when the last row is taken,
    # 10 + 25 = 35 (15 cycles of cause "accumulator"); the next one starts there.
    env = simpy.Environment()
    sink = Sink(env)
    offered = []

    def port(ins: Instr, first_row: int) -> int:
        offered.append((ins.id, first_row))
        return first_row + 25

    array, inbox, _ = pe_array(env, sink, psum_port=port)
    env.process(source(env, inbox, sink, [compute(0, 4, 10, 4, acc=1), compute(1, 4, 10, 4, acc=1)], 0, 0))
    assert run(env, sink, 2) == [(35, "COMPUTE 0"), (70, "COMPUTE 1")]
    assert offered == [(0, 10), (1, 45)]
    assert array.stats.stall_cycles["accumulator"] == 2 * 15


def test_pe_array_waits_for_the_metadata_of_its_weight_tile():
    # The weight tile of slot 1 lands at cycle 7; decoding takes 2 cycles: the sparse fold that
    # arrives at 0 starts at 9 and ends at 9 + 20 = 29; the dense fold after it needs no decode.
    env = simpy.Environment()
    sink = Sink(env)
    array, inbox, decoder = pe_array(env, sink, decoder_latency=2)
    decoder.weights_arrived(1, 7)
    folds = [compute(0, 4, 10, 4, pattern="2:4", w=1), compute(1, 4, 10, 4)]
    env.process(source(env, inbox, sink, folds, 0, 0))
    assert run(env, sink, 2) == [(29, "COMPUTE 0"), (49, "COMPUTE 1")]
    assert array.stats.stall_cycles["metadata_decoder"] == 9
    assert decoder.stats.actions() == {"folds": 1, "indices": 16, "busy_cycles": 2}


# ----------------------------------------------------------------------------- accumulator


def accumulator(env: simpy.Environment, sink: Sink, width: int, latency: int) -> tuple[Accumulator, Inbox]:
    inbox = Inbox(env, 4)
    outputs = buffers()["outputs"]
    return Accumulator(env, AccumulatorConfig(width, latency), outputs, 4, inbox, sink), inbox


@pytest.mark.parametrize("width,taken", [(32, [15, 25, 35]), (64, [15, 25, 35]), (8, [45, 85, 125])])
def test_accumulator_takes_psums_at_its_width(width, taken):
    # Folds of 10 rows x 32 psums whose first rows leave at 5, 12 and 20. As wide as the array
    # (32) or wider, a fold's rows are taken as they come, one a cycle (10 cycles), each after the
    # one before: 15, 25, 35. At 8 words a cycle a fold takes 320 / 8 = 40 cycles: 45, 85, 125.
    env = simpy.Environment()
    sink = Sink(env)
    acc, _ = accumulator(env, sink, width, 1)
    got = [acc.take(compute(i, 4, 10, 32, acc=1), first) for i, first in enumerate((5, 12, 20))]
    assert got == taken
    assert acc.stats.adds == 3 * 320
    assert acc.outputs.stats.read_bytes == acc.outputs.stats.write_bytes == 3 * 320 * 4


@pytest.mark.parametrize("latency", [0, 1, 5])
@pytest.mark.parametrize("init_delay,interval", [(0, 0), (2, 7)])
def test_accumulator_drains_after_the_tile_last_fold(latency, init_delay, interval):
    # Each ACC depends on a fold that finishes at cycle 10 (psum tile 0) or 30 (tile 1); the drain
    # takes `latency` cycles after the later of its fold and its arrival.
    env = simpy.Environment()
    sink = Sink(env)
    _, inbox = accumulator(env, sink, 32, latency)
    folds = [compute(0, 4, 10, 32, acc=1), compute(2, 4, 10, 32, acc=1)]
    for fold in folds:
        sink.open(fold)

    def finish(ins: Instr, at: int) -> Generator[simpy.Event, Any, None]:
        yield env.timeout(at)
        sink.done(ins, "pe_array")

    env.process(finish(folds[0], 10))
    env.process(finish(folds[1], 30))
    drains = [Instr(1, "ACC", {"slot": 0}, (0,)), Instr(3, "ACC", {"slot": 1}, (2,))]
    env.process(source(env, inbox, sink, drains, init_delay, interval))
    log = run(env, sink, 4)
    assert [entry for entry in log if entry[1].startswith("ACC")] == [
        (max(10, init_delay) + latency, "ACC 1"), (max(30, init_delay + interval, max(10, init_delay) + latency)
                                                   + latency, "ACC 3")]


# ----------------------------------------------------------------------------- TASD units


@pytest.mark.parametrize("init_delay,interval,expected", [
    (0, 0, [(12, "TASD 0"), (24, "TASD 1")]),
    (5, 20, [(17, "TASD 0"), (37, "TASD 1")]),
])
def test_tasd_units_take_m_cycles_per_round_of_groups(init_delay, interval, expected):
    # 2 units, 5 N:M groups of M = 4: ceil(5 / 2) rounds of 4 cycles = 12 cycles per TASD.
    env = simpy.Environment()
    sink = Sink(env)
    inbox = Inbox(env, 4)
    units = TasdUnits(env, 2, inbox, sink)
    tasds = [Instr(i, "TASD", {"slot": 0, "term": i, "pattern": "2:4", "nm_groups": 5}) for i in range(2)]
    env.process(source(env, inbox, sink, tasds, init_delay, interval))
    assert run(env, sink, 2) == expected
    assert units.stats.actions() == {"nm_groups": 10, "elements": 40, "busy_cycles": 24}


# ----------------------------------------------------------------------------- DMA


class FixedDram:
    """A DRAM stand-in: every transfer takes `cycles` from its arrival, one after another; its
    completion event's value is the cycle it completes (the DRAM port the DMA uses)."""

    def __init__(self, env: simpy.Environment, cycles: int) -> None:
        self.env = env
        self.cycles = cycles
        self.free = 0

    def request(self, address: int, nbytes: int, write: bool) -> simpy.Event:
        self.free = max(self.env.now, self.free) + self.cycles
        return self.env.timeout(self.free - self.env.now, value=self.free)


@pytest.mark.parametrize("dram_cycles,expected", [
    (4, [(10, "LOAD 0"), (20, "LOAD 1"), (30, "STORE 2")]),  # the SRAM port (80 B at 8 B/cycle) bounds
    (25, [(25, "LOAD 0"), (50, "LOAD 1"), (75, "STORE 2")]),  # the DRAM bounds
])
def test_dma_queue_moves_one_tile_at_a_time(dram_cycles, expected):
    env = simpy.Environment()
    sink = Sink(env)
    bufs = buffers(ideal=False)
    inbox = Inbox(env, 4)
    arrived = []
    dma = DmaEngine(env, FixedDram(env, dram_cycles), {"weights": bufs["weights"]}, {"weights": inbox}, sink,
                    lambda slot, cycle: arrived.append((slot, cycle)))
    instrs = [Instr(0, "LOAD", {"buf": "weights", "slot": 0, "bytes": 64, "meta": 16, "addr": 0}),
              Instr(1, "LOAD", {"buf": "weights", "slot": 1, "bytes": 80, "meta": 0, "addr": 4096}),
              Instr(2, "STORE", {"buf": "weights", "slot": 0, "bytes": 80, "addr": 8192}, (), (("weights", 0),))]
    env.process(source(env, inbox, sink, instrs, 0, 0))
    assert run(env, sink, 3) == expected
    assert arrived == [(0, expected[0][0]), (1, expected[1][0])]  # told to the metadata decoder's port
    assert dma.stats.actions()["transfers"] == 3
    assert dma.stats.dram_bytes["weights"] == 144 and dma.stats.dram_bytes["metadata"] == 16
    assert bufs["weights"].stats.peak_bytes == 160 and bufs["weights"].held == [0, 80]
