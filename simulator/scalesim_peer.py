"""SCALE-Sim v3 as a peer: its stall-free compute cycles of the suite's dense GEMMs beside ours.

Optional (`pip install 'tasdsim[peers]'`); SCALE-Sim prints its cycle count minus one, so its
number + 1 is compared with the model's stall-free compute cycles.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

from tasdsim.simulator.analytical import model_layer
from tasdsim.simulator.run import LayerSeries
from tasdsim.simulator.validate_suite import Suite, point_hardware, point_layer
from tasdsim.traces.patterns import parse_series

SCALESIM_MAX_MACS = 20_000_000  # SCALE-Sim writes per-cycle traces: ~0.3 s per million MACs

_SCALESIM_CFG = """[general]
run_name = tasdsim

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1024
FilterSramSzkB : 1024
OfmapSramSzkB : 1024
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def scalesim_available() -> bool:
    try:
        import scalesim.scale_sim  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


def scalesim_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> int:
    """SCALE-Sim v3's stall-free compute cycles ("Total Cycles", CALC bandwidth mode) of one GEMM."""
    from scalesim.scale_sim import scalesim

    with tempfile.TemporaryDirectory(prefix="tasdsim-scalesim-") as tmp:
        cfg, topo, layout = (os.path.join(tmp, f) for f in ("tasdsim.cfg", "gemm.csv", "layout.csv"))
        Path(cfg).write_text(_SCALESIM_CFG.format(rows=rows, cols=cols, dataflow=dataflow))
        Path(topo).write_text(f"Layer, M, N, K,\nlayer, {m}, {n}, {k},\n")
        Path(layout).write_text("Layer, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                "Num Filter, Stride Height, Stride Width,\n")
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                           input_type_gemm=True)
            sim.run_scale(top_path=tmp)
        with open(os.path.join(tmp, "tasdsim", "COMPUTE_REPORT.csv"), encoding="utf-8") as f:
            report = list(csv.reader(f))
        header = [h.strip() for h in report[0]]
        return int(report[1][header.index("Total Cycles")])


def scalesim_compare(suite: Suite, results: list[dict[str, Any]], max_macs: int) -> dict[str, Any]:
    """SCALE-Sim v3 next to our stall-free (ideal-memory) compute cycles on the suite's dense
    layers. SCALE-Sim prints the count minus one; its OS folds take R + C + T - 2 (a bug its
    maintainers confirmed) where ours take 2R + C + T - 2, so OS differs by R per fold."""
    if not scalesim_available():
        return {"installed": False, "note": "SCALE-Sim v3 is not installed (pip install 'tasdsim[peers]')"}
    hw_cache: dict = {}
    workloads: dict = {}
    done: dict[tuple, dict[str, Any]] = {}
    rows_out = []
    for point, result in zip(suite.points, results):
        if not parse_series(point.tasd).is_dense:
            continue
        hw = point_hardware(point, hw_cache)
        layer = point_layer(point, workloads)
        r, c, df = hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.dataflow
        key = (layer.m, layer.n, layer.k, r, c, df)
        ours = model_layer(layer, hw, LayerSeries(), True).compute_cycles // layer.groups
        folds = -(-layer.k // r) * -(-layer.n // c) if df == "ws" else -(-layer.m // r) * -(-layer.n // c)
        expected = 0 if df == "ws" else folds * r
        row = {"name": point.name, "m": layer.m, "n": layer.n, "k": layer.k, "groups": layer.groups,
               "array": f"{r}x{c}", "dataflow": df, "ours": ours, "expected_diff": expected}
        if layer.m * layer.n * layer.k > max_macs:
            row.update(status="skipped", note=f"more than {max_macs} MACs per GEMM")
        elif key in done:
            row.update({k: v for k, v in done[key].items() if k in ("scalesim_plus_one", "diff", "status", "note")})
        else:
            try:
                plus_one = scalesim_cycles(layer.m, layer.n, layer.k, r, c, df) + 1
                diff = ours - plus_one
                row.update(scalesim_plus_one=plus_one, diff=diff, status="agrees" if diff == expected else "differs")
            except (Exception, SystemExit) as err:  # noqa: BLE001 - a peer's failure must not stop validation
                hint = " (SCALE-Sim 3.0 needs numpy < 2.4)" if "0-dimensional arrays" in str(err) else ""
                row.update(status="error", note=f"SCALE-Sim failed: {err}{hint}")
            done[key] = row
        rows_out.append(row)
    ran = [r for r in rows_out if r["status"] in ("agrees", "differs")]
    return {"installed": True, "points": rows_out,
            "agrees": sum(r["status"] == "agrees" for r in rows_out), "compared": len(ran)}
