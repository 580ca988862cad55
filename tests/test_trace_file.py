"""`.trace` files: `tasdsim trace` output, byte-exact write-read-write, replay equal to direct simulation,
and bad traces rejected with one line naming the file and line (exit 2, no traceback)."""
import io
import json
import zlib

import pytest

from tasdsim.simulator.cli import main
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer, simulate_trace
from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.trace_file import TraceReader, write_trace
from tasdsim.traces.workloads import gemm_layer
from cli_helpers import cli

GEMM = "200x100x300"
HEADER_LINES = 6  # magic + hardware, layer, series, tiling, count; instruction id i is on line i + 7


def make_trace(capsys, path, *extra, hw="vegeta-m4", gemm=GEMM, tasd="2:4+1:4"):
    code, out, err = cli(capsys, "trace", "--hw", hw, "--gemm", gemm, "--tasd", tasd, "-o", path, *extra)
    assert code == 0, err
    return path


@pytest.fixture(scope="module")
def vegeta_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("tr") / "vegeta.trace"
    assert main(["trace", "--hw", "vegeta-m4", "--gemm", GEMM, "--tasd", "2:4+1:4", "-o", str(path)]) == 0
    return path


def rewrite(path) -> bytes:
    with TraceReader(str(path)) as reader:
        buf = io.StringIO()
        write_trace(buf, reader.header, reader.instructions())
    return buf.getvalue().encode("utf-8")


# ----------------------------------------------------------------------------- round trip


def test_vegeta_trace_header_and_roundtrip(vegeta_trace):
    data = vegeta_trace.read_bytes()
    lines = data.decode().splitlines()
    assert lines[0] == "# tasdsim-trace 2"
    assert [l.split(":")[0] for l in lines[1:6]] == ["# hardware", "# layer", "# series", "# tiling", "# count"]
    assert rewrite(vegeta_trace) == data
    with TraceReader(str(vegeta_trace)) as reader:
        assert reader.header.series["weights"] == "2:4+1:4"
        assert reader.header.layer["m"] == 200 and reader.header.layer["n"] == 100 and reader.header.layer["k"] == 300
        instrs = list(reader.instructions())
    assert [i.id for i in instrs] == list(range(len(instrs)))
    ops = {i.op for i in instrs}
    assert {"LOAD", "COMPUTE", "ACC", "STORE"} <= ops
    computes = [i for i in instrs if i.op == "COMPUTE"]
    assert len(computes) == reader.header.tiling["folds"]
    assert {i["pattern"] for i in computes} == {"2:4", "1:4"}


@pytest.mark.parametrize("hw,tasd,extra", [
    ("dense-ws-32x32", "none", ["--set", "pe_array.dataflow=os"]),
    ("dense-ws-32x32", "none", ["--memory", "ideal"]),
    ("stc-2of4", "2:4", ["--set", "pe_array.rows=8", "--set", "pe_array.cols=16"]),
    ("ttc-m8", "4:8+1:8", ["--operand", "activations"]),
])
def test_roundtrip_other_traces(tmp_path, capsys, hw, tasd, extra):
    path = make_trace(capsys, str(tmp_path / "t.trace"), *extra, hw=hw, gemm="70x45x90", tasd=tasd)
    data = open(path, "rb").read()
    assert rewrite(path) == data


# ----------------------------------------------------------------------------- replay


def _numbers(layer: dict) -> dict:
    return {"cycles": layer["cycles"], "compute_cycles": layer["compute_cycles"],
            "stalls": sorted(layer["stall_cycles"].items()), "read": layer["dram_bytes"]["read"],
            "write": layer["dram_bytes"]["write"], "macs_useful": layer["macs_useful"], "folds": layer["folds"]}


def test_replay_equals_direct(vegeta_trace, capsys):
    code, out, err = cli(capsys, "simulate", "--trace", vegeta_trace, "--json")
    assert code == 0, err
    replay = json.loads(out)
    code, out, err = cli(capsys, "simulate", "--hw", "vegeta-m4", "--gemm", GEMM, "--tasd", "2:4+1:4", "--json")
    assert code == 0, err
    direct = json.loads(out)
    assert _numbers(replay["layers"][0]) == _numbers(direct["layers"][0])
    assert replay["total"]["cycles"] == direct["total"]["cycles"]
    assert replay["hardware"] == direct["hardware"]


def test_replay_library_equals_simulate_layer(vegeta_trace):
    hw, st = simulate_trace(str(vegeta_trace), ideal_memory=False)
    direct = simulate_layer(gemm_layer(GEMM), load_hw("vegeta-m4", []), LayerSeries(weights=parse_series("2:4+1:4")),
                            ideal_memory=False)
    assert hw.name == "vegeta-m4"
    a, b = st.as_dict(), direct.as_dict()
    a.pop("tiling"), b.pop("tiling")
    assert a == b


def test_replay_ideal_trace_matches_formula(tmp_path, capsys):
    path = make_trace(capsys, str(tmp_path / "i.trace"), "--memory", "ideal", "--set", "metadata_decoder.latency=0",
                      hw="dense-ws-32x32", gemm="33x65x97", tasd="none")
    code, out, err = cli(capsys, "simulate", "--trace", path, "--memory", "ideal", "--json")
    assert code == 0, err
    layer = json.loads(out)["layers"][0]
    assert layer["cycles"] == layer["compute_cycles"] == 4 * 3 * (64 + 32 + 33 - 2)


# ----------------------------------------------------------------------------- bad traces


def _edit(src, dst, line_no: int, fn) -> str:
    lines = src.read_text().splitlines(keepends=True)
    lines[line_no - 1] = fn(lines[line_no - 1])
    dst.write_text("".join(lines))
    return str(dst)


def _sub(old, new):
    def fn(line):
        assert old in line, (old, line)
        return line.replace(old, new, 1)
    return fn


def _drop_field(key):
    def fn(line):
        toks = line.split()
        kept = [t for t in toks if not t.startswith(key + "=")]
        assert len(kept) == len(toks) - 1
        return " ".join(kept) + "\n"
    return fn


def _first_line_with(path, op) -> int:
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if no > HEADER_LINES and line.split()[1] == op:
            return no
    raise AssertionError(op)


BAD = {
    "magic": (1, lambda l: "# not-a-trace 1\n"),
    "version": (1, lambda l: "# tasdsim-trace 1\n"),
    "version_text": (1, lambda l: "# tasdsim-trace one\n"),
    "json": (3, lambda l: "# layer: {\"m\": 2,\n"),
    "json_not_object": (4, lambda l: "# series: [1, 2]\n"),
    "header_key": (2, lambda l: l.replace("# hardware:", "# hardwar:")),
    "opcode": (HEADER_LINES + 1, _sub(" LOAD ", " FROB ")),
    "missing_field": (HEADER_LINES + 1, _drop_field("addr")),
    "non_integer": (HEADER_LINES + 1, _sub("bytes=", "bytes=1x")),
    "negative": (HEADER_LINES + 1, _sub("bytes=", "bytes=-")),
    "unknown_field": (HEADER_LINES + 1, lambda l: l.rstrip("\n") + " color=3\n"),
    "dep_later": (HEADER_LINES + 2, lambda l: l.rstrip("\n") + " deps=5\n"),
    "dep_self": (HEADER_LINES + 2, lambda l: l.rstrip("\n") + " deps=1\n"),
    "id_sequence": (HEADER_LINES + 2, _sub("1 ", "7 ")),
    "id_not_int": (HEADER_LINES + 2, _sub("1 ", "x ")),
    "unknown_buffer": (HEADER_LINES + 1, _sub("buf=inputs", "buf=scratch")),
    "bad_free": (HEADER_LINES + 3, _sub("free=weights:0", "free=scratch:0")),
    "empty_line": (HEADER_LINES + 2, lambda l: "\n"),
    "too_short": (HEADER_LINES + 2, lambda l: "1\n"),
    "no_equals": (HEADER_LINES + 1, lambda l: l.rstrip("\n") + " dangling\n"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_trace_cli(vegeta_trace, tmp_path, capsys, case):
    line_no, fn = BAD[case]
    path = _edit(vegeta_trace, tmp_path / f"{case}.trace", line_no, fn)
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert path in err
    assert f":{line_no}:" in err, err
    # the library raises the same error
    with pytest.raises(TasdsimError):
        simulate_trace(path, ideal_memory=False)


def test_unsupported_pattern_in_compute(vegeta_trace, tmp_path, capsys):
    line_no = _first_line_with(vegeta_trace, "COMPUTE")
    path = _edit(vegeta_trace, tmp_path / "p38.trace", line_no, _sub("pattern=2:4", "pattern=3:8"))
    ins_id = line_no - HEADER_LINES - 1
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert path in err and "3:8" in err
    assert f":{line_no}:" in err or f"instruction {ins_id}" in err or f"COMPUTE {ins_id}" in err, err


@pytest.mark.parametrize("bad", ["banana", "9:4"])
def test_bad_pattern_text_in_compute(vegeta_trace, tmp_path, capsys, bad):
    """A malformed pattern must be reported against the trace file like every other field error."""
    line_no = _first_line_with(vegeta_trace, "COMPUTE")
    path = _edit(vegeta_trace, tmp_path / "pxx.trace", line_no, _sub("pattern=2:4", f"pattern={bad}"))
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert path in err


@pytest.mark.parametrize("case,fn", [("slot", _sub("slot=0", "slot=5")),
                                     ("bytes", _sub("bytes=", "bytes=999999999"))])
def test_load_that_does_not_fit_names_file(vegeta_trace, tmp_path, capsys, case, fn):
    """A LOAD into a missing slot or larger than a slot: one line naming the file and the instruction."""
    path = _edit(vegeta_trace, tmp_path / f"{case}.trace", HEADER_LINES + 1, fn)
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "LOAD 0" in err, err
    assert path in err, err


@pytest.mark.parametrize("content", ["", "# tasdsim-trace 2\n", "\x00\x01binary"])
def test_truncated_or_empty_trace(tmp_path, capsys, content):
    path = tmp_path / "short.trace"
    path.write_text(content)
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert str(path) in err


def test_bad_header_hardware(vegeta_trace, tmp_path, capsys):
    path = _edit(vegeta_trace, tmp_path / "hw.trace", 2, lambda l: '# hardware: {"name": "x"}\n')
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert path in err


def test_bad_header_layer(vegeta_trace, tmp_path, capsys):
    path = _edit(vegeta_trace, tmp_path / "ly.trace", 3, lambda l: '# layer: {"m": 1, "bogus": 2}\n')
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert path in err


def test_trace_cli_errors(tmp_path, capsys):
    code, _, err = cli(capsys, "trace", "--hw", "vegeta-m4", "--gemm", "8x8x8", "--tasd", "3:8", "-o",
                       tmp_path / "x.trace")
    assert code == 2 and "3:8" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(capsys, "trace", "--hw", "vegeta-m4", "--workload", "resnet50", "-o", tmp_path / "y.trace")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err and "--layer NAME" in err
    code, _, err = cli(capsys, "trace", "--hw", "vegeta-m4", "--gemm", "8x8x8", "-o", tmp_path / "nodir" / "z.trace")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_trace_workload_layer(tmp_path, capsys):
    code, _, err = cli(capsys, "trace", "--hw", "vegeta-m4", "--workload", "resnet50", "--layer", "fc",
                       "--batch", "1", "--tasd", "2:4", "-o", tmp_path / "fc.trace")
    assert code == 0, err
    with TraceReader(str(tmp_path / "fc.trace")) as reader:
        assert reader.header.layer["name"] == "fc"
    assert rewrite(tmp_path / "fc.trace") == (tmp_path / "fc.trace").read_bytes()


# ----------------------------------------------------------------------------- whole and possible


def _cut(src, dst, keep):
    """The first `keep` lines of src."""
    dst.write_text("".join(src.read_text().splitlines(keepends=True)[:keep]))
    return str(dst)


@pytest.mark.parametrize("keep,needle", [(HEADER_LINES, "ends after 0 of"), (HEADER_LINES + 60, "ends after 60 of")])
def test_trace_cut_at_a_line_boundary_is_an_error(vegeta_trace, tmp_path, capsys, keep, needle):
    path = _cut(vegeta_trace, tmp_path / "cut.trace", keep)
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and path in err and needle in err, err


def test_trace_with_an_extra_line_is_an_error(vegeta_trace, tmp_path, capsys):
    lines = vegeta_trace.read_text().splitlines(keepends=True)
    path = tmp_path / "long.trace"
    path.write_text("".join(lines) + lines[-1].replace(lines[-1].split()[0], str(len(lines) - HEADER_LINES), 1))
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and f"{path}:{len(lines) + 1}: more instructions than" in err, err


def test_trace_edited_after_writing_is_an_error(vegeta_trace, tmp_path, capsys):
    """A change no check catches on its own line (a later address) still fails the checksum."""
    path = _edit(vegeta_trace, tmp_path / "crc.trace", HEADER_LINES + 1, _sub("addr=", "addr=1"))
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and "CRC-32" in err and len(err.strip().splitlines()) == 1, err


CHECKED = {  # an edit the count line would allow (count fixed up), the line it is on, what the error says
    "rows_beyond_array": ("COMPUTE", _sub("k_rows=", "k_rows=6"), "k_rows="),
    "useful_beyond_macs": ("COMPUTE", _sub("useful=", "useful=9"), "useful="),
    "macs_not_product": ("COMPUTE", _sub("macs=", "macs=1"), "macs="),
    "pattern_not_supported": ("COMPUTE", _sub("pattern=2:4", "pattern=2:8"), "2:8"),
    "never_loaded": ("COMPUTE", _sub(" w=0", " w=1"), "holds no load"),
    "freed_twice": ("COMPUTE", _sub("free=weights:0", "free=weights:0,weights:0"), "freed twice"),
    "store_beyond_slot": ("STORE", _sub("bytes=", "bytes=99999999"), "do not fit"),
    "acc_slot_missing": ("ACC", _sub("slot=", "slot=9"), "not 9"),
    "frees_another_buffer": ("LOAD", lambda line: line.rstrip("\n") + " free=outputs:0\n", "its own buffer"),
}


def _recount(path):
    """Rewrite the count line so that only the per-instruction checks can catch an edit."""
    lines = path.read_text().splitlines(keepends=True)
    body = lines[HEADER_LINES:]
    crc = 0
    for line in body:
        crc = zlib.crc32(line.encode(), crc)
    lines[HEADER_LINES - 1] = "# count: " + json.dumps({"crc32": f"{crc:08x}", "instructions": len(body)}) + "\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize("case", sorted(CHECKED))
def test_instruction_checked_against_the_hardware(vegeta_trace, tmp_path, capsys, case):
    op, fn, needle = CHECKED[case]
    line_no = _first_line_with(vegeta_trace, op)
    path = tmp_path / f"{case}.trace"
    _edit(vegeta_trace, path, line_no, fn)
    _recount(path)
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{path}:{line_no}: {op} " in err and needle in err, err


def test_header_buffer_plan_beyond_the_buffers_is_an_error(vegeta_trace, tmp_path, capsys):
    lines = vegeta_trace.read_text().splitlines(keepends=True)
    tiling = next(i for i, line in enumerate(lines) if line.startswith("# tiling:"))
    plan = json.loads(lines[tiling][len("# tiling:"):])
    plan["buffers"]["inputs"]["slots"] = 1 << 20
    lines[tiling] = "# tiling: " + json.dumps(plan) + "\n"
    path = tmp_path / "plan.trace"
    path.write_text("".join(lines))
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(path) in err and "buffers.inputs" in err and "do not fit" in err, err


def test_bad_header_series(vegeta_trace, tmp_path, capsys):
    path = _edit(vegeta_trace, tmp_path / "se.trace", 4, lambda l: '# series: {"weights": 5}\n')
    code, _, err = cli(capsys, "simulate", "--trace", path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "header series" in err, err
