"""The trace ISA: tile-granularity instructions with explicit dependencies and buffer slots.

Every instruction has an `id` (its position in the trace), an opcode, integer or text fields, the
ids it depends on (`deps`: it may not start before they finish) and the buffer slots it frees when
it finishes (`free`: "weights:0"). Overlap and double buffering are decided by the simulator from
these, not by the trace. A slot is reused only after the instruction that frees it: the generator
makes the next writer of a slot depend on that instruction, which gives double buffering with
backpressure. Opcodes and their fields:

  LOAD     buf slot bytes meta addr       DMA: DRAM -> buffer slot (meta = metadata bytes, apart)
  TASD     slot term pattern groups       TASD units decompose an input tile into one term
  COMPUTE  w i o term pattern rows cols   one fold of one term (weights slot w, inputs slot i, psums
           t macs useful                  in outputs slot o): rows x cols PEs used, t rows streamed;
                                          macs issued, useful = macs on real (unpadded) slots
  ACC      slot words                     accumulation path: add a term's psums into the output tile
  STORE    buf slot bytes addr            DMA: buffer slot -> DRAM
"""
from __future__ import annotations

from dataclasses import dataclass, field

OPCODES = {
    "LOAD": ("buf", "slot", "bytes", "meta", "addr"),
    "TASD": ("slot", "term", "pattern", "groups"),
    "COMPUTE": ("w", "i", "o", "term", "pattern", "rows", "cols", "t", "macs", "useful"),
    "ACC": ("slot", "words"),
    "STORE": ("buf", "slot", "bytes", "addr"),
}
TEXT_FIELDS = {"buf", "pattern"}
BUFFERS = ("weights", "inputs", "outputs")


@dataclass(slots=True)
class Instr:
    """One trace instruction."""

    id: int
    op: str
    fields: dict[str, int | str]
    deps: tuple[int, ...] = ()
    free: tuple[tuple[str, int], ...] = field(default=())

    def __getitem__(self, key: str) -> int | str:
        return self.fields[key]
