"""Hardware configs: presets load, round-trip, and every bad input names file, YAML path and reason."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tasdsim.simulator.config import (
    BufferConfig,
    HwConfig,
    list_dram_presets,
    list_hw_presets,
    load_hw,
)
from tasdsim.common import TasdsimError
from tasdsim.traces.patterns import DENSE, Pattern

PRESETS = ["dense-ws-32x32", "stc-2of4", "ttc-m8", "vegeta-m4"]


def _raw(preset: str = "vegeta-m4") -> dict:
    return load_hw(preset).as_dict()


def _write(tmp_path: Path, data, name: str = "hw.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _error(tmp_path: Path, data, overrides=()) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(TasdsimError) as info:
        load_hw(str(path), overrides)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


# ----------------------------------------------------------------------------- presets


def test_presets_are_listed():
    assert list_hw_presets() == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_loads(preset):
    hw = load_hw(preset)
    assert isinstance(hw, HwConfig)
    assert hw.name == preset
    assert (hw.pe_array.rows, hw.pe_array.cols, hw.pe_array.dataflow) == (32, 32, "ws")
    assert hw.dram.preset in list_dram_presets()
    assert hw.supports(DENSE)


def test_preset_contents():
    dense = load_hw("dense-ws-32x32")
    assert dense.pe_array.patterns == (DENSE,)
    # SCALE-Sim's configs/scale.cfg: IfmapSramSzkB = FilterSramSzkB = OfmapSramSzkB = 64
    assert {b.size_kib for b in vars(dense.buffers).values()} == {64}
    assert (dense.dram.preset, dense.dram.channels) == ("ddr4-3200", 1)
    assert load_hw("stc-2of4").pe_array.patterns == (Pattern(2, 4),)
    assert load_hw("vegeta-m4").pe_array.patterns == (Pattern(1, 4), Pattern(2, 4), Pattern(4, 4))
    ttc = load_hw("ttc-m8")
    assert ttc.pe_array.patterns == (Pattern(1, 8), Pattern(2, 8), Pattern(4, 8))
    assert ttc.tasd_units.count == 16
    assert all(load_hw(p).tasd_units.count == 0 for p in PRESETS if p != "ttc-m8")


@pytest.mark.parametrize("preset", PRESETS)
def test_as_dict_round_trips(preset, tmp_path):
    hw = load_hw(preset)
    data = hw.as_dict()
    assert isinstance(data["pe_array"]["patterns"][0], str)
    path = _write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    assert load_hw(str(path)) == hw
    assert load_hw(str(path)).as_dict() == data


def test_round_trip_with_overrides(tmp_path):
    hw = load_hw("ttc-m8", ["pe_array.patterns=[dense, 2:8]", "clock_ghz=1.5", "dram.preset=hbm2"])
    path = _write(tmp_path, hw.as_dict())
    assert load_hw(str(path)) == hw
    assert hw.as_dict()["pe_array"]["patterns"] == ["dense", "2:8"]


def test_buffer_properties():
    b = BufferConfig(size_kib=64, banks=4, bank_bytes=8, ports=2)
    assert b.size_bytes == 65536
    assert b.bytes_per_cycle == 64


def test_supports():
    vegeta = load_hw("vegeta-m4")
    assert vegeta.supports(Pattern(1, 4)) and vegeta.supports(Pattern(2, 4))
    assert not vegeta.supports(Pattern(1, 8))
    assert vegeta.supports(DENSE)
    dense = load_hw("dense-ws-32x32")
    assert dense.supports(DENSE)
    assert not dense.supports(Pattern(2, 4))
    assert dense.supports(Pattern(4, 4))  # keeps every slot: runs as dense
    stc = load_hw("stc-2of4")
    assert stc.supports(Pattern(2, 4)) and not stc.supports(Pattern(1, 4))


def test_unknown_preset_lists_presets():
    with pytest.raises(TasdsimError, match="unknown hardware preset 'nope'.*vegeta-m4"):
        load_hw("nope")


def test_missing_file():
    with pytest.raises(TasdsimError, match="missing.yaml: no such hardware preset file"):
        load_hw("missing.yaml")


def test_path_with_slash(tmp_path):
    path = _write(tmp_path, _raw(), name="my-hw")  # no .yaml suffix: the "/" makes it a path
    assert load_hw(str(path)).name == "vegeta-m4"


def test_unquoted_patterns_stay_patterns(tmp_path):
    # YAML 1.1 reads unquoted 1:4 as the base-60 integer 64; the loader keeps it a pattern.
    text = yaml.safe_dump(_raw(), sort_keys=False).replace("- '1:4'", "- 1:4").replace("- '4:4'", "- 4:4")
    assert "- 1:4" in text
    assert load_hw(str(_write(tmp_path, text))) == load_hw("vegeta-m4")


# ----------------------------------------------------------------------------- file errors


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("pe_array.rows", 0, "pe_array.rows: must be an integer from 1 to 4,096, got 0"),
        ("pe_array.cols", True, "pe_array.cols: must be an integer from 1 to 4,096, got True"),
        ("pe_array.cols", 2.5, "pe_array.cols: must be an integer from 1 to 4,096, got 2.5"),
        ("pe_array.dataflow", "xs", "pe_array.dataflow: must be one of ws, os, got 'xs'"),
        ("pe_array.patterns", ["1:4", "2:4", "3:2"], 'pe_array.patterns[2]: "3:2": N must be between 1 and M'),
        ("pe_array.patterns", ["3:4"], 'pe_array.patterns[0]: "3:4" is not supported: N must divide M'),
        ("pe_array.patterns", ["2:4", "x"], 'pe_array.patterns[1]: "x": expected N:M'),
        ("pe_array.patterns", ["2:4", 7], "pe_array.patterns[1]: must be a string"),
        ("pe_array.patterns", ["2:4", "2:4"], 'pe_array.patterns[1]: "2:4" is listed twice'),
        ("pe_array.patterns", [], "pe_array.patterns: must be a non-empty list"),
        ("pe_array.patterns", "2:4", "pe_array.patterns: must be a non-empty list"),
        ("clock_ghz", 0, "clock_ghz: must be a number from 0.001 to 1000 (GHz), got 0"),
        ("clock_ghz", True, "clock_ghz: must be a number from 0.001 to 1000 (GHz), got True"),
        ("clock_ghz", "1GHz", "clock_ghz: must be a number from 0.001 to 1000 (GHz), got '1GHz'"),
        ("word_bytes", 3, "word_bytes: must be one of 1, 2, 4, got 3"),
        ("psum_bytes", 0, "psum_bytes: must be an integer from 1 to 8, got 0"),
        ("metadata_decoder.latency", -1, "metadata_decoder.latency: must be an integer from 0 to 1,000,000, got -1"),
        ("tasd_units.count", -2, "tasd_units.count: must be an integer from 0 to 4,096, got -2"),
        ("accumulator.width", 0, "accumulator.width: must be an integer from 1 to 65,536, got 0"),
        ("buffers.inputs.ports", 0, "buffers.inputs.ports: must be an integer from 1 to 16, got 0"),
        ("buffers.weights", 5, "buffers.weights: must be a mapping with keys size_kib, banks, bank_bytes, ports"),
        ("dram.preset", "ddr5", "dram.preset: must be one of ddr4-3200, ddr4-3200-bg, hbm2, got 'ddr5'"),
        ("dram.channels", 0, "dram.channels: must be an integer from 1 to 64, got 0"),
        ("name", "", "name: must be a non-empty string"),
    ],
)
def test_bad_value(tmp_path, path, value, expected):
    raw = _raw()
    *parents, leaf = path.split(".")
    node = raw
    for part in parents:
        node = node[part]
    node[leaf] = value
    assert expected in _error(tmp_path, raw)


def test_psum_narrower_than_word(tmp_path):
    raw = _raw()
    raw["word_bytes"], raw["psum_bytes"] = 2, 1
    assert "psum_bytes: must be at least word_bytes (2), got 1" in _error(tmp_path, raw)


def test_buffer_size_not_whole_rows(tmp_path):
    raw = _raw()
    raw["buffers"]["outputs"]["banks"] = 3
    assert "buffers.outputs: size_kib 256 (262144 bytes) is not a whole number" in _error(tmp_path, raw)


@pytest.mark.parametrize(
    "parent, key, expected",
    [
        ("buffers.weights", "size_kib", "buffers.weights: missing required key size_kib"),
        ("pe_array", "patterns", "pe_array: missing required key patterns"),
        ("", "clock_ghz", "missing required key clock_ghz"),
        ("", "dram", "missing required key dram"),
    ],
)
def test_missing_key(tmp_path, parent, key, expected):
    raw = _raw()
    node = raw
    for part in filter(None, parent.split(".")):
        node = node[part]
    del node[key]
    assert expected in _error(tmp_path, raw)


@pytest.mark.parametrize(
    "parent, key, expected",
    [
        ("pe_array", "colz", "unknown key pe_array.colz (pe_array keys: rows, cols, dataflow, patterns)"),
        ("buffers.inputs", "latency", "unknown key buffers.inputs.latency"),
        ("", "sparsity", "unknown key sparsity (top-level keys: name, clock_ghz"),
    ],
)
def test_unknown_key(tmp_path, parent, key, expected):
    raw = _raw()
    node = raw
    for part in filter(None, parent.split(".")):
        node = node[part]
    node[key] = 1
    assert expected in _error(tmp_path, raw)


def test_preset_errors_name_the_preset_file(monkeypatch, tmp_path):
    from tasdsim import common

    raw = _raw()
    raw["pe_array"]["rows"] = 0
    fake = _write(tmp_path, raw, name="vegeta-m4.yaml")
    monkeypatch.setattr(common, "bundled_files", lambda folder: {"vegeta-m4": fake} if folder == "hw"
                        else {"ddr4-3200": fake, "hbm2": fake})
    with pytest.raises(TasdsimError) as info:
        load_hw("vegeta-m4")
    assert str(info.value) == "hw/vegeta-m4.yaml: pe_array.rows: must be an integer from 1 to 4,096, got 0"


def test_unparsable_yaml_names_line(tmp_path):
    text = "name: x\nclock_ghz: 1.0\npe_array: {rows: 32, cols: [\n"
    message = _error(tmp_path, text)
    assert "line 4" in message and "not valid YAML" in message


def test_duplicate_key_is_an_error(tmp_path):
    text = yaml.safe_dump(_raw(), sort_keys=False) + "clock_ghz: 2.0\n"
    message = _error(tmp_path, text)
    assert "duplicate key 'clock_ghz'" in message and "line" in message


@pytest.mark.parametrize("text, kind", [("- 1\n- 2\n", "a list"), ("just text\n", "a string")])
def test_top_level_must_be_mapping(tmp_path, text, kind):
    assert f"top level must be a mapping of hardware config keys, got {kind}" in _error(tmp_path, text)


def test_empty_file(tmp_path):
    assert "empty file" in _error(tmp_path, "")


# ----------------------------------------------------------------------------- overrides


def test_overrides_apply():
    hw = load_hw(
        "vegeta-m4",
        [
            "pe_array.rows=16",
            "pe_array.patterns=[1:4,2:4]",
            "dram.preset=hbm2",
            "dram.channels=8",
            "clock_ghz=0.8",
            "buffers.weights.size_kib=128",
            "tasd_units.count=4",
            "name=vegeta-small",
        ],
    )
    assert hw.pe_array.rows == 16 and hw.pe_array.cols == 32
    assert hw.pe_array.patterns == (Pattern(1, 4), Pattern(2, 4))
    assert (hw.dram.preset, hw.dram.channels) == ("hbm2", 8)
    assert hw.clock_ghz == 0.8
    assert hw.buffers.weights.size_kib == 128
    assert hw.tasd_units.count == 4
    assert hw.name == "vegeta-small"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1:4,2:4", (Pattern(1, 4), Pattern(2, 4))),
        ("[2:4, 1:4]", (Pattern(1, 4), Pattern(2, 4))),
        ('["4:8"]', (Pattern(4, 8),)),
        ("dense", (DENSE,)),
        ("2:4", (Pattern(2, 4),)),
    ],
)
def test_pattern_override_forms(text, expected):
    assert load_hw("stc-2of4", [f"pe_array.patterns={text}"]).pe_array.patterns == expected


def test_later_override_wins():
    assert load_hw("vegeta-m4", ["pe_array.rows=16", "pe_array.rows=8"]).pe_array.rows == 8


def test_override_whole_mapping():
    hw = load_hw("vegeta-m4", ["dram={preset: hbm2, channels: 2}"])
    assert (hw.dram.preset, hw.dram.channels) == ("hbm2", 2)


def test_overrides_do_not_touch_the_preset():
    before = load_hw("vegeta-m4")
    load_hw("vegeta-m4", ["pe_array.rows=8"])
    assert load_hw("vegeta-m4") == before


@pytest.mark.parametrize(
    "item, expected",
    [
        ("pe_array.rowz=16", "--set pe_array.rowz=16: unknown key pe_array.rowz (pe_array keys: rows, cols"),
        ("pe_array.rows.x=1", "--set pe_array.rows.x=1: unknown key pe_array.rows.x (pe_array.rows has no sub-keys)"),
        ("bogus=1", "--set bogus=1: unknown key bogus (top-level keys:"),
        ("pe_array.rows", "--set pe_array.rows: expected KEY=VALUE"),
        ("=5", "--set =5: expected KEY=VALUE"),
        ("pe_array.patterns=[1:4", "--set pe_array.patterns=[1:4: line 1, column 5: not valid YAML"),
    ],
)
def test_bad_override_key(item, expected):
    with pytest.raises(TasdsimError) as info:
        load_hw("vegeta-m4", [item])
    assert str(info.value).startswith(expected), str(info.value)


@pytest.mark.parametrize(
    "item, expected",
    [
        ("pe_array.rows=0", "hw/vegeta-m4.yaml with --set pe_array.rows=0: pe_array.rows: must be an integer from 1 to 4,096, got 0"),
        ("pe_array.rows=true", "--set pe_array.rows=true: pe_array.rows: must be an integer from 1 to 4,096, got True"),
        ("pe_array.dataflow=is", "--set pe_array.dataflow=is: pe_array.dataflow: must be one of ws, os, got 'is'"),
        ("pe_array.patterns=[1:4,3:2]", '--set pe_array.patterns=[1:4,3:2]: pe_array.patterns[1]: "3:2": N must be between 1 and M'),
        ("pe_array.patterns=1:4,,2:4", "--set pe_array.patterns=1:4,,2:4: pe_array.patterns[1]: empty pattern"),
        ("dram.preset=ddr5", "--set dram.preset=ddr5: dram.preset: must be one of ddr4-3200, ddr4-3200-bg, hbm2, got 'ddr5'"),
        ("dram.preset=", "--set dram.preset=: dram.preset: must be one of ddr4-3200, ddr4-3200-bg, hbm2, got None"),
        ("clock_ghz=-1", "--set clock_ghz=-1: clock_ghz: must be a number from 0.001 to 1000 (GHz), got -1"),
        ("buffers.weights.banks=3", "--set buffers.weights.banks=3: buffers.weights: size_kib 256"),
        ("word_bytes=4", "--set word_bytes=4: psum_bytes: must be at least word_bytes (4)"),
        ("dram={preset: hbm2}", "--set dram={preset: hbm2}: dram: missing required key channels"),
    ],
)
def test_bad_override_value(item, expected):
    if item == "word_bytes=4":
        overrides = ["psum_bytes=2", item]
    else:
        overrides = [item]
    with pytest.raises(TasdsimError) as info:
        load_hw("vegeta-m4", overrides)
    message = str(info.value)
    assert message.startswith("hw/vegeta-m4.yaml with --set "), message
    assert expected in message, message


def test_file_error_not_blamed_on_unrelated_override(tmp_path):
    raw = _raw()
    raw["pe_array"]["rows"] = 0
    message = _error(tmp_path, raw, ["dram.preset=hbm2"])
    assert "--set" not in message
    assert "pe_array.rows: must be an integer from 1 to 4,096, got 0" in message


def test_override_fixes_a_bad_file(tmp_path):
    raw = copy.deepcopy(_raw())
    raw["pe_array"]["rows"] = 0
    del raw["dram"]["channels"]
    path = _write(tmp_path, raw)
    hw = load_hw(str(path), ["pe_array.rows=8", "dram.channels=2"])
    assert hw.pe_array.rows == 8 and hw.dram.channels == 2
