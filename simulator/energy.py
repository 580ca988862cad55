"""Energy and EDP from action counts: each unit's counts times a per-action table (configs/energy).

Actions charged: PE array MACs issued (by operand type), TASD accumulation adds (by psum type),
SRAM 64-bit accesses per buffer (by buffer size), DRAM 64-bit transfers (by DRAM preset),
metadata indices decoded, TASD-unit elements scanned, and leakage per cycle. EDP is energy (pJ)
times delay (ns): `edp` is in pJ*ns.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from tasdsim.simulator.config import HwConfig
from tasdsim.simulator.stats import LayerStats
from tasdsim.common import bundled_files, read_preset, TasdsimError

OPERAND_TYPES = {1: "int8", 2: "fp16", 4: "fp32"}
PSUM_TYPES = {"int8": "int32", "fp16": "fp32", "fp32": "fp32"}


@dataclass(frozen=True)
class EnergyTable:
    """Per-action energies in pJ."""

    name: str
    mac: dict[str, float]
    psum_add: dict[str, float]
    sram_64b: tuple[tuple[int, float], ...]  # (KiB, pJ), increasing KiB
    dram_64b: dict[str, float]
    metadata_index: float
    tasd_element: float
    leakage_pj_per_cycle: float

    def sram_access(self, kib: int) -> float:
        """pJ per 64-bit access of a `kib` KiB array: log-linear between the table's points."""
        points = self.sram_64b
        if kib <= points[0][0]:
            return points[0][1]
        for (k0, e0), (k1, e1) in zip(points, points[1:]):
            if kib <= k1:
                return e0 + (e1 - e0) * (math.log2(kib) - math.log2(k0)) / (math.log2(k1) - math.log2(k0))
        return points[-1][1]


_KEYS = ("name", "mac", "psum_add", "sram_64b", "dram_64b", "metadata_index", "tasd_element", "leakage_pj_per_cycle")


def energy_table_files() -> dict[str, Path]:
    """Bundled energy tables by name (configs/energy/NAME.yaml)."""
    return bundled_files("energy")


@functools.lru_cache(maxsize=64)
def load_energy(name_or_path: str) -> EnergyTable:
    """Load an energy table by preset name (configs/energy) or YAML path, strictly."""
    return _build(*read_preset("energy", name_or_path, "energy table"))


MAX_PJ = 1e9  # per action: far above any real table, far below where energy sums overflow


def _number(value: Any, label: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_PJ:
        raise TasdsimError(f"{label}: {path}: must be a number from 0 to {MAX_PJ:g}, got {value!r}")
    return float(value)


def _table(raw: Any, label: str, path: str, required: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: {path}: must be a mapping")
    for key in required:
        if key not in raw:
            raise TasdsimError(f"{label}: {path}: missing required key {key}")
    return {str(k): _number(v, label, f"{path}.{k}") for k, v in raw.items()}


def _build(raw: Any, label: str) -> EnergyTable:
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: top level must be a mapping of energy keys")
    for key in raw:
        if key not in _KEYS:
            raise TasdsimError(f"{label}: unknown key {key} (keys: {', '.join(_KEYS)})")
    for key in _KEYS:
        if key not in raw:
            raise TasdsimError(f"{label}: missing required key {key}")
    points = raw["sram_64b"]
    if not isinstance(points, list) or not points:
        raise TasdsimError(f"{label}: sram_64b: must be a non-empty list of {{kib, pj}}")
    sram = []
    for i, point in enumerate(points):
        if not isinstance(point, dict) or set(point) != {"kib", "pj"}:
            raise TasdsimError(f"{label}: sram_64b[{i}]: must be {{kib: K, pj: E}}")
        sram.append((_number(point["kib"], label, f"sram_64b[{i}].kib"), _number(point["pj"], label, f"sram_64b[{i}].pj")))
    if any(b[0] <= a[0] for a, b in zip(sram, sram[1:])) or sram[0][0] <= 0:
        raise TasdsimError(f"{label}: sram_64b: kib must be positive and increasing")
    return EnergyTable(
        name=str(raw["name"]),
        mac=_table(raw["mac"], label, "mac", ("int8", "fp16", "fp32")),
        psum_add=_table(raw["psum_add"], label, "psum_add", ("int32", "fp32")),
        sram_64b=tuple(sram),
        dram_64b=_table(raw["dram_64b"], label, "dram_64b", ()),
        metadata_index=_number(raw["metadata_index"], label, "metadata_index"),
        tasd_element=_number(raw["tasd_element"], label, "tasd_element"),
        leakage_pj_per_cycle=_number(raw["leakage_pj_per_cycle"], label, "leakage_pj_per_cycle"),
    )


def layer_energy(stats: LayerStats, hw: HwConfig, table: EnergyTable) -> dict[str, float]:
    """Energy per unit (pJ) of one layer, and `total`."""
    operand = OPERAND_TYPES[hw.word_bytes]
    if hw.dram.preset not in table.dram_64b:
        raise TasdsimError(f"energy table {table.name} has no dram_64b entry for {hw.dram.preset}")
    a = stats.actions
    energy = {
        "pe_array": a["pe_array"]["macs"] * table.mac[operand],
        "accumulator": a["accumulator"]["adds"] * table.psum_add[PSUM_TYPES[operand]],
        "metadata_decoder": a["metadata_decoder"]["indices"] * table.metadata_index,
        "tasd_units": a["tasd_units"]["elements"] * table.tasd_element,
        "dram": -(-(stats.dram_bytes["read"] + stats.dram_bytes["write"]) // 8) * table.dram_64b[hw.dram.preset],
    }
    for name in ("weights", "inputs", "outputs"):
        size = getattr(hw.buffers, name).size_kib
        accesses = sum(-(-stats.sram_bytes[name][d] // 8) for d in ("read", "write"))
        energy[f"sram_{name}"] = accesses * table.sram_access(size)
    energy["leakage"] = stats.cycles * table.leakage_pj_per_cycle
    energy["total"] = sum(energy.values())
    return energy


def edp(energy_pj: float, cycles: int, clock_ghz: float) -> float:
    """Energy-delay product in pJ*ns."""
    return energy_pj * cycles / clock_ghz
