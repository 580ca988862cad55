"""Checks a trace file's instructions against the hardware that runs them, one by one.

A generated trace passes by construction; a written or edited one may ask for what the hardware
cannot do. Every instruction is checked as it is read (`TraceReader.instructions(check)`):

- the header's buffer plan: at least one slot per buffer, and with real memory its slots fit the
  buffer;
- COMPUTE: k_rows (WS) or m_rows (OS) at most the array's rows, cols at most its columns, each at
  least 1, macs = k_rows * m_rows * cols, useful <= macs, a pattern the PE array runs;
  LOAD/STORE/TASD/ACC: a slot that exists, and with real memory bytes (plus metadata) that fit it;
  a LOAD or STORE frees slots of its own buffer only;
- weights and inputs slots: loaded before a COMPUTE, TASD or STORE reads them, freed once after
  their load, and not loaded again before they are freed.
"""
from __future__ import annotations

from tasdsim.common import TasdsimError
from tasdsim.traces.generate import BufferPlan, Target
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import parse_pattern

STAGED = ("weights", "inputs")  # buffers whose slots a LOAD fills and a free empties


class TraceChecker:
    """Call it on each instruction in stream order; it returns what is wrong, or None."""

    def __init__(self, target: Target, plan: BufferPlan, ideal_memory: bool) -> None:
        self.target = target
        self.ideal = ideal_memory
        sizes = {"weights": target.weights_bytes, "inputs": target.inputs_bytes, "outputs": target.outputs_bytes}
        for buf, size in sizes.items():
            slots = plan.of(buf)
            if slots.slots < 1 or slots.slot_bytes < 0:
                raise TasdsimError(f"header tiling: buffers.{buf}: needs at least one slot of 0 or more bytes")
            if not ideal_memory and slots.slots * slots.slot_bytes > size:
                raise TasdsimError(f"header tiling: buffers.{buf}: {slots.slots} slots of {slots.slot_bytes} bytes "
                                   f"do not fit the {size}-byte {buf} buffer of {target.name}")
        self.slots = {buf: plan.of(buf).slots for buf in sizes}
        self.slot_bytes = {buf: plan.of(buf).slot_bytes for buf in sizes}
        self.loaded = {(buf, slot): False for buf in STAGED for slot in range(self.slots[buf])}

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
            if any(buf != f["buf"] for buf, _ in ins.free):
                raise TasdsimError(f"a transfer frees slots of its own buffer only ({f['buf']})")
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
        for buf, slot in ins.free:
            self._slot(buf, slot)
            if buf in STAGED:
                if not self.loaded[(buf, slot)]:
                    raise TasdsimError(f"frees {buf} slot {slot}, which holds no load (freed twice or never loaded)")
                self.loaded[(buf, slot)] = False

    def _compute(self, f: dict) -> None:
        t = self.target
        k_rows, m_rows, cols, macs, useful = (int(f[k]) for k in ("k_rows", "m_rows", "cols", "macs", "useful"))
        held = "k_rows" if t.dataflow == "ws" else "m_rows"  # the rows the array holds; the other streams
        if not 1 <= (k_rows if held == "k_rows" else m_rows) <= t.rows:
            raise TasdsimError(f"{held}={f[held]}: the PE array has 1 to {t.rows} rows")
        if not 1 <= cols <= t.cols:
            raise TasdsimError(f"cols={cols}: the PE array has 1 to {t.cols} columns")
        if min(k_rows, m_rows) < 1:
            raise TasdsimError("k_rows and m_rows must be at least 1")
        if macs != k_rows * m_rows * cols:
            raise TasdsimError(f"macs={macs} is not k_rows * m_rows * cols = {k_rows * m_rows * cols}")
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
