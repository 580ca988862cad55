"""The analytical model's energy: its own counts times its own reading of an energy table YAML
(`configs/energy/NAME.yaml`: pJ per action). Leakage follows the modelled cycles; EDP is pJ*ns."""
from __future__ import annotations

import functools
import math
from typing import Any

from tasdsim.common import TasdsimError, read_preset

OPERAND = {1: "int8", 2: "fp16", 4: "fp32"}  # by word bytes
PSUM = {"int8": "int32", "fp16": "fp32", "fp32": "fp32"}  # the psum type each operand type accumulates in


@functools.lru_cache(maxsize=16)
def energy_table(name: str) -> dict[str, Any]:
    """The table's YAML (a bundled name or a path), as read."""
    raw, label = read_preset("energy", name, "energy table")
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: expected a mapping")
    return raw


def sram_pj(table: dict[str, Any], kib: float) -> float:
    """pJ per 64-bit access of a `kib` KiB SRAM: log-linear between the table's points, the nearest
    point outside them."""
    points = [(float(p["kib"]), float(p["pj"])) for p in table["sram_64b"]]
    if kib <= points[0][0]:
        return points[0][1]
    for (k0, e0), (k1, e1) in zip(points, points[1:]):
        if kib <= k1:
            return e0 + (e1 - e0) * math.log(kib / k0) / math.log(k1 / k0)
    return points[-1][1]


def model_energy(table_name: str, hw: Any, cycles: int, actions: dict[str, dict[str, int]],
                 dram_bytes: int, sram_bytes: dict[str, dict[str, int]]) -> dict[str, float]:
    """Energy per unit (pJ) and `total`, from the model's action counts, DRAM bytes and SRAM bytes
    per buffer of hardware config `hw`."""
    table = energy_table(table_name)
    operand = OPERAND[hw.word_bytes]
    dram = table["dram_64b"]
    if hw.dram.preset not in dram:
        raise TasdsimError(f"energy table {table['name']} has no dram_64b entry for {hw.dram.preset}")
    energy = {
        "pe_array": actions["pe_array"]["macs"] * table["mac"][operand],
        "accumulator": actions["accumulator"]["adds"] * table["psum_add"][PSUM[operand]],
        "metadata_decoder": actions["metadata_decoder"]["indices"] * table["metadata_index"],
        "tasd_units": actions["tasd_units"]["elements"] * table["tasd_element"],
        "dram": math.ceil(dram_bytes / 8) * dram[hw.dram.preset],
    }
    for name, moved in sram_bytes.items():
        accesses = math.ceil(moved["read"] / 8) + math.ceil(moved["write"] / 8)
        energy[f"sram_{name}"] = accesses * sram_pj(table, getattr(hw.buffers, name).size_kib)
    energy["leakage"] = cycles * table["leakage_pj_per_cycle"]
    energy["total"] = sum(energy.values())
    return energy
