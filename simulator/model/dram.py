"""The DRAM term of the analytical model: tile transfers in closed form.

Everything here is kept apart so that the DRAM model can change on its own. Inputs are plain numbers
read from the DRAM preset YAML (`configs/dram/NAME.yaml`, DRAMsim3's key names, through
`tasdsim.common.read_preset`), the hardware config's `dram.KEY` overrides and channel count, and the
accelerator clock.

A DRAM tile transfer: the tile starts on a row boundary and is a stream of rows (pages of
`columns * bus_width / 8` bytes) on its busiest channel (rows go to the channels in turn). Its first
row waits 1 tCK to reach its bank's command queue, tRP when another row is open there (a fresh DRAM
has none), then tRCD; a row's column commands are tCCD_L apart (one bank group) and it ends CL + BL/2
after its last. The next row (another bank group) starts one `period` later: its requests reach its
bank once the previous row's last trans_queue_size + cmd_queue_size requests are queued, then 2 tCK
and tRCD; at least the row's bursts on the bus and a quarter of tFAW. Tiles queued behind one
another continue that stream. Refresh stretches every transfer by tRFC / tREFI. Not modelled: tiles
of different queues interleaving in the controller's queues, their rows conflicting in shared banks,
the write buffer's drains and the read/write turnarounds (the suite's wider tolerances name the
points where these decide).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tasdsim.common import TasdsimError, read_preset

_KEYS = ("tCK", "CL", "tRCD", "tRP", "tCCD_L", "tFAW", "tRFC", "tREFI", "BL", "bus_width", "columns",
         "trans_queue_size", "cmd_queue_size")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class DramParams:
    """The DRAM numbers the closed form uses: times in tCK (tck_ns in ns), sizes in bytes."""

    tck_ns: float
    cl: int
    trcd: int
    trp: int
    tccd_l: int
    tfaw: int
    trfc: int
    trefi: int
    burst_length: int
    bus_bits: int
    row_bytes: int  # one channel's row (page)
    queue: int  # requests a bank's queues hold ahead of it: trans_queue_size + cmd_queue_size
    channels: int

    @property
    def request_bytes(self) -> int:
        return self.bus_bits // 8 * self.burst_length

    @property
    def burst_tck(self) -> int:
        return self.burst_length // 2


def dram_params(preset: str, channels: int, overrides: Iterable[tuple[str, Any]] = ()) -> DramParams:
    """The model's reading of a DRAM preset (name or YAML path, DRAMsim3's key names) with `channels`
    channels and the hardware config's `dram.KEY` overrides; a row (page) is columns x bus_width / 8."""
    raw, label = read_preset("dram", preset, "DRAM preset")
    if not isinstance(raw, dict) or any(key not in raw for key in _KEYS):
        missing = [key for key in _KEYS if not isinstance(raw, dict) or key not in raw]
        raise TasdsimError(f"{label}: the analytical model needs {', '.join(missing)}")
    v = {**raw, **dict(overrides)}
    return DramParams(tck_ns=float(v["tCK"]), cl=int(v["CL"]), trcd=int(v["tRCD"]), trp=int(v["tRP"]),
                      tccd_l=int(v["tCCD_L"]), tfaw=int(v["tFAW"]), trfc=int(v["tRFC"]), trefi=int(v["tREFI"]),
                      burst_length=int(v["BL"]), bus_bits=int(v["bus_width"]),
                      row_bytes=int(v["columns"]) * int(v["bus_width"]) // 8,
                      queue=int(v["trans_queue_size"]) + int(v["cmd_queue_size"]), channels=channels)


class DramModel:
    """DRAM service in closed form (see the module docstring). Times inside are in tCK. A tile is
    a stream of rows (pages) on its busiest channel; the state carried between transfers is the
    earliest tCK at which the next row's first column command can issue (None: a fresh DRAM)."""

    OPEN_ROW = -(1 << 62)  # an idle DRAM whose banks hold other rows, long open

    def __init__(self, timing: DramParams, clock_ghz: float, ideal: bool) -> None:
        self.t = t = timing
        ratio = Fraction(str(timing.tck_ns)) * Fraction(str(clock_ghz))
        self.p, self.q = ratio.numerator, ratio.denominator  # accelerator cycles per tCK = p / q
        self.ideal = ideal
        self.row_lines = t.row_bytes // t.request_bytes
        self.column = max(t.burst_tck, t.tccd_l)  # one row's column commands: one bank group
        self.read_delay = t.cl + t.burst_tck
        self.refresh = 1 + Fraction(t.trfc, t.trefi)  # a rank stops for tRFC every tREFI

    def bursts(self, nbytes: int) -> int:
        """Bursts (requests) of a tile (tiles start on a burst boundary)."""
        return _cdiv(nbytes, self.t.request_bytes)

    def rows(self, nbytes: int) -> list[int]:
        """Requests of each row the tile's busiest channel serves, in order: rows of `row_lines`
        consecutive requests go to the channels in turn (the tile starts on a row boundary)."""
        lines = self.bursts(nbytes)
        n = _cdiv(lines, self.row_lines)
        sizes = [self.row_lines] * (n - 1) + [lines - self.row_lines * (n - 1)]
        return sizes[::self.t.channels]

    def period(self, lines: int) -> int:
        """tCK from a row's first column command to the next row's, in a stream: the next row's
        requests reach its bank (another bank group) once this row's last `queue` requests have
        entered the read queue and command queue, i.e. after (lines - queue) column commands
        tCCD_L apart; then 2 tCK to enter and move, and the ACTIVATE's tRCD. Never less than the
        row's bursts on the bus, nor a quarter of the four-activate window."""
        t = self.t
        return max((lines - t.queue) * self.column + 2 + t.trcd, lines * t.burst_tck, _cdiv(t.tfaw, 4))

    def chain(self, items: list[tuple[int, int, int]],
              since: int | None = None) -> tuple[list[int], int | None, list[bool]]:
        """Finish cycles of tile transfers (bytes, SRAM port cycles, arrival cycle), served first
        come first served after the transfers that left DRAM state `since` (None: a fresh DRAM,
        every bank closed, so its first tile opens a row without closing one). Returns the finish
        cycles, the new state and which transfers the SRAM ports held longer than the DRAM."""
        t, out, ports = self.t, [], []
        nxt = since
        for nbytes, port, arrival in items:
            if self.ideal or nbytes == 0:
                out.append(arrival)
                ports.append(False)
                continue
            start_tck = _cdiv(arrival * self.q, self.p)
            first = start_tck + 1 + t.trcd + (t.trp if nxt is not None else 0)
            s = first if nxt is None else max(first, nxt)
            end = s
            for lines in self.rows(nbytes):
                end = max(end, s + (lines - 1) * self.column + self.read_delay)
                s += self.period(lines)
            nxt = s
            finish = start_tck + math.ceil((end - start_tck) * self.refresh)
            done = _cdiv(finish * self.p, self.q)
            out.append(max(done, arrival + port))
            ports.append(arrival + port > done)
        return out, nxt, ports

    def stream(self, nbytes: int) -> Fraction:
        """A tile's share of a busy DRAM, in cycles: the periods of its rows on the busiest
        channel, stretched by refresh."""
        if self.ideal or nbytes == 0:
            return Fraction(0)
        tck = sum(self.period(lines) for lines in self.rows(nbytes)) * self.refresh
        return Fraction(tck * self.p, self.q)

    def shifted(self, state: int | None, cycles: int) -> int | None:
        """A DRAM state moved later by `cycles` accelerator cycles."""
        return None if state is None else state + cycles * self.q // self.p

    def peak_cycles(self, nbytes: int) -> Fraction:
        """nbytes at the peak bandwidth of all channels."""
        t = self.t
        return Fraction(nbytes * self.p, t.channels * (t.bus_bits // 8) * 2 * self.q)
