"""Checks a trace file's instructions against the hardware that runs them, one by one.

A generated trace passes by construction; a written or edited one may ask for what the hardware
cannot do. Every instruction is checked as it is read (`TraceReader.instructions(check)`):

- COMPUTE: at most the array's rows and cols, t at least 1, macs = rows * cols * t, useful <= macs,
  a pattern the PE array runs; LOAD/STORE/TASD/ACC: a slot that exists, and with real memory
  bytes (plus metadata) that fit one slot;
- weights and inputs slots: loaded before a COMPUTE, TASD or STORE reads them, freed once after
  their load, and not loaded again before they are freed.
"""
from __future__ import annotations

from tasdsim.common import TasdsimError
from tasdsim.traces.generate import Target
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import parse_pattern

STAGED = ("weights", "inputs")  # buffers whose slots a LOAD fills and a free empties


class TraceChecker:
    """Call it on each instruction in stream order; it returns what is wrong, or None."""

    def __init__(self, target: Target, slots: dict[str, int], ideal_memory: bool) -> None:
        self.target = target
        self.slots = slots
        self.slot_bytes = {"weights": target.weights_bytes // slots["weights"],
                           "inputs": target.inputs_bytes // slots["inputs"],
                           "outputs": target.outputs_bytes // slots["outputs"]}
        self.ideal = ideal_memory
        self.loaded = {(buf, slot): False for buf in STAGED for slot in range(slots[buf])}

    def __call__(self, ins: Instr) -> str | None:
        try:
            self._check(ins)
        except TasdsimError as err:
            return str(err)
        return None

    def _check(self, ins: Instr) -> None:
        f = ins.fields
        if ins.op in ("LOAD", "STORE"):
            self._slot(str(f["buf"]), int(f["slot"]))
            nbytes = int(f["bytes"]) + int(f.get("meta", 0))
            if not self.ideal and nbytes > self.slot_bytes[str(f["buf"])]:
                raise TasdsimError(f"{nbytes} bytes do not fit a {f['buf']} slot of {self.slot_bytes[str(f['buf'])]} "
                                   "bytes")
            if ins.op == "LOAD" and f["buf"] in STAGED:
                if self.loaded[(str(f["buf"]), int(f["slot"]))]:
                    raise TasdsimError(f"{f['buf']} slot {f['slot']} is loaded again before it was freed")
                self.loaded[(str(f["buf"]), int(f["slot"]))] = True
            elif ins.op == "STORE" and f["buf"] in STAGED:
                self._used(str(f["buf"]), int(f["slot"]))
        elif ins.op == "COMPUTE":
            self._compute(f)
        elif ins.op == "TASD":
            if self.target.tasd_units == 0:
                raise TasdsimError(f"hardware {self.target.name} has no TASD units")
            self._pattern(str(f["pattern"]))
            self._used("inputs", int(f["slot"]))
        else:  # ACC
            self._slot("outputs", int(f["slot"]))
            if not self.ideal and int(f["words"]) * self.target.psum_bytes > self.slot_bytes["outputs"]:
                raise TasdsimError(f"{f['words']} psums do not fit an outputs slot of {self.slot_bytes['outputs']} bytes")
        for buf, slot in ins.free:
            self._slot(buf, slot)
            if buf in STAGED:
                if not self.loaded[(buf, slot)]:
                    raise TasdsimError(f"frees {buf} slot {slot}, which holds no load (freed twice or never loaded)")
                self.loaded[(buf, slot)] = False

    def _compute(self, f: dict) -> None:
        t = self.target
        rows, cols, streamed, macs, useful = (int(f[k]) for k in ("rows", "cols", "t", "macs", "useful"))
        if not 1 <= rows <= t.rows:
            raise TasdsimError(f"rows={rows}: the PE array has 1 to {t.rows} rows")
        if not 1 <= cols <= t.cols:
            raise TasdsimError(f"cols={cols}: the PE array has 1 to {t.cols} columns")
        if streamed < 1:
            raise TasdsimError("t=0: a fold streams at least one row")
        if macs != rows * cols * streamed:
            raise TasdsimError(f"macs={macs} is not rows * cols * t = {rows * cols * streamed}")
        if useful > macs:
            raise TasdsimError(f"useful={useful} exceeds macs={macs}")
        self._pattern(str(f["pattern"]))
        self._slot("outputs", int(f["o"]))
        self._used("weights", int(f["w"]))
        self._used("inputs", int(f["i"]))

    def _pattern(self, text: str) -> None:
        pattern = parse_pattern(text)
        if not self.target.supports(pattern):
            supported = ", ".join(str(p) for p in self.target.patterns)
            raise TasdsimError(f"pattern {pattern} is not supported by hardware {self.target.name} "
                               f"(supports {supported})")

    def _slot(self, buf: str, slot: int) -> None:
        if slot >= self.slots[buf]:
            raise TasdsimError(f"{buf} buffer has slots 0..{self.slots[buf] - 1}, not {slot}")

    def _used(self, buf: str, slot: int) -> None:
        self._slot(buf, slot)
        if not self.loaded[(buf, slot)]:
            raise TasdsimError(f"reads {buf} slot {slot}, which holds no load")
