"""SCALE-Sim topology CSVs as workloads, checked against SCALE-Sim v3's own formulas."""
import math

import pytest

from tasdsim.common import TasdsimError
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, choose_series, simulate_layer
from tasdsim.traces.search import parse_constraint
from tasdsim.traces.topology_csv import bundled_topologies
from tasdsim.traces.workloads import load_workload

from cli_helpers import assert_one_line_error, cli


def scalesim_rows(path):
    """(name, H, W, Fh, Fw, C, NF, S) of a conv topology, read the way SCALE-Sim reads it."""
    rows = []
    for line in path.read_text().splitlines()[1:]:
        if line.strip():
            cells = line.strip().split(",")[:-1]  # SCALE-Sim drops the cell after the trailing comma
            rows.append((cells[0].strip(), *(int(c) for c in cells[1:8])))
    return rows


def scalesim_total_cycles(h, w, fh, fw, c, nf, s, rows=32, cols=32):
    """SCALE-Sim v3 WS, stall-free (scalesim/compute/systolic_compute_ws.py): per fold the filter
    demand matrix has R rows of weight load plus R + C + T - 2 rows; folds ceil(Sr/R) x ceil(Sc/C)
    with Sr = Fh*Fw*C, Sc = NF, T = ofmap pixels (topology_utils: ceil((H - F + S) / S)); it prints
    the cycle count minus one."""
    t = math.ceil((h - fh + s) / s) * math.ceil((w - fw + s) / s)
    folds = math.ceil(fh * fw * c / rows) * math.ceil(nf / cols)
    return folds * (rows + (rows + cols + t - 2)) - 1


def test_bundled_resnet50_is_scalesims_file():
    w = load_workload("scalesim-resnet50")
    rows = scalesim_rows(bundled_topologies()["scalesim-resnet50"])
    assert [layer.name for layer in w.layers] == [r[0] for r in rows]
    assert len(w.layers) == 54 and w.layers[0].name == "Conv1" and w.layers[-1].name == "FC6"
    conv1 = w.layers[0]
    assert (conv1.m, conv1.k, conv1.n) == (110 * 110, 7 * 7 * 3, 64)  # no padding: ceil((224 - 7 + 2) / 2)


def test_resnet50_stall_free_cycles_equal_scalesim_total_plus_one():
    hw = load_hw("dense-ws-32x32")
    w = load_workload("scalesim-resnet50")
    rows = scalesim_rows(bundled_topologies()["scalesim-resnet50"])
    for layer, row in zip(w.layers, rows):
        stats = simulate_layer(layer, hw, LayerSeries(), ideal_memory=True)
        assert stats.cycles == scalesim_total_cycles(*row[1:]) + 1, layer.name


def test_gemm_format_sparsity_and_trailing_commas(tmp_path):
    path = tmp_path / "mnk.csv"
    path.write_text("Layer Name, M, N, K,\n\nQKT, 1024, 1024, 64,\nffn,128,3072,768,2:4,\nplain,8,8,8\n")
    w = load_workload(str(path))
    assert [(l.name, l.kind, l.m, l.n, l.k, l.weight_shape, l.sparsity) for l in w.layers] == [
        ("QKT", "linear", 1024, 1024, 64, (1024, 64), None),
        ("ffn", "linear", 128, 3072, 768, (3072, 768), "2:4"),
        ("plain", "linear", 8, 8, 8, (8, 8), None),
    ]
    hw = load_hw("vegeta-m4")
    c = parse_constraint("relative_error<=0.3")
    # the Sparsity column is the weights' pattern: it runs as is, and TASDER finds it exact
    assert str(choose_series(w.layers[1], hw, "none", "weights", c, 2, 0, 0.5).weights) == "2:4"
    assert str(choose_series(w.layers[1], load_hw("dense-ws-32x32"), "none", "weights", c, 2, 0, 0.5).weights) == "dense"
    assert str(choose_series(w.layers[1], hw, "auto", "weights", c, 2, 0, 0.5).weights) == "2:4"


def test_conv_format_depthwise_and_batch(tmp_path):
    path = tmp_path / "net.csv"
    path.write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides, Sparsity,\nc1, 10, 12, 3, 3, 8, 16, 2, 1:4,\nDP2, 5, 5, 3, 3, 16, 1, 1,\n")
    c1, dp = load_workload(str(path), batch=2).layers
    # ceil((10 - 3 + 2) / 2) = 5, ceil((12 - 3 + 2) / 2) = 6
    assert (c1.m, c1.n, c1.k, c1.groups, c1.sparsity) == (2 * 5 * 6, 16, 72, 1, "1:4")
    assert (dp.m, dp.n, dp.k, dp.groups, dp.weight_shape) == (2 * 3 * 3, 1, 9, 16, (16, 1, 3, 3))


@pytest.mark.parametrize("text, message", [
    ("Name, A, B,\nx,1,2,\n", "line 1: expected SCALE-Sim's conv header"),
    ("Layer name, M, N, K,\nx, 1, 2,\n", "line 2: expected 4 columns"),
    ("Layer name, M, N, K,\nx, 1, 0, 3,\n", "line 2: n: must be a positive integer"),
    ("Layer name, M, N, K,\nx, 1, 2, 3, 5:4,\n", "line 2: Sparsity"),
    ("Layer name, M, N, K,\nx, 1, 2, 3,\nx, 1, 2, 3,\n", "line 3: duplicate layer name 'x'"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"
     "c, 2, 2, 3, 3, 1, 1, 1,\n", "line 2: filter 3x3 is larger than the IFMAP 2x2"),
    ("Layer name, M, N, K,\n", "no layers"),
])
def test_bad_topologies_name_file_and_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TasdsimError, match="bad.csv: "):
        load_workload(str(path))
    code, _, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--workload", path)
    assert_one_line_error(code, err, "bad.csv", message)
