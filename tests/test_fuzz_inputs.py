"""Fuzzing the loaders of every input file: arbitrary text and mutations of valid files either load
or raise TasdsimError (the CLI's one line), never anything else, and within a bound."""
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tasdsim.common import TasdsimError
from tasdsim.simulator.cli import main
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import simulate_trace
from tasdsim.simulator.sweep_check import check_spec
from tasdsim.simulator.sweep_spec import load_spec
from tasdsim.traces.workloads import load_workload

FUZZ = settings(max_examples=20, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
HW = """name: fuzz
clock_ghz: 1.0
word_bytes: 1
psum_bytes: 4
pe_array: {rows: 8, cols: 8, dataflow: ws, patterns: ["1:4", "2:4"]}
metadata_decoder: {latency: 1}
tasd_units: {count: 2}
accumulator: {width: 8, latency: 1}
buffers:
  weights: {size_kib: 16, banks: 4, bank_bytes: 8, ports: 1}
  inputs: {size_kib: 16, banks: 4, bank_bytes: 8, ports: 1}
  outputs: {size_kib: 16, banks: 4, bank_bytes: 8, ports: 2}
dram: {preset: ddr4-3200, channels: 1}
"""
WORKLOAD = """parameters: {batch: 1, seq_len: 8}
layers:
  - {name: conv, kind: conv, in_channels: 4, in_size: 6, out_channels: 8, kernel: 3, stride: 1, padding: 1}
  - {name: fc, kind: linear, in_features: 16, out_features: 8, tokens: seq_len}
  - name: "block.{i}"
    repeat: 2
    layers: [{name: scores, kind: matmul, m: seq_len, n: seq_len, k: 4, groups: 2}]
"""
SWEEP = """hw: vegeta-m4
workload: {gemm: 16x8x32}
tasd: 2:4
max_terms: 2
axes:
  pe_array.rows: [8, 16]
  tasd: [none, 2:4+1:4]
zip:
  buffers.weights.size_kib: [64, 128]
filter:
  - pe_array.rows >= 8
"""
PIECES = ["0", "-1", "1e5", "1.0e-300", "9" * 30, "x", ":", "[", "]", "{", "}", "\n", " ", "- ", "~", "&a", "*a",
          "!!binary", "\t", "\x00", "é", '"', "'", "#", ",", "=", "deps=", "free=weights:0", "rows=", "2:4", "LOAD"]


@st.composite
def mutated(draw, text):
    """`text` with a few random edits: deletions, insertions of hostile pieces, line swaps, repeats."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(1, 4))):
        kind = rng.randrange(4)
        i = rng.randrange(len(text) + 1)
        if kind == 0:
            text = text[:i] + text[i + rng.randrange(1, 20):]
        elif kind == 1:
            text = text[:i] + rng.choice(PIECES) + text[i:]
        elif kind == 2:
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
                lines[a], lines[b] = lines[b], lines[a]
                text = "".join(lines)
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                text += rng.choice(lines)
    return text


def _loads_or_one_error(load, path, text):
    path.write_bytes(text.encode("utf-8", errors="replace"))
    try:
        load(str(path))
    except TasdsimError as err:
        assert "\n" not in str(err).strip()


@pytest.fixture(scope="module")
def trace_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("fz") / "t.trace"
    assert main(["trace", "--hw", "vegeta-m4", "--gemm", "24x40x48", "--tasd", "2:4+1:4", "-o", str(path)]) == 0
    return path.read_text()


@FUZZ
@given(st.text(max_size=400))
def test_any_text_as_every_input(tmp_path, text):
    for load, name in ((load_hw, "h.yaml"), (load_workload, "w.yaml"), (load_spec, "s.yaml"),
                       (lambda p: simulate_trace(p, False), "t.trace")):
        _loads_or_one_error(load, tmp_path / name, text)


@FUZZ
@given(mutated(HW))
def test_mutated_hardware_config(tmp_path, text):
    _loads_or_one_error(load_hw, tmp_path / "h.yaml", text)


@FUZZ
@given(mutated(WORKLOAD))
def test_mutated_workload(tmp_path, text):
    _loads_or_one_error(load_workload, tmp_path / "w.yaml", text)


@FUZZ
@given(mutated(SWEEP))
def test_mutated_sweep_spec(tmp_path, text):
    _loads_or_one_error(lambda p: check_spec(load_spec(p), p), tmp_path / "s.yaml", text)


@FUZZ
@given(data=st.data())
def test_mutated_trace(tmp_path, trace_text, data):
    _loads_or_one_error(lambda p: simulate_trace(p, False), tmp_path / "t.trace", data.draw(mutated(trace_text)))
