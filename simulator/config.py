"""Hardware configs: YAML files that mirror the accelerator, loaded strictly.

A config names every parameter of the reference hardware (see `configs/hw/*.yaml`)::

    name: vegeta-m4
    clock_ghz: 1.0
    word_bytes: 1                 # bytes per operand value: 1 (int8), 2 (fp16/bf16) or 4 (fp32)
    psum_bytes: 4                 # bytes per partial sum, at least word_bytes
    pe_array: {rows: 32, cols: 32, dataflow: ws, patterns: ["1:4", "2:4", "4:4"]}
    metadata_decoder: {latency: 1}
    tasd_units: {count: 0}
    accumulator: {width: 32, latency: 1}
    buffers:
      weights: {size_kib: 256, banks: 8, bank_bytes: 8, ports: 1}
      inputs:  {size_kib: 256, banks: 16, bank_bytes: 8, ports: 1}
      outputs: {size_kib: 256, banks: 16, bank_bytes: 8, ports: 1}
    dram: {preset: ddr4-3200, channels: 1}

Every key is required; unknown keys, missing keys and impossible values raise `TasdsimError` naming
the file, the YAML path and the reason. `load_hw` takes a preset name (a file in `configs/hw/`) or
a path, plus `--set KEY=VALUE` overrides that are applied to the raw YAML and validated the same way.

Dense layers run on every preset: `supports(DENSE)` is always true, so `pe_array.patterns` lists the
sparse patterns the MAC lanes accept ("dense" may be listed too).
"""
from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable


from tasdsim.common import bundled_files, integer, load_yaml, read_preset, TasdsimError
from tasdsim.components.accumulator import AccumulatorConfig
from tasdsim.components.dram import KEYS as DRAM_KEYS, DramConfig
from tasdsim.components.metadata_decoder import MetadataDecoderConfig
from tasdsim.components.pe_array import PeArrayConfig
from tasdsim.components.sram import BufferConfig
from tasdsim.components.tasd_unit import TasdUnitsConfig
from tasdsim.traces.generate import Target
from tasdsim.traces.patterns import DENSE, Pattern, parse_pattern

DATAFLOWS = ("ws", "os")
WORD_BYTES = (1, 2, 4)
CLOCK_GHZ = (0.001, 1000.0)  # 1 MHz to 1 THz


# ----------------------------------------------------------------------------- the config


@dataclass(frozen=True)
class BuffersConfig:
    weights: BufferConfig  # weights and their metadata
    inputs: BufferConfig
    outputs: BufferConfig  # outputs / psums


@dataclass(frozen=True)
class HwConfig:
    """A resolved, validated hardware config."""

    name: str
    clock_ghz: float
    word_bytes: int
    psum_bytes: int
    pe_array: PeArrayConfig
    metadata_decoder: MetadataDecoderConfig
    tasd_units: TasdUnitsConfig
    accumulator: AccumulatorConfig
    buffers: BuffersConfig
    dram: DramConfig

    def supports(self, pattern: Pattern) -> bool:
        """True when the PE array runs a term of this pattern natively.

        Dense (and any N:N pattern, which keeps every slot) always runs, in the dense mode every
        preset has; a sparse pattern runs when it is listed in `pe_array.patterns`.
        """
        return self.pe_array.supports(pattern)

    def target(self) -> Target:
        """The hardware as the trace generator sees it."""
        pe, b = self.pe_array, self.buffers
        return Target(self.name, pe.rows, pe.cols, pe.dataflow, pe.patterns, self.word_bytes, self.psum_bytes,
                      b.weights.size_bytes, b.inputs.size_bytes, b.outputs.size_bytes, self.tasd_units.count)

    def as_dict(self) -> dict[str, Any]:
        """The resolved config, shaped like its YAML file (patterns as strings); loads back equal."""

        def buffer(b: BufferConfig) -> dict[str, int]:
            return {"size_kib": b.size_kib, "banks": b.banks, "bank_bytes": b.bank_bytes, "ports": b.ports}

        pe = self.pe_array
        return {
            "name": self.name,
            "clock_ghz": self.clock_ghz,
            "word_bytes": self.word_bytes,
            "psum_bytes": self.psum_bytes,
            "pe_array": {
                "rows": pe.rows,
                "cols": pe.cols,
                "dataflow": pe.dataflow,
                "patterns": ["dense" if p == DENSE else str(p) for p in pe.patterns],
            },
            "metadata_decoder": {"latency": self.metadata_decoder.latency},
            "tasd_units": {"count": self.tasd_units.count},
            "accumulator": {"width": self.accumulator.width, "latency": self.accumulator.latency},
            "buffers": {
                "weights": buffer(self.buffers.weights),
                "inputs": buffer(self.buffers.inputs),
                "outputs": buffer(self.buffers.outputs),
            },
            "dram": {"preset": self.dram.preset, "channels": self.dram.channels, **dict(self.dram.overrides)},
        }


# ----------------------------------------------------------------------------- loading


def list_hw_presets() -> list[str]:
    """Names of the bundled hardware presets (files in `configs/hw/`)."""
    return sorted(bundled_files("hw"))


def list_dram_presets() -> list[str]:
    """Names accepted by `dram.preset` (files in `configs/dram/`)."""
    return sorted(bundled_files("dram"))


def load_hw(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> HwConfig:
    """Load a preset by name or a YAML file by path, apply `KEY=VALUE` overrides, validate.

    A value containing "/" or ending in .yaml/.yml is a path. Overrides use dotted YAML paths
    (`pe_array.rows=16`, `pe_array.patterns=[1:4,2:4]` or `pe_array.patterns=1:4,2:4`,
    `dram.preset=hbm2`); values are parsed as YAML.
    """
    raw, label = read_preset("hw", name_or_path, "hardware preset")
    if raw is None:
        raise TasdsimError(f"{label}: empty file: expected a mapping of hardware config keys")
    if not isinstance(raw, dict):
        raise TasdsimError(
            f"{label}: top level must be a mapping of hardware config keys, got {_kind(raw)}"
        )

    applied: list[tuple[str, str]] = []  # (dotted key, the --set text)
    for item in overrides:
        key = _apply_override(raw, item)
        applied.append((key, item))

    try:
        return _build(raw)
    except _Invalid as err:
        source = label
        for key, item in reversed(applied):
            if err.caused_by(key):
                source = f"{label} with --set {item}"
                break
        where = f"{err.path}: " if err.path else ""
        raise TasdsimError(f"{source}: {where}{err.reason}") from None


# ----------------------------------------------------------------------------- schema


class _Invalid(Exception):
    """A validation failure at a YAML path; load_hw adds the file (or --set) to the message."""

    def __init__(self, path: str, reason: str, related: tuple[str, ...] = ()) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.related = (path, *related) if path else related  # keys whose values caused it

    def caused_by(self, key: str) -> bool:
        """True when a --set of `key` touched a value this failure depends on."""
        return any(
            p == key or p.startswith((key + ".", key + "[")) or key.startswith(p + ".")
            for p in self.related
        )


def _int_in(low: int, high: int) -> Callable[[Any, str], int]:
    """A leaf validator: an integer (1e5 counts) from `low` to `high`, the key's documented range."""

    def check(value: Any, path: str) -> int:
        number = integer(value)
        if number is None or not low <= number <= high:
            raise _Invalid(path, f"must be an integer from {low:,} to {high:,}, got {value!r}")
        return number

    return check


def _clock(value: Any, path: str) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not CLOCK_GHZ[0] <= value <= CLOCK_GHZ[1]:
        raise _Invalid(path, f"must be a number from {CLOCK_GHZ[0]:g} to {CLOCK_GHZ[1]:g} (GHz), got {value!r}")
    return float(value)


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(path, f"must be a non-empty string, got {value!r}")
    return value


def _word_bytes(value: Any, path: str) -> int:
    value = integer(value)
    if value not in WORD_BYTES:
        raise _Invalid(path, f"must be one of {', '.join(map(str, WORD_BYTES))}, got {value!r}")
    return value


def _dataflow(value: Any, path: str) -> str:
    if value not in DATAFLOWS:
        raise _Invalid(path, f"must be one of {', '.join(DATAFLOWS)}, got {value!r}")
    return value


def _dram_preset(value: Any, path: str) -> str:
    presets = list_dram_presets()
    if not isinstance(value, str) or value not in presets:
        known = ", ".join(presets) if presets else "none: configs/dram/ holds no .yaml file"
        raise _Invalid(path, f"must be one of {known}, got {value!r}")
    return value


def _patterns(value: Any, path: str) -> tuple[Pattern, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid(
            path, f'must be a non-empty list of N:M patterns such as ["2:4"] or ["dense"], got {value!r}'
        )
    seen: list[Pattern] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, str):
            raise _Invalid(where, f'must be a string such as "2:4" or "dense", got {item!r}')
        if item.strip().lower() == "dense":
            pattern = DENSE
        else:
            try:
                pattern = parse_pattern(item)
            except TasdsimError as err:
                raise _Invalid(where, str(err)) from None
            if pattern.m % pattern.n:
                raise _Invalid(where, f'"{pattern}" is not supported: N must divide M '
                                      "(each sparse MAC lane serves M/N slots of a group)")
        if pattern in seen:
            raise _Invalid(where, f'"{item.strip()}" is listed twice')
        seen.append(pattern)
    return tuple(sorted(seen, key=lambda p: (p.m, p.n)))


_Leaf = Callable[[Any, str], Any]

_BUFFER: dict[str, _Leaf] = {
    "size_kib": _int_in(1, 1 << 20),  # up to 1 GiB
    "banks": _int_in(1, 1024),
    "bank_bytes": _int_in(1, 4096),
    "ports": _int_in(1, 16),
}
_LATENCY = _int_in(0, 1_000_000)  # cycles

# The YAML tree: a dict is a mapping whose keys are all required; a callable validates a leaf.
SCHEMA: dict[str, Any] = {
    "name": _name,
    "clock_ghz": _clock,
    "word_bytes": _word_bytes,
    "psum_bytes": _int_in(1, 8),
    "pe_array": {"rows": _int_in(1, 4096), "cols": _int_in(1, 4096), "dataflow": _dataflow, "patterns": _patterns},
    "metadata_decoder": {"latency": _LATENCY},
    "tasd_units": {"count": _int_in(0, 4096)},
    "accumulator": {"width": _int_in(1, 1 << 16), "latency": _LATENCY},
    "buffers": {"weights": _BUFFER, "inputs": _BUFFER, "outputs": _BUFFER},
    # dram: the preset and its channel count; any other key of a DRAM preset overrides the preset's
    "dram": {"preset": _dram_preset, "channels": _int_in(1, 64),
             **{key: (lambda value, path: value) for key in DRAM_KEYS if key != "channels"}},
}
OPTIONAL = frozenset(f"dram.{key}" for key in DRAM_KEYS if key != "channels")


def _check(schema: dict[str, Any], raw: Any, path: str) -> dict[str, Any]:
    """Validate `raw` against `schema`; return the parsed values in the same shape."""
    if not isinstance(raw, dict):
        raise _Invalid(path, f"must be a mapping with keys {', '.join(schema)}, got {raw!r}")
    prefix = f"{path}." if path else ""
    for key in raw:
        if key not in schema:
            where = f"{path} keys" if path else "top-level keys"
            raise _Invalid("", f"unknown key {prefix}{key} ({where}: {', '.join(schema)})")
    for key in schema:
        if key not in raw and prefix + key not in OPTIONAL:
            raise _Invalid(path, f"missing required key {key}")
    out = {}
    for key, sub in schema.items():
        if key not in raw:
            continue
        if isinstance(sub, dict):
            out[key] = _check(sub, raw[key], prefix + key)
        else:
            out[key] = sub(raw[key], prefix + key)
    return out


def _build(raw: dict[str, Any]) -> HwConfig:
    v = _check(SCHEMA, raw, "")
    if v["psum_bytes"] < v["word_bytes"]:
        raise _Invalid(
            "psum_bytes",
            f"must be at least word_bytes ({v['word_bytes']}), got {v['psum_bytes']}",
            related=("word_bytes",),
        )
    buffers = {}
    for which, b in v["buffers"].items():
        buffer = BufferConfig(**b)
        row = buffer.banks * buffer.bank_bytes
        if buffer.size_bytes % row:
            raise _Invalid(
                f"buffers.{which}",
                f"size_kib {buffer.size_kib} ({buffer.size_bytes} bytes) is not a whole number of rows "
                f"of banks * bank_bytes = {row} bytes",
            )
        buffers[which] = buffer
    return HwConfig(
        name=v["name"],
        clock_ghz=v["clock_ghz"],
        word_bytes=v["word_bytes"],
        psum_bytes=v["psum_bytes"],
        pe_array=PeArrayConfig(**v["pe_array"]),
        metadata_decoder=MetadataDecoderConfig(**v["metadata_decoder"]),
        tasd_units=TasdUnitsConfig(**v["tasd_units"]),
        accumulator=AccumulatorConfig(**v["accumulator"]),
        buffers=BuffersConfig(**buffers),
        dram=_dram(v["dram"]),
    )


def _dram(v: dict[str, Any]) -> DramConfig:
    """The DRAM config, its preset's overrides checked against the preset."""
    overrides = tuple(sorted((key, value) for key, value in v.items() if key not in ("preset", "channels")))
    dram = DramConfig(v["preset"], v["channels"], overrides)
    try:
        dram.timing()
    except TasdsimError as err:
        key, reason = str(err).split(": ", 1)[1].split(": ", 1)
        raise _Invalid(f"dram.{key}", reason) from None
    return dram


# ----------------------------------------------------------------------------- overrides


def _apply_override(raw: dict[str, Any], item: str) -> str:
    """Set one `KEY=VALUE` in the raw YAML dict; return KEY. Checks KEY against the schema."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise TasdsimError(f"--set {item}: expected KEY=VALUE, such as pe_array.rows=16")
    parts = key.split(".")
    node: Any = SCHEMA
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            parent = ".".join(parts[:depth])
            if isinstance(node, dict):
                known = f" ({parent + ' keys' if parent else 'top-level keys'}: {', '.join(node)})"
            else:
                known = f" ({parent} has no sub-keys)"
            raise TasdsimError(f"--set {item}: unknown key {key}{known}")
        node = node[part]
    value = load_yaml(text, f"--set {item}")
    if key == "pe_array.patterns" and isinstance(value, str):
        value = [s.strip() for s in value.split(",")]
    target = raw
    for part in parts[:-1]:
        if part not in target or target[part] is None:
            target[part] = {}
        target = target[part]
        if not isinstance(target, dict):
            raise TasdsimError(f"--set {item}: cannot set {key}: {part} is not a mapping in the file")
    target[parts[-1]] = value
    return key


# ----------------------------------------------------------------------------- YAML and files


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def hw_from_dict(raw: Any, label: str) -> HwConfig:
    """Validate a YAML-shaped config held in memory (a trace header's), as strictly as a file."""
    if not isinstance(raw, dict):
        raise TasdsimError(f"{label}: hardware must be a mapping of hardware config keys, got {_kind(raw)}")
    try:
        return _build(copy.deepcopy(raw))
    except _Invalid as err:
        where = f"{err.path}: " if err.path else ""
        raise TasdsimError(f"{label}: {where}{err.reason}") from None
