"""Simulator: cycle counts against the hand formulas of the reference hardware (BRIEF "Reference
hardware"), the DRAM lower bound, stall accounting, determinism and the `tasdsim simulate` CLI.

Formulas (R x C array, GEMM O[M x N] = I[M x K] . W[K x N]):
- WS dense: ceil(K/R) * ceil(N/C) * (2R + C + M - 2)
- OS dense: ceil(M/R) * ceil(N/C) * (2R + C + K - 2)
- WS with an N:M weight term: reduction depth d = N * ceil(K/M), so ceil(d/R) * ceil(N/C) * (2R + C + M - 2);
  a series costs the sum over its terms.
- OS with a series: ceil(M/R) * ceil(N/C) * (2R + C + sum(d_i) - 2).
"""
import json

import pytest
from hypothesis import given, settings, strategies

from tasdsim.components.dram import load_dram_preset, min_transfer_cycles
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer, simulate_layers
from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import gemm_layer, load_workload
from cli_helpers import assert_one_line_error, cli

SHAPES = ["7x5x3", "33x65x97", "100x31x200", "1x1x1", "64x64x64", "5x40x70", "3x17x9"]
ARRAYS = [(32, 32), (8, 8), (16, 4), (4, 16)]
NO_DECODER = ["metadata_decoder.latency=0"]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def dims(shape: str) -> tuple[int, int, int]:
    m, n, k = (int(x) for x in shape.split("x"))
    return m, n, k


def ws_cycles(m: int, n: int, depth: int, r: int, c: int) -> int:
    return cdiv(depth, r) * cdiv(n, c) * (2 * r + c + m - 2)


def os_cycles(m: int, n: int, depths: list[int], r: int, c: int) -> int:
    return cdiv(m, r) * cdiv(n, c) * (2 * r + c + sum(depths) - 2)


def nm_depth(pn: int, pm: int, k: int) -> int:
    return pn * cdiv(k, pm)


def hw_with(preset: str, rows: int, cols: int, dataflow: str = "ws", extra: list[str] = ()):
    return load_hw(preset, [*NO_DECODER, f"pe_array.rows={rows}", f"pe_array.cols={cols}",
                            f"pe_array.dataflow={dataflow}", *extra])


def run(shape: str, hw, series: str | None = None, ideal: bool = True):
    s = LayerSeries(weights=parse_series(series)) if series else LayerSeries()
    return simulate_layer(gemm_layer(shape), hw, s, ideal_memory=ideal)


# ----------------------------------------------------------------------------- 1. dense, ideal memory


@pytest.mark.parametrize("rows,cols", ARRAYS)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_ws_ideal_matches_formula(shape, rows, cols):
    m, n, k = dims(shape)
    st = run(shape, hw_with("dense-ws-32x32", rows, cols))
    expected = ws_cycles(m, n, k, rows, cols)
    assert st.compute_cycles == expected
    assert st.cycles == expected
    assert sum(st.stall_cycles.values()) == 0
    assert st.folds == cdiv(k, rows) * cdiv(n, cols)
    assert st.macs_useful == m * n * k


@pytest.mark.parametrize("rows,cols", ARRAYS)
@pytest.mark.parametrize("shape", SHAPES)
def test_dense_os_ideal_matches_formula(shape, rows, cols):
    m, n, k = dims(shape)
    st = run(shape, hw_with("dense-ws-32x32", rows, cols, "os"))
    expected = os_cycles(m, n, [k], rows, cols)
    assert st.compute_cycles == expected
    assert st.cycles == expected
    assert st.macs_useful == m * n * k


def test_default_preset_gemm_scale_sim_default():
    # SCALE-Sim-like 32x32 WS, no --set for the array: the stock preset.
    st = run("64x64x64", load_hw("dense-ws-32x32", NO_DECODER))
    assert st.cycles == 2 * 2 * (64 + 32 + 64 - 2)


# ----------------------------------------------------------------------------- 2. N:M weights


@pytest.mark.parametrize("rows,cols", [(32, 32), (8, 8), (16, 4)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", ["1:4", "2:4", "4:4"])
def test_nm_weights_ws_ideal(shape, rows, cols, pattern):
    m, n, k = dims(shape)
    pn, pm = (int(x) for x in pattern.split(":"))
    st = run(shape, hw_with("vegeta-m4", rows, cols), pattern)
    expected = ws_cycles(m, n, nm_depth(pn, pm, k), rows, cols)
    assert st.compute_cycles == expected
    assert st.cycles == expected


@pytest.mark.parametrize("rows,cols", [(32, 32), (8, 8), (16, 4)])
@pytest.mark.parametrize("shape", SHAPES)
def test_series_ws_compute_is_sum_of_terms(shape, rows, cols):
    m, n, k = dims(shape)
    st = run(shape, hw_with("vegeta-m4", rows, cols), "2:4+1:4")
    expected = sum(ws_cycles(m, n, nm_depth(pn, 4, k), rows, cols) for pn in (2, 1))
    assert st.compute_cycles == expected
    # the accumulator takes the psums as they leave the array (32 >= cols words per cycle): only
    # its 1-cycle latency adds a tail, once
    tail = st.cycles - st.compute_cycles
    assert tail == 1
    assert sum(st.stall_cycles.values()) == tail


@pytest.mark.parametrize("shape", SHAPES)
def test_series_ws_tail_is_accumulator_latency(shape):
    """With ideal memory and an accumulator as wide as the array, a series costs the sum of its
    terms' folds plus the accumulator's latency once, after the last fold."""
    st = run(shape, load_hw("vegeta-m4", NO_DECODER), "2:4+1:4")
    assert st.cycles - st.compute_cycles == 1
    assert st.stall_cycles["accumulator"] == 1


@pytest.mark.parametrize("latency", [0, 1, 7])
@pytest.mark.parametrize("width", [8, 32, 64])
def test_series_ws_narrow_accumulator_stalls_every_fold(width, latency):
    """An accumulator narrower than the array's C = 32 words per cycle stretches each fold's
    m_rows streamed rows to ceil(m_rows * cols / width); the latency shows once."""
    m, n, k = 100, 31, 200
    st = run(f"{m}x{n}x{k}", load_hw("vegeta-m4", NO_DECODER + [f"accumulator.width={width}",
                                                              f"accumulator.latency={latency}"]), "2:4+1:4")
    folds = 4 + 2  # 2:4: depth 100 -> 4 folds of 32 rows; 1:4: depth 50 -> 2 folds
    assert st.compute_cycles == folds * (64 + 32 + m - 2)
    stretch = max(0, cdiv(m * n, width) - m)
    assert st.stall_cycles["accumulator"] == folds * stretch + latency
    assert st.cycles == st.compute_cycles + folds * stretch + latency


@settings(max_examples=40, deadline=None)
@given(strategies.integers(1, 700), strategies.integers(1, 150), strategies.integers(1, 600), strategies.sampled_from([(32, 32), (16, 8), (8, 24)]),
       strategies.sampled_from(["2:4+1:4", "2:4+2:4", "1:4+1:4+1:4", "4:8+2:8+1:8", "2:8+1:8"]),
       strategies.sampled_from([4, 8, 32, 64]), strategies.integers(0, 6))
def test_held_out_series_cost_the_sum_of_their_terms(m, n, k, shape, text, width, latency):
    """Ideal memory, no decoder: a series costs the sum over its terms of the WS closed form, each
    fold's m_rows streamed rows stretched to ceil(m_rows * cols / width) when the accumulator is
    narrower than the columns, plus the accumulator's latency once."""
    r, c = shape
    preset = "vegeta-m4" if text.count(":4") else "ttc-m8"
    hw = load_hw(preset, [*NO_DECODER, f"pe_array.rows={r}", f"pe_array.cols={c}", f"accumulator.width={width}",
                          f"accumulator.latency={latency}"])
    st = run(f"{m}x{n}x{k}", hw, text)
    terms = [tuple(int(x) for x in t.split(":")) for t in text.split("+")]
    compute = sum(ws_cycles(m, n, nm_depth(pn, pm, k), r, c) for pn, pm in terms)
    folds_per_column_tile = sum(cdiv(nm_depth(pn, pm, k), r) for pn, pm in terms)
    stretch = sum(folds_per_column_tile * max(0, cdiv(m * min(c, n - j * c), width) - m) for j in range(cdiv(n, c)))
    assert st.compute_cycles == compute
    assert st.cycles == compute + stretch + latency
    assert st.stall_cycles["accumulator"] == stretch + latency


def test_series_ws_tail_hand_derived():
    # 100x31x200 on vegeta-m4: terms 2:4 (depth 100 -> 4 fold rows) and 1:4 (depth 50 -> 2 fold rows),
    # one column tile of 31 columns; each fold streams M = 100 rows: 64 + 32 + 100 - 2 = 194 cycles.
    st = run("100x31x200", load_hw("vegeta-m4", NO_DECODER), "2:4+1:4")
    assert st.compute_cycles == (4 + 2) * 194 == 1164
    # the accumulator takes 31 psums a cycle as they leave the array (32 wide), then its 1-cycle latency
    assert st.cycles == 1164 + 1
    assert st.stall_cycles["accumulator"] == 1, st.stall_cycles


@pytest.mark.parametrize("rows,cols", [(32, 32), (8, 8), (16, 4)])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("series", ["2:4", "2:4+1:4", "4:4+2:4+1:4"])
def test_series_os_one_fold_per_tile(shape, rows, cols, series):
    m, n, k = dims(shape)
    st = run(shape, hw_with("vegeta-m4", rows, cols, "os"), series)
    depths = [nm_depth(int(t.split(":")[0]), 4, k) for t in series.split("+")]
    expected = os_cycles(m, n, depths, rows, cols)
    assert st.compute_cycles == expected
    assert st.cycles == expected


def test_m8_series_ws():
    m, n, k = 50, 40, 37
    hw = load_hw("ttc-m8", NO_DECODER)
    st = run(f"{m}x{n}x{k}", hw, "4:8+1:8")
    r, c = hw.pe_array.rows, hw.pe_array.cols
    assert st.compute_cycles == sum(ws_cycles(m, n, nm_depth(pn, 8, k), r, c) for pn in (4, 1))


# ----------------------------------------------------------------------------- 3. STC 2:4 vs dense


def test_stc_2of4_speedup_compute_bound():
    layer = "4096x64x1024"
    dense = run(layer, load_hw("dense-ws-32x32", NO_DECODER))
    sparse = run(layer, load_hw("stc-2of4", NO_DECODER), "2:4")
    ratio = dense.cycles / sparse.cycles
    assert abs(ratio - 2.0) <= 0.04, ratio


def test_dense_on_sparse_hardware_runs():
    st = run("33x65x97", load_hw("stc-2of4", NO_DECODER))
    assert st.cycles == ws_cycles(33, 65, 97, 32, 32)


# ----------------------------------------------------------------------------- 4. real memory


REAL_CASES = [("dense-ws-32x32", "200x100x300", None), ("vegeta-m4", "200x100x300", "2:4+1:4"),
              ("stc-2of4", "128x96x256", "2:4"), ("dense-ws-32x32", "1x1x1", None),
              ("ttc-m8", "64x48x80", "2:8")]


def _dram_bound(hw, st) -> int:
    timing = load_dram_preset(hw.dram.preset).with_channels(hw.dram.channels)
    return min_transfer_cycles(timing, st.dram_bytes["read"] + st.dram_bytes["write"], hw.clock_ghz)


@pytest.mark.parametrize("preset,shape,series", REAL_CASES)
def test_real_memory_bounds_and_stall_sum(preset, shape, series):
    hw = load_hw(preset, [])
    st = run(shape, hw, series, ideal=False)
    assert st.cycles >= st.compute_cycles
    assert st.cycles >= _dram_bound(hw, st)
    assert sum(st.stall_cycles.values()) == st.cycles - st.compute_cycles
    assert all(v >= 0 for v in st.stall_cycles.values())
    m, n, k = dims(shape)
    assert st.dram_bytes["read"] >= m * k * hw.word_bytes  # every input value read at least once
    assert st.dram_bytes["write"] >= m * n * hw.word_bytes  # every output written at least once
    assert 0 < st.utilization <= 1


@pytest.mark.parametrize("preset,shape,series", REAL_CASES[:3])
def test_real_memory_not_faster_than_ideal(preset, shape, series):
    hw = load_hw(preset, [])
    assert run(shape, hw, series, ideal=False).cycles >= run(shape, hw, series, ideal=True).compute_cycles


@pytest.mark.parametrize("preset,shape,series", [("dense-ws-32x32", "200x100x300", None),
                                                 ("vegeta-m4", "256x128x512", "2:4+1:4"),
                                                 ("dense-ws-32x32", "64x512x512", None)])
@pytest.mark.parametrize("dram", ["ddr4-3200", "hbm2"])
def test_more_channels_never_slower(preset, shape, series, dram):
    cycles = []
    for ch in (1, 2, 4):
        hw = load_hw(preset, [f"dram.preset={dram}", f"dram.channels={ch}"])
        st = run(shape, hw, series, ideal=False)
        assert st.cycles >= _dram_bound(hw, st)
        cycles.append(st.cycles)
    assert cycles[0] >= cycles[1] >= cycles[2], cycles


@pytest.mark.parametrize("preset,shape,series", REAL_CASES[:3])
def test_deterministic(preset, shape, series):
    hw = load_hw(preset, [])
    a = run(shape, hw, series, ideal=False).as_dict()
    b = run(shape, hw, series, ideal=False).as_dict()
    assert a == b


def test_layers_in_worker_processes_equal_one_by_one():
    hw = load_hw("vegeta-m4", [])
    layers = list(load_workload("resnet50").layers[:6])
    series = [LayerSeries(weights=parse_series(s)) for s in ("2:4", "2:4+1:4", "dense", "1:4", "2:4", "4:4")]
    one_by_one = [s.as_dict() for s in simulate_layers(layers, hw, series, False, jobs=1)]
    parallel = [s.as_dict() for s in simulate_layers(layers, hw, series, False, jobs=3)]
    assert parallel == one_by_one
    assert [s["name"] for s in parallel] == [layer.name for layer in layers]


def _failing_in(monkeypatch, name, fail):
    from tasdsim.simulator import run as run_module
    real = run_module.simulate_layer

    def simulate(layer, *args):
        if layer.name == name:
            fail()
        return real(layer, *args)
    monkeypatch.setattr(run_module, "simulate_layer", simulate)  # the forked workers inherit it


def test_an_error_in_a_worker_process_reaches_the_caller(monkeypatch):
    def fail():
        raise TasdsimError("layer1.0.conv1: cannot be simulated")
    _failing_in(monkeypatch, "layer1.0.conv1", fail)
    hw = load_hw("vegeta-m4", [])
    layers = list(load_workload("resnet50").layers[:6])
    with pytest.raises(TasdsimError, match="layer1.0.conv1: cannot be simulated"):
        simulate_layers(layers, hw, [LayerSeries()] * len(layers), True, jobs=2)


def test_a_worker_process_that_dies_is_an_error_naming_its_layers(monkeypatch):
    import os
    _failing_in(monkeypatch, "layer1.0.conv2", lambda: os._exit(3))
    hw = load_hw("vegeta-m4", [])
    layers = list(load_workload("resnet50").layers[:6])
    with pytest.raises(TasdsimError, match="died before finishing layers .*layer1.0.conv2"):
        simulate_layers(layers, hw, [LayerSeries()] * len(layers), True, jobs=2)


def test_ctrl_c_during_worker_processes_exits_130_and_stops_them(monkeypatch, capsys):
    import multiprocessing
    import os
    import signal
    _failing_in(monkeypatch, "layer1.0.conv1", lambda: os.kill(os.getppid(), signal.SIGINT))
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", "resnet50", "--layers",
                       "conv1,layer1.0.conv1,layer1.0.conv2,layer1.0.conv3", "--memory", "ideal", "--jobs", "2")
    assert code == 130
    assert err.strip() == "tasdsim simulate: interrupted"
    assert multiprocessing.active_children() == []


def test_cli_jobs_do_not_change_the_result(capsys):
    argv = ["simulate", "--hw", "vegeta-m4", "--workload", "mobilenetv2", "--layers",
            "features.0.0,features.1.conv.1,features.2.conv.2", "--tasd", "auto", "--json"]
    outs = []
    for jobs in ("1", "2"):
        code, out, _ = cli(capsys, *argv, "--jobs", jobs)
        assert code == 0
        outs.append(out)
    assert outs[0] == outs[1]


def test_os_real_memory():
    hw = load_hw("vegeta-m4", ["pe_array.dataflow=os"])
    st = run("100x70x130", hw, "2:4+1:4", ideal=False)
    assert st.compute_cycles == os_cycles(100, 70, [66, 33], 32, 32)
    assert sum(st.stall_cycles.values()) == st.cycles - st.compute_cycles
    assert st.cycles >= _dram_bound(hw, st)


def test_metadata_decoder_latency_only_adds():
    base = run("100x31x200", load_hw("vegeta-m4", NO_DECODER), "2:4")
    slow = run("100x31x200", load_hw("vegeta-m4", ["metadata_decoder.latency=5"]), "2:4")
    assert slow.compute_cycles == base.compute_cycles
    assert slow.cycles >= base.cycles


# ----------------------------------------------------------------------------- 6. CLI


def test_cli_simulate_json(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "200x100x300", "--tasd", "2:4+1:4", "--json")
    assert code == 0
    res = json.loads(out)
    assert res["hardware"]["name"] == "vegeta-m4"
    (layer,) = res["layers"]
    for key in ("name", "cycles", "compute_cycles", "stall_cycles", "utilization", "dram_bytes"):
        assert key in layer
    assert isinstance(layer["stall_cycles"], dict)
    assert sum(layer["stall_cycles"].values()) == layer["cycles"] - layer["compute_cycles"]
    assert layer["dram_bytes"]["read"] > 0 and layer["dram_bytes"]["write"] > 0
    assert res["total"]["cycles"] == layer["cycles"]
    # same as the library call
    st = run("200x100x300", load_hw("vegeta-m4", []), "2:4+1:4", ideal=False)
    assert layer["cycles"] == st.cycles


def test_cli_simulate_ideal_matches_formula(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "dense-ws-32x32", "--gemm", "33x65x97", "--memory", "ideal",
                       "--set", "metadata_decoder.latency=0", "--set", "pe_array.rows=8", "--set", "pe_array.cols=8",
                       "--json")
    assert code == 0
    layer = json.loads(out)["layers"][0]
    assert layer["cycles"] == layer["compute_cycles"] == ws_cycles(33, 65, 97, 8, 8)


def test_cli_simulate_table(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "dense-ws-32x32", "--gemm", "64x64x64")
    assert code == 0
    assert "total" in out and "gemm" in out


def test_cli_out_reports(tmp_path, capsys):
    out_dir = tmp_path / "rep"
    code, _, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "100x31x200", "--tasd", "2:4+1:4",
                     "--out", str(out_dir))
    assert code == 0
    for f in ("compute.csv", "memory.csv", "sparsity.csv", "result.json"):
        assert (out_dir / f).is_file(), f
    res = json.loads((out_dir / "result.json").read_text())
    rows = (out_dir / "compute.csv").read_text().splitlines()
    assert len(rows) == 2
    assert rows[1].split(",")[1] == str(res["layers"][0]["cycles"])
    sp = (out_dir / "sparsity.csv").read_text().splitlines()
    assert "2:4+1:4" in sp[1]


def test_cli_workload_layers(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "dense-ws-32x32", "--workload", "resnet50", "--layers", "conv1,fc",
                       "--batch", "1", "--json")
    assert code == 0
    res = json.loads(out)
    assert [l["name"] for l in res["layers"]] == ["conv1", "fc"]
    assert res["total"]["cycles"] == sum(l["cycles"] for l in res["layers"])


@pytest.mark.parametrize("argv,needles", [
    (["--hw", "dense-ws-32x32", "--gemm", "8x8x8", "--set", "pe_array.rows=0"], ["rows"]),
    (["--hw", "no-such-preset", "--gemm", "8x8x8"], ["no-such-preset"]),
    (["--hw", "vegeta-m4", "--gemm", "8x8x8", "--tasd", "3:8"], ["3:8"]),
    (["--hw", "stc-2of4", "--gemm", "8x8x8", "--tasd", "1:4"], ["1:4"]),
    (["--hw", "dense-ws-32x32", "--gemm", "8x0x8"], ["8x0x8"]),
    (["--hw", "dense-ws-32x32", "--gemm", "8x8x8", "--set", "nonsense.key=1"], ["nonsense"]),
    (["--hw", "dense-ws-32x32", "--gemm", "8x8x8", "--set", "dram.channels=0"], ["channels"]),
    (["--hw", "dense-ws-32x32", "--workload", "resnet50", "--layers", "nope"], ["nope"]),
    (["--gemm", "8x8x8"], ["--hw"]),
    (["--hw", "dense-ws-32x32", "--gemm", "8x8x8", "--jobs", "0"], ["--jobs"]),
    (["--hw", "dense-ws-32x32", "--trace", "/nonexistent/x.trace"], ["/nonexistent/x.trace"]),
])
def test_cli_bad_input_one_line(capsys, argv, needles):
    code, _, err = cli(capsys, "simulate", *argv)
    assert_one_line_error(code, err, *needles)


def test_cli_tasd_unsupported_names_hardware(capsys):
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "8x8x8", "--tasd", "3:8")
    assert_one_line_error(code, err, "3:8", "vegeta-m4")


def test_no_progress_is_an_error_naming_the_waiting_units():
    """A unit that never takes its work: the run stops with an error, not partial numbers."""
    from tasdsim.components.units import Inbox
    from tasdsim.simulator.engine import Accelerator
    from tasdsim.traces.isa import Instr

    from tasdsim.traces.generate import BufferPlan, Slots

    hw = load_hw("vegeta-m4")
    acc = Accelerator(hw, BufferPlan(Slots(2, 64), Slots(2, 64), Slots(2, 64)), ideal_memory=True)
    acc.inboxes["acc"] = Inbox(acc.env, 4)  # nobody reads this inbox
    instrs = [Instr(0, "LOAD", {"buf": "inputs", "slot": 0, "bytes": 64, "meta": 0, "addr": 0}),
              Instr(1, "ACC", {"slot": 0}, (0,)),
              Instr(2, "STORE", {"buf": "outputs", "slot": 0, "bytes": 32, "addr": 0}, (1,))]
    with pytest.raises(TasdsimError, match=r"stopped making progress.*ACC 1 in the accumulator.*STORE 2"):
        acc.run(iter(instrs), "stuck", "")
