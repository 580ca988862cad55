"""DRAM: channels x bank groups x banks with an open-row policy, one SimPy event per tile transfer.

A transfer of `nbytes` at byte `address` covers the bursts `address // burst_bytes` to
`(address + nbytes - 1) // burst_bytes` (`burst_bytes = bus_bits / 8 * burst_length`). Its service
time is computed burst by burst, in order, by a Numba-jitted loop over the bank state; the transfer
then completes with one `env.timeout`.

Address mapping (burst index, MSB to LSB): row : bank : bank group : column : channel. Consecutive
bursts interleave across channels first, then walk the columns of a row, then move to the next bank
group, then bank, then row, so a sequential tile uses every channel and stays in open rows. Fields
are taken with `%` and `//`, so the counts need not be powers of two.

Timing rules, in tCK cycles of the DRAM (the time origin is the accelerator time converted to tCK,
rounded up, at the request's arrival `t0`). For each burst, on its channel and bank:

- the bank can take a command at `t = max(bank_ready, t0)`;
- row open (hit): column command at `t`;
- bank closed (miss): ACT at `t`, column command at `ACT + tRCD`;
- other row open (conflict): PRE at `max(t, last ACT + tRAS)`, ACT at `PRE + tRP`, column command at
  `ACT + tRCD`;
- data occupies the channel's data bus for `burst_length / 2` tCK starting `CL` after the column
  command; bursts on one bus never overlap, so the column command is delayed until
  `bus_free - CL` if needed. `bank_ready` becomes the column command's time.

A transfer finishes when its last burst's data is done. Requests are served first come, first
served at arrival: a later transfer sees the bank and bus state left by the earlier ones. Writes
use the same timing as reads (CWL = CL). Not modelled: tCCD_L, tRRD, tFAW, tRTP, tWR, tWTR,
refresh, command-bus conflicts, rank switching. Finish times convert back to accelerator cycles
rounded up (an accelerator cycle is `1 / clock_ghz` ns); the conversion is exact integer arithmetic.

Since a burst moves `burst_bytes` per `burst_length / 2` tCK on one channel, a transfer never takes
less than `min_transfer_cycles` (bytes / peak bandwidth over all channels).
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Generator

import numpy as np
import simpy
from numba import njit

from tasdsim.common import bundled_files, read_preset, TasdsimError

@dataclass(frozen=True)
class DramConfig:
    preset: str  # a file in configs/dram/, e.g. "ddr4-3200" or "hbm2"
    channels: int


_INT_KEYS = ("cl", "trcd", "trp", "tras", "burst_length", "bus_bits", "bank_groups",
             "banks_per_group", "row_bytes", "channels")
_KEYS = ("tck_ns",) + _INT_KEYS


@dataclass(frozen=True)
class DramTiming:
    """One DRAM preset. All times in tCK cycles except `tck_ns` (ns); `row_bytes` is the row (page)
    size of one channel in bytes; `bus_bits` is the data-bus width of one channel."""

    name: str
    tck_ns: float
    cl: int
    trcd: int
    trp: int
    tras: int
    burst_length: int
    bus_bits: int
    bank_groups: int
    banks_per_group: int
    row_bytes: int
    channels: int

    def __post_init__(self) -> None:
        problem = _timing_problem(dataclasses.asdict(self))
        if problem:
            key, reason = problem
            raise TasdsimError(f"{self.name}: {key}: {reason}")

    @property
    def burst_bytes(self) -> int:
        """Bytes moved by one burst on one channel."""
        return self.bus_bits // 8 * self.burst_length

    @property
    def burst_tck(self) -> int:
        """tCK cycles one burst occupies the data bus (DDR: two transfers per tCK)."""
        return self.burst_length // 2

    @property
    def banks(self) -> int:
        """Banks per channel."""
        return self.bank_groups * self.banks_per_group

    @property
    def peak_bytes_per_ns_per_channel(self) -> float:
        """Peak bandwidth of one channel in bytes/ns (= GB/s)."""
        return self.bus_bits / 8 * 2 / self.tck_ns

    def with_channels(self, channels: int) -> DramTiming:
        """The same preset with another channel count."""
        return dataclasses.replace(self, channels=channels)


def _timing_problem(v: dict[str, Any]) -> tuple[str, str] | None:
    """The first impossible value among timing values `v` (by key) as (key, reason), or None."""
    tck = v["tck_ns"]
    if not isinstance(tck, (int, float)) or isinstance(tck, bool) or not 0 < tck < float("inf"):
        return "tck_ns", f"must be a positive number of ns, got {tck!r}"
    for key in _INT_KEYS:
        if not _is_int(v[key]) or v[key] <= 0:
            return key, f"must be a positive integer, got {v[key]!r}"
    if v["burst_length"] % 2:
        return "burst_length", f"must be even (two transfers per tCK), got {v['burst_length']}"
    if v["bus_bits"] % 8:
        return "bus_bits", f"must be a multiple of 8, got {v['bus_bits']}"
    burst_bytes = v["bus_bits"] // 8 * v["burst_length"]
    if v["row_bytes"] % burst_bytes:
        return "row_bytes", f"must be a multiple of the burst size {burst_bytes} B, got {v['row_bytes']}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def list_dram_presets() -> list[str]:
    """Names of the bundled DRAM presets."""
    return sorted(bundled_files("dram"))


@functools.lru_cache(maxsize=64)
def load_dram_preset(name: str) -> DramTiming:
    """A bundled DRAM preset by name (e.g. "ddr4-3200", "hbm2"), or a YAML file by path (ending in
    .yaml/.yml or containing "/"). Unknown names, unknown or missing keys and impossible values raise
    TasdsimError naming the file and the key."""
    data, label = read_preset("dram", name, "DRAM preset")
    preset = Path(name).stem
    if not isinstance(data, dict):
        raise TasdsimError(f"{label}: expected a mapping with keys {', '.join(_KEYS)}")
    for key in data:
        if key not in _KEYS:
            raise TasdsimError(f"{label}: {key}: unknown key (allowed: {', '.join(_KEYS)})")
    for key in _KEYS:
        if key not in data:
            raise TasdsimError(f"{label}: {key}: missing required key")
    problem = _timing_problem(data)
    if problem:
        raise TasdsimError(f"{label}: {problem[0]}: {problem[1]}")
    return DramTiming(name=preset, **data)


@dataclass
class DramStats:
    """Action counts, for statistics and the energy model."""

    reads: int = 0          # read bursts
    writes: int = 0         # write bursts
    read_bytes: int = 0     # bytes requested by reads
    write_bytes: int = 0    # bytes requested by writes
    row_hits: int = 0       # bursts to the open row
    row_misses: int = 0     # bursts to a closed bank (first access): one ACT
    row_conflicts: int = 0  # bursts to a bank with another row open: one PRE and one ACT
    activates: int = 0
    precharges: int = 0
    busy_cycles: int = 0    # accelerator cycles with at least one transfer in service (union)


def _cycles_per_tck(timing: DramTiming, clock_ghz: float) -> Fraction:
    """Accelerator cycles per tCK, exact (tck_ns * clock_ghz from their decimal values)."""
    if not clock_ghz > 0:
        raise TasdsimError(f"clock_ghz must be positive, got {clock_ghz!r}")
    return Fraction(str(timing.tck_ns)) * Fraction(str(clock_ghz))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def min_transfer_cycles(timing: DramTiming, nbytes: int, clock_ghz: float) -> int:
    """Lower bound on a transfer of `nbytes`: bytes / peak bandwidth over all channels, in
    accelerator cycles (rounded up)."""
    ratio = _cycles_per_tck(timing, clock_ghz)
    # tCK needed = nbytes / (channels * bus bytes * 2 per tCK); cycles = tCK * ratio.
    num = nbytes * ratio.numerator
    den = timing.channels * (timing.bus_bits // 8) * 2 * ratio.denominator
    return _ceil_div(num, den)


@njit(cache=True)
def _serve_bursts(first: int, count: int, t0: int, banks: np.ndarray, bus_free: np.ndarray,
                  params: np.ndarray) -> tuple[int, int, int, int]:
    """Serve bursts `first .. first + count - 1` in order from arrival `t0` (tCK), updating the
    bank state in place. `banks` is (3, channels, banks): open row, last ACT, ready time; `params`
    is [bursts_per_row, bank_groups, banks_per_group, CL, tRCD, tRP, tRAS, burst tCK] (few
    arguments keep Numba's call overhead low). Returns the tCK at which the last burst's data is
    done, and the row hits, misses and conflicts."""
    open_row, last_act, bank_ready = banks[0], banks[1], banks[2]
    bursts_per_row, bank_groups, banks_per_group = params[0], params[1], params[2]
    cl, trcd, trp, tras, burst_tck = params[3], params[4], params[5], params[6], params[7]
    hits = misses = conflicts = 0
    channels = bus_free.shape[0]
    # Decode the first burst's fields, then step them like an odometer (no division per burst).
    ch = first % channels
    rest = first // channels
    col_in_row = rest % bursts_per_row
    rest //= bursts_per_row
    bg = rest % bank_groups
    rest //= bank_groups
    ba = rest % banks_per_group
    row = rest // banks_per_group
    finish = t0
    for _ in range(count):
        bank = ba * bank_groups + bg
        t = max(bank_ready[ch, bank], t0)
        if open_row[ch, bank] == row:
            hits += 1
            col = t
        elif open_row[ch, bank] < 0:
            misses += 1
            last_act[ch, bank] = t
            col = t + trcd
        else:
            conflicts += 1
            pre = max(t, last_act[ch, bank] + tras)
            act = pre + trp
            last_act[ch, bank] = act
            col = act + trcd
        open_row[ch, bank] = row
        col = max(col, bus_free[ch] - cl)
        done = col + cl + burst_tck
        bank_ready[ch, bank] = col
        bus_free[ch] = done
        if done > finish:
            finish = done
        ch += 1
        if ch == channels:
            ch = 0
            col_in_row += 1
            if col_in_row == bursts_per_row:
                col_in_row = 0
                bg += 1
                if bg == bank_groups:
                    bg = 0
                    ba += 1
                    if ba == banks_per_group:
                        ba = 0
                        row += 1
    return finish, hits, misses, conflicts


class Dram:
    """DRAM channels x bank groups x banks with an open-row policy; one SimPy event per tile
    transfer. Simulation time is in accelerator cycles of `clock_ghz`. With `ideal=True` every
    transfer completes in 0 cycles and only bursts and bytes are counted."""

    def __init__(self, env: simpy.Environment, timing: DramTiming, clock_ghz: float,
                 ideal: bool = False) -> None:
        self.env = env
        self.timing = timing
        self.clock_ghz = clock_ghz
        self.ideal = ideal
        self.stats = DramStats()
        self._ratio = _cycles_per_tck(timing, clock_ghz)   # accelerator cycles per tCK
        self._ratio_pq = (self._ratio.numerator, self._ratio.denominator)
        self._burst_bytes = timing.burst_bytes
        self._banks = np.zeros((3, timing.channels, timing.banks), dtype=np.int64)
        self._banks[0] = -1                                   # open row per bank: none
        self._bus_free = np.zeros(timing.channels, dtype=np.int64)
        self._params = np.array([timing.row_bytes // timing.burst_bytes, timing.bank_groups,
                                 timing.banks_per_group, timing.cl, timing.trcd, timing.trp, timing.tras,
                                 timing.burst_tck], dtype=np.int64)
        self._busy_until = 0                                  # accelerator cycles
        self._last_arrival = 0

    def transfer(self, address: int, nbytes: int, write: bool) -> Generator[simpy.Event, Any, None]:
        """SimPy process: move `nbytes` at byte `address`; completes after its service time.
        Use as `yield env.process(dram.transfer(address, nbytes, write))`."""
        finish = self.schedule(address, nbytes, write, self.env.now)
        yield self.env.timeout(finish - self.env.now)

    def schedule(self, address: int, nbytes: int, write: bool, now: int) -> int:
        """Serve a transfer arriving at accelerator cycle `now` (never earlier than the previous
        arrival): update the bank state and the stats, and return its finish cycle."""
        if address < 0 or nbytes < 0:
            raise ValueError(f"DRAM transfer needs address >= 0 and nbytes >= 0, got {address}, {nbytes}")
        if now < self._last_arrival:
            raise ValueError(f"DRAM requests must arrive in time order: {now} < {self._last_arrival}")
        self._last_arrival = now
        if nbytes == 0:
            return now
        burst = self._burst_bytes
        first = address // burst
        count = (address + nbytes - 1) // burst - first + 1
        s = self.stats
        if write:
            s.writes += count
            s.write_bytes += nbytes
        else:
            s.reads += count
            s.read_bytes += nbytes
        if self.ideal:
            return now
        p, q = self._ratio_pq
        t0 = -(-now * q // p)                                 # arrival in tCK, rounded up
        finish_tck, hits, misses, conflicts = _serve_bursts(first, count, t0, self._banks, self._bus_free,
                                                            self._params)
        s.row_hits += hits
        s.row_misses += misses
        s.row_conflicts += conflicts
        s.activates += misses + conflicts
        s.precharges += conflicts
        finish = -(-int(finish_tck) * p // q)                # back to accelerator cycles, rounded up
        if finish > self._busy_until:
            s.busy_cycles += finish - max(now, self._busy_until)
            self._busy_until = finish
        return finish
