"""DRAM: DDR4 / HBM2 presets with DRAMsim3's parameters, the address map, and trace replay.

A preset (`configs/dram/*.yaml`) carries every parameter DRAMsim3 simulates, with DRAMsim3's names
and values (times in tCK). A request is one burst of `request_bytes = bus_width / 8 * BL` bytes
(64 B in both presets) that holds the data bus for `BL / 2` tCK. The address map is written in
DRAMsim3's notation, six two-letter fields from the most significant: `ro` row, `ch` channel, `ra`
rank, `bg` bank group, `ba` bank, `co` column; below them the byte within the request. Each field
is log2 of its count wide (the column field log2(columns / BL)), so every count is a power of two
and addresses above the capacity wrap.

`replay` runs a request stream through the memory controller (`dram_controller`) as DRAMsim3's
reference driver does: requests offered in order, each not before its arrival.
"""
from __future__ import annotations

import dataclasses
import functools
import heapq
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from tasdsim.common import bundled_files, read_preset, TasdsimError
from tasdsim.components.dram_controller import (
    FOREVER, MemoryController, R_ADDR, R_ARRIVAL, R_WRITE, S_ACT, S_CONFLICTS, S_DRAINS, S_DUAL, S_MISSES, S_PRE, S_READ_CMDS, S_READ_HITS, S_REF,
    S_WRITE_CMDS, S_WRITE_HITS)


@dataclass(frozen=True)
class DramConfig:
    """The DRAM of a hardware config: a preset, its channel count, and overrides of its keys."""

    preset: str  # a file in configs/dram/, e.g. "ddr4-3200" or "hbm2"
    channels: int
    overrides: tuple[tuple[str, Any], ...] = ()  # (key, value) of preset keys set in the hardware config

    def timing(self) -> DramTiming:
        """The preset with the channel count and the overrides applied."""
        return load_dram_preset(self.preset).with_overrides(dict(self.overrides, channels=self.channels))


PROTOCOLS = ("DDR4", "HBM2")
MAP_FIELDS = ("ro", "ch", "ra", "bg", "ba", "co")

# key: (kind, low, high, what). kind "int" (low..high), "pow2" (a power of two in low..high),
# "ns" (a positive number), "protocol", "map". Times in tCK.
KEYS: dict[str, tuple[str, int, int, str]] = {
    "protocol": ("protocol", 0, 0, "DDR4 or HBM2 (HBM2 issues a row and a column command in one cycle)"),
    "tCK": ("ns", 0, 0, "clock period, ns"),
    "CL": ("int", 1, 200, "READ to data (CAS latency)"),
    "CWL": ("int", 1, 200, "WRITE to data"),
    "tRCD": ("int", 1, 200, "ACTIVATE to READ/WRITE"),
    "tRP": ("int", 1, 200, "PRECHARGE to ACTIVATE"),
    "tRAS": ("int", 1, 500, "ACTIVATE to PRECHARGE"),
    "tCCD_S": ("int", 1, 100, "column to column, other bank group"),
    "tCCD_L": ("int", 1, 100, "column to column, same bank group"),
    "tRRD_S": ("int", 1, 100, "ACTIVATE to ACTIVATE, other bank group"),
    "tRRD_L": ("int", 1, 100, "ACTIVATE to ACTIVATE, same bank group"),
    "tFAW": ("int", 0, 500, "window of four ACTIVATEs per rank"),
    "tWTR_S": ("int", 0, 100, "end of write data to READ, other bank group"),
    "tWTR_L": ("int", 0, 100, "end of write data to READ, same bank group"),
    "tWR": ("int", 0, 200, "end of write data to PRECHARGE"),
    "tRTP": ("int", 0, 100, "READ to PRECHARGE"),
    "tRTRS": ("int", 0, 100, "rank to rank switch"),
    "tRFC": ("int", 1, 10000, "REFRESH to ACTIVATE"),
    "tREFI": ("int", 1, 1000000, "refresh interval per rank"),
    "channels": ("pow2", 1, 64, "channels"),
    "ranks": ("pow2", 1, 16, "ranks per channel"),
    "bankgroups": ("pow2", 1, 16, "bank groups per rank"),
    "banks_per_group": ("pow2", 1, 16, "banks per bank group"),
    "rows": ("pow2", 1, 1 << 24, "rows per bank"),
    "columns": ("pow2", 1, 1 << 16, "columns per row"),
    "bus_width": ("pow2", 8, 1024, "channel data bus, bits"),
    "BL": ("pow2", 2, 64, "burst length (transfers, two per tCK)"),
    "address_mapping": ("map", 0, 0, "address fields, most significant first"),
    "trans_queue_size": ("int", 1, 1024, "read queue and write buffer entries per channel"),
    "cmd_queue_size": ("int", 1, 256, "command queue entries per bank"),
    "row_hit_cap": ("int", 1, 1 << 20, "hits after which a waiting conflict may close the row"),
    "write_drain_idle": ("int", 0, 1024, "writes above which an idle controller drains its write buffer"),
}


def _problem(key: str, value: Any) -> str | None:
    """Why `value` is impossible for `key`, or None."""
    kind, low, high, _ = KEYS[key]
    if kind == "protocol":
        return None if value in PROTOCOLS else f"must be one of {', '.join(PROTOCOLS)}, got {value!r}"
    if kind == "ns":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if number and 0 < value < float("inf") else f"must be a positive number of ns, got {value!r}"
    if kind == "map":
        if not isinstance(value, str) or len(value) != 12 or sorted(value[i:i + 2] for i in range(0, 12, 2)) != sorted(MAP_FIELDS):
            return (f"must name the six fields {', '.join(MAP_FIELDS)} once each, most significant first "
                    f"(such as rochrababgco), got {value!r}")
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
        return f"must be an integer in {low}..{high}, got {value!r}"
    if kind == "pow2" and value & (value - 1):
        return f"must be a power of two, got {value}"
    return None


def _relation_problem(v: dict[str, Any]) -> tuple[str, str] | None:
    """The first impossible combination of valid values as (key, reason), or None."""
    if v["columns"] < v["BL"]:
        return "columns", f"must be at least BL ({v['BL']}), got {v['columns']}"
    if v["bus_width"] * v["BL"] < 64:
        return "bus_width", f"bus_width x BL must be at least 64 bits (one request), got {v['bus_width']} x {v['BL']}"
    if v["tREFI"] < v["ranks"]:
        return "tREFI", f"must be at least ranks ({v['ranks']}): one rank is refreshed every tREFI / ranks"
    if v["tRFC"] >= v["tREFI"] // v["ranks"]:
        return "tRFC", f"must be below tREFI / ranks = {v['tREFI'] // v['ranks']}, got {v['tRFC']}"
    return None


@dataclass(frozen=True)
class DramTiming:
    """One DRAM preset: DRAMsim3's parameters (times in tCK, `tCK` in ns). Validated on creation."""

    name: str
    protocol: str
    tCK: float
    CL: int
    CWL: int
    tRCD: int
    tRP: int
    tRAS: int
    tCCD_S: int
    tCCD_L: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tWTR_S: int
    tWTR_L: int
    tWR: int
    tRTP: int
    tRTRS: int
    tRFC: int
    tREFI: int
    channels: int
    ranks: int
    bankgroups: int
    banks_per_group: int
    rows: int
    columns: int
    bus_width: int
    BL: int
    address_mapping: str
    trans_queue_size: int
    cmd_queue_size: int
    row_hit_cap: int
    write_drain_idle: int

    def __post_init__(self) -> None:
        values = self.values()
        for key, value in values.items():
            reason = _problem(key, value)
            if reason:
                raise TasdsimError(f"{self.name}: {key}: {reason}")
        problem = _relation_problem(values)
        if problem:
            raise TasdsimError(f"{self.name}: {problem[0]}: {problem[1]}")

    def values(self) -> dict[str, Any]:
        """The preset's keys and values, as in its YAML file."""
        return {key: getattr(self, key) for key in KEYS}

    @property
    def request_bytes(self) -> int:
        """Bytes of one request: one burst on one channel."""
        return self.bus_width // 8 * self.BL

    @property
    def burst_cycles(self) -> int:
        """tCK one burst holds the data bus (two transfers per tCK)."""
        return self.BL // 2

    @property
    def read_delay(self) -> int:
        """READ command to the end of its data burst, tCK."""
        return self.CL + self.burst_cycles

    @property
    def write_delay(self) -> int:
        """WRITE command to the end of its data burst, tCK."""
        return self.CWL + self.burst_cycles

    @property
    def page_bytes(self) -> int:
        """Bytes of one row (page) of a rank: columns x bus_width / 8."""
        return self.columns * self.bus_width // 8

    @property
    def banks_per_rank(self) -> int:
        return self.bankgroups * self.banks_per_group

    @property
    def peak_bytes_per_tck(self) -> int:
        """Peak bandwidth over all channels, bytes per tCK."""
        return self.channels * self.bus_width // 8 * 2

    @property
    def peak_bytes_per_ns_per_channel(self) -> float:
        """Peak bandwidth of one channel in bytes/ns (= GB/s)."""
        return self.bus_width / 8 * 2 / self.tCK

    def with_channels(self, channels: int) -> DramTiming:
        """The same preset with another channel count."""
        return self.with_overrides({"channels": channels})

    def with_overrides(self, changes: dict[str, Any]) -> DramTiming:
        """The preset with some keys changed; unknown keys and impossible values raise TasdsimError
        naming the key."""
        for key in changes:
            if key not in KEYS:
                raise TasdsimError(f"{self.name}: {key}: unknown DRAM key (keys: {', '.join(KEYS)})")
        return dataclasses.replace(self, **changes)

    def field_bits(self) -> dict[str, tuple[int, int]]:
        """Each address-map field's (lowest bit, width) in the byte address."""
        widths = {"ch": self.channels, "ra": self.ranks, "bg": self.bankgroups, "ba": self.banks_per_group,
                  "ro": self.rows, "co": self.columns // self.BL}
        pos = (self.request_bytes - 1).bit_length()
        out = {}
        for i in range(10, -1, -2):             # from the least significant field
            field = self.address_mapping[i:i + 2]
            width = (widths[field] - 1).bit_length()
            out[field] = (pos, width)
            pos += width
        return out

    def decode(self, addresses: np.ndarray) -> dict[str, np.ndarray]:
        """Channel, rank, bank group, bank, row and column of byte addresses (int64 arrays, by field
        name); bits above the capacity are ignored."""
        a = np.asarray(addresses, dtype=np.int64)
        return {field: (a >> low) & ((1 << width) - 1) for field, (low, width) in self.field_bits().items()}

    def constraints(self) -> dict[str, int]:
        """DRAMsim3's command-to-command constraints (`timing.cc`), tCK. A negative one is none."""
        burst, rl, wl, rtrs = self.burst_cycles, self.CL, self.CWL, self.tRTRS
        read_delay, write_delay = self.read_delay, self.write_delay
        one_group = self.bankgroups == 1     # DRAMsim3: without bank groups the _S values apply
        return {
            "read_to_read_same_bankgroup": max(burst, self.tCCD_S if one_group else self.tCCD_L),
            "read_to_read_other_bankgroup": max(burst, self.tCCD_S),
            "read_to_read_other_rank": burst + rtrs,
            "write_to_write_same_bankgroup": max(burst, self.tCCD_S if one_group else self.tCCD_L),
            "write_to_write_other_bankgroup": max(burst, self.tCCD_S),
            "write_to_write_other_rank": burst,
            "read_to_write_same_rank": rl + burst - wl + rtrs,
            "read_to_write_other_rank": read_delay + burst + rtrs - write_delay,
            "write_to_read_same_bankgroup": write_delay + (self.tWTR_S if one_group else self.tWTR_L),
            "write_to_read_other_bankgroup": write_delay + self.tWTR_S,
            "write_to_read_other_rank": write_delay + burst + rtrs - read_delay,
            "read_to_precharge": self.tRTP,
            "write_to_precharge": wl + burst + self.tWR,
            "activate_to_read": self.tRCD,
            "activate_to_write": self.tRCD,
            "activate_to_precharge": self.tRAS,
            "activate_to_activate_same_bank": self.tRAS + self.tRP,
            "activate_to_activate_same_bankgroup": self.tRRD_S if one_group else self.tRRD_L,
            "activate_to_activate_other_bankgroup": self.tRRD_S,
            "four_activate_window": self.tFAW,
            "precharge_to_activate": self.tRP,
            "refresh_to_activate": self.tRFC,
        }


def list_dram_presets() -> list[str]:
    """Names of the bundled DRAM presets."""
    return sorted(bundled_files("dram"))


@functools.lru_cache(maxsize=64)
def load_dram_preset(name: str) -> DramTiming:
    """A bundled DRAM preset by name (e.g. "ddr4-3200", "hbm2"), or a YAML file by path (ending in
    .yaml/.yml or containing "/"). Unknown names, unknown or missing keys and impossible values raise
    TasdsimError naming the file and the key."""
    data, label = read_preset("dram", name, "DRAM preset")
    if not isinstance(data, dict):
        raise TasdsimError(f"{label}: expected a mapping with keys {', '.join(KEYS)}")
    for key in data:
        if key not in KEYS:
            raise TasdsimError(f"{label}: {key}: unknown key (keys: {', '.join(KEYS)})")
    for key in KEYS:
        if key not in data:
            raise TasdsimError(f"{label}: {key}: missing required key")
    try:
        return DramTiming(name=Path(name).stem, **data)
    except TasdsimError as err:
        raise TasdsimError(f"{label}: {str(err).split(': ', 1)[1]}") from None


@dataclass(frozen=True)
class ReplayResult:
    """A request stream replayed: each request's completion (tCK from 0) and the counts."""

    done: np.ndarray            # int64, completion tCK per request, in stream order
    stats: dict[str, int]       # summed over channels (see `replay`)


def replay(timing: DramTiming, addresses: np.ndarray, writes: np.ndarray, arrivals: np.ndarray) -> ReplayResult:
    """Run a stream of requests (byte addresses, write flags, arrival tCK; arrivals non-decreasing)
    through the memory controller as DRAMsim3's reference driver does: offered in order, each not
    before its arrival; the write buffer drains at the end of the stream. A read's completion is
    paired, per address, with reads in stream order (the driver matches DRAMsim3's read callbacks to
    requests per address, first come first served)."""
    n = len(addresses)
    addresses = np.asarray(addresses, np.int64)
    writes = np.asarray(writes, np.int64)
    f = timing.decode(addresses)
    bank = (f["ra"] * timing.banks_per_rank + f["bg"] * timing.banks_per_group + f["ba"])
    mc = MemoryController(timing, idle_drain=False)
    mc.offer(np.stack([addresses, np.asarray(arrivals, np.int64), writes, f["ch"], bank, f["ro"], f["co"]]))
    mc.advance(1 << 62, False)
    done = mc.done[:n].copy()
    reads = np.flatnonzero(writes == 0)
    grouped = reads[np.lexsort((reads, addresses[reads]))]          # by address, then stream order
    times = done[grouped]
    done[grouped] = times[np.lexsort((times, addresses[grouped]))]  # by address, then completion
    s = mc.stats.sum(axis=0)
    stats = {"activates": int(s[S_ACT]), "precharges": int(s[S_PRE]), "refreshes": int(s[S_REF]),
             "read_cmds": int(s[S_READ_CMDS]), "write_cmds": int(s[S_WRITE_CMDS]),
             "row_hits": int(s[S_READ_HITS] + s[S_WRITE_HITS]), "read_row_hits": int(s[S_READ_HITS]),
             "write_row_hits": int(s[S_WRITE_HITS]), "row_misses": int(s[S_MISSES]),
             "row_conflicts": int(s[S_CONFLICTS]), "hbm_dual_cmds": int(s[S_DUAL]),
             "end_of_stream_write_drains": int(s[S_DRAINS])}
    return ReplayResult(done, stats)


@dataclass
class DramStats:
    """Action counts, for statistics and the energy model."""

    reads: int = 0          # read requests (bursts)
    writes: int = 0         # write requests (bursts)
    read_bytes: int = 0     # bytes requested by reads
    write_bytes: int = 0    # bytes requested by writes
    row_hits: int = 0       # READ/WRITE commands to a row that has served one since its ACTIVATE
    row_misses: int = 0     # ACTIVATEs of a closed bank
    row_conflicts: int = 0  # ACTIVATEs after closing another row for a waiting request
    activates: int = 0
    precharges: int = 0
    refreshes: int = 0
    busy_cycles: int = 0    # accelerator cycles with at least one transfer in service


def _cycles_per_tck(timing: DramTiming, clock_ghz: float) -> Fraction:
    """Accelerator cycles per tCK, exact (tCK * clock_ghz from their decimal values)."""
    if not clock_ghz > 0:
        raise TasdsimError(f"clock_ghz must be positive, got {clock_ghz!r}")
    return Fraction(str(timing.tCK)) * Fraction(str(clock_ghz))


def min_transfer_cycles(timing: DramTiming, nbytes: int, clock_ghz: float) -> int:
    """Lower bound on moving `nbytes`: bytes / peak bandwidth over all channels, in accelerator
    cycles (rounded up)."""
    ratio = _cycles_per_tck(timing, clock_ghz)
    return -(-nbytes * ratio.numerator // (timing.peak_bytes_per_tck * ratio.denominator))


class Dram:
    """DRAM behind its memory controller, as a SimPy unit; simulation time is in accelerator cycles
    of `clock_ghz`, the controller's in tCK (an arrival at cycle t enters at tCK ceil(t / ratio), a
    completion at tCK c is seen at cycle ceil(c * ratio), ratio = tCK * clock_ghz).

    `request(address, nbytes, write)` offers a transfer's requests (every `request_bytes` line it
    touches, in address order) to the controller's front end behind those offered before, and
    returns an event that succeeds, with the cycle as value, when the last of them is done. The
    controller runs in `MemoryController.advance` between SimPy events: after the events of the
    current cycle, up to the earlier of the next other event and the next transfer completion, so
    one event per transfer completion and none per burst. Nothing else can offer requests before
    the next event, so running ahead to it is exact. With `ideal=True` transfers take no time and
    only requests and bytes are counted."""

    def __init__(self, env: simpy.Environment, timing: DramTiming, clock_ghz: float, ideal: bool = False) -> None:
        self.env = env
        self.timing = timing
        self.clock_ghz = clock_ghz
        self.ideal = ideal
        self.controller = MemoryController(timing, idle_drain=True)
        ratio = _cycles_per_tck(timing, clock_ghz)
        self._p, self._q = ratio.numerator, ratio.denominator
        self._counts = DramStats()
        self._waiting: dict[int, simpy.Event] = {}   # transfer id -> its completion event
        self._complete: list[tuple[int, int]] = []   # (done tCK, transfer id) known, not yet signalled
        self._plan = 0                               # the current wake-up; older ones are void
        self._busy_since = 0

    @property
    def stats(self) -> DramStats:
        """The counts so far, the controller's included."""
        s = dataclasses.replace(self._counts)
        c = self.controller.stats.sum(axis=0)
        s.row_hits, s.row_misses = int(c[S_READ_HITS] + c[S_WRITE_HITS]), int(c[S_MISSES])
        s.row_conflicts, s.activates = int(c[S_CONFLICTS]), int(c[S_ACT])
        s.precharges, s.refreshes = int(c[S_PRE]), int(c[S_REF])
        return s

    def request(self, address: int, nbytes: int, write: bool) -> simpy.Event | None:
        """Offer a transfer of `nbytes` at byte `address`; returns its completion event, or None when
        it takes no time (nbytes 0, or ideal memory)."""
        if address < 0 or nbytes < 0:
            raise ValueError(f"DRAM transfer needs address >= 0 and nbytes >= 0, got {address}, {nbytes}")
        size = self.timing.request_bytes
        first, last = address // size, (address + nbytes - 1) // size
        count = last - first + 1 if nbytes else 0
        c = self._counts
        if write:
            c.writes += count
            c.write_bytes += nbytes
        else:
            c.reads += count
            c.read_bytes += nbytes
        if self.ideal or nbytes == 0:
            return None
        mc = self.controller
        now = self.env.now
        transfer = mc.new_transfer(count)
        mc.offer_lines(first, count, -(-now * self._q // self._p), write, transfer)
        event = self.env.event()
        if not self._waiting:
            self._busy_since = now
        self._waiting[transfer] = event
        self._wake_in(0)
        return event

    def _wake_in(self, delay: int) -> None:
        """Plan the controller's next step `delay` cycles from now, voiding any earlier plan."""
        self._plan += 1
        plan = self._plan
        self.env.timeout(delay).callbacks.append(lambda _: self._step(plan))

    def _step(self, plan: int) -> None:
        """Run the controller up to the next other event or transfer completion; signal the
        transfers done now; plan the next step."""
        if plan != self._plan:
            return
        env, mc = self.env, self.controller
        now, following = env.now, env.peek()
        if following == now:                      # more happens this cycle: step after it
            self._wake_in(0)
            return
        fired = False
        while self._complete and -(-self._complete[0][0] * self._p // self._q) == now:
            _, transfer = heapq.heappop(self._complete)
            self._waiting.pop(transfer).succeed(now)
            fired = True
            if not self._waiting:
                self._counts.busy_cycles += now - self._busy_since
        if fired:                                 # the units it woke may offer requests now: step after them
            self._wake_in(0)
            return
        limit = FOREVER if following == float("inf") else -(-int(following) * self._q // self._p)
        if self._complete:
            limit = min(limit, self._complete[0][0])
        if mc.clk < limit:
            for transfer in mc.advance(limit, stop_on_transfer=True):
                heapq.heappush(self._complete, (mc.finish(transfer), int(transfer)))
        if self._waiting:   # the next completion, or the next other event if that comes first
            wake = following if following != float("inf") else FOREVER
            if self._complete:
                wake = min(wake, -(-self._complete[0][0] * self._p // self._q))
            self._wake_in(int(wake) - now)

    def offered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every request offered so far, in order: byte addresses, write flags, arrival tCK."""
        mc = self.controller
        return mc.req[R_ADDR, :mc.n].copy(), mc.req[R_WRITE, :mc.n].copy(), mc.req[R_ARRIVAL, :mc.n].copy()
