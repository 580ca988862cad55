"""Per-layer statistics, collected from the units' counters after a run, and their totals."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasdsim.simulator.engine import Accelerator

STALL_CAUSES = ("dram", "sram", "metadata_decoder", "accumulator", "tasd_units")


@dataclass
class LayerStats:
    """What one layer run produced. Cycles are accelerator cycles; bytes are bytes."""

    name: str
    cycles: int
    compute_cycles: int
    stall_cycles: dict[str, int]
    utilization: float  # useful MACs / (cycles x PEs); one MAC lane per PE
    macs_issued: int
    macs_useful: int
    folds: int
    dram_bytes: dict[str, int]  # read, write, and by operand with metadata apart
    sram_bytes: dict[str, dict[str, int]]  # per buffer: read, write
    dram_rows: dict[str, int]  # hits, misses, conflicts
    actions: dict[str, dict[str, int]]  # per unit, for the energy model
    buffers: dict[str, dict[str, int]] = field(default_factory=dict)  # per buffer: size, slots, peak bytes
    series: dict[str, str] = field(default_factory=dict)
    tiling: dict[str, Any] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)  # per unit and total (simulator.energy)
    edp: float = 0.0  # energy x delay, pJ*ns

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(name: str, acc: Accelerator) -> LayerStats:
    """Read every unit's counters; the stall causes sum to cycles - compute_cycles."""
    a = acc.array.stats
    cycles = acc.env.now
    stalls = {cause: 0 for cause in STALL_CAUSES}
    for cause, value in a.stall_cycles.items():
        stalls[cause] = stalls.get(cause, 0) + value
    tail = cycles - a.end
    if tail:
        stalls[acc.completions.last_cause] = stalls.get(acc.completions.last_cause, 0) + tail
    pes = acc.hw.pe_array.rows * acc.hw.pe_array.cols
    d = acc.dram.stats
    return LayerStats(
        name=name,
        cycles=cycles,
        compute_cycles=a.compute_cycles,
        stall_cycles=stalls,
        utilization=a.macs_useful / (cycles * pes) if cycles else 0.0,
        macs_issued=a.macs_issued,
        macs_useful=a.macs_useful,
        folds=a.folds,
        dram_bytes={"read": d.read_bytes, "write": d.write_bytes, **acc.dma.stats.dram_bytes},
        sram_bytes={n: {"read": b.stats.read_bytes, "write": b.stats.write_bytes} for n, b in acc.buffers.items()},
        dram_rows={"hits": d.row_hits, "misses": d.row_misses, "conflicts": d.row_conflicts},
        actions={
            "dram": {"read_bursts": d.reads, "write_bursts": d.writes, "activates": d.activates,
                     "precharges": d.precharges, "busy_cycles": d.busy_cycles},
            "dma": acc.dma.stats.actions(),
            "pe_array": a.actions(),
            "metadata_decoder": acc.decoder.stats.actions(),
            "accumulator": acc.accumulator.stats.actions(),
            "tasd_units": acc.tasd_units.stats.actions(),
            **{f"sram_{n}": b.stats.actions() for n, b in acc.buffers.items()},
        },
        buffers={n: {"size_bytes": b.config.size_bytes, "slots": b.slots, "slot_bytes": b.slot_bytes,
                     "peak_bytes": b.stats.peak_bytes} for n, b in acc.buffers.items()},
    )


def total(layers: list[LayerStats], pes: int, clock_ghz: float) -> dict[str, Any]:
    """Sums over layers run one after another; EDP is the total energy times the total delay."""
    cycles = sum(s.cycles for s in layers)
    useful = sum(s.macs_useful for s in layers)
    stalls: dict[str, int] = {}
    for s in layers:
        for cause, value in s.stall_cycles.items():
            stalls[cause] = stalls.get(cause, 0) + value
    dram: dict[str, int] = {}
    for s in layers:
        for key, value in s.dram_bytes.items():
            dram[key] = dram.get(key, 0) + value
    energy: dict[str, float] = {}
    for s in layers:
        for unit, value in s.energy_pj.items():
            energy[unit] = energy.get(unit, 0.0) + value
    buffers: dict[str, dict[str, int]] = {}
    for s in layers:
        for name, b in s.buffers.items():
            peak = buffers.setdefault(name, {"size_bytes": b["size_bytes"], "peak_bytes": 0})
            peak["peak_bytes"] = max(peak["peak_bytes"], b["peak_bytes"])
    return {
        "cycles": cycles,
        "compute_cycles": sum(s.compute_cycles for s in layers),
        "stall_cycles": stalls,
        "utilization": useful / (cycles * pes) if cycles else 0.0,
        "macs_issued": sum(s.macs_issued for s in layers),
        "macs_useful": useful,
        "dram_bytes": dram,
        "buffers": buffers,
        "energy_pj": energy,
        "edp": energy.get("total", 0.0) * cycles / clock_ghz,
    }
