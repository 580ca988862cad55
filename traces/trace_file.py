"""`.trace` files: a versioned header, then one instruction per line, read as a stream.

    # tasdsim-trace 2
    # hardware: {...resolved hardware config as one JSON line...}
    # layer: {"name": ..., "m": ..., "n": ..., "k": ..., "groups": ..., ...}
    # series: {"weights": "2:4+1:4", "activations": "dense"}
    # tiling: {...the generator's tiling decisions and buffer plan...}
    0 LOAD buf=weights slot=0 bytes=1024 meta=128 addr=0
    1 COMPUTE w=0 i=0 o=0 term=0 pattern=2:4 k_rows=32 m_rows=196 cols=32 acc=1 macs=200704 useful=200704 deps=0 free=weights:0

Fields appear in the order of traces.isa.OPCODES, then `deps=` and `free=` when non-empty. Writing
what was read gives the same bytes. Errors name the file and line.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from tasdsim.common import TasdsimError
from tasdsim.traces.isa import BUFFERS, OPCODES, TEXT_FIELDS, Instr

MAGIC = "# tasdsim-trace"
VERSION = 2  # 2: COMPUTE k_rows/m_rows/acc, TASD nm_groups, ACC drains a psum tile; buffer plan
HEADER_KEYS = ("hardware", "layer", "series", "tiling")


@dataclass
class TraceHeader:
    """What a trace was generated from."""

    hardware: dict
    layer: dict
    series: dict
    tiling: dict


def format_instr(ins: Instr) -> str:
    parts = [str(ins.id), ins.op] + [f"{k}={ins.fields[k]}" for k in OPCODES[ins.op]]
    if ins.deps:
        parts.append("deps=" + ",".join(str(d) for d in ins.deps))
    if ins.free:
        parts.append("free=" + ",".join(f"{b}:{s}" for b, s in ins.free))
    return " ".join(parts)


def write_trace(out: IO[str], header: TraceHeader, instrs: Iterable[Instr]) -> int:
    """Write a header and the instructions (streamed); returns the instruction count."""
    out.write(f"{MAGIC} {VERSION}\n")
    for key in HEADER_KEYS:
        out.write(f"# {key}: {json.dumps(getattr(header, key), sort_keys=True)}\n")
    count = 0
    for ins in instrs:
        out.write(format_instr(ins) + "\n")
        count += 1
    return count


class TraceReader:
    """Reads a trace file: `header` at once, then `instructions()` as a stream."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._file = open(path, encoding="utf-8")
        except OSError as err:
            raise TasdsimError(f"{path}: cannot open trace: {err.strerror or err}") from None
        self._line = 0
        self.header = self._read_header()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TraceReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, message: str) -> TasdsimError:
        return TasdsimError(f"{self.path}:{self._line}: {message}")

    def _next_line(self) -> str:
        try:
            line = self._file.readline()
        except UnicodeDecodeError:
            raise self._fail("not a text file") from None
        self._line += 1
        return line

    def _read_header(self) -> TraceHeader:
        first = self._next_line().rstrip("\n")
        if not first.startswith(MAGIC):
            raise self._fail(f'not a tasdsim trace: expected "{MAGIC} {VERSION}"')
        version = first[len(MAGIC):].strip()
        if version != str(VERSION):
            raise self._fail(f"trace version {version!r} is not supported (expected {VERSION})")
        values = {}
        for key in HEADER_KEYS:
            line = self._next_line().rstrip("\n")
            prefix = f"# {key}: "
            if not line.startswith(prefix):
                raise self._fail(f'expected header line "{prefix}..."')
            try:
                values[key] = json.loads(line[len(prefix):])
            except json.JSONDecodeError as err:
                raise self._fail(f"header {key}: bad JSON ({err.msg})") from None
            if not isinstance(values[key], dict):
                raise self._fail(f"header {key}: expected a JSON object")
        return TraceHeader(**values)

    def instructions(self) -> Iterator[Instr]:
        expected = 0
        while True:
            line = self._next_line()
            if not line:
                return
            text = line.strip()
            if not text:
                raise self._fail("empty line")
            ins = self._parse(text)
            if ins.id != expected:
                raise self._fail(f"instruction id {ins.id}, expected {expected}")
            expected += 1
            yield ins

    def _parse(self, text: str) -> Instr:
        tokens = text.split()
        if len(tokens) < 2:
            raise self._fail(f"expected 'ID OPCODE field=value ...', got {text!r}")
        try:
            ins_id = int(tokens[0])
        except ValueError:
            raise self._fail(f"instruction id {tokens[0]!r} is not an integer") from None
        op = tokens[1]
        if op not in OPCODES:
            raise self._fail(f"unknown opcode {op!r}; expected one of {', '.join(OPCODES)}")
        fields: dict[str, int | str] = {}
        deps: tuple[int, ...] = ()
        free: tuple[tuple[str, int], ...] = ()
        for tok in tokens[2:]:
            key, sep, value = tok.partition("=")
            if not sep or not value:
                raise self._fail(f"{op}: expected key=value, got {tok!r}")
            if key == "deps":
                deps = tuple(self._int(op, key, v) for v in value.split(","))
                if any(d >= ins_id or d < 0 for d in deps):
                    raise self._fail(f"{op} {ins_id}: deps must name earlier instructions")
            elif key == "free":
                free = tuple(self._slot(op, v) for v in value.split(","))
            elif key in OPCODES[op]:
                if key in fields:
                    raise self._fail(f"{op}: field {key} given twice")
                fields[key] = value if key in TEXT_FIELDS else self._int(op, key, value)
            else:
                raise self._fail(f"{op}: unknown field {key!r}; expected {', '.join(OPCODES[op])}")
        missing = [k for k in OPCODES[op] if k not in fields]
        if missing:
            raise self._fail(f"{op}: missing field {missing[0]}")
        if "buf" in fields and fields["buf"] not in BUFFERS:
            raise self._fail(f"{op}: buf={fields['buf']} is not one of {', '.join(BUFFERS)}")
        return Instr(ins_id, op, fields, deps, free)

    def _int(self, op: str, key: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise self._fail(f"{op}: {key}={value!r} is not an integer") from None
        if number < 0:
            raise self._fail(f"{op}: {key}={number} is negative")
        return number

    def _slot(self, op: str, value: str) -> tuple[str, int]:
        buf, sep, slot = value.partition(":")
        if not sep or buf not in BUFFERS:
            raise self._fail(f"{op}: free={value!r}: expected BUFFER:SLOT with BUFFER one of {', '.join(BUFFERS)}")
        return buf, self._int(op, "free", slot)
