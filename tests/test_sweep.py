"""Sweeps: spec parsing, points, parallel runs, resume after kill -9, dask, failures recorded."""
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from tasdsim.simulator.cli import main
from tasdsim.simulator.sweep_run import run_sweep
from tasdsim.simulator.sweep_spec import load_spec, parse_spec
from tasdsim.common import TasdsimError

SPEC = {
    "hw": "vegeta-m4",
    "workload": {"gemm": "64x48x96"},
    "tasd": "2:4",
    "axes": {"pe_array.rows": [8, 16], "dram.channels": [1, 2], "tasd": ["none", "2:4+1:4"]},
    "zip": {"buffers.weights.size_kib": [64, 128], "buffers.inputs.size_kib": [64, 128]},
    "filter": ["pe_array.rows >= 8"],
}


def write_spec(tmp_path, spec=SPEC, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_grid_zip_and_filter():
    spec = parse_spec({**SPEC, "filter": ["pe_array.rows > 8", "dram.channels != 2"]}, "s.yaml")
    points, filtered = spec.points()
    assert len(points) + len(filtered) == 2 * 2 * 2 * 2
    assert len(points) == 1 * 1 * 2 * 2
    assert all(p.axes["pe_array.rows"] == 16 and p.axes["dram.channels"] == 1 for p in points)
    assert sorted([p.index for p in points] + [i for i, _, _ in filtered]) == list(range(16))
    assert "pe_array.rows=16" in points[0].overrides and points[0].run["tasd"] in ("none", "2:4+1:4")
    assert len({p.id for p in points}) == len(points)


@pytest.mark.parametrize("change, message", [
    ({"hw": None}, "hw"),
    ({"bogus": 1}, "unknown key bogus"),
    ({"workload": {"gemm": "8x8x8", "name": "resnet50"}}, "exactly one of gemm or name"),
    ({"axes": {"pe_array.rows": []}}, "axes.pe_array.rows: must be a non-empty list"),
    ({"zip": {"a": [1, 2], "b": [1]}}, "same length"),
    ({"filter": ["pe_array.rows ~ 3"]}, "KEY OP VALUE"),
    ({"filter": ["nope <= 3"]}, "nope is not an axis"),
    ({"operand": "all"}, "operand: must be weights, activations or both"),
    ({"objective": "speed"}, "objective: must be compute or edp"),
])
def test_bad_specs(change, message):
    spec = {k: v for k, v in {**SPEC, **change}.items() if v is not None}
    with pytest.raises(TasdsimError, match=message):
        parse_spec(spec, "s.yaml")


def test_sweep_runs_writes_csv_and_records_failures(tmp_path, capsys):
    spec = {**SPEC, "axes": {"pe_array.rows": [0, 16]}, "zip": {}, "filter": []}
    out = tmp_path / "out"
    code = main(["sweep", write_spec(tmp_path, spec), "--jobs", "2", "--out", str(out), "--no-progress"])
    assert code == 1  # one point failed; the sweep went on
    rows = read_csv(out / "results.csv")
    assert [r["pe_array.rows"] for r in rows] == ["0", "16"]
    assert rows[0]["status"] == "failed" and "pe_array.rows" in rows[0]["error"]
    assert rows[1]["status"] == "ok" and int(rows[1]["cycles"]) > 0
    assert {"cycles", "energy_pj", "edp"} <= set(rows[1])
    with sqlite3.connect(out / "results.sqlite") as db:
        (config,) = db.execute("SELECT config FROM points WHERE status = 'ok'").fetchone()
    assert '"rows": 16' in config  # the full resolved hardware config is stored
    out = capsys.readouterr().out
    assert f"failed points by error:\n  1 point: {rows[0]['error']}\n" in out


def test_failures_are_summed_up_per_distinct_error(tmp_path, capsys):
    spec = {**SPEC, "axes": {"pe_array.rows": [0, 16, -1], "tasd": ["none", "2:4", "3:8"]}, "zip": {}, "filter": []}
    assert main(["sweep", write_spec(tmp_path, spec), "--jobs", "2", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 1
    out = capsys.readouterr().out
    summary = out[out.index("failed points by error:"):].splitlines()[1:4]
    assert [line.split(":")[0] for line in summary] == ["  3 points", "  3 points", "  1 point"]
    assert "pe_array.rows=0" in out and "pe_array.rows=-1" in out and "3:8" in summary[2]


def test_a_sweep_over_tasd_prints_its_edp_table(tmp_path, capsys):
    """Per TASD point, its EDP beside the same hardware's dense EDP and 1 - EDP_tasd / EDP_dense."""
    spec = {"hw": "vegeta-m4", "workload": {"gemm": "64x48x96"},
            "axes": {"hw": ["stc-2of4", "vegeta-m4"], "tasd": ["none", "2:4"]}}
    out_dir = tmp_path / "o"
    assert main(["sweep", write_spec(tmp_path, spec), "--jobs", "2", "--out", str(out_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("EDP improvement of TASD"):].splitlines()
    assert table[1].split() == ["hw", "tasd", "edp_dense", "edp_tasd", "improvement"]
    edp = {(r["hw"], r["tasd"]): float(r["edp"]) for r in read_csv(out_dir / "results.csv")}
    rows = [line.split() for line in table[3:5]]
    assert sorted(row[0] for row in rows) == ["stc-2of4", "vegeta-m4"]
    for hw, tasd, dense, sparse, gain in rows:
        assert tasd == "2:4"
        assert float(dense) == float(f"{edp[hw, 'none']:.4g}") and float(sparse) == float(f"{edp[hw, '2:4']:.4g}")
        assert gain == f"{1 - edp[hw, '2:4'] / edp[hw, 'none']:.1%}"


def test_resume_after_kill_minus_9_equals_uninterrupted(tmp_path):
    spec_path = write_spec(tmp_path, {**SPEC, "workload": {"gemm": "256x256x512"}})
    full = tmp_path / "full"
    run_sweep(load_spec(spec_path), str(full), 2, "local", None, False, progress=False)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tasdsim.simulator.cli", "sweep", spec_path, "--jobs", "2",
                             "--out", str(killed), "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = killed / "results.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and stored(db) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= stored(db) < 16  # killed midway
    assert main(["sweep", spec_path, "--jobs", "2", "--out", str(killed), "--resume", "--no-progress"]) == 0
    assert read_csv(killed / "results.csv") == read_csv(full / "results.csv")
    with sqlite3.connect(db) as c:
        ids = [r[0] for r in c.execute("SELECT id FROM points")]
    assert len(ids) == len(set(ids)) == 16


def stored(db) -> int:
    """Points stored so far (0 while the sweep is still creating its database)."""
    try:
        with sqlite3.connect(db) as c:
            return c.execute("SELECT COUNT(*) FROM points WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_dask_executor_gives_the_same_rows(tmp_path):
    pytest.importorskip("dask.distributed")
    spec_path = write_spec(tmp_path, {**SPEC, "axes": {"pe_array.rows": [8, 16]}, "zip": {}, "filter": []})
    local, dask = tmp_path / "local", tmp_path / "dask"
    run_sweep(load_spec(spec_path), str(local), 2, "local", None, False, progress=False)
    run_sweep(load_spec(spec_path), str(dask), 2, "dask", None, False, progress=False)
    assert read_csv(local / "results.csv") == read_csv(dask / "results.csv")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["sweep", "no-such-sweep"]) == 2
    assert "unknown sweep" in capsys.readouterr().err
    assert main(["sweep", write_spec(tmp_path), "--scheduler", "tcp://x:1"]) == 2
    assert "--scheduler needs --executor dask" in capsys.readouterr().err


def test_unquoted_patterns_stay_patterns(tmp_path):
    """YAML 1.1 reads 2:4 as the base-60 number 124; sweep files keep it a pattern."""
    path = tmp_path / "s.yaml"
    path.write_text("hw: vegeta-m4\nworkload: {gemm: 8x8x8}\ntasd: 2:4\naxes:\n  tasd: [none, 1:4]\n")
    points, _ = load_spec(str(path)).points()
    assert [p.run["tasd"] for p in points] == ["none", "1:4"]
    assert parse_spec({"hw": "x", "workload": {"gemm": "8x8x8"}, "tasd": "2:4"}, "s.yaml").base["tasd"] == "2:4"
