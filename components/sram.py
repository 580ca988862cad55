"""SRAM buffer: slots of the layer's buffer plan, banks x ports of bank_bytes per cycle.

Counts the bytes written (fills from DMA) and read (by the PE array, the accumulator, stores)
and the 64-bit accesses the energy model charges. Bandwidth: banks * bank_bytes * ports bytes/cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

from tasdsim.components.probe import Probe
from tasdsim.common import TasdsimError


@dataclass(frozen=True)
class BufferConfig:
    """One SRAM buffer: capacity and banking; it moves banks * bank_bytes * ports bytes per cycle."""

    size_kib: int
    banks: int
    bank_bytes: int  # width of one bank's port
    ports: int  # ports per bank

    @property
    def size_bytes(self) -> int:
        return self.size_kib * 1024

    @property
    def bytes_per_cycle(self) -> int:
        return self.banks * self.bank_bytes * self.ports


@dataclass
class SramStats:
    read_bytes: int = 0
    write_bytes: int = 0
    peak_bytes: int = 0  # most bytes reserved at once

    def actions(self) -> dict[str, int]:
        return {"read_bytes": self.read_bytes, "write_bytes": self.write_bytes}


class SramBuffer:
    """One on-chip buffer of `slots` slots of `slot_bytes` (the layer's buffer plan). An
    instruction that occupies a slot reserves its bytes there until the slot is freed; `ideal`
    gives the buffer unbounded bandwidth (for validation)."""

    def __init__(self, name: str, config: BufferConfig, slots: int, slot_bytes: int, ideal: bool,
                 probe: Probe | None = None) -> None:
        self.name = name
        self.probe = probe
        self.config = config
        self.slots = slots
        self.ideal = ideal
        self.slot_bytes = slot_bytes
        self.held = [0] * slots  # bytes reserved in each slot
        self.occupied = 0  # bytes reserved in all slots
        self.stats = SramStats()

    def cycles(self, nbytes: int) -> int:
        """Cycles to move nbytes through the buffer's ports (0 when ideal)."""
        return 0 if self.ideal else -(-nbytes // self.config.bytes_per_cycle)

    def reserve(self, slot: int, nbytes: int) -> None:
        """Hold nbytes in `slot` (a tile loaded into it, or a psum tile built in it)."""
        if slot >= self.slots:
            raise TasdsimError(f"{self.name} buffer has slots 0..{self.slots - 1}, not {slot}")
        if nbytes > self.slot_bytes:
            raise TasdsimError(f"{nbytes} bytes do not fit a {self.name} slot of {self.slot_bytes} bytes")
        if nbytes == self.held[slot]:
            return
        self.occupied += nbytes - self.held[slot]
        self.held[slot] = nbytes
        if self.occupied > self.stats.peak_bytes:
            self.stats.peak_bytes = self.occupied
        if self.probe is not None:
            self._occupancy()

    def read(self, nbytes: int) -> None:
        self.stats.read_bytes += nbytes

    def write(self, nbytes: int) -> None:
        self.stats.write_bytes += nbytes

    def free(self, slot: int) -> None:
        self.occupied -= self.held[slot]
        self.held[slot] = 0
        if self.probe is not None:
            self._occupancy()

    def _occupancy(self) -> None:
        self.probe.counter(f"buffer {self.name}", "occupancy (bytes)", self.occupied)
