"""The buffer plan: one object from the hardware and the layer, used by generator and engine;
every buffer's peak occupancy stays within its size, and a layer that cannot fit is one error."""
from __future__ import annotations

import json

import pytest

from tasdsim.common import TasdsimError
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.traces.generate import plan
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import gemm_layer, load_workload
from cli_helpers import assert_one_line_error, cli

CASES = [("vegeta-m4", [], "4096x64x64", "2:4+1:4", "weights"),
         ("vegeta-m4", ["pe_array.dataflow=os"], "300x70x500", "2:4+1:4", "weights"),
         ("ttc-m8", [], "3136x64x576", "4:8+2:8", "activations"),
         ("stc-2of4", ["buffers.outputs.size_kib=32"], "1000x200x300", "2:4", "weights"),
         ("dense-ws-32x32", [], "12544x64x147", "dense", "weights")]


def _series(text: str, operand: str) -> LayerSeries:
    s = parse_series(text)
    return LayerSeries(weights=s) if operand == "weights" else LayerSeries(activations=s)


@pytest.mark.parametrize("preset,sets,shape,text,operand", CASES)
def test_peak_occupancy_within_each_buffer(preset, sets, shape, text, operand):
    hw = load_hw(preset, sets)
    st = simulate_layer(gemm_layer(shape), hw, _series(text, operand), ideal_memory=False)
    for name, b in st.buffers.items():
        assert 0 < b["peak_bytes"] <= b["size_bytes"] == getattr(hw.buffers, name).size_bytes, name
        assert b["peak_bytes"] <= b["slots"] * b["slot_bytes"], name


def test_the_issue_example_holds_two_psum_tiles_not_four():
    # 4096x64x64 2:4+1:4 on vegeta-m4: T = 1024 rows (half the outputs buffer of C int32 psums),
    # two psum tiles of 1024 x 32 x 4 = 128 KiB fill the 256 KiB outputs buffer exactly.
    hw = load_hw("vegeta-m4")
    t = plan(gemm_layer("4096x64x64"), hw.target(), parse_series("2:4+1:4"), parse_series("dense"), False)
    assert t.block_rows == 1024
    assert (t.buffers.outputs.slots, t.buffers.outputs.slot_bytes) == (2, 1024 * 32 * 4)
    assert (t.buffers.inputs.slots, t.buffers.inputs.slot_bytes) == (2, 1024 * 64)
    assert (t.buffers.weights.slots, t.buffers.weights.slot_bytes) == (2, 32 * 32 + 32 * 32 * 2 // 8)
    st = simulate_layer(gemm_layer("4096x64x64"), hw, _series("2:4+1:4", "weights"), ideal_memory=False)
    assert st.buffers["outputs"]["peak_bytes"] == 256 * 1024


def test_a_layer_whose_tiles_cannot_fit_is_one_error_naming_buffer_and_sizes():
    hw = load_hw("vegeta-m4", ["buffers.weights.size_kib=2"])  # a 2:4 weight tile: 1024 + 256 bytes
    with pytest.raises(TasdsimError, match=r"^layer gemm: 2 weights slots of 1280 bytes \(its largest tile\) do "
                                           r"not fit the 2048-byte weights buffer of vegeta-m4$"):
        plan(gemm_layer("64x64x64"), hw.target(), parse_series("2:4"), parse_series("dense"), False)


def test_cli_cannot_fit_is_one_line(capsys):
    code, out, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "64x64x64", "--tasd", "2:4",
                         "--set", "buffers.weights.size_kib=2")
    assert_one_line_error(code, err, "2 weights slots of 1280 bytes", "2048-byte weights buffer")


def test_json_reports_peak_bytes_per_buffer(capsys):
    code, out, _ = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", "512x64x256", "--tasd", "2:4+1:4",
                       "--json")
    assert code == 0
    doc = json.loads(out)
    for name in ("weights", "inputs", "outputs"):
        b = doc["total"]["buffers"][name]
        assert 0 < b["peak_bytes"] <= b["size_bytes"]
        assert doc["layers"][0]["buffers"][name]["peak_bytes"] == b["peak_bytes"]


def test_resnet50_layers_stay_within_buffers():
    hw = load_hw("vegeta-m4")
    for layer in load_workload("resnet50").layers[::7]:
        st = simulate_layer(layer, hw, _series("2:4+1:4", "weights"), ideal_memory=False)
        assert all(b["peak_bytes"] <= b["size_bytes"] for b in st.buffers.values()), layer.name
