"""The DRAM term of the analytical model: tile transfers in closed form.

Everything here is kept apart so that the DRAM model can change on its own. Inputs are plain numbers
read from the DRAM preset YAML (`configs/dram/NAME.yaml`, through `tasdsim.common.read_preset`), the
channel count of the hardware config, the accelerator clock and where tiles start (`tile_align`
bytes: every tile starts on a multiple of it).

A DRAM tile transfer: the tile starts on a row boundary, so from an idle bus it closes the row open
in its first bank and opens its own (tRP + tRCD; a fresh DRAM has none to close), waits CL, then
moves ceil(bursts / channels) bursts of BL/2 tCK on the busiest channel. Tiles queued behind one
another follow on the bus, and when every tile starts in the same bank (the address stripe of all
channels and banks divides `tile_align`) a tile's activation also waits tRAS after the previous
tile's and tRP after its last column command. Not modelled: which bank a tile starts in when tiles
rotate over several banks; there the model assumes no bank conflicts between tiles.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tasdsim.common import TasdsimError, read_preset

_KEYS = ("tCK", "CL", "tRCD", "tRP", "tRAS", "BL", "bus_width", "bankgroups", "banks_per_group", "columns")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class DramParams:
    """The DRAM numbers the closed form uses: times in tCK (tck_ns in ns), sizes in bytes."""

    tck_ns: float
    cl: int
    trcd: int
    trp: int
    tras: int
    burst_length: int
    bus_bits: int
    banks: int  # per channel
    row_bytes: int  # one channel's row
    channels: int

    @property
    def burst_bytes(self) -> int:
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
    raw = {**raw, **dict(overrides)}
    return DramParams(tck_ns=float(raw["tCK"]), cl=int(raw["CL"]), trcd=int(raw["tRCD"]), trp=int(raw["tRP"]),
                      tras=int(raw["tRAS"]), burst_length=int(raw["BL"]), bus_bits=int(raw["bus_width"]),
                      banks=int(raw["bankgroups"]) * int(raw["banks_per_group"]),
                      row_bytes=int(raw["columns"]) * int(raw["bus_width"]) // 8, channels=channels)


class DramModel:
    """DRAM service in closed form (see the module docstring). Times inside are in tCK; a state
    (bus free, (last activation, last column command) in the tiles' first bank) carries what earlier
    transfers left behind."""

    OPEN_ROW = (None, (-(1 << 62), -(1 << 62)))  # an idle DRAM whose banks hold other rows, long open

    def __init__(self, timing: DramParams, clock_ghz: float, tile_align: int, ideal: bool) -> None:
        self.t = timing
        ratio = Fraction(str(timing.tck_ns)) * Fraction(str(clock_ghz))
        self.p, self.q = ratio.numerator, ratio.denominator  # accelerator cycles per tCK = p / q
        self.ideal = ideal
        self.bursts_per_row = timing.row_bytes // timing.burst_bytes
        self.same_bank = (tile_align // (timing.channels * timing.row_bytes)) % timing.banks == 0

    def bursts(self, nbytes: int) -> int:
        """Bursts of a tile (tiles start on a burst boundary)."""
        return _cdiv(nbytes, self.t.burst_bytes)

    def chain(self, items: list[tuple[int, int, int]],
              since: tuple | None = None) -> tuple[list[int], tuple, list[bool]]:
        """Finish cycles of tile transfers (bytes, SRAM port cycles, arrival cycle), served first
        come first served after the transfers that left DRAM state `since` (None: a fresh DRAM,
        every bank closed, so its first tile opens a row without closing one). Returns the finish
        cycles, the new state and which transfers the SRAM ports held longer than the DRAM."""
        t, out, ports = self.t, [], []
        bus, prev = since or (None, None)
        for nbytes, port, arrival in items:
            if self.ideal or nbytes == 0:
                out.append(arrival)
                ports.append(False)
                continue
            pre = _cdiv(arrival * self.q, self.p)
            if prev is not None and self.same_bank:
                pre = max(pre, prev[1], prev[0] + t.tras)  # close the previous tile's row first
            act = pre + (t.trp if prev is not None else 0)
            col = act + t.trcd if bus is None else max(act + t.trcd, bus - t.cl)
            per_channel = _cdiv(self.bursts(nbytes), t.channels)
            bus = col + t.cl + per_channel * t.burst_tck
            # A tile of more rows than banks comes back to its first bank: its last row there.
            revisit = (_cdiv(per_channel, self.bursts_per_row) - 1) // t.banks * t.banks
            last_col = col + (revisit * self.bursts_per_row - 1
                              + min(self.bursts_per_row, per_channel - revisit * self.bursts_per_row)) * t.burst_tck
            if revisit:
                act = max(col + (self.bursts_per_row - 1) * t.burst_tck, act + t.tras) + t.trp
            prev = (act, last_col)
            done = _cdiv(bus * self.p, self.q)
            out.append(max(done, arrival + port))
            ports.append(arrival + port > done)
        return out, (bus, prev), ports

    def stream(self, nbytes: int) -> Fraction:
        """A tile's share of a busy DRAM, in cycles: its bursts on the busiest channel and, when
        every tile starts in the same bank, at least that bank's row cycle tRAS + tRP (a tile
        opens a row there). Tiles of a few bursts are row-cycle bound: that is the efficiency the
        tile size against the row costs."""
        if self.ideal or nbytes == 0:
            return Fraction(0)
        t = self.t
        tck = _cdiv(self.bursts(nbytes), t.channels) * t.burst_tck
        if self.same_bank:
            tck = max(tck, t.tras + t.trp)
        return Fraction(tck * self.p, self.q)

    def shifted(self, state: tuple, cycles: int) -> tuple:
        """A DRAM state moved later by `cycles` accelerator cycles."""
        bus, prev = state
        if prev is None:
            return state
        tck = cycles * self.q // self.p
        return bus + tck, (prev[0] + tck, prev[1] + tck)

    def peak_cycles(self, nbytes: int) -> Fraction:
        """nbytes at the peak bandwidth of all channels."""
        t = self.t
        return Fraction(nbytes * self.p, t.channels * (t.bus_bits // 8) * 2 * self.q)
