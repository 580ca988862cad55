"""DRAM presets, the address map, the memory controller against DRAMsim3, and `tasdsim dram`.

Numbers come from DRAMsim3 (umd-memsys/DRAMsim3 at 29817593): its configs, its `timing.cc`
constraints, and completion times of its controller (tests/data/dram_reference, see README there).
"""
import gzip
import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tasdsim.common import TasdsimError
from tasdsim.components.dram import list_dram_presets, load_dram_preset, replay
from tasdsim.simulator.cli import main
from tasdsim.simulator.config import load_hw

DATA = Path(__file__).parent / "data" / "dram_reference"
DDR4 = load_dram_preset("ddr4-3200")
HBM2 = load_dram_preset("hbm2")
CONFIGS = {"ddr4_2rank": DDR4, "ddr4_1rank": DDR4.with_overrides({"ranks": 1}), "hbm2": HBM2}


# Presets ---------------------------------------------------------------------------------------


def test_presets_carry_dramsim3_values():
    assert list_dram_presets() == ["ddr4-3200", "ddr4-3200-bg", "hbm2"]
    assert DDR4.values() == {
        "protocol": "DDR4", "tCK": 0.63, "CL": 22, "CWL": 16, "tRCD": 22, "tRP": 22, "tRAS": 52, "tCCD_S": 4,
        "tCCD_L": 8, "tRRD_S": 4, "tRRD_L": 8, "tFAW": 34, "tWTR_S": 4, "tWTR_L": 12, "tWR": 24, "tRTP": 12,
        "tRTRS": 1, "tRFC": 560, "tREFI": 12480, "channels": 1, "ranks": 2, "bankgroups": 4, "banks_per_group": 4,
        "rows": 65536, "columns": 1024, "bus_width": 64, "BL": 8, "address_mapping": "rochrababgco",
        "trans_queue_size": 32, "cmd_queue_size": 8, "row_hit_cap": 4, "write_drain_idle": 8}
    assert HBM2.values() == {
        "protocol": "HBM2", "tCK": 1.0, "CL": 14, "CWL": 4, "tRCD": 14, "tRP": 14, "tRAS": 34, "tCCD_S": 1,
        "tCCD_L": 2, "tRRD_S": 4, "tRRD_L": 6, "tFAW": 30, "tWTR_S": 6, "tWTR_L": 8, "tWR": 16, "tRTP": 5,
        "tRTRS": 2, "tRFC": 260, "tREFI": 3900, "channels": 8, "ranks": 1, "bankgroups": 4, "banks_per_group": 4,
        "rows": 32768, "columns": 128, "bus_width": 128, "BL": 4, "address_mapping": "rorabgbachco",
        "trans_queue_size": 32, "cmd_queue_size": 8, "row_hit_cap": 4, "write_drain_idle": 8}
    bg = load_dram_preset("ddr4-3200-bg").values()
    assert bg.pop("address_mapping") == "rochrabacobg" and bg == {k: v for k, v in DDR4.values().items()
                                                                   if k != "address_mapping"}


def test_derived_sizes():
    assert (DDR4.request_bytes, DDR4.burst_cycles, DDR4.read_delay, DDR4.write_delay) == (64, 4, 26, 20)
    assert (HBM2.request_bytes, HBM2.burst_cycles, HBM2.read_delay, HBM2.write_delay) == (64, 2, 16, 6)
    assert (DDR4.page_bytes, HBM2.page_bytes) == (8192, 2048)
    assert (DDR4.peak_bytes_per_tck, HBM2.peak_bytes_per_tck) == (16, 256)


# DRAMsim3's command-to-command constraints (the reference README's table, from timing.cc), tCK:
# ddr4_2rank / ddr4_1rank, hbm2
CONSTRAINTS = {
    "read_to_read_same_bankgroup": (8, 2), "read_to_read_other_bankgroup": (4, 2), "read_to_read_other_rank": (5, 4),
    "write_to_write_same_bankgroup": (8, 2), "write_to_write_other_bankgroup": (4, 2),
    "write_to_write_other_rank": (4, 2), "read_to_write_same_rank": (11, 14), "read_to_write_other_rank": (11, 14),
    "write_to_read_same_bankgroup": (32, 14), "write_to_read_other_bankgroup": (24, 12),
    "write_to_read_other_rank": (-1, -6), "read_to_precharge": (12, 5), "write_to_precharge": (44, 22),
    "activate_to_read": (22, 14), "activate_to_write": (22, 14), "activate_to_precharge": (52, 34),
    "activate_to_activate_same_bank": (74, 48), "activate_to_activate_same_bankgroup": (8, 6),
    "activate_to_activate_other_bankgroup": (4, 4), "four_activate_window": (34, 30),
    "precharge_to_activate": (22, 14), "refresh_to_activate": (560, 260),
}


def test_constraints_are_dramsim3s():
    assert DDR4.constraints() == {k: v[0] for k, v in CONSTRAINTS.items()}
    assert CONFIGS["ddr4_1rank"].constraints() == DDR4.constraints()
    assert HBM2.constraints() == {k: v[1] for k, v in CONSTRAINTS.items()}


def test_address_map_fields():
    # (lowest bit, width) of each field in the byte address (the reference README's table)
    assert DDR4.field_bits() == {"co": (6, 7), "bg": (13, 2), "ba": (15, 2), "ra": (17, 1), "ch": (18, 0),
                                 "ro": (18, 16)}
    assert CONFIGS["ddr4_1rank"].field_bits()["ro"] == (17, 16)
    assert HBM2.field_bits() == {"co": (6, 5), "ch": (11, 3), "ba": (14, 2), "bg": (16, 2), "ra": (18, 0),
                                 "ro": (18, 15)}
    assert load_dram_preset("ddr4-3200-bg").field_bits()["bg"] == (6, 2)


def test_address_decoding():
    address = (5 << 18) | (1 << 17) | (2 << 15) | (3 << 13) | (100 << 6) | 17
    f = {k: int(v[0]) for k, v in DDR4.decode(np.array([address])).items()}
    assert f == {"ro": 5, "ch": 0, "ra": 1, "ba": 2, "bg": 3, "co": 100}
    # HBM2: consecutive 2 KiB go to the next channel; bits above the capacity wrap
    f = HBM2.decode(np.array([0, 2048, 7 * 2048 + 64, 1 << 33]))
    assert f["ch"].tolist() == [0, 1, 7, 0] and f["co"].tolist() == [0, 0, 1, 0] and f["ro"].tolist() == [0, 0, 0, 0]


def _write_preset(tmp_path: Path, key: str, value) -> str:
    lines = (Path(__file__).parent.parent / "configs" / "dram" / "ddr4-3200.yaml").read_text().splitlines()
    lines = [line for line in lines if not line.startswith(f"{key}:")]
    if value is not None:
        lines.append(f"{key}: {value}")
    path = tmp_path / "mine.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("key, value, message", [
    ("tRCD", None, r"mine\.yaml: tRCD: missing required key"),
    ("tRCDX", 3, r"mine\.yaml: tRCDX: unknown key"),
    ("CL", 0, r"mine\.yaml: CL: must be an integer in 1\.\.200, got 0"),
    ("tRAS", 2.5, r"mine\.yaml: tRAS: must be an integer"),
    ("ranks", 3, r"mine\.yaml: ranks: must be a power of two, got 3"),
    ("tCK", -1, r"mine\.yaml: tCK: must be a positive number of ns"),
    ("protocol", "DDR5", r"mine\.yaml: protocol: must be one of DDR4, HBM2"),
    ("address_mapping", "rochrababgbg", r"mine\.yaml: address_mapping: must name the six fields"),
    ("tRFC", 7000, r"mine\.yaml: tRFC: must be below tREFI / ranks = 6240"),
])
def test_bad_preset_names_file_and_key(tmp_path, key, value, message):
    with pytest.raises(TasdsimError, match=message):
        load_dram_preset(_write_preset(tmp_path, key, value))


def test_unknown_preset_lists_the_presets():
    with pytest.raises(TasdsimError, match=r"unknown DRAM preset 'ddr5'.*ddr4-3200, ddr4-3200-bg, hbm2"):
        load_dram_preset("ddr5")


def test_hardware_config_overrides_every_dram_key():
    hw = load_hw("vegeta-m4", ["dram.tRCD=20", "dram.ranks=1", "dram.address_mapping=rochrabacobg"])
    t = hw.dram.timing()
    assert (t.tRCD, t.ranks, t.address_mapping, t.CL) == (20, 1, "rochrabacobg", 22)
    assert load_hw(hw_path := "vegeta-m4").dram.timing() == DDR4 and hw_path
    assert hw.as_dict()["dram"] == {"preset": "ddr4-3200", "channels": 1, "address_mapping": "rochrabacobg",
                                    "ranks": 1, "tRCD": 20}
    with pytest.raises(TasdsimError, match=r"with --set dram.tRCD=0: dram.tRCD: must be an integer in 1\.\.200"):
        load_hw("vegeta-m4", ["dram.tRCD=0"])
    with pytest.raises(TasdsimError, match=r"unknown key dram.tRCDX"):
        load_hw("vegeta-m4", ["dram.tRCDX=3"])
    with pytest.raises(TasdsimError, match=r"dram.channels: must be a power of two, got 3"):
        load_hw("vegeta-m4", ["dram.channels=3"])


# The controller, hand-derived --------------------------------------------------------------------


def _done(timing, requests):
    """Completion tCK of requests given as (address, write, arrival)."""
    a, w, t = (np.array(x, dtype=np.int64) for x in zip(*requests))
    return replay(timing, a, w, t).done.tolist()


ROW = 1 << 18   # DDR4 2 ranks: the next row of the same bank


@pytest.mark.parametrize("name", ["ddr4_2rank", "ddr4_1rank", "hbm2"])
def test_idle_latencies(name):
    """A request alone: 1 tCK to reach its command queue, then ACTIVATE, tRCD, and the read (CL +
    burst) or write (CWL + burst) delay; a row hit skips the ACTIVATE; a conflict adds tRP."""
    t = CONFIGS[name]
    row = 1 << t.field_bits()["ro"][0]
    closed_read = 1 + t.tRCD + t.CL + t.BL // 2
    assert closed_read == {"ddr4_2rank": 49, "ddr4_1rank": 49, "hbm2": 31}[name]
    assert _done(t, [(0, 0, 0)]) == [closed_read]
    assert _done(t, [(0, 1, 0)]) == [1 + t.tRCD + t.CWL + t.BL // 2] == [{"hbm2": 21}.get(name, 43)]
    hit = _done(t, [(0, 0, 0), (64, 0, 200)])[1] - 200
    conflict = _done(t, [(0, 0, 0), (row, 0, 200)])[1] - 200
    assert hit == 1 + t.CL + t.BL // 2 == {"hbm2": 17}.get(name, 27)
    assert conflict == 1 + t.tRP + t.tRCD + t.CL + t.BL // 2 == {"hbm2": 45}.get(name, 71)


def test_reads_of_one_row_are_tccd_l_apart():
    assert _done(DDR4, [(64 * i, 0, 0) for i in range(4)]) == [49, 57, 65, 73]
    # the bank-group-interleaved map spreads them over bank groups: one ACT each, tRRD_S apart,
    # then one read every tCCD_S = burst
    assert _done(load_dram_preset("ddr4-3200-bg"), [(64 * i, 0, 0) for i in range(4)]) == [49, 53, 57, 61]


def test_four_activate_window():
    """Five reads to five banks of one rank: ACTIVATEs tRRD_S apart (1, 5, 9, 13); the fifth waits
    for the window, 1 + tFAW = 35, and then for the command bus, which issues the fourth bank's READ
    (13 + tRCD) at 35: 36."""
    t = CONFIGS["ddr4_1rank"]
    banks = [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1)]              # (bank group, bank)
    done = _done(t, [((bg << 13) | (ba << 15), 0, 0) for bg, ba in banks])
    assert done == [a + t.tRCD + t.read_delay for a in (1, 5, 9, 13, 36)]


def test_read_of_a_buffered_write_is_forwarded_and_merges():
    # a write waits in the write buffer (fewer than 9: no drain); a read of it completes 1 tCK later
    done = _done(DDR4, [(0, 1, 0), (0, 0, 10), (64, 0, 10), (64, 0, 11)])
    assert done[1] == 11
    assert done[2] == done[3] == 11 + DDR4.tRCD + DDR4.read_delay   # two reads, one READ command
    assert done[0] > done[2]                                         # the write drains at the end


def test_refresh_blocks_the_rank():
    """A read arriving when the first refresh is due (tREFI / ranks) waits for REFRESH and tRFC."""
    t = CONFIGS["ddr4_1rank"]
    assert _done(t, [(0, 0, t.tREFI)]) == [t.tREFI + t.tRFC + t.tRCD + t.read_delay]
    result = replay(t, np.array([0]), np.array([0]), np.array([3 * t.tREFI + 5]))
    assert result.stats["refreshes"] == 3


# The controller against DRAMsim3 --------------------------------------------------------------


def _trace(stream):
    lines = gzip.open(DATA / f"{stream}.trace.gz", "rt").read().split("\n")
    rows = [line.split() for line in lines if line]
    return (np.array([int(r[0], 16) for r in rows]), np.array([r[1] == "WRITE" for r in rows], dtype=np.int64),
            np.array([int(r[2]) for r in rows]))


RUNS = sorted(p.stem for p in DATA.glob("*.json"))


@pytest.mark.parametrize("run", RUNS)
def test_every_request_completes_when_dramsim3_says(run):
    stream, config = run.split("@")
    a, w, t = _trace(stream)
    result = replay(CONFIGS[config], a, w, t)
    reference = json.loads((DATA / f"{run}.json").read_text())
    want = np.load(DATA / f"{run}.npz")["done"]
    assert np.array_equal(result.done, want)
    s = result.stats
    assert (s["activates"], s["row_hits"], s["refreshes"], s["read_cmds"], s["write_cmds"], s["hbm_dual_cmds"]) == (
        reference["activates"], reference["row_hits"], reference["refreshes"], reference["read_cmds"],
        reference["write_cmds"], reference["hbm_dual_cmds"])
    assert s["row_misses"] + s["row_conflicts"] == s["activates"]


# tasdsim dram ----------------------------------------------------------------------------------


def test_dram_command_json(capsys, tmp_path):
    out = tmp_path / "done.npy"
    assert main(["dram", "--preset", "ddr4-3200", "--set", "ranks=1", "--trace",
                 str(DATA / "rows2_alt_1bank.trace.gz"), "--json", "--per-request", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    reference = json.loads((DATA / "rows2_alt_1bank@ddr4_1rank.json").read_text())
    for key in ("requests", "reads", "writes", "cycles", "activates", "row_hits", "refreshes"):
        assert doc[key] == reference[key], key
    assert doc["mean_read_latency"] == pytest.approx(reference["mean_read_latency"])
    assert doc["mean_write_latency"] is None
    assert doc["bandwidth_fraction"] == pytest.approx(4096 * 64 / (doc["cycles"] * 16))
    assert np.array_equal(np.load(out), np.load(DATA / "rows2_alt_1bank@ddr4_1rank.npz")["done"])


@pytest.mark.parametrize("text, message", [
    ("0x40 READ 0\n0x80 FETCH 3\n", r"t\.trace:2: operation must be READ or WRITE, got 'FETCH'"),
    ("0x40 READ 5\n0x80 READ 3\n", r"t\.trace:2: arrival 3 is earlier than the line before's \(5\)"),
    ("zz READ 0\n", r"t\.trace:1: address must be 0x followed by hex digits"),
    ("0x40 READ\n", r"t\.trace:1: expected `0x<hex address> READ\|WRITE <arrival cycle>`"),
    ("0x40 WRITE -1\n", r"t\.trace:1: arrival must be a non-negative integer"),
    ("\n", r"t\.trace: no requests"),
])
def test_bad_trace_is_one_line_naming_file_and_line(capsys, tmp_path, text, message):
    path = tmp_path / "t.trace"
    path.write_text(text)
    assert main(["dram", "--preset", "hbm2", "--trace", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tasdsim dram: error: ")
    import re
    assert re.search(message, err), err


def test_bad_override_names_the_key(capsys):
    assert main(["dram", "--preset", "ddr4-3200", "--set", "ranks=3", "--trace", str(DATA / "rows2_alt_1bank.trace.gz")]) == 2
    assert "ranks: must be a power of two, got 3" in capsys.readouterr().err


# The DRAM unit in the simulator ----------------------------------------------------------------


def _simulate(timing, transfers, clock_ghz=1.0):
    """Run transfers (arrival cycle, address, nbytes, write) through a Dram; returns their
    completion cycles and the Dram."""
    import simpy
    from tasdsim.components.dram import Dram
    env = simpy.Environment()
    dram = Dram(env, timing, clock_ghz)
    done = {}

    def client(i, at, address, nbytes, write):
        yield env.timeout(at)
        done[i] = yield dram.request(address, nbytes, write)

    for i, transfer in enumerate(transfers):
        env.process(client(i, *transfer))
    env.run()
    return [done[i] for i in range(len(transfers))], dram


@pytest.mark.parametrize("name", ["ddr4_2rank", "hbm2"])
def test_transfers_finish_when_their_last_request_does_in_a_replay(name):
    """The controller run event by event between SimPy events gives every request the completion
    a replay of the same requests in one go gives (writes drain once the controller idles)."""
    import random
    from tasdsim.components.dram_controller import MemoryController
    t = CONFIGS[name]
    rng = random.Random(3)
    transfers, at = [], 0
    for _ in range(60):
        at += rng.choice([0, 0, 5, 40, 300])
        transfers.append((at, rng.randrange(1 << 26) // 64 * 64 + rng.choice([0, 8]), rng.choice([64, 500, 4096, 20000]),
                          rng.random() < 0.3))
    done, dram = _simulate(t, transfers, clock_ghz=1.0)
    addresses, writes, arrivals = dram.offered()
    mc = MemoryController(t, idle_drain=True)
    f = t.decode(addresses)
    mc.offer(np.stack([addresses, arrivals, writes, f["ch"], f["ra"] * t.banks_per_rank + f["bg"] * t.banks_per_group
                       + f["ba"], f["ro"], f["co"]]))
    mc.advance(1 << 62, False)
    assert np.array_equal(mc.done[:mc.n], dram.controller.done[:mc.n])
    ratio = Fraction(str(t.tCK))
    first = 0
    for i, (at, address, nbytes, write) in enumerate(transfers):
        count = (address + nbytes - 1) // 64 - address // 64 + 1
        finish = int(mc.done[first:first + count].max())
        assert done[i] == math.ceil(finish * ratio)
        first += count
    assert dram.stats.reads + dram.stats.writes == mc.n


def test_dram_unit_is_deterministic_and_ideal_takes_no_time():
    import simpy
    from tasdsim.components.dram import Dram
    transfers = [(0, 0, 8192, False), (0, 1 << 30, 8192, False), (10, 2 << 30, 4096, True)]
    a, _ = _simulate(DDR4, transfers)
    b, dram = _simulate(DDR4, transfers)
    assert a == b and dram.stats.activates > 0 and dram.stats.busy_cycles == max(a)
    env = simpy.Environment()
    ideal = Dram(env, DDR4, 1.0, ideal=True)
    assert ideal.request(0, 4096, False) is None and ideal.stats.reads == 64
