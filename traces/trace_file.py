"""`.trace` files: a versioned header, then one instruction per line, read as a stream.

    # tasdsim-trace 2
    # hardware: {...resolved hardware config as one JSON line...}
    # layer: {"name": ..., "m": ..., "n": ..., "k": ..., "groups": ..., ...}
    # series: {"weights": "2:4+1:4", "activations": "dense"}
    # tiling: {...the generator's tiling decisions and buffer plan...}
    # count: {"crc32": "9a0c11f3", "instructions": 112}
    0 LOAD buf=weights slot=0 bytes=1024 meta=128 addr=0
    1 COMPUTE w=0 i=0 o=0 term=0 pattern=2:4 k_rows=32 m_rows=196 cols=32 acc=1 macs=200704 useful=200704 deps=0 free=weights:0

Fields appear in the order of traces.isa.OPCODES, then `deps=` and `free=` when non-empty. Writing
what was read gives the same bytes. The count line proves the file whole: a file with fewer or more
instruction lines, or lines that differ from those written (CRC-32 of the instruction lines, each
with its newline), is an error. Errors name the file and line.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from tasdsim.common import TasdsimError
from tasdsim.traces.isa import BUFFERS, OPCODES, TEXT_FIELDS, Instr

MAGIC = "# tasdsim-trace"
VERSION = 2  # 2: COMPUTE k_rows/m_rows/acc, TASD nm_groups, ACC drains a psum tile; buffer plan; count line
HEADER_KEYS = ("hardware", "layer", "series", "tiling")
MAX_INSTRUCTIONS = 1 << 40
MAX_LINE = 1 << 20  # characters of one line, the header's JSON included
MAX_FIELD = 1 << 56  # any integer field: far above real tiles and addresses, far below int64
_CRC = re.compile(r"^[0-9a-f]{8}$")


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
    """Write the header, the count line and the instructions; returns the instruction count.

    The instructions are streamed through a temporary file, so the count line that precedes them
    is known without holding them in memory.
    """
    count, crc = 0, 0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as body:
        for ins in instrs:
            line = format_instr(ins) + "\n"
            body.write(line)
            crc = zlib.crc32(line.encode("utf-8"), crc)
            count += 1
        out.write(f"{MAGIC} {VERSION}\n")
        for key in HEADER_KEYS:
            out.write(f"# {key}: {json.dumps(getattr(header, key), sort_keys=True)}\n")
        out.write(f"# count: {json.dumps({'crc32': f'{crc:08x}', 'instructions': count}, sort_keys=True)}\n")
        body.seek(0)
        shutil.copyfileobj(body, out)
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
        self.count, self.crc32 = self._read_count()

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
            line = self._file.readline(MAX_LINE + 1)
        except UnicodeDecodeError:
            self._line += 1
            raise self._fail("not a text file (not UTF-8)") from None
        self._line += 1
        if len(line) > MAX_LINE:
            raise self._fail(f"line longer than {MAX_LINE:,} characters")
        return line

    def _read_header(self) -> TraceHeader:
        first = self._next_line().rstrip("\n")
        if not first.startswith(MAGIC):
            raise self._fail(f'not a tasdsim trace: expected "{MAGIC} {VERSION}"')
        version = first[len(MAGIC):].strip()
        if version != str(VERSION):
            raise self._fail(f"trace version {version[:30]!r} is not supported (expected {VERSION})")
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

    def _read_count(self) -> tuple[int, int]:
        """The header's instruction count and CRC-32 of the instruction lines."""
        line = self._next_line().rstrip("\n")
        prefix = "# count: "
        if not line.startswith(prefix):
            raise self._fail(f'expected header line "{prefix}{{"crc32": ..., "instructions": ...}}"')
        try:
            value = json.loads(line[len(prefix):])
        except json.JSONDecodeError as err:
            raise self._fail(f"header count: bad JSON ({err.msg})") from None
        if not isinstance(value, dict) or set(value) != {"crc32", "instructions"}:
            raise self._fail("header count: expected an object with keys crc32 and instructions")
        count, crc = value["instructions"], value["crc32"]
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_INSTRUCTIONS:
            raise self._fail(f"header count: instructions must be an integer from 0 to {MAX_INSTRUCTIONS}")
        if not isinstance(crc, str) or not _CRC.match(crc):
            raise self._fail("header count: crc32 must be 8 lower-case hex digits")
        return count, int(crc, 16)

    def instructions(self, check: Callable[[Instr], str | None] | None = None) -> Iterator[Instr]:
        """The instructions, each checked by `check` (a message for a bad one) when given; the file
        must hold exactly the header's count of them, with its checksum."""
        expected, crc = 0, 0
        while True:
            line = self._next_line()
            if not line:
                break
            if expected == self.count:
                raise self._fail(f"more instructions than the {self.count} the header states")
            crc = zlib.crc32(line.encode("utf-8"), crc)
            text = line.strip()
            if not text:
                raise self._fail("empty line")
            ins = self._parse(text)
            if ins.id != expected:
                raise self._fail(f"instruction id {ins.id}, expected {expected}")
            problem = check(ins) if check is not None else None
            if problem:
                raise self._fail(f"{ins.op} {ins.id}: {problem}")
            expected += 1
            yield ins
        if expected != self.count:
            raise TasdsimError(f"{self.path}: ends after {expected} of the {self.count} instructions its header "
                               "states: the file is cut short")
        if crc != self.crc32:
            raise TasdsimError(f"{self.path}: the instruction lines' CRC-32 {crc:08x} differs from the header's "
                               f"{self.crc32:08x}: the file was changed after it was written")

    def _parse(self, text: str) -> Instr:
        tokens = text.split()
        if len(tokens) < 2:
            raise self._fail(f"expected 'ID OPCODE field=value ...', got {text[:80]!r}")
        try:
            ins_id = int(tokens[0])
        except ValueError:
            raise self._fail(f"instruction id {tokens[0][:30]!r} is not an integer") from None
        op = tokens[1]
        if op not in OPCODES:
            raise self._fail(f"unknown opcode {op[:30]!r}; expected one of {', '.join(OPCODES)}")
        fields: dict[str, int | str] = {}
        deps: tuple[int, ...] = ()
        free: tuple[tuple[str, int], ...] = ()
        for tok in tokens[2:]:
            key, sep, value = tok.partition("=")
            if not sep or not value:
                raise self._fail(f"{op}: expected key=value, got {tok[:40]!r}")
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
                raise self._fail(f"{op}: unknown field {key[:30]!r}; expected {', '.join(OPCODES[op])}")
        missing = [k for k in OPCODES[op] if k not in fields]
        if missing:
            raise self._fail(f"{op}: missing field {missing[0]}")
        if "buf" in fields and fields["buf"] not in BUFFERS:
            raise self._fail(f"{op}: buf={fields['buf']} is not one of {', '.join(BUFFERS)}")
        return Instr(ins_id, op, fields, deps, free)

    def _int(self, op: str, key: str, value: str) -> int:
        if len(value) > 20 or not value.isascii() or not value.lstrip("-").isdigit():
            raise self._fail(f"{op}: {key}={value[:30]!r} is not an integer")
        number = int(value)
        if number < 0:
            raise self._fail(f"{op}: {key}={number} is negative")
        if number > MAX_FIELD:
            raise self._fail(f"{op}: {key}={number} exceeds the limit of {MAX_FIELD}")
        return number

    def _slot(self, op: str, value: str) -> tuple[str, int]:
        buf, sep, slot = value.partition(":")
        if not sep or buf not in BUFFERS:
            raise self._fail(f"{op}: free={value[:30]!r}: expected BUFFER:SLOT with BUFFER one of {', '.join(BUFFERS)}")
        return buf, self._int(op, "free", slot)
