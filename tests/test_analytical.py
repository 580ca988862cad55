"""Analytical model: its closed forms against hand derivations, and its numbers against the simulator.

Hand formulas (R x C array, GEMM O[M x N] = I[M x K] . W[K x N], groups G, d_i = N_i * ceil(K/M_i)):
- WS compute: G * ceil(N/C) * sum_i ceil(d_i/R) * sum over row blocks (2R + C + t - 2), t the block's
  rows (T = M with ideal memory: one block).
- OS compute: G * ceil(M/R) * ceil(N/C) * (2R + C + sum_i d_i - 2).
- Traffic: inputs G * ceil(N/C) * M * K words; weights G * row_blocks * N * sum_i d_i words; outputs
  G * M * N psums; metadata ceil(rows * cols * bits / 8) per weight tile.
"""
import math
import subprocess
import sys
from fractions import Fraction

import pytest
import simpy
from hypothesis import given, settings, strategies as st

from tasdsim.components.dram import Dram, load_dram_preset
from tasdsim.simulator.analytical import classes, covered_rows, covered_rows_by_fold, model_layer, tile_transfer_cycles
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.traces.patterns import Pattern, parse_series
from tasdsim.traces.workloads import gemm_layer, load_workload

FAST = settings(max_examples=60, deadline=None)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def series(text: str, operand: str = "weights") -> LayerSeries:
    s = parse_series(text)
    return LayerSeries(weights=s) if operand == "weights" else LayerSeries(activations=s)


def hw(preset: str, *sets: str):
    return load_hw(preset, list(sets))


# ----------------------------------------------------------------------------- closed forms


def test_classes_cut_a_length_into_full_tiles_and_one_partial():
    assert classes(100, 32) == [(32, 3), (4, 1)]
    assert classes(64, 32) == [(32, 2)]
    assert classes(5, 32) == [(5, 1)]


@FAST
@given(n=st.sampled_from([1, 2, 4]), m_exp=st.integers(1, 3), k=st.integers(1, 300), r=st.integers(1, 40))
def test_covered_rows_closed_form_equals_the_sum_over_folds(n, m_exp, k, r):
    m = 2 ** m_exp
    if n > m:
        n = m
    p = Pattern(n, m)
    by_fold = covered_rows_by_fold(p, k, r)
    # Independent count: the dense rows of every group a fold's compressed rows touch.
    d = p.depth(k)
    expected = []
    for f in range(cdiv(d, r)):
        rows = range(f * r, min(d, (f + 1) * r))
        groups = {row // n for row in rows}
        expected.append(sum(min(m, k - g * m) for g in groups))
    assert by_fold == expected
    assert covered_rows(p, k, r) == sum(expected)


@pytest.mark.parametrize("shape", ["100x70x50", "33x65x97", "1x1000x2048", "7x5x3", "300x17x129"])
@pytest.mark.parametrize("rows,cols", [(32, 32), (16, 8), (8, 24)])
def test_ws_compute_cycles_ideal_equal_the_hand_formula(shape, rows, cols):
    m, n, k = (int(x) for x in shape.split("x"))
    h = hw("vegeta-m4", f"pe_array.rows={rows}", f"pe_array.cols={cols}")
    for text in ("dense", "2:4", "2:4+1:4", "1:4+1:4+1:4"):
        depths = [k] if text == "dense" else [p.depth(k) for p in parse_series(text).terms]
        expected = cdiv(n, cols) * sum(cdiv(d, rows) for d in depths) * (2 * rows + cols + m - 2)
        model = model_layer(gemm_layer(shape), h, series(text), ideal_memory=True)
        assert model.compute_cycles == expected, text
        assert model.folds == cdiv(n, cols) * sum(cdiv(d, rows) for d in depths)
        assert model.macs_issued == m * n * sum(depths)


@pytest.mark.parametrize("shape", ["100x70x50", "33x65x97", "64x64x64", "5x40x70"])
def test_os_compute_cycles_equal_the_hand_formula(shape):
    m, n, k = (int(x) for x in shape.split("x"))
    h = hw("stc-2of4", "pe_array.dataflow=os")
    for text in ("dense", "2:4", "2:4+2:4"):
        depths = [k] if text == "dense" else [p.depth(k) for p in parse_series(text).terms]
        expected = cdiv(m, 32) * cdiv(n, 32) * (2 * 32 + 32 + sum(depths) - 2)
        for ideal in (True, False):
            assert model_layer(gemm_layer(shape), h, series(text), ideal).compute_cycles == expected


def test_ws_compute_cycles_with_bounded_buffers_sum_over_row_blocks():
    # layer1.0.conv2 of ResNet-50 on dense-ws-32x32: K = 576, so T = (64 KiB / 2) // 576 = 56 rows per
    # block; M = 3136 = 56 blocks of 56. Folds: ceil(576/32) * ceil(64/32) per block.
    layer = load_workload("resnet50").select(["layer1.0.conv2"]).layers[0]
    model = model_layer(layer, hw("dense-ws-32x32"), LayerSeries(), ideal_memory=False)
    assert model.tiling["block_rows"] == 56
    assert model.compute_cycles == 18 * 2 * 56 * (2 * 32 + 32 + 56 - 2)


def test_groups_multiply_everything():
    # Depthwise conv: 96 groups of (3136 x 1) . (1 x 9); T = M with ideal memory.
    layer = load_workload("mobilenetv2").select(["features.2.conv.1.0"]).layers[0]
    model = model_layer(layer, hw("dense-ws-32x32"), LayerSeries(), ideal_memory=True)
    assert (layer.groups, layer.m, layer.n, layer.k) == (96, 3136, 1, 9)
    assert model.compute_cycles == 96 * 1 * 1 * (2 * 32 + 32 + 3136 - 2)
    assert model.dram_bytes["outputs"] == 96 * 3136 * 4
    assert model.cycles == model.compute_cycles  # dense, ideal: nothing else takes time


def test_traffic_hand_formula_with_metadata():
    # 100x70x50 2:4 on stc-2of4, ideal (one row block): d = 2 * 13 = 26 compressed rows, one fold of
    # 26 rows per column tile (32, 32, 6 columns); metadata 2 bits per value, rounded up per tile.
    model = model_layer(gemm_layer("100x70x50"), hw("stc-2of4"), series("2:4"), ideal_memory=True)
    assert model.dram_bytes["inputs"] == 3 * 100 * 50
    assert model.dram_bytes["weights"] == 26 * 70
    assert model.dram_bytes["metadata"] == 2 * cdiv(26 * 32 * 2, 8) + cdiv(26 * 6 * 2, 8)
    assert model.dram_bytes["outputs"] == 100 * 70 * 4
    assert model.dram_bytes["read"] == model.dram_bytes["inputs"] + model.dram_bytes["weights"] + \
        model.dram_bytes["metadata"]


def test_a_lone_tile_transfer_costs_its_row_latency_and_bursts():
    # DDR4-3200 with tCK 0.625 ns at 1.6 GHz: one cycle per tCK. A tile within one row, fresh: 1 tCK to
    # its command queue, tRCD, its bursts tCCD_L apart (one bank group), the last one's CL + BL/2;
    # another row open in the tile's first bank: tRP more. Refresh stretches it by tRFC / tREFI on
    # average. The DRAM unit, well before the first refresh, takes the unstretched time.
    h = hw("dense-ws-32x32", "clock_ghz=1.6", "dram.tCK=0.625")
    ddr4 = load_dram_preset("ddr4-3200").with_overrides({"tCK": 0.625})
    stretch = 1 + Fraction(ddr4.tRFC, ddr4.tREFI)
    for nbytes in (64, 1000, 8192):
        bursts = cdiv(nbytes, 64)
        fresh = 1 + ddr4.tRCD + (bursts - 1) * ddr4.tCCD_L + ddr4.CL + ddr4.BL // 2
        assert tile_transfer_cycles(h, nbytes) == math.ceil(fresh * stretch)
        assert tile_transfer_cycles(h, nbytes, fresh=False) == math.ceil((fresh + ddr4.tRP) * stretch)
        env = simpy.Environment()
        dram = Dram(env, ddr4, 1.6)
        done = dram.request(0, nbytes, False)
        env.run()
        assert done.value == fresh


# ----------------------------------------------------------------------------- against the simulator


POINTS = [
    ("dense-ws-32x32", (), "gemm", "100x70x50", "dense", "weights"),
    ("dense-ws-32x32", ("pe_array.dataflow=os",), "gemm", "33x65x97", "dense", "weights"),
    ("stc-2of4", (), "bert-base", "encoder.0.attn.scores", "2:4", "weights"),
    ("stc-2of4", ("pe_array.dataflow=os",), "mobilenetv2", "features.8.conv.2", "2:4+2:4", "weights"),
    ("vegeta-m4", (), "resnet50", "layer2.0.conv2", "2:4+1:4", "weights"),
    ("vegeta-m4", ("pe_array.rows=24", "pe_array.cols=16"), "gemm", "129x77x301", "1:4+1:4+1:4", "weights"),
    ("ttc-m8", (), "resnet50", "layer3.0.conv2", "4:8", "activations"),
    ("ttc-m8", ("pe_array.rows=6",), "gemm", "64x48x100", "2:8+1:8", "activations"),
    ("ttc-m8", ("pe_array.dataflow=os",), "bert-base", "encoder.0.attn.context", "2:8+1:8", "activations"),
    ("ttc-m8", ("dram.preset=hbm2", "dram.channels=8"), "mobilenetv2", "features.7.conv.0.0", "2:8+1:8", "weights"),
    ("vegeta-m4", ("accumulator.width=8", "accumulator.latency=5"), "resnet50", "layer2.0.conv2", "2:4+1:4", "weights"),
    ("ttc-m8", ("accumulator.width=16", "accumulator.latency=3"), "gemm", "64x48x100", "2:8+1:8", "activations"),
]


def _layer(source: str, name: str):
    return gemm_layer(name) if source == "gemm" else load_workload(source).select([name]).layers[0]


# Points whose DRAM time is decided by tiles of different queues interleaving in the controller:
# small tiles, stores and OS weight tiles. The model serves tiles one after another.
REORDERING = {("dense-ws-32x32", "dense", "100x70x50"): 0.25, ("dense-ws-32x32", "dense", "33x65x97"): 0.35,
              ("stc-2of4", "2:4", "encoder.0.attn.scores"): 0.3, ("stc-2of4", "2:4+2:4", "features.8.conv.2"): 0.25,
              ("vegeta-m4", "1:4+1:4+1:4", "129x77x301"): 0.15,
              ("ttc-m8", "2:8+1:8", "encoder.0.attn.context"): 0.55, ("ttc-m8", "2:8+1:8", "64x48x100"): 0.15}


@pytest.mark.parametrize("memory", ["ideal", "real"])
@pytest.mark.parametrize("preset,sets,source,name,text,operand", POINTS)
def test_model_counts_equal_the_simulator_exactly(preset, sets, source, name, text, operand, memory):
    h, layer, s = hw(preset, *sets), _layer(source, name), series(text, operand)
    ideal = memory == "ideal"
    sim = simulate_layer(layer, h, s, ideal)
    model = model_layer(layer, h, s, ideal)
    assert model.compute_cycles == sim.compute_cycles
    assert model.dram_bytes == {k: sim.dram_bytes[k] for k in model.dram_bytes}
    assert (model.folds, model.macs_issued, model.macs_useful) == (sim.folds, sim.macs_issued, sim.macs_useful)
    for unit, actions in model.actions.items():
        for action, value in actions.items():
            assert value == sim.actions[unit][action], f"{unit}.{action}"
    assert model.sram_bytes == sim.sram_bytes
    # Total cycles: within the validation tolerance (10%), or the wider one of a point whose time
    # the memory controller's reordering decides (see configs/suites/default.yaml). The predicted
    # stall causes make up the rest but for `unattributed`: the DRAM stall is predicted from each
    # tile's own row stream, the total from the chained recurrence in which rows of queued tiles
    # overlap, so the two part by up to a fifth of the cycles on activation-TASD layers.
    tolerance = 0.10 if ideal else REORDERING.get((preset, text, name), 0.10)
    assert abs(model.cycles - sim.cycles) <= tolerance * sim.cycles
    assert sum(model.stall_cycles.values()) + model.unattributed == model.cycles - model.compute_cycles
    assert abs(model.unattributed) <= 0.20 * model.cycles
    # Energy from the model's own reading of the table and its own counts: only leakage (per
    # cycle) can differ.
    for unit, pj in model.energy_pj.items():
        if unit not in ("leakage", "total"):
            assert pj == pytest.approx(sim.energy_pj[unit])


def test_dense_ideal_ws_total_is_the_compute_and_a_sparse_one_adds_the_first_decode():
    layer = gemm_layer("200x90x120")
    dense = model_layer(layer, hw("vegeta-m4"), LayerSeries(), True)
    assert dense.cycles == dense.compute_cycles
    sparse = model_layer(layer, hw("vegeta-m4"), series("2:4"), True)
    assert sparse.cycles == sparse.compute_cycles + 1  # metadata_decoder.latency before the first fold
    assert sparse.stall_cycles["metadata_decoder"] == 1


def test_memory_bound_layer_names_dram_and_the_roofline_is_below_the_simulated_cycles():
    layer = load_workload("bert-base").select(["encoder.0.attn.q"]).layers[0]
    h, s = hw("stc-2of4"), series("2:4")
    model = model_layer(layer, h, s, False)
    sim = simulate_layer(layer, h, s, False)
    assert model.dominant == "dram"
    assert 0 < model.dram_efficiency <= 1
    assert model.bounds["roofline"] <= sim.cycles
    assert model.bounds["dram_peak"] <= model.bounds["dram"]
    assert math.isclose(model.cycles, sim.cycles, rel_tol=0.10)


# ----------------------------------------------------------------------------- independence


def test_importing_the_model_loads_neither_simpy_nor_the_engine_nor_the_generator():
    code = ("import sys, tasdsim.simulator.analytical; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith(('simpy', 'numba', 'tasdsim')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    forbidden = ("simpy", "numba", "tasdsim.components", "tasdsim.simulator.engine", "tasdsim.simulator.run",
                 "tasdsim.simulator.config", "tasdsim.simulator.energy", "tasdsim.simulator.stats",
                 "tasdsim.traces.generate", "tasdsim.traces.isa")
    assert not [m for m in out if m.startswith(forbidden)], out


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["vegeta-m4", "stc-2of4", "ttc-m8", "dense-ws-32x32"]), st.sampled_from(["ws", "os"]),
       st.integers(1, 3000), st.integers(1, 300), st.integers(1, 2000), st.integers(1, 3),
       st.sampled_from(["dense", "2:4", "2:4+1:4", "1:4+1:4+1:4", "4:8+2:8+1:8", "2:8+1:8"]),
       st.sampled_from(["weights", "activations"]), st.booleans(), st.sampled_from([16, 64, 256]))
def test_model_tiling_agrees_with_the_generator_plan(preset, dataflow, m, n, k, groups, text, operand, ideal, kib):
    from dataclasses import replace

    from tasdsim.common import TasdsimError
    from tasdsim.simulator.model.tiling import derive_tiling
    from tasdsim.traces.generate import plan

    h = hw(preset, f"pe_array.dataflow={dataflow}", f"buffers.inputs.size_kib={kib}",
           f"buffers.outputs.size_kib={kib}")
    s = series(text, operand)
    terms = parse_series(text).terms
    if not all(h.supports(p) for p in terms) or (operand == "activations" and h.tasd_units.count == 0):
        return
    layer = replace(gemm_layer(f"{m}x{n}x{k}"), groups=groups)
    try:
        mine = plan(layer, h.target(), s.weights, s.activations, unbounded=ideal)
    except TasdsimError:
        with pytest.raises(TasdsimError):
            derive_tiling(layer, h, terms, "activations" if not s.activations.is_dense else "weights", ideal)
        return
    model = derive_tiling(layer, h, terms, mine.sparse_operand, ideal)
    assert (model.dataflow, model.sparse_operand, model.block_rows, model.row_blocks, model.col_tiles,
            model.folds) == (mine.dataflow, mine.sparse_operand, mine.block_rows, mine.row_blocks,
                             mine.col_tiles, mine.folds)
    assert model.buffers == {name: (mine.buffers.of(name).slots, mine.buffers.of(name).slot_bytes)
                             for name in ("weights", "inputs", "outputs")}


def test_tile_alignment_is_the_generator_placement():
    from tasdsim.simulator.model.tiling import TILE_ALIGN
    from tasdsim.traces import generate

    assert TILE_ALIGN == generate.TILE_ALIGN
