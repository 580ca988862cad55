"""The trace ISA: tile-granularity instructions with explicit dependencies and buffer slots.

Every instruction has an `id` (its position in the trace), an opcode, integer or text fields, the
ids it depends on (`deps`: it may not start before they finish) and the buffer slots it frees when
it finishes (`free`: "weights:0"). Overlap and double buffering are decided by the simulator from
these, not by the trace. A slot is reused only after the instruction that frees it: the generator
makes the next writer of a slot depend on that instruction, which gives double buffering with
backpressure. Opcodes and their fields:

  LOAD     buf slot bytes meta addr       DMA: DRAM -> buffer slot (meta = metadata bytes, apart)
  TASD     slot term pattern nm_groups    TASD units decompose an input tile into one term
  COMPUTE  w i o term pattern k_rows      one fold of one term (weights slot w, inputs slot i, psum
           m_rows cols acc macs useful    tile in outputs slot o): k_rows x cols weights, m_rows
                                          rows of M; acc = 1 when its psums go through the
                                          accumulator; macs issued, useful = macs on real slots
  ACC      slot                           accumulator: drain its adders into the psum tile in
                                          outputs slot `slot` (after that tile's last fold)
  STORE    buf slot bytes addr            DMA: buffer slot -> DRAM

Glossary (one name per thing, in code, configs, reports and docs):

  fold          one COMPUTE: the array holds one weight tile (WS) or one psum tile (OS)
  k_rows        rows of the reduction K a fold covers (compressed rows of an N:M term)
  m_rows        rows of M a fold covers: streamed through the array (WS) or held in it (OS)
  term          one N:M part of a TASD series ("2:4+1:4" has terms 2:4 and 1:4)
  N:M group     M consecutive elements along K, at most N kept (`nm_groups`: how many;
                `Pattern.nm_groups(k)`); the TASD units decompose N:M groups
  conv groups   a grouped convolution's independent channel groups (`Layer.groups`)
  tile          what one buffer slot holds: a weight tile, an input tile, a psum tile
  psum          a partial sum of the output, `psum_bytes` wide
  accumulator   the TASD accumulation path: adders between the array and the psum tiles that
                add every fold's psums of a multi-term series as they leave the array
"""
from __future__ import annotations

from dataclasses import dataclass, field

OPCODES = {
    "LOAD": ("buf", "slot", "bytes", "meta", "addr"),
    "TASD": ("slot", "term", "pattern", "nm_groups"),
    "COMPUTE": ("w", "i", "o", "term", "pattern", "k_rows", "m_rows", "cols", "acc", "macs", "useful"),
    "ACC": ("slot",),
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
