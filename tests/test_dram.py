"""DRAM: hand-derived cycle counts, the bandwidth bound, channel scaling, row statistics, presets.

Unless said otherwise the DDR4-3200 preset runs at clock_ghz = 1.6, so one accelerator cycle is
exactly one tCK (0.625 ns) and the cycle counts below are tCK counts.
"""
import math
import random
from dataclasses import replace
from pathlib import Path

import pytest
import simpy
from hypothesis import given, settings, strategies as st

from tasdsim.components.dram import (
    Dram,
    DramStats,
    DramTiming,
    list_dram_presets,
    load_dram_preset,
    min_transfer_cycles,
)
from tasdsim.common import TasdsimError

DDR4 = load_dram_preset("ddr4-3200")
HBM2 = load_dram_preset("hbm2")
TCK_CLOCK = 1.6                                   # GHz: one accelerator cycle per DDR4 tCK
ROW_STRIDE = DDR4.row_bytes * DDR4.banks          # DDR4, 1 channel: same bank, next row
FAST = settings(max_examples=60, deadline=None)


def fresh(timing: DramTiming = DDR4, clock_ghz: float = TCK_CLOCK, ideal: bool = False) -> Dram:
    return Dram(simpy.Environment(), timing, clock_ghz, ideal=ideal)


def run_sequence(timing: DramTiming, seq, mode: str, clock_ghz: float = 1.0) -> int:
    """Finish cycle of a sequence of (address, nbytes, write, gap): 'serial' issues each transfer
    when the previous one finished, 'together' all at cycle 0, 'gaps' at growing arrival times."""
    dram, now, end = fresh(timing, clock_ghz), 0, 0
    for address, nbytes, write, gap in seq:
        now = end if mode == "serial" else now + gap if mode == "gaps" else 0
        end = max(end, dram.schedule(address, nbytes, write, now))
    return end


# Presets ---------------------------------------------------------------------------------------


def test_presets_are_listed_and_match_their_sources():
    assert list_dram_presets() == ["ddr4-3200", "hbm2"]
    assert (DDR4.tck_ns, DDR4.cl, DDR4.trcd, DDR4.trp, DDR4.tras, DDR4.burst_length) == (0.625, 22, 22, 22, 52, 8)
    assert (DDR4.bus_bits, DDR4.bank_groups, DDR4.banks_per_group, DDR4.row_bytes, DDR4.channels) == (64, 4, 4, 8192, 1)
    assert (HBM2.tck_ns, HBM2.cl, HBM2.trcd, HBM2.trp, HBM2.tras, HBM2.burst_length) == (1.0, 14, 14, 14, 34, 4)
    assert (HBM2.bus_bits, HBM2.bank_groups, HBM2.banks_per_group, HBM2.row_bytes, HBM2.channels) == (128, 4, 4, 1024, 8)


def test_burst_size_and_peak_bandwidth():
    assert DDR4.burst_bytes == 64 and HBM2.burst_bytes == 64
    assert DDR4.peak_bytes_per_ns_per_channel == pytest.approx(25.6)   # GB/s
    assert HBM2.peak_bytes_per_ns_per_channel == pytest.approx(32.0)
    assert DDR4.with_channels(4).channels == 4 and DDR4.with_channels(4).cl == 22


def test_unknown_preset_lists_the_presets():
    with pytest.raises(TasdsimError, match=r"unknown DRAM preset 'ddr5'.*ddr4-3200, hbm2"):
        load_dram_preset("ddr5")


def _write_preset(tmp_path: Path, **changes) -> str:
    text = (Path(__file__).parent.parent / "configs" / "dram" / "ddr4-3200.yaml").read_text()
    for key, value in changes.items():
        if value is None:
            text = "\n".join(line for line in text.splitlines() if not line.startswith(f"{key}:"))
        elif f"\n{key}:" in text:
            text = text.replace(f"\n{key}: ", f"\n{key}: {value} #")
        else:
            text += f"\n{key}: {value}\n"
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return str(path)


def test_config_file_loads(tmp_path):
    assert load_dram_preset(_write_preset(tmp_path, channels=2)) == replace(DDR4, name="mine", channels=2)


@pytest.mark.parametrize("changes, message", [
    ({"tRCD": 22}, r"mine\.yaml: tRCD: unknown key"),
    ({"tras": None}, r"mine\.yaml: tras: missing required key"),
    ({"tras": -1}, r"mine\.yaml: tras: must be a positive integer"),
    ({"cl": 2.5}, r"mine\.yaml: cl: must be a positive integer"),
    ({"burst_length": 7}, r"mine\.yaml: burst_length: must be even"),
    ({"row_bytes": 100}, r"mine\.yaml: row_bytes: must be a multiple of the burst size 64 B"),
    ({"tck_ns": 0}, r"mine\.yaml: tck_ns: must be a positive number"),
])
def test_bad_config_names_file_and_key(tmp_path, changes, message):
    with pytest.raises(TasdsimError, match=message):
        load_dram_preset(_write_preset(tmp_path, **changes))


def test_impossible_channel_count_is_an_error():
    with pytest.raises(TasdsimError, match="channels: must be a positive integer"):
        DDR4.with_channels(0)


# Hand-derived timing (DDR4, 1 cycle = 1 tCK) -----------------------------------------------------


def test_burst_to_closed_bank_then_hit_then_conflict():
    dram = fresh()
    # Closed bank: ACT at 0, READ at tRCD = 22, data 44..48: tRCD + CL + BL/2 = 22 + 22 + 4.
    assert dram.schedule(0, 64, False, 0) == 48
    # Same open row, arriving at 48: READ at 48, data 70..74: CL + BL/2 = 26.
    assert dram.schedule(64, 64, False, 48) == 48 + 26
    # Other row of bank 0, arriving at 74 (tRAS long over): PRE 74, ACT 96, READ 118, data 140..144:
    # tRP + tRCD + CL + BL/2 = 70.
    assert dram.schedule(ROW_STRIDE, 64, False, 74) == 74 + 70


def test_conflict_waits_for_tras_then_trp():
    dram = fresh()
    assert dram.schedule(0, 64, False, 0) == 48
    # Row 1 of the same bank, also at 0: PRE no earlier than ACT(0) + tRAS = 52, ACT 74, READ 96,
    # data 118..122: tRAS + tRP + tRCD + CL + BL/2 = 52 + 22 + 22 + 22 + 4.
    assert dram.schedule(ROW_STRIDE, 64, False, 0) == 122
    assert (dram.stats.row_misses, dram.stats.row_conflicts, dram.stats.activates, dram.stats.precharges) == (1, 1, 2, 1)


def test_bursts_on_one_bus_never_overlap():
    dram = fresh()
    assert dram.schedule(0, 64, False, 0) == 48
    # Bank group 1 (address one row further): its ACT overlaps, but data waits for the bus: 48..52.
    assert dram.schedule(DDR4.row_bytes, 64, False, 0) == 52


def test_hbm2_burst_to_closed_bank():
    # tRCD + CL + BL/2 = 14 + 14 + 2 tCK of 1 ns, at 1 GHz.
    assert fresh(HBM2, 1.0).schedule(0, 32, False, 0) == 30


def test_unaligned_transfer_covers_every_touched_burst():
    dram = fresh()
    assert dram.schedule(60, 8, False, 0) == 48 + 4      # bytes 60..67: two bursts, back to back
    assert (dram.stats.reads, dram.stats.read_bytes) == (2, 8)


def test_writes_use_read_timing_and_count_apart():
    dram = fresh()
    assert dram.schedule(0, 128, True, 0) == 52
    assert (dram.stats.writes, dram.stats.write_bytes, dram.stats.reads, dram.stats.read_bytes) == (2, 128, 0, 0)


# Conversion to accelerator cycles ----------------------------------------------------------------


@pytest.mark.parametrize("clock_ghz, miss, tras_conflict", [
    (1.0, 30, 77),     # 48 tCK = 30 ns; 122 tCK = 76.25 ns -> 77
    (0.8, 24, 61),     # 30 ns * 0.8 = 24; 76.25 ns * 0.8 = 61
    (1.6, 48, 122),
])
def test_conversion_to_accelerator_cycles(clock_ghz, miss, tras_conflict):
    dram = fresh(clock_ghz=clock_ghz)
    assert dram.schedule(0, 64, False, 0) == miss
    assert dram.schedule(ROW_STRIDE, 64, False, 0) == tras_conflict


def test_arrival_converts_to_the_next_tck():
    # At 1 GHz, cycle 3 = 3 ns = 4.8 tCK -> starts at tCK 5, ends at 5 + 48 = 53 tCK = 33.125 ns -> 34.
    assert fresh(clock_ghz=1.0).schedule(0, 64, False, 3) == 34
    # Cycle 5 = 8 tCK exactly -> 56 tCK = 35 ns.
    assert fresh(clock_ghz=1.0).schedule(0, 64, False, 5) == 35


def test_simpy_transfer_is_one_timeout_and_counts_busy_union():
    env = simpy.Environment()
    dram = Dram(env, DDR4, TCK_CLOCK)
    log = []

    def client(address, start):
        yield env.timeout(start)
        yield env.process(dram.transfer(address, 64, False))
        log.append((address, env.now))

    env.process(client(0, 0))
    env.process(client(ROW_STRIDE, 0))
    env.process(client(DDR4.row_bytes, 200))
    env.run()
    assert log == [(0, 48), (ROW_STRIDE, 122), (DDR4.row_bytes, 248)]
    assert dram.stats.busy_cycles == 122 + 48           # [0, 122) and [200, 248)


def test_ideal_mode_takes_no_time_but_counts_bytes():
    dram = fresh(ideal=True)
    assert dram.schedule(0, 1000, False, 7) == 7
    assert dram.schedule(ROW_STRIDE, 64, True, 7) == 7
    assert dram.stats == DramStats(reads=16, writes=1, read_bytes=1000, write_bytes=64)


def test_requests_must_arrive_in_time_order():
    dram = fresh()
    dram.schedule(0, 64, False, 10)
    with pytest.raises(ValueError, match="time order"):
        dram.schedule(0, 64, False, 9)


# Row statistics --------------------------------------------------------------------------------


def test_row_hit_miss_conflict_counts():
    dram = fresh()
    dram.schedule(0, 256, False, 0)               # bank 0 row 0: 1 miss + 3 hits
    dram.schedule(ROW_STRIDE, 64, False, 100)     # bank 0 row 1: conflict
    dram.schedule(DDR4.row_bytes, 64, False, 200)  # bank group 1, row 0: miss
    dram.schedule(64, 64, True, 300)              # bank 0 row 0 again: conflict
    s = dram.stats
    assert (s.row_hits, s.row_misses, s.row_conflicts, s.activates, s.precharges) == (3, 2, 2, 4, 2)
    assert (s.reads, s.writes, s.read_bytes, s.write_bytes) == (6, 1, 384, 64)


def test_sequential_transfer_stays_in_open_rows():
    dram = fresh(HBM2, 1.0)
    dram.schedule(0, 1 << 20, False, 0)
    bursts = (1 << 20) // HBM2.burst_bytes
    rows = (1 << 20) // HBM2.row_bytes              # each row opened once, on its channel
    assert (dram.stats.row_misses + dram.stats.row_conflicts, dram.stats.row_hits) == (rows, bursts - rows)


# Bandwidth bound and channel scaling -------------------------------------------------------------

timings = st.sampled_from([DDR4, HBM2])


@FAST
@given(timings, st.integers(0, 1 << 30), st.integers(1, 1 << 20), st.sampled_from([1, 2, 3, 4, 8, 16]),
       st.sampled_from([0.5, 0.8, 1.0, 1.6, 2.0]))
def test_sequential_transfer_closed_form(timing, address, nbytes, channels, clock_ghz):
    """From a fresh DRAM: tRCD + CL + ceil(bursts / channels) * BL/2 tCK, never below bytes / peak."""
    t = timing.with_channels(channels)
    bursts = (address + nbytes - 1) // t.burst_bytes - address // t.burst_bytes + 1
    tck = t.trcd + t.cl + math.ceil(bursts / channels) * t.burst_length // 2
    cycles = fresh(t, clock_ghz).schedule(address, nbytes, False, 0)
    assert cycles == math.ceil(tck * t.tck_ns * clock_ghz - 1e-9)
    assert cycles >= min_transfer_cycles(t, nbytes, clock_ghz)


@pytest.mark.parametrize("timing", [DDR4, HBM2])
def test_long_sequential_transfer_approaches_peak(timing):
    nbytes = 4 << 20
    cycles = fresh(timing, 1.0).schedule(0, nbytes, False, 0)
    bound = min_transfer_cycles(timing, nbytes, 1.0)
    assert bound == math.ceil(nbytes / (timing.peak_bytes_per_ns_per_channel * timing.channels))
    assert bound <= cycles < 1.01 * bound


transfers = st.lists(st.tuples(st.integers(0, 1 << 26), st.integers(1, 1 << 15), st.booleans(),
                               st.integers(0, 3000)), min_size=1, max_size=12)


@FAST
@given(timings, st.sampled_from([1, 2, 4, 8]), transfers)
def test_no_transfer_beats_peak_bandwidth(timing, channels, seq):
    t = timing.with_channels(channels)
    dram, now = fresh(t, 1.0), 0
    for address, nbytes, write, gap in seq:
        now += gap
        assert dram.schedule(address, nbytes, write, now) - now >= min_transfer_cycles(t, nbytes, 1.0)


@FAST
@given(timings, st.integers(0, 1 << 30), st.integers(1, 1 << 20), st.sampled_from([0.8, 1.0, 2.0]))
def test_more_channels_never_slower_for_one_transfer(timing, address, nbytes, clock_ghz):
    cycles = [fresh(timing.with_channels(c), clock_ghz).schedule(address, nbytes, False, 0) for c in range(1, 17)]
    assert cycles == sorted(cycles, reverse=True)


@FAST
@given(timings, st.lists(st.integers(1, 128).map(lambda n: n * 1024), min_size=1, max_size=3),
       st.integers(1, 10), st.sampled_from(["serial", "together", "gaps"]), st.randoms(use_true_random=False))
def test_more_channels_never_slower_for_stripe_aligned_tiles(timing, sizes, ntiles, mode, rng):
    """Tiles of whole 1 KiB stripes (a burst on each of 16 channels) whose bases are aligned to
    row_bytes x 16 (a row on every channel of the widest configuration), from up to three
    interleaved streams (weights, inputs, outputs). Tiles smaller than a stripe can be slower on
    more channels (see the next test)."""
    stripe = timing.row_bytes * 16
    slots = [-(-size // stripe) * stripe for size in sizes]
    bases = [rng.randrange(1 << 12) * stripe for _ in sizes]
    seq = [(bases[s] + k * slots[s], sizes[s], s == 2, rng.randrange(3000))
           for k in range(ntiles) for s in range(len(sizes))]
    cycles = [run_sequence(timing.with_channels(c), seq, mode) for c in (1, 2, 4, 8, 16)]
    assert cycles == sorted(cycles, reverse=True)


def test_small_unaligned_tiles_can_be_slower_with_more_channels():
    """Documented limit: two serial 64 B tiles. One channel: miss then row hit (48 + 26 tCK = 74 tCK
    = 46.25 ns). Two channels: the second tile lands on the other channel's closed bank (48 + 48 tCK
    = 60 ns). Real DRAM behaves the same; the DMA aligns tiles to avoid it."""
    seq = [(0, 64, False, 0), (64, 64, False, 0)]
    assert run_sequence(DDR4, seq, "serial") == 47
    assert run_sequence(DDR4.with_channels(2), seq, "serial") == 60


# Determinism -------------------------------------------------------------------------------------


def test_identical_results_on_every_run():
    rng = random.Random(1)
    seq = [(rng.randrange(1 << 24), rng.randrange(1, 1 << 14), rng.random() < 0.3, rng.randrange(500))
           for _ in range(200)]

    def once():
        dram, now, finishes = fresh(HBM2, 0.8), 0, []
        for address, nbytes, write, gap in seq:
            now += gap
            finishes.append(dram.schedule(address, nbytes, write, now))
        return finishes, dram.stats

    assert once() == once()
