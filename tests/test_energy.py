"""Energy = action counts x the per-action table; every figure traced to the table by hand."""
import math

import pytest
import yaml

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.energy import edp, energy_table_files, layer_energy, load_energy
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import gemm_layer


def test_45nm_table_values_are_horowitz():
    t = load_energy("45nm")
    assert t.mac["int8"] == pytest.approx(0.2 + 0.03)
    assert t.mac["fp16"] == pytest.approx(1.1 + 0.4)
    assert t.sram_access(8) == 10 and t.sram_access(32) == 20 and t.sram_access(1024) == 100
    assert t.sram_access(4) == 10 and t.sram_access(4096) == 100
    # 256 KiB lies 3/5 of the way from 32 KiB to 1 MiB in log2 size.
    assert t.sram_access(256) == pytest.approx(20 + 80 * 3 / 5)
    assert 1300 <= t.dram_64b["ddr4-3200"] <= 2600 and 1300 <= t.dram_64b["hbm2"] <= 2600


def test_layer_energy_is_counts_times_table():
    hw = load_hw("vegeta-m4")
    s = simulate_layer(gemm_layer("64x96x128"), hw, LayerSeries(weights=parse_series("2:4+1:4")), False)
    # MACs issued: terms 2:4 and 1:4 -> depths 64 and 32 rows of K=128; 64 rows x 96 cols each.
    macs = (64 + 32) * 96 * 64
    assert s.macs_issued == macs
    e = s.energy_pj
    assert e["pe_array"] == pytest.approx(macs * 0.23)
    assert e["accumulator"] == pytest.approx(s.actions["accumulator"]["adds"] * 0.1)
    # the accumulator adds every fold's psums as they leave the array: 2 + 1 folds of 64x96 psums
    assert s.actions["accumulator"]["adds"] == (2 + 1) * 64 * 96
    assert e["metadata_decoder"] == pytest.approx(macs // 64 * 0.03)  # one index per weight slot
    dram_words = math.ceil((s.dram_bytes["read"] + s.dram_bytes["write"]) / 8)
    assert e["dram"] == pytest.approx(dram_words * 2600)
    assert e["leakage"] == pytest.approx(s.cycles * 20)
    sram = 20 + 80 * 3 / 5
    for name in ("weights", "inputs", "outputs"):
        words = sum(math.ceil(s.sram_bytes[name][d] / 8) for d in ("read", "write"))
        assert e[f"sram_{name}"] == pytest.approx(words * sram)
    assert e["total"] == pytest.approx(sum(v for k, v in e.items() if k != "total"))
    assert s.edp == pytest.approx(e["total"] * s.cycles / hw.clock_ghz)
    assert edp(10.0, 100, 0.5) == 2000.0


def test_tasd_units_energy_counts_elements():
    hw = load_hw("ttc-m8")
    s = simulate_layer(gemm_layer("32x32x64"), hw, LayerSeries(activations=parse_series("4:8+1:8")), False)
    groups = 32 * 8  # 32 rows x ceil(64/8) groups, per term
    assert s.actions["tasd_units"]["elements"] == 2 * groups * 8
    assert s.energy_pj["tasd_units"] == pytest.approx(2 * groups * 8 * 0.03)


def test_bad_energy_table(tmp_path):
    good = yaml.safe_load(open(energy_table_files()["45nm"]))
    for change, message in [({"mac": {"int8": 1}}, "mac: missing required key fp16"),
                            ({"leakage_pj_per_cycle": -1}, "leakage_pj_per_cycle: must be a number from 0 to"),
                            ({"bogus": 1}, "unknown key bogus"),
                            ({"sram_64b": [{"kib": 32, "pj": 1}, {"kib": 8, "pj": 2}]}, "increasing")]:
        path = tmp_path / "e.yaml"
        path.write_text(yaml.safe_dump({**good, **change}))
        with pytest.raises(TasdsimError, match=message):
            load_energy(str(path))
    with pytest.raises(TasdsimError, match="unknown energy table"):
        load_energy("7nm")


def test_missing_dram_entry_is_an_error(tmp_path):
    good = yaml.safe_load(open(energy_table_files()["45nm"]))
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({**good, "dram_64b": {"hbm2": 1300}}))
    hw = load_hw("vegeta-m4")
    s = simulate_layer(gemm_layer("8x8x8"), hw, LayerSeries(), True)
    with pytest.raises(TasdsimError, match="no dram_64b entry for ddr4-3200"):
        layer_energy(s, hw, load_energy(str(path)))
