"""Analytical model: the counterpart in closed form of every number the simulator reports, per layer.

It derives, it does not borrow: importing it loads neither SimPy, nor the engine, the units or the
trace generator (a test checks). Its inputs are the hardware config's numbers, the layer and the
series; it derives the tiling and buffer plan from the documented policy itself (`model.tiling`,
checked against the generator's plan by a test), reads the DRAM preset (`model.dram`) and the
energy table (`model.energy`) itself, and computes energy from its own counts. A dimension of length L cut into tiles of S has floor(L/S) full tiles and at most one
partial one, so every sum over tiles below is a sum over at most two sizes per dimension.

Exact quantities (the simulator must agree to the cycle and to the byte):

- compute cycles. WS: per (group, column tile, row block, term) ceil(d_i/R) folds of 2R + C + t - 2
  cycles, t the block's rows of M and d_i = N_i * ceil(K/M_i) the term's compressed depth; OS: per
  (group, row block, column tile) one fold of 2R + C + sum(d_i) - 2. Partial folds pay the full R
  and C.
- folds; MACs issued (groups * M * N * sum d_i) and useful (real, unpadded compressed rows);
  metadata decoder folds; accumulator adds; TASD-unit groups; SRAM bytes; DRAM bursts.
- DRAM bytes per operand: inputs, groups * column tiles * M * K words on both dataflows (the input
  tile is reloaded for every column tile); weight values, reloaded for every row block (activation
  TASD loads the dense K rows a fold's groups cover, see `covered_rows`); metadata, ceil(bits / 8)
  per weight tile; outputs, groups * M * N psums stored once.

Modelled quantities (the simulator should agree within a tolerance):

- unit service times, each in closed form:
  * a DRAM tile transfer: `model.dram` (row latency, then its bursts on the busiest channel);
    the DMA needs bytes / (SRAM bytes per cycle) as well;
  * a fold: max(2R + C + t - 2, its SRAM port cycles) and, when its psums go through the
    accumulator, 2R + C - 2 + max(t, ceil(t * cols / width)) (the excess is an "accumulator"
    stall); a TASD of G groups: ceil(G / U) * M; an ACC: the accumulator's `latency`; a metadata
    decode: `latency`, one fold at a time.
- total cycles: a block recurrence. A block is one output tile (WS: t rows x C columns through all
  terms' folds; OS: R x C psums through all terms). Each DMA queue moves one tile at a time and the
  slots are double-buffered, so when a block's last fold ends it frees the slots of the transfers
  issued then: its store (after its ACC), the input tile of the block after next, and the
  weights of the next block's second fold (the weights stream one fold ahead). They reach the DRAM
  in the order their queues became free and are served first come first served, so input tiles
  and stores do not overlap the weight stream: a fold waits for its weights behind them. A block
  starts when the previous one ends, its output slot is free, its input is in (or its first term
  decomposed) and its first weights are decoded; within it a term also waits for its TASD and
  its decode (OS). Each wait is
  charged to the dependency that held it, in the order the simulator waits for them. The blocks of
  every group repeat the same tile sizes, so the recurrence runs block by block over the first
  groups, until it repeats, and over the last group; the groups in between repeat it (their times
  shift, nothing else). Fill (what precedes the first fold) and drain (the last ACC and store)
  are its ends.
- stall cycles by cause, each charged to the constraint that set a start (DRAM stalls from the
  DRAM closed form, not as what is left over); `unattributed` is what the causes leave of the
  cycles (0 when they add up).

`bounds` adds the roofline view: each unit's busy time alone (the DRAM's: every tile's bursts, at
least a row cycle each when tiles share a bank), the peak-bandwidth DRAM time, and `roofline` =
the longest of them (the array's with fill and drain), which the total exceeds by the stalls that
do not overlap.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

from tasdsim.simulator.model.dram import DramModel, dram_params
from tasdsim.simulator.model.energy import model_energy
from tasdsim.simulator.model.tiling import ModelTiling, covered_rows_by_fold, derive_tiling
from tasdsim.traces.patterns import Pattern
from tasdsim.traces.workloads import Layer

if TYPE_CHECKING:  # only for type hints: importing the model loads none of the simulator
    from tasdsim.simulator.config import BufferConfig, HwConfig

STALL_CAUSES = ("dram", "sram", "metadata_decoder", "accumulator", "tasd_units")  # what a fold can wait for
COMPONENTS = ("pe_array", *STALL_CAUSES)  # what a layer's cycles are made of
DEFAULT_ENERGY = "45nm"


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def classes(total: int, size: int) -> list[tuple[int, int]]:
    """A length `total` cut into tiles of `size`: [(tile size, how many tiles)], at most two."""
    full, rest = divmod(total, size)
    return [(s, n) for s, n in ((size, full), (rest, 1 if rest else 0)) if n]


def covered_rows(p: Pattern, k: int, r: int) -> int:
    """Dense K rows the weight tiles of an activation term cover, summed over its folds.

    A fold of compressed rows [fR, fR + rows) needs the dense rows of the groups it touches,
    floor(fR/N) .. ceil((fR + rows)/N) - 1, M rows each, the last group clipped at K. Over the
    F = ceil(d/R) folds of a term with G = ceil(K/M) groups the touched groups telescope to G plus
    one for every fold boundary inside a group (fR not a multiple of N), and every fold that
    reaches into the last group loses its padding G*M - K.
    """
    groups = p.nm_groups(k)
    folds = _cdiv(p.depth(k), r)
    period = p.n // math.gcd(p.n, r)  # fR is a multiple of N every `period` folds
    split_boundaries = (folds - 1) - (folds - 1) // period
    reach_last_group = folds - min(folds - 1, (groups - 1) * p.n // r)
    return p.m * (groups + split_boundaries) - reach_last_group * (groups * p.m - k)


def useful_depth(p: Pattern, k: int) -> int:
    """Compressed rows of a term that hold real (not padded) slots: N per full N:M group and at
    most N of the K % M elements of the last one."""
    full, rest = divmod(k, p.m)
    return p.n * full + min(p.n, rest)


@dataclass
class LayerModel:
    """The model's numbers for one layer, keyed like `simulator.stats.LayerStats`."""

    name: str
    cycles: int
    compute_cycles: int
    stall_cycles: dict[str, int]  # by cause, each predicted from its unit's closed form
    unattributed: int  # cycles - compute - the stalls: 0 when the predicted causes add up
    macs_issued: int
    macs_useful: int
    folds: int
    dram_bytes: dict[str, int]
    sram_bytes: dict[str, dict[str, int]]
    actions: dict[str, dict[str, int]]  # shaped like LayerStats.actions (DRAM rows and busy time aside)
    bounds: dict[str, int]  # each unit busy alone, peak-bandwidth DRAM time, fill, drain, roofline
    dominant: str  # the component with the largest share of the cycles
    dram_efficiency: float  # peak-bandwidth time / modelled transfer time (1.0: streams at peak)
    tiling: dict[str, Any] = field(default_factory=dict)
    energy_pj: dict[str, float] = field(default_factory=dict)  # per unit and total, from the counts above
    edp: float = 0.0  # pJ*ns

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- unit service times


class _Hw:
    """The hardware constants the formulas use and the units' service times."""

    def __init__(self, hw: HwConfig, ideal: bool) -> None:
        self.hw = hw
        self.ideal = ideal
        self.r, self.c = hw.pe_array.rows, hw.pe_array.cols
        self.word, self.psum = hw.word_bytes, hw.psum_bytes
        self.buf = hw.buffers
        self.units = max(hw.tasd_units.count, 1)
        self.dec = hw.metadata_decoder.latency
        self.dram = DramModel(dram_params(hw.dram.preset, hw.dram.channels, hw.dram.overrides), hw.clock_ghz, ideal)

    def port(self, nbytes: int, buffer: BufferConfig) -> int:
        """Cycles to move nbytes through a buffer's ports (0 with ideal memory)."""
        return 0 if self.ideal else _cdiv(nbytes, buffer.bytes_per_cycle)

    def load(self, nbytes: int, buffer: BufferConfig) -> int:
        """One tile transfer from an idle DRAM: the longer of its DRAM service and port time."""
        return self.dram.chain([(nbytes, self.port(nbytes, buffer), 0)], self.dram.OPEN_ROW)[0][0]

    def fold(self, t: int) -> int:
        return 2 * self.r + self.c + t - 2

    def tasd(self, groups: int, p: Pattern) -> int:
        return _cdiv(groups, self.units) * p.m

    def take(self, m_rows: int, cols: int) -> int:
        """Cycles the accumulator takes a fold's m_rows x cols psums, arriving one row per cycle."""
        return max(m_rows, _cdiv(m_rows * cols, self.hw.accumulator.width))


# ----------------------------------------------------------------------------- the model


def tile_transfer_cycles(hw: HwConfig, nbytes: int, fresh: bool = True) -> int:
    """The DRAM service of one tile of nbytes (no SRAM port limit), in accelerator cycles: from a
    fresh DRAM (every bank closed: tRCD + CL + bursts) or from one whose first bank holds another
    row (tRP + tRCD + CL + bursts)."""
    h = _Hw(hw, ideal=False)
    return h.dram.chain([(nbytes, 0, 0)], None if fresh else h.dram.OPEN_ROW)[0][0]


def model_layer(layer: Layer, hw: HwConfig, series: Any, ideal_memory: bool,
                energy: str = DEFAULT_ENERGY) -> LayerModel:
    """The model's cycles, traffic, action counts and energy (table `energy`, a name or a YAML path)
    for one layer run with `series` (its `weights` and `activations` series): the counterpart of
    `simulator.run.simulate_layer`."""
    act = not series.activations.is_dense
    terms = (series.activations if act else series.weights).terms
    tiling = derive_tiling(layer, hw, terms, "activations" if act else "weights", ideal_memory)
    h = _Hw(hw, ideal_memory)
    counts = _counts(layer, h, terms, act, tiling)
    if tiling.dataflow == "ws":
        group, kinds = _ws_blocks(layer, h, terms, act, tiling)
        multi, folds = len(terms) > 1, counts["folds_per_block"]
    else:
        group, kinds = _os_blocks(layer, h, terms, act, tiling)
        multi, folds = False, 1
    stalls = {cause: 0 for cause in STALL_CAUSES}
    done, fill, drain = _recurrence(h, group, layer.groups, multi, folds, act, stalls)

    compute = counts["compute"]
    busy = {key: sum(cnt * getattr(b, key) for b, cnt in kinds) for key in ("array", "stream", "tasd", "acc")}
    total = done
    acc_stall = sum(cnt * b.acc_stall for b, cnt in kinds)
    stalls["accumulator"] += acc_stall
    stalls["sram"] += busy["array"] - compute - acc_stall
    unattributed = total - compute - sum(stalls.values())  # 0 when the causes add up, as they should

    actions = counts["actions"]  # the units' busy cycles: each unit's service times summed
    actions["pe_array"]["busy_cycles"] = compute
    actions["metadata_decoder"]["busy_cycles"] = counts["decoder_folds"] * h.dec
    actions["accumulator"]["busy_cycles"] = busy["acc"]
    actions["tasd_units"]["busy_cycles"] = busy["tasd"]
    traffic = counts["dram_bytes"]
    peak = h.dram.peak_cycles(traffic["read"] + traffic["write"])
    transfer = math.ceil(busy["stream"])
    bounds = {"compute": compute, "sram": busy["array"], "dram": transfer, "dram_peak": math.ceil(peak),
              "tasd_units": busy["tasd"], "accumulator": busy["acc"],
              "metadata_decoder": counts["decoder_folds"] * h.dec, "fill": fill, "drain": drain}
    bounds["roofline"] = max(fill + busy["array"] + drain, transfer, busy["tasd"], busy["acc"])
    shares = {"pe_array": compute, **stalls}
    model = LayerModel(
        name=layer.name, cycles=total, compute_cycles=compute, stall_cycles=stalls, unattributed=unattributed,
        macs_issued=counts["macs_issued"], macs_useful=counts["macs_useful"], folds=counts["folds"],
        dram_bytes=traffic, sram_bytes=counts["sram_bytes"], actions=actions, bounds=bounds,
        dominant=max(shares, key=lambda key: shares[key]),
        dram_efficiency=float(peak / transfer) if transfer else 1.0, tiling=asdict(tiling))
    model.energy_pj = model_energy(energy, hw, total, actions, traffic["read"] + traffic["write"], counts["sram_bytes"])
    model.edp = model.energy_pj["total"] * total / hw.clock_ghz
    return model


# ----------------------------------------------------------------------------- exact counts


def _counts(layer: Layer, h: _Hw, terms: tuple[Pattern, ...], act: bool, tiling: ModelTiling) -> dict[str, Any]:
    """Everything the simulator counts exactly, from tile counts times tile sizes."""
    g, m, n, k = layer.groups, layer.m, layer.n, layer.k
    r, word, psum = h.r, h.word, h.psum
    depths = [p.depth(k) for p in terms]
    traffic = _traffic(layer, h, terms, act, tiling)
    col_classes = classes(n, h.c)
    sparse = [p.metadata_bits > 0 for p in terms]
    in_sram_read = g * tiling.col_tiles * m * word * sum(depths)  # every fold streams its compressed rows
    w_sram_read = g * tiling.row_blocks * n * word * sum(depths)
    if tiling.dataflow == "ws":
        multi = len(terms) > 1
        per_block = sum(_cdiv(d, r) for d in depths)
        blocks = g * tiling.col_tiles * tiling.row_blocks
        rows = classes(m, tiling.block_rows)
        compute = g * tiling.col_tiles * per_block * sum(nt * h.fold(t) for t, nt in rows)
        folds = blocks * per_block
        decoder_folds = blocks * sum(_cdiv(d, r) for d, s in zip(depths, sparse) if s)
        indices = g * tiling.row_blocks * n * sum(d for d, s in zip(depths, sparse) if s)  # rows x cols per fold
        acc_adds = g * m * n * per_block if multi else 0  # the accumulator adds every fold's psums
        psums = g * m * n * psum * per_block  # every fold reads and writes its psums (array or accumulator)
        out_sram = {"read": psums + traffic["outputs"], "write": psums}
        read_bursts = g * tiling.col_tiles * sum(nt * h.dram.bursts(t * k * word) for t, nt in rows)
        read_bursts += g * tiling.row_blocks * sum(nc * tile[2] * h.dram.bursts(tile[1]) for p in terms
                                                   for cols, nc in col_classes
                                                   for tile in _weight_tiles(layer, h, p, act, cols))
        write_bursts = g * sum(nt * nc * h.dram.bursts(t * cols * psum) for t, nt in rows for cols, nc in col_classes)
        transfers = blocks * (per_block + 2)  # its input tile, a weight tile per fold, its store
    else:
        per_block = 1
        tiles = g * tiling.row_blocks * tiling.col_tiles
        rows = classes(m, r)
        compute = tiles * (2 * r + h.c + sum(depths) - 2)
        folds = tiles * len(terms)
        decoder_folds = tiles * sum(sparse)
        indices = g * tiling.row_blocks * n * sum(d for d, s in zip(depths, sparse) if s)  # K x cols per fold
        acc_adds = 0
        out_sram = {"read": traffic["outputs"], "write": g * m * n * psum}  # psums written once, by term 0
        read_bursts = g * tiling.col_tiles * sum(nr * h.dram.bursts(rb * k * word) for rb, nr in rows)
        read_bursts += g * tiling.row_blocks * sum(nc * h.dram.bursts(_os_weight_bytes(h, terms, act, k, cols))
                                                   for cols, nc in col_classes)
        write_bursts = g * sum(nr * nc * h.dram.bursts(rb * cols * psum) for rb, nr in rows for cols, nc in col_classes)
        transfers = tiles * 3  # its input, weight and output tiles
    sram = {"weights": {"read": w_sram_read, "write": traffic["weights"] + traffic["metadata"]},
            "inputs": {"read": in_sram_read, "write": traffic["inputs"]},
            "outputs": out_sram}
    macs = g * m * n * sum(depths)
    nm_groups = g * tiling.col_tiles * m * sum(p.nm_groups(k) for p in terms) if act else 0
    tasd_elements = g * tiling.col_tiles * m * sum(p.nm_groups(k) * p.m for p in terms) if act else 0  # M per group
    return {
        "compute": compute, "folds": folds, "folds_per_block": per_block, "decoder_folds": decoder_folds,
        "macs_issued": macs, "macs_useful": g * m * n * sum(useful_depth(p, k) for p in terms),
        "dram_bytes": traffic, "sram_bytes": sram,
        "actions": {
            "dram": {"read_bursts": read_bursts, "write_bursts": write_bursts},
            "dma": {"transfers": transfers},
            "pe_array": {"macs": macs, "folds": folds},
            "metadata_decoder": {"folds": decoder_folds, "indices": indices},
            "accumulator": {"adds": acc_adds},
            "tasd_units": {"nm_groups": nm_groups, "elements": tasd_elements},
            **{f"sram_{name}": {"read_bytes": v["read"], "write_bytes": v["write"]} for name, v in sram.items()},
        },
    }


def _traffic(layer: Layer, h: _Hw, terms: tuple[Pattern, ...], act: bool, tiling: ModelTiling) -> dict[str, int]:
    """DRAM bytes per operand (metadata apart), keyed like the simulator's `dram_bytes`."""
    g, m, n, k = layer.groups, layer.m, layer.n, layer.k
    inputs = g * tiling.col_tiles * m * k * h.word
    outputs = g * m * n * h.psum
    col_classes = classes(n, h.c)
    if act:  # terms are decomposed on chip: dense weights, no metadata
        if tiling.dataflow == "ws":
            weights = g * tiling.row_blocks * n * h.word * sum(covered_rows(p, k, h.r) for p in terms)
        else:
            weights = g * tiling.row_blocks * n * h.word * k
        meta = 0
    else:
        weights = g * tiling.row_blocks * n * h.word * sum(p.depth(k) for p in terms)
        if tiling.dataflow == "ws":  # metadata rounds up to bytes per R x C weight tile
            meta = g * tiling.row_blocks * sum(nc * nf * _cdiv(rows * cols * p.metadata_bits, 8) for p in terms
                                               for cols, nc in col_classes for rows, nf in classes(p.depth(k), h.r))
        else:  # ... per K x C weight tile and term
            meta = g * tiling.row_blocks * sum(nc * _cdiv(p.depth(k) * cols * p.metadata_bits, 8)
                                               for p in terms for cols, nc in col_classes)
    return {"read": weights + meta + inputs, "write": outputs, "weights": weights, "metadata": meta,
            "inputs": inputs, "psums_read": 0, "outputs": outputs}


def _weight_tiles(layer: Layer, h: _Hw, p: Pattern, act: bool, cols: int) -> list[tuple[int, int, int]]:
    """(compressed rows, DRAM bytes, how many) of one WS term's weight tiles in a column tile."""
    k = layer.k
    if act:
        return [(min(h.r, p.depth(k) - f * h.r), rows * cols * h.word, 1)
                for f, rows in enumerate(covered_rows_by_fold(p, k, h.r))]
    return [(rows, rows * cols * h.word + _cdiv(rows * cols * p.metadata_bits, 8), nf)
            for rows, nf in classes(p.depth(k), h.r)]


def _os_weight_bytes(h: _Hw, terms: tuple[Pattern, ...], act: bool, k: int, cols: int) -> int:
    """An OS weight tile: all terms' K x cols weights (dense K rows with activation TASD)."""
    if act:
        return k * cols * h.word
    return sum(p.depth(k) * cols * h.word + _cdiv(p.depth(k) * cols * p.metadata_bits, 8) for p in terms)


# ----------------------------------------------------------------------------- blocks


class _Fold(NamedTuple):
    cycles: int  # port-stretched
    load: int  # its weights from an idle DRAM
    decode: int
    nbytes: int  # its weight tile
    count: int  # how many folds of this kind follow one another
    term: int


@dataclass(frozen=True)
class _Block:
    """One output tile's closed-form times (cycles) and tile sizes (bytes)."""

    seq: tuple[_Fold, _Fold, _Fold]  # folds 0, 1, 2 (continuing into the next block like it)
    folds: int
    array: int  # its folds, port-stretched
    rest: int  # folds 2 .. F-1, each the longest of its fold, its weight load and its decode
    stream: Fraction  # its tiles on a busy DRAM (see _Dram.stream)
    in_bytes: int
    out_bytes: int
    out: int  # its output tile from an idle DRAM
    tasd: int  # all its TASDs
    tasd_first: int
    tasd_terms: tuple[int, ...]
    acc: int  # the accumulator's busy cycles: taking every fold's psums, then draining
    acc_stall: int  # cycles its folds wait for the accumulator to take their psums
    last_fold: int
    term_of: tuple[int, int, int]  # the term of folds 0, 1, 2 (-1: the next block's)
    dataflow: str
    decoder: int  # the metadata decoder's busy cycles
    per_term: tuple[int, ...]  # each term's folds, port-stretched
    decodes: tuple[int, ...]  # an OS tile's decode per term (a WS block decodes fold by fold)
    kinds: tuple[_Fold, ...]  # its folds in order, a kind with its count

    def fold(self, j: int) -> _Fold:
        """Its fold j (0-based)."""
        for f in self.kinds:
            if j < f.count:
                return f
            j -= f.count
        raise IndexError(j)


def _make_block(folds: list[_Fold], h: _Hw, in_bytes: int, out_bytes: int, tasd: list[int], acc: int,
                acc_stall: int, per_term: list[int], decodes: list[int] | None = None) -> _Block:
    """A block's closed-form times from its folds in order (a fold kind with its count). The metadata
    decoder decodes fold by fold, one at a time (`decodes`: per term, when a fold holds all terms)."""
    seq: list[_Fold] = []
    term_of: list[int] = []
    while len(seq) < 3:
        for f in folds:
            take = min(f.count, 3 - len(seq))
            term_of.extend([f.term] * take)
            seq.extend([f] * take)
    total = sum(f.count for f in folds)
    term_of = [t if i < total else -1 for i, t in enumerate(term_of)]
    stream = sum(max(f.cycles, f.load, f.decode) * f.count for f in folds)  # each fold: array, weights, decoder
    dram = sum((h.dram.stream(f.nbytes) * f.count for f in folds), Fraction(0))
    return _Block(seq=tuple(seq), folds=total, array=sum(f.cycles * f.count for f in folds),
                  rest=stream - sum(max(f.cycles, f.load, f.decode) for f in seq[:2]) if total > 2 else 0,
                  stream=dram + h.dram.stream(in_bytes) + h.dram.stream(out_bytes),
                  in_bytes=in_bytes, out_bytes=out_bytes, out=h.load(out_bytes, h.buf.outputs),
                  tasd=sum(tasd), tasd_first=tasd[0], tasd_terms=tuple(tasd), acc=acc, acc_stall=acc_stall,
                  last_fold=folds[-1].cycles, term_of=tuple(term_of),
                  dataflow=h.hw.pe_array.dataflow, per_term=tuple(per_term), decodes=tuple(decodes or ()),
                  kinds=tuple(folds),
                  decoder=sum(decodes) if decodes else sum(f.decode * f.count for f in folds))


def _ws_blocks(layer: Layer, h: _Hw, terms: tuple[Pattern, ...], act: bool,
               tiling: ModelTiling) -> tuple[list[_Block], list[tuple[_Block, int]]]:
    """One group's WS blocks in order (column tile, then row block) and each kind with its count."""
    k, word, psum, buf = layer.k, h.word, h.psum, h.buf

    def block(t: int, cols: int) -> _Block:
        folds = []
        multi = len(terms) > 1
        take = h.take(t, cols) if multi else 0  # the accumulator takes a fold's psums as they leave
        acc_stall = 0
        for i, p in enumerate(terms):
            for rows, nbytes, nf in _weight_tiles(layer, h, p, act, cols):
                ports = max(h.port(t * rows * word, buf.inputs), h.port(rows * cols * word, buf.weights),
                            h.port(2 * t * cols * psum, buf.outputs))  # psums read and written
                span = max(h.fold(t), ports)
                acc_stall += nf * max(0, h.fold(0) + take - span)
                folds.append(_Fold(max(span, h.fold(0) + take), h.load(nbytes, buf.weights),
                                   h.dec if p.metadata_bits else 0, nbytes, nf, i))
        tasd = [h.tasd(t * p.nm_groups(k), p) if act else 0 for p in terms]
        n_folds = sum(f.count for f in folds)
        acc = n_folds * take + h.hw.accumulator.latency if multi else 0
        per_term = [sum(f.cycles * f.count for f in folds if f.term == i) for i in range(len(terms))]
        return _make_block(folds, h, t * k * word, t * cols * psum, tasd, acc, acc_stall, per_term)

    rows, cols = classes(layer.m, tiling.block_rows), classes(layer.n, h.c)
    info = {(t, c): block(t, c) for t, _ in rows for c, _ in cols}
    group = [info[(t, c)] for c, nc in cols for _ in range(nc) for t, nt in rows for _ in range(nt)]
    return group, [(info[(t, c)], layer.groups * nt * nc) for t, nt in rows for c, nc in cols]


def _os_blocks(layer: Layer, h: _Hw, terms: tuple[Pattern, ...], act: bool,
               tiling: ModelTiling) -> tuple[list[_Block], list[tuple[_Block, int]]]:
    """One group's OS tiles in order (row block, then column tile), each a block of one fold whose
    weights are the whole K x C tile, and each kind with its count."""
    k, word, psum, buf = layer.k, h.word, h.psum, h.buf
    depths = [p.depth(k) for p in terms]

    def tile(rows: int, cols: int) -> _Block:
        per_term = []
        for i, d in enumerate(depths):
            cycles = h.fold(d) if i == 0 else d  # later terms stream right behind the first
            ports = max(h.port(rows * d * word, buf.inputs), h.port(d * cols * word, buf.weights),
                        h.port(rows * cols * psum if i == 0 else 0, buf.outputs))
            per_term.append(max(cycles, ports))
        nbytes = _os_weight_bytes(h, terms, act, k, cols)
        decodes = [h.dec if p.metadata_bits else 0 for p in terms]  # one decode per term's fold
        fold = _Fold(sum(per_term), h.load(nbytes, buf.weights), decodes[0], nbytes, 1, 0)
        tasd = [h.tasd(rows * p.nm_groups(k), p) if act else 0 for p in terms]
        return _make_block([fold], h, rows * k * word, rows * cols * psum, tasd, 0, 0, per_term, decodes)

    rows, cols = classes(layer.m, h.r), classes(layer.n, h.c)
    info = {(r, c): tile(r, c) for r, _ in rows for c, _ in cols}
    group = [info[(r, c)] for r, nr in rows for _ in range(nr) for c, nc in cols for _ in range(nc)]
    return group, [(info[(r, c)], layer.groups * nr * nc) for r, nr in rows for c, nc in cols]


# ----------------------------------------------------------------------------- the block recurrence


def _recurrence(h: _Hw, group: list[_Block], groups: int, multi: bool, folds: int, act: bool,
                stalls: dict[str, int]) -> tuple[int, int, int]:
    """Run the block recurrence over `groups` repetitions of `group`. Returns (the cycle the last
    store is done, cycles before the first fold, cycles after the last fold) and adds the stall
    cycles it charges, by cause, to `stalls`.

    Groups repeat the same blocks, so the recurrence runs over the first `window` groups and the
    last one; the groups between repeat the last two measured (a period may span two groups)."""
    state = _start(h, group[0], stalls)
    fill = state["s"]
    window = max(4, _cdiv(8, len(group)))
    runs = list(range(groups)) if groups <= window + 1 else [*range(window), None, groups - 1]
    marks = {}
    for gi in runs:
        if gi is None:
            skipped = groups - window - 1
            (t_a, st_a), (t_b, st_b) = marks[window - 2], marks[window]
            _shift(h, state, _cdiv(skipped * (t_b - t_a), 2))
            for cause in stalls:
                stalls[cause] += skipped * (st_b[cause] - st_a[cause]) // 2
            continue
        for bi, b in enumerate(group):
            last = gi == groups - 1 and bi == len(group) - 1
            nxt = None if last else group[(bi + 1) % len(group)]
            prev = None if gi == 0 and bi == 0 else group[bi - 1]
            _step(h, prev, b, nxt, state, multi, folds, act, stalls)
        marks[gi + 1] = (state["s"], dict(stalls))
    end, last_block = state["e"], group[-1]
    at = max(state["drained"] if multi else end, state["q_out"])
    done = _chain(h, [("out", last_block.out_bytes, h.buf.outputs, at)], state)["out"]
    # After the last fold the cycles are charged to the last store (to the ACC it waited for when
    # it took no time itself), as the simulator charges its tail.
    dram_done = h.dram.chain([(last_block.out_bytes, 0, at)], state["dram"])[0][0]
    cause = ("accumulator" if done == at else "sram" if done > dram_done else "dram")
    stalls[cause] += done - end
    return done, fill, done - end


def _start(h: _Hw, b: _Block, stalls: dict[str, int]) -> dict[str, Any]:
    """The state before the first fold: the first input tile and the first weights are served in
    that order; the first fold starts when both are in and the first term is decomposed (waited for
    in issue order: WS input or TASD then weights, OS input, weights then TASD)."""
    w0 = b.seq[0]
    state: dict[str, Any] = {"dram": None}
    ends = _chain(h, [("in0", b.in_bytes, h.buf.inputs, 0), ("w0", w0.nbytes, h.buf.weights, 0)], state)
    cause = state["cause"]
    t0 = ends["in0"] + b.tasd_first
    source = [(t0, "tasd_units")] if b.tasd_first else [(ends["in0"], cause["in0"])]
    weights = [(ends["w0"], cause["w0"]), (ends["w0"] + w0.decode, "metadata_decoder")]
    s = _charge(0, source + weights if b.dataflow == "ws" else weights + source, stalls)
    return {"s": s, "e": 0, "dram": None, "tu": ends["in0"] + b.tasd, "in0": ends["in0"], "w0": ends["w0"],
            "q_in": 0, "q_out": 0, "q_w": 0, "store": 0, "store_cause": "dram", "t0": t0,
            "drained": 0, "dec0": ends["w0"] + w0.decode if w0.decode else 0}


def _step(h: _Hw, prev: _Block | None, b: _Block, nxt: _Block | None, state: dict[str, Any], multi: bool,
          folds: int, act: bool, stalls: dict[str, int]) -> None:
    """Block b runs from state["s"]; leaves the next block's start in state["s"].

    When the previous block's last fold ended it freed the slots of its store (issued after its
    ACC drained the accumulator), of the next block's input tile and of this block's second-fold
    weights (with one fold per block, the next block's), each behind the one before it in its DMA
    queue. The third fold's weights are issued when the first fold ends. All are served first come
    first served. Waits are charged, like the simulator does, to each dependency in the order it
    was issued."""
    f0, f1, f2 = b.seq
    s, buf = state["s"], h.buf
    if prev is None:
        items = [("in0", b.in_bytes, buf.inputs, 0), ("w0", f0.nbytes, buf.weights, 0)]
        if nxt is not None:
            items.append(("in", nxt.in_bytes, buf.inputs, state["in0"]))
        w1_at = state["w0"]
    else:
        origin = state["e"]
        store_at = state["drained"] if multi else origin
        # Released together, transfers reach the DRAM in the order their queues became free.
        items = [("out", prev.out_bytes, buf.outputs, max(store_at, state["q_out"]), state["q_out"])]
        if nxt is not None:
            items.append(("in", nxt.in_bytes, buf.inputs, max(origin, state["q_in"]), state["q_in"]))
        w1_at = max(origin, state["q_w"])
    w1 = f1 if folds > 1 else (nxt.seq[0] if nxt is not None else None)
    if w1 is not None:
        items.append(("w1", w1.nbytes, buf.weights, w1_at, state["q_w"]))
    ends = _chain(h, items, state)
    w2 = f2 if folds > 2 else (nxt.seq[0] if folds == 2 and nxt is not None else None)
    if w2 is not None:
        items.append(("w2", w2.nbytes, buf.weights, max(s + f0.cycles, ends["w1"])))
        ends = _chain(h, items, state)
    cause = state["cause"]

    decoded = state["dec0"]  # the decoder: one fold's metadata at a time, each after its weights

    def decode(loaded: int, fold: _Fold) -> int:
        nonlocal decoded
        if fold.decode:
            decoded = max(loaded, decoded) + fold.decode
            return decoded
        return loaded

    def fold_deps(j: int, tag: str, fold: _Fold) -> list[tuple[int, str]]:
        """What fold j of this block waits for, in issue order: the TASD of its term if it starts
        one, its weights, their decode."""
        deps = []
        term = b.term_of[j]
        if act and term >= 1 and term != b.term_of[j - 1]:  # its term decomposed
            deps.append((state["t0"] + sum(b.tasd_terms[1:term + 1]), "tasd_units"))
        return deps + [(ends[tag], cause[tag]), (decode(ends[tag], fold), "metadata_decoder")]

    next_weights: list[tuple[int, str]] = []  # the next block's first weights, when loaded here
    if folds == 1:
        e = s + f0.cycles
        decoded += b.decoder - f0.decode  # an OS tile's later terms
        if w1 is not None:
            next_weights = [(ends["w1"], cause["w1"]), (decode(ends["w1"], w1), "metadata_decoder")]
    else:
        s1 = _charge(s + f0.cycles, fold_deps(1, "w1", f1), stalls)
        if folds == 2:
            e = s1 + f1.cycles
            if w2 is not None:
                next_weights = [(ends["w2"], cause["w2"]), (decode(ends["w2"], w2), "metadata_decoder")]
        else:
            s2 = _charge(s1 + f1.cycles, fold_deps(2, "w2", f2), stalls)
            e = s2 + b.rest + _late_store(h, b, state, items, ends, s2, folds, stalls)
            if nxt is not None:  # its first weights were in before the last fold; decoded after it
                decoded = max(decoded, e - b.last_fold)
                next_weights = [(decode(decoded, nxt.seq[0]), "metadata_decoder")]
    # The terms one after another: a later term also waits for its TASD (decomposed in order from
    # the first's) and an OS tile's for its decode.
    waits = {cause: 0 for cause in STALL_CAUSES}
    now = s
    for i, cycles in enumerate(b.per_term):
        deps = []
        if act and i >= 1:
            deps.append((state["t0"] + sum(b.tasd_terms[1:i + 1]), "tasd_units"))
        if b.decodes and i >= 1:
            deps.append((s + sum(b.decodes[1:i + 1]), "metadata_decoder"))
        now = _charge(now, deps, waits) + cycles
    if now > e:  # the terms' own waits outlast the weight stream's
        excess = now - e
        for why, cycles in waits.items():
            stalls[why] += min(cycles, excess)
            excess -= min(cycles, excess)
        stalls["dram"] += excess
        e = now
    state["e"], state["dram"] = e, state.pop("dram_next")
    state["q_w"] = max(ends.get("w1", 0), ends.get("w2", 0), e - b.last_fold if folds > 2 else 0)
    if multi:  # the ACC drains the accumulator after the block's last fold
        state["drained"] = e + h.hw.accumulator.latency
    if prev is not None:
        state["store"] = state["q_out"] = ends["out"]
        state["store_cause"] = cause["out"]
    if nxt is None:
        return
    state["q_in"] = ends["in"]
    tasd_start = max(ends["in"], state["tu"])
    state["tu"] = tasd_start + nxt.tasd
    state["t0"] = tasd_start + nxt.tasd_first
    # The next block's first fold: its output slot (the store before), the ACC two terms back,
    # its input tile (or its first TASD), its weights.
    deps = [(state["store"], state["store_cause"])]
    if act:
        source = [(tasd_start + nxt.tasd_first, "tasd_units")]
    else:
        source = [(ends["in"], cause["in"])]
    deps += source + next_weights if b.dataflow == "ws" else next_weights + source
    state["s"] = _charge(e, deps, stalls)
    state["dec0"] = decoded if nxt.seq[0].decode else 0


def _late_store(h: _Hw, b: _Block, state: dict[str, Any], items: list[tuple], ends: dict[str, int], s2: int,
                folds: int, stalls: dict[str, int]) -> int:
    """Cycles a store that reached the DRAM after the third fold's weights adds to a block: the
    first weight load issued after it waits behind it. Fold j >= 2 of the weight stream ends about
    s2 + (j - 1) * p (p: the average of folds 2 .. F-1), and fold j's weights are issued when fold
    j - 2 ends, so the store holds fold j = 3 + ceil((arrival - s2) / p)."""
    store = next((item for item in items if item[0] == "out"), None)
    if store is None or folds < 4 or store[3] <= items[-1][3]:
        return 0
    per = Fraction(b.rest, folds - 2)
    j = 3 + max(0, math.ceil((store[3] - s2) / per))
    if j >= folds:
        return 0
    fold = b.fold(j)
    issued = s2 + math.ceil((j - 3) * per)
    done, after, bound = h.dram.chain([(fold.nbytes, h.port(fold.nbytes, h.buf.weights), issued)], state["dram_next"])
    delay = max(0, done[0] + fold.decode - (s2 + math.ceil((j - 2) * per)))
    state["dram_next"] = after
    stalls["sram" if bound[0] else "dram"] += delay
    return delay


def _charge(ready: int, deps: list[tuple[int, str]], stalls: dict[str, int]) -> int:
    """When a fold ready at `ready` starts: after each dependency, waited for in order, each
    charged with the cycles it alone held the fold."""
    now = ready
    for done, why in deps:
        if done > now:
            stalls[why] += done - now
            now = done
    return now


def _shift(h: _Hw, state: dict[str, Any], delta: int) -> None:
    """Move every absolute time of the recurrence later by delta cycles."""
    for key in ("s", "e", "tu", "t0", "store", "q_in", "q_out", "q_w", "drained", "dec0"):
        state[key] += delta
    if state["dram"] is not None:
        state["dram"] = h.dram.shifted(state["dram"], delta)


def _chain(h: _Hw, items: list[tuple], state: dict[str, Any] | None = None) -> dict[str, int]:
    """Finish cycles, by tag, of tile transfers (tag, bytes, buffer, arrival cycle[, since when its
    queue waited]) served first come first served (ties: the queue that waited longer first, then
    the order given) after those of the recurrence `state`, whose next DRAM state it leaves in
    state["dram_next"] (and the stall cause of each tag in state["cause"])."""
    order = sorted(range(len(items)), key=lambda i: (items[i][3], items[i][4] if len(items[i]) > 4 else 0))
    ends, after, port_bound = h.dram.chain(
        [(items[i][1], h.port(items[i][1], items[i][2]), items[i][3]) for i in order], state["dram"] if state else None)
    if state is not None:
        state["dram_next"] = after
        state["cause"] = {items[i][0]: "sram" if bound else "dram" for i, bound in zip(order, port_bound)}
    return {items[i][0]: end for i, end in zip(order, ends)}
