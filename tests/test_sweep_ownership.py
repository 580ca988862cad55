"""Sweeps own their directory: one sweep at a time (OS lock), one spec per database, bad
directories and databases one line, the spec checked before any point runs, workers that die with
the sweep."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from tasdsim.simulator.cli import main
from tasdsim.simulator.sweep_run import owned_directory

SPEC = {"hw": "vegeta-m4", "workload": {"gemm": "32x32x64"}, "axes": {"pe_array.rows": [8, 16]}}


def write_spec(tmp_path, spec=SPEC, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def sweep(capsys, *argv):
    code = main(["sweep", *map(str, argv), "--jobs", "1", "--no-progress"])
    return code, capsys.readouterr().err


def one_line(code, err, *needles):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_second_sweep_on_a_locked_directory_refuses(tmp_path, capsys):
    out = tmp_path / "out"
    with owned_directory(str(out)):
        one_line(*sweep(capsys, write_spec(tmp_path), "--out", out), "another sweep is running")


def test_another_spec_refuses_with_or_without_resume(tmp_path, capsys):
    out = tmp_path / "out"
    assert sweep(capsys, write_spec(tmp_path), "--out", out)[0] == 0
    other = write_spec(tmp_path, {**SPEC, "axes": {"pe_array.rows": [8, 32]}}, "other.yaml")
    for extra in ([], ["--resume"]):
        one_line(*sweep(capsys, other, "--out", out, *extra), "another sweep spec")
    assert sweep(capsys, write_spec(tmp_path), "--out", out, "--resume")[0] == 0  # its own spec resumes


def test_filter_change_on_resume_re_marks_points(tmp_path, capsys):
    out = tmp_path / "out"
    assert sweep(capsys, write_spec(tmp_path), "--out", out)[0] == 0
    filtered = write_spec(tmp_path, {**SPEC, "filter": ["pe_array.rows > 8"]}, "f.yaml")
    assert sweep(capsys, filtered, "--out", out, "--resume")[0] == 0
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = sorted(db.execute("SELECT idx, status FROM points"))
    assert rows == [(0, "filtered"), (1, "ok")]


@pytest.mark.parametrize("make", ["file", "directory_db", "corrupt_db", "other_schema"])
def test_bad_out_is_one_line(tmp_path, capsys, make):
    out = tmp_path / "out"
    if make == "file":
        out.write_text("x")
    else:
        out.mkdir()
        db = out / "results.sqlite"
        if make == "directory_db":
            db.mkdir()
        elif make == "corrupt_db":
            db.write_bytes(os.urandom(4096))
        else:
            with sqlite3.connect(db) as c:
                c.execute("CREATE TABLE points (a, b)")
    one_line(*sweep(capsys, write_spec(tmp_path), "--out", out), str(out))


@pytest.mark.parametrize("change,needle", [
    ({"max_terms": "abc"}, "max_terms"),
    ({"axes": {"pe_array.bogus": [1]}}, "unknown key pe_array.bogus"),
    ({"axes": {"hw": ["vegeta-m4", "no-such-preset"]}}, "no-such-preset"),
    ({"workload": {"gemm": "0x1x1"}}, "0x1x1"),
    ({"quality": "nonsense"}, "nonsense"),
    ({"energy": "nope"}, "nope"),
    ({"tasd": "2:4+9:4"}, "9:4"),
    ({"axes": {"pe_array.rows": [0, -1]}}, "every point would fail"),
    ({"tasd": "1:8"}, "every point would fail"),
    ({"axes": {f"buffers.{b}.{k}": list(range(1, 20)) for b in ("weights", "inputs") for k in ("banks", "ports")}},
     "limit"),
])
def test_spec_refused_before_any_point_runs(tmp_path, capsys, change, needle):
    out = tmp_path / "out"
    one_line(*sweep(capsys, write_spec(tmp_path, {**SPEC, **change}), "--out", out), needle)
    assert not (out / "results.sqlite").exists()


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_the_sweep(tmp_path, sig):
    spec = write_spec(tmp_path, {**SPEC, "workload": {"gemm": "256x256x512"}, "axes": {"pe_array.rows": [4, 8, 16, 32]}})
    proc = subprocess.Popen([sys.executable, "-m", "tasdsim.simulator.cli", "sweep", spec, "--jobs", "2", "--out",
                             str(tmp_path / "out"), "--no-progress"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(_children(proc.pid)) < 2:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(sig)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.05)
    assert not any(_running(w) for w in workers)
