"""Timeline export: valid trace events, proper nesting per track, busy time equal to the counters."""
import json
from collections import defaultdict

import pytest

from tasdsim.simulator.cli import main
from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer
from tasdsim.simulator.timeline import UNITS, Timeline
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import gemm_layer


def run(hw, layers, timeline):
    return [simulate_layer(gemm_layer(shape), hw, series, False, timeline=timeline) for shape, series in layers]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    hw = load_hw("ttc-m8", ["metadata_decoder.latency=3", "accumulator.width=8"])
    tl = Timeline()
    stats = run(hw, [("96x64x256", LayerSeries(weights=parse_series("4:8+1:8"))),
                     ("64x40x128", LayerSeries(activations=parse_series("2:8+1:8")))], tl)
    path = tmp_path_factory.mktemp("tl") / "timeline.json"
    tl.write(str(path))
    return hw, tl, stats, json.loads(path.read_text())


def test_events_have_their_fields(recorded):
    _, _, _, doc = recorded
    events = doc["traceEvents"]
    assert events and doc["otherData"]["truncated"] is False
    for e in events:
        assert {"ph", "name", "pid"} <= set(e)
        if e["ph"] == "X":
            assert {"ts", "dur", "tid"} <= set(e) and e["dur"] > 0 and e["ts"] >= 0
        elif e["ph"] == "C":
            assert "ts" in e and isinstance(e["args"], dict) and e["args"]
        else:
            assert e["ph"] == "M" and e["name"] in ("process_name", "process_sort_index", "thread_name")
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == set(UNITS)


def test_tracks_nest(recorded):
    _, _, _, doc = recorded
    tracks = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            tracks[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in tracks.values():
        spans.sort()
        stack = []
        for start, end in spans:
            while stack and stack[-1] <= start + 1e-9:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, "events on one track overlap without nesting"
            stack.append(end)


def test_every_working_unit_has_events_and_busy_time_matches_counters(recorded):
    hw, tl, stats, doc = recorded
    pids_with_work = {e["pid"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert pids_with_work == set(range(1, len(UNITS) + 1)) - {UNITS.index(f"buffer {b}") + 1
                                                               for b in ("weights", "inputs", "outputs")}
    counters = {"PE array": "pe_array", "DMA": "dma", "metadata decoder": "metadata_decoder",
                "accumulator": "accumulator", "TASD units": "tasd_units"}
    for unit, key in counters.items():
        assert tl.busy[unit] == sum(s.actions[key]["busy_cycles"] for s in stats) > 0, unit
    assert tl.busy["layers"] == sum(s.cycles for s in stats)
    # DRAM: its counter is the union of the transfers in service, per layer.
    union = 0
    pid = UNITS.index("DRAM") + 1
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == pid)
    end = -1.0
    for a, b in spans:
        union += max(0.0, b - max(a, end))
        end = max(end, b)
    assert union * hw.clock_ghz * 1000 == pytest.approx(sum(s.actions["dram"]["busy_cycles"] for s in stats))


def test_counters_for_buffers_and_bandwidth(recorded):
    _, _, _, doc = recorded
    counters = {e["name"] for e in doc["traceEvents"] if e["ph"] == "C"}
    assert {"occupancy (bytes)", "DRAM bandwidth (GB/s)"} <= counters


def test_size_is_bounded_and_says_so(tmp_path):
    hw = load_hw("vegeta-m4")
    tl = Timeline(max_events=50)
    run(hw, [("128x128x512", LayerSeries(weights=parse_series("2:4+1:4")))], tl)
    doc = tl.document()
    assert tl.truncated and doc["otherData"]["truncated"] is True
    assert sum(1 for e in doc["traceEvents"] if e["ph"] == "X") == 50


def test_timeline_does_not_change_results():
    hw = load_hw("vegeta-m4")
    layer = [("100x70x300", LayerSeries(weights=parse_series("2:4+1:4")))]
    assert [s.as_dict() for s in run(hw, layer, Timeline())] == [s.as_dict() for s in run(hw, layer, None)]


def test_cli_timeline_and_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    timeline, out = tmp_path / "t.json", tmp_path / "out"
    assert main(["simulate", "--hw", "ttc-m8", "--workload", "resnet50", "--layers", "conv1,layer1.0.conv2,fc",
                 "--tasd", "auto", "--timeline", str(timeline), "--timeline-layers", "layer1.0.conv2",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "timeline written to" in text and "layers layer1.0.conv2 only" in text
    doc = json.loads(timeline.read_text())
    layers = [e["name"] for e in doc["traceEvents"] if e["ph"] == "X" and e["pid"] == UNITS.index("layers") + 1]
    assert layers == ["layer1.0.conv2"]
    for name in ("cycles_breakdown.png", "utilization.png", "roofline.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_timeline_truncation_is_reported(tmp_path, capsys):
    timeline = tmp_path / "t.json"
    assert main(["simulate", "--hw", "vegeta-m4", "--gemm", "256x256x256", "--timeline", str(timeline),
                 "--timeline-max-events", "10"]) == 0
    assert "truncated at --timeline-max-events 10" in capsys.readouterr().out
    assert json.loads(timeline.read_text())["otherData"]["truncated"] is True
