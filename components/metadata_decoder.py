"""Metadata decoder: decodes each fold's N:M metadata before the PE array can use its weights.

Accepts only the hardware's patterns: a COMPUTE with another pattern is an error naming the
instruction. Decodes fold by fold in order, `latency` cycles each, starting as soon as both the
fold's weight tile has arrived and the previous decode is done, so it runs ahead of the array
and its latency hides behind the previous fold. Like the DRAM it is a passive unit with two ports:
the DMA tells it when a weight tile lands in a weights slot (`weights_arrived`), and the PE array
asks it, per fold, when the metadata is ready (`decode`); its schedule depends only on the tiles'
arrival times, which are known by then, so no event is needed per decode.
"""
from __future__ import annotations

from dataclasses import dataclass

from tasdsim.components.probe import Probe
from tasdsim.common import TasdsimError
from tasdsim.traces.isa import Instr
from tasdsim.traces.patterns import Pattern, parse_pattern, runs_on


@dataclass(frozen=True)
class MetadataDecoderConfig:
    latency: int  # cycles from a weight tile's arrival to its decoded metadata


@dataclass
class MetadataDecoderStats:
    folds: int = 0  # folds decoded
    indices: int = 0  # N:M indices decoded (one per weight slot of a fold)
    busy_cycles: int = 0

    def actions(self) -> dict[str, int]:
        return {"folds": self.folds, "indices": self.indices, "busy_cycles": self.busy_cycles}


class MetadataDecoder:
    """The metadata decoder: `decode` gives the cycle a fold's metadata is ready."""

    def __init__(self, config: MetadataDecoderConfig, patterns: tuple[Pattern, ...], design: str, where: str,
                 probe: Probe | None = None) -> None:
        self.patterns = patterns  # what the PE array's lanes accept
        self.design = design
        self.latency = config.latency
        self.where = where
        self.probe = probe
        self.free_at = 0  # cycle the decoder finishes its last decode
        self.arrived: dict[int, int] = {}  # weights slot -> cycle its current tile arrived
        self.stats = MetadataDecoderStats()
        self._supported: dict[str, Pattern] = {}  # pattern text -> pattern, once checked

    def check(self, ins: Instr) -> Pattern:
        """The pattern of a COMPUTE or TASD, if the hardware supports it; dense folds carry no
        metadata to decode."""
        text = str(ins.fields["pattern"])
        pattern = self._supported.get(text)
        if pattern is not None:
            return pattern
        try:
            pattern = parse_pattern(text)
        except TasdsimError as err:
            raise TasdsimError(f"{self.where}{ins.op} {ins.id}: {err}") from None
        if not runs_on(pattern, self.patterns):
            supported = ", ".join(str(p) for p in self.patterns)
            raise TasdsimError(f"{self.where}{ins.op} {ins.id}: pattern {pattern} is not supported by the metadata "
                               f"decoder of {self.design} (supports {supported})")
        self._supported[text] = pattern
        return pattern

    def weights_arrived(self, slot: int, cycle: int) -> None:
        """Port from the DMA: a weight tile landed in weights slot `slot` at `cycle`."""
        self.arrived[slot] = cycle

    def decode(self, ins: Instr) -> int:
        """The cycle fold `ins`'s metadata is ready (decodes run in fold order, each after its
        weight tile arrived); 0 for a dense fold, which has none."""
        if not self.check(ins).metadata_bits:
            return 0
        start = max(self.arrived.get(ins.fields["w"], 0), self.free_at)
        self.free_at = start + self.latency
        s = self.stats
        s.busy_cycles += self.latency
        s.folds += 1
        s.indices += ins.fields["k_rows"] * ins.fields["cols"]
        if self.probe is not None:
            self.probe.span("metadata decoder", "decode", f"decode {ins.id} {ins.fields['pattern']}", start,
                               self.free_at)
        return self.free_at
