"""Memory controller: DRAMsim3's per-channel controller, cycle by cycle, in a Numba kernel.

A port of the controller of DRAMsim3 (umd-memsys/DRAMsim3 at 29817593, `src/controller.cc`,
`command_queue.cc`, `channel_state.cc`, `bankstate.cc`, `timing.cc`, `refresh.cc`) with its
`PER_BANK` queues, `OPEN_PAGE` rows and `RANK_LEVEL_STAGGERED` refresh. Per channel, every tCK:

1. refresh: every `tREFI / ranks` cycles (first at that cycle) the next rank, in turn, needs a
   refresh; until its REFRESH issues, its queues are skipped, its open banks are precharged and the
   REFRESH goes out once every bank of the rank allows it. The rank then waits tRFC.
2. one command: the bank queues are visited round-robin from the one after the queue visited last;
   the first queue holding a command whose next step (ACTIVATE, PRECHARGE, READ or WRITE) meets
   every timing constraint issues it (first ready, first come inside each queue). A PRECHARGE only
   serves the oldest command of its queue, and waits while younger commands still hit the open row,
   unless the row has served `row_hit_cap` hits. A WRITE waits for an older READ of its address in the
   queue; an ACTIVATE also needs the rank's four-activate window (tFAW). With `hbm_dual_cmd` a second
   command of the other kind (row vs column) may issue in the same cycle.
3. one transaction moves from the read queue (or, while the write buffer drains, from the write
   buffer) to its bank's command queue: the oldest whose queue has room. The write buffer drains
   from the moment it is full, or holds more than `write_drain_idle` writes while every command
   queue is empty, until that many writes have moved; a write whose address has a read pending
   stops the drain.

Requests enter in order (the front end): each not before its arrival cycle, while its channel's read
queue (reads) or write buffer (writes) has room; the first that does not fit holds back all later
ones. A read of an address with a read pending merges with it (one READ serves both); a read of an
address waiting in the write buffer completes one cycle after it enters; a write of an address
already in the write buffer merges with it. A read is done `read_delay = CL + BL/2` after its READ
issues (its data has been returned), a write `write_delay = CWL + BL/2` after its WRITE (its data
burst has ended). With `idle_drain` a controller whose read and command queues are empty drains its
write buffer (the simulator: writes never wait for more writes); without it, only once every request
has entered (replaying a finished stream, as the DRAMsim3 reference driver does).

The kernel steps tCK by tCK but jumps over cycles in which nothing can happen: after a cycle in which
no transaction moved to a command queue, it goes straight to the next arrival that fits, refresh,
or the earliest cycle at which a queued command's next step meets its timing.

State lives in NumPy arrays (layouts below) that `MemoryController` owns; `advance` runs the
controllers from the current cycle to a limit and reports the transfers that became complete.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from tasdsim.components.dram import DramTiming

# command kinds; also the index of each kind's earliest issue cycle among a bank's B_READY columns
READ, WRITE, ACT, PRE, REF = 0, 1, 2, 3, 4
NONE = -1

# the parameter vector
(P_CHANNELS, P_RANKS, P_BANKGROUPS, P_BANKS_PER_GROUP, P_TRANS_QUEUE, P_CMD_QUEUE, P_HIT_CAP,
 P_DRAIN_IDLE, P_DUAL, P_REFRESH_INTERVAL, P_READ_DELAY, P_WRITE_DELAY,
 P_RR_L, P_RR_S, P_RR_O, P_RW, P_RW_O, P_RP, P_WR_L, P_WR_S, P_WR_O, P_WW_L, P_WW_S, P_WW_O, P_WP,
 P_TRP, P_TRC, P_TRRD_L, P_TRRD_S, P_TRAS, P_TRCD, P_TFAW, P_TRFC, P_COUNT) = range(34)

# rows of the request table: byte address, arrival (tCK), write (0/1), decoded channel, bank
# (rank * banks per rank + bank group * banks per group + bank), row, column, and the transfer it
# belongs to (-1: none)
R_ADDR, R_ARRIVAL, R_WRITE, R_CHANNEL, R_BANK, R_ROW, R_COL, R_XFER, R_COUNT = range(9)

# per-channel scalars: read queue and write buffer occupancy, commands queued, the queue visited
# last, refreshes waiting, the rank being refreshed (-1: none), the next rank to refresh, writes
# left to drain
C_RQ, C_WB, C_CQ, C_QIDX, C_REFQ, C_REF_RANK, C_NEXT_REF_RANK, C_DRAINING, C_COUNT = range(9)

# per bank: open row (-1: closed), READ/WRITEs since its ACTIVATE, closed for a row conflict (0/1),
# then the earliest cycle of each command kind (READ, WRITE, ACT, PRE, REF)
B_ROW, B_HITS, B_CONFLICT, B_READY, B_COUNT = 0, 1, 2, 3, 8

# whole-system scalars: the next cycle to simulate, the next request to offer, requests not done
G_CLK, G_NEXT, G_UNFINISHED, G_COUNT = range(4)

# statistics per channel
(S_ACT, S_PRE, S_REF, S_READ_CMDS, S_WRITE_CMDS, S_READ_HITS, S_WRITE_HITS, S_MISSES, S_CONFLICTS, S_DUAL,
 S_DRAINS, S_COUNT) = range(12)

FOREVER = 1 << 62


@njit(cache=True)
def _update_timing(ch, kind, bank, clk, bs, p):
    """Command `kind` issued at `clk` to `bank` of channel `ch` (the rank, for REF): raise the earliest
    cycle of every command on every bank it constrains (DRAMsim3's `timing.cc`)."""
    bpg = p[P_BANKS_PER_GROUP]
    bpr = p[P_BANKGROUPS] * bpg
    nb = p[P_RANKS] * bpr
    rank = bank // bpr
    bg = (bank % bpr) // bpg
    for b in range(nb):
        r2 = b // bpr
        g2 = (b % bpr) // bpg
        if kind == READ or kind == WRITE:
            if kind == READ:
                if r2 != rank:
                    rd, wr = p[P_RR_O], p[P_RW_O]
                elif g2 != bg:
                    rd, wr = p[P_RR_S], p[P_RW]
                else:
                    rd, wr = p[P_RR_L], p[P_RW]
            else:
                if r2 != rank:
                    rd, wr = p[P_WR_O], p[P_WW_O]
                elif g2 != bg:
                    rd, wr = p[P_WR_S], p[P_WW_S]
                else:
                    rd, wr = p[P_WR_L], p[P_WW_L]
            bs[ch, b, B_READY + READ] = max(bs[ch, b, B_READY + READ], clk + rd)
            bs[ch, b, B_READY + WRITE] = max(bs[ch, b, B_READY + WRITE], clk + wr)
            if b == bank:
                bs[ch, b, B_READY + PRE] = max(bs[ch, b, B_READY + PRE], clk + (p[P_RP] if kind == READ else p[P_WP]))
        elif kind == ACT:
            if r2 != rank:
                continue
            if b == bank:
                bs[ch, b, B_READY + ACT] = max(bs[ch, b, B_READY + ACT], clk + p[P_TRC])
                bs[ch, b, B_READY + READ] = max(bs[ch, b, B_READY + READ], clk + p[P_TRCD])
                bs[ch, b, B_READY + WRITE] = max(bs[ch, b, B_READY + WRITE], clk + p[P_TRCD])
                bs[ch, b, B_READY + PRE] = max(bs[ch, b, B_READY + PRE], clk + p[P_TRAS])
            elif g2 == bg:
                bs[ch, b, B_READY + ACT] = max(bs[ch, b, B_READY + ACT], clk + p[P_TRRD_L])
            else:
                bs[ch, b, B_READY + ACT] = max(bs[ch, b, B_READY + ACT], clk + p[P_TRRD_S])
        elif kind == PRE:
            if b == bank:
                bs[ch, b, B_READY + ACT] = max(bs[ch, b, B_READY + ACT], clk + p[P_TRP])
                bs[ch, b, B_READY + REF] = max(bs[ch, b, B_READY + REF], clk + p[P_TRP])
        elif r2 == rank:  # REF: the whole rank
            bs[ch, b, B_READY + ACT] = max(bs[ch, b, B_READY + ACT], clk + p[P_TRFC])
            bs[ch, b, B_READY + REF] = max(bs[ch, b, B_READY + REF], clk + p[P_TRFC])


@njit(cache=True)
def _faw_ready(ch, rank, faw, p):
    """Earliest cycle the four-activate window allows another ACT of `rank`."""
    n = faw[ch, rank, 4]
    if n < 4:
        return 0
    return faw[ch, rank, n % 4] + p[P_TFAW]


@njit(cache=True)
def _step_kind(r, orow, req):
    """The next command request `r` needs from a bank whose open row is `orow` (-1: closed)."""
    if orow < 0:
        return ACT
    if req[R_ROW, r] == orow:
        return WRITE if req[R_WRITE, r] else READ
    return PRE


@njit(cache=True)
def _next_command(ch, clk, req, cq, cq_len, ctl, bs, faw, p):
    """DRAMsim3's GetCommandToIssue: (kind, queue, position in queue) of the command to issue at `clk`
    on channel `ch`, or (NONE, 0, 0). Advances the round-robin pointer as DRAMsim3 does."""
    nq = cq_len.shape[1]
    bpr = p[P_BANKGROUPS] * p[P_BANKS_PER_GROUP]
    ref_rank = ctl[ch, C_REF_RANK]
    for _ in range(nq):
        qi = ctl[ch, C_QIDX] + 1
        if qi == nq:
            qi = 0
        ctl[ch, C_QIDX] = qi
        n = cq_len[ch, qi]
        if n == 0 or (ref_rank >= 0 and qi // bpr == ref_rank):
            continue
        orow = bs[ch, qi, B_ROW]
        for e in range(n):
            r = cq[ch, qi, e]
            kind = _step_kind(r, orow, req)
            if clk < bs[ch, qi, B_READY + kind]:
                continue
            if kind == ACT:
                if clk < _faw_ready(ch, qi // bpr, faw, p):
                    continue
            elif kind == PRE:
                if e > 0:
                    continue
                pending_hit = False
                for f in range(1, n):
                    if req[R_ROW, cq[ch, qi, f]] == orow:
                        pending_hit = True
                        break
                if pending_hit and bs[ch, qi, B_HITS] < p[P_HIT_CAP]:
                    continue
            elif kind == WRITE:
                dep = False
                for f in range(e):
                    o = cq[ch, qi, f]
                    if req[R_WRITE, o] == 0 and req[R_ROW, o] == req[R_ROW, r] and req[R_COL, o] == req[R_COL, r]:
                        dep = True
                        break
                if dep:
                    continue
            return kind, qi, e
    return NONE, 0, 0


@njit(cache=True)
def _complete(r, t, done, g, req, xfer_left, xfer_finish, resolved, nres):
    """Request `r` is done at tCK `t`; a transfer whose last request this was is added to `resolved`.
    Returns the new count of `resolved`."""
    done[r] = t
    g[G_UNFINISHED] -= 1
    x = req[R_XFER, r]
    if x >= 0:
        if t > xfer_finish[x]:
            xfer_finish[x] = t
        xfer_left[x] -= 1
        if xfer_left[x] == 0:
            resolved[nres] = x
            nres += 1
    return nres


@njit(cache=True)
def _issue(ch, clk, kind, qi, e, req, done, merge_next, cq, cq_len, ctl, bs, faw, refq, stats, p,
           g, xfer_left, xfer_finish, resolved, nres):
    """Issue command `kind` at `clk`: for the request at position `e` of bank queue `qi` (READ, WRITE,
    ACT), to bank `qi` (PRE) or to rank `qi` (REF). Updates bank state, timing and statistics."""
    bpr = p[P_BANKGROUPS] * p[P_BANKS_PER_GROUP]
    if kind == READ or kind == WRITE:
        r = cq[ch, qi, e]
        n = cq_len[ch, qi]
        for f in range(e, n - 1):
            cq[ch, qi, f] = cq[ch, qi, f + 1]
        cq_len[ch, qi] = n - 1
        ctl[ch, C_CQ] -= 1
        t = clk + (p[P_READ_DELAY] if kind == READ else p[P_WRITE_DELAY])
        while r >= 0:
            nres = _complete(r, t, done, g, req, xfer_left, xfer_finish, resolved, nres)
            r = merge_next[r]
        hit = bs[ch, qi, B_HITS] != 0
        if kind == READ:
            stats[ch, S_READ_CMDS] += 1
            stats[ch, S_READ_HITS] += hit
        else:
            stats[ch, S_WRITE_CMDS] += 1
            stats[ch, S_WRITE_HITS] += hit
        bs[ch, qi, B_HITS] += 1
        _update_timing(ch, kind, qi, clk, bs, p)
    elif kind == ACT:
        bs[ch, qi, B_ROW] = req[R_ROW, cq[ch, qi, e]]
        stats[ch, S_ACT] += 1
        if bs[ch, qi, B_CONFLICT]:
            stats[ch, S_CONFLICTS] += 1
            bs[ch, qi, B_CONFLICT] = 0
        else:
            stats[ch, S_MISSES] += 1
        rank = qi // bpr
        faw[ch, rank, faw[ch, rank, 4] % 4] = clk
        faw[ch, rank, 4] += 1
        _update_timing(ch, ACT, qi, clk, bs, p)
    elif kind == PRE:
        bs[ch, qi, B_ROW] = -1
        bs[ch, qi, B_HITS] = 0
        stats[ch, S_PRE] += 1
        if qi // bpr != ctl[ch, C_REF_RANK]:
            bs[ch, qi, B_CONFLICT] = 1
        _update_timing(ch, PRE, qi, clk, bs, p)
    else:  # REF of rank qi
        stats[ch, S_REF] += 1
        _update_timing(ch, REF, qi * bpr, clk, bs, p)
        for i in range(ctl[ch, C_REFQ] - 1):
            refq[ch, i] = refq[ch, i + 1]
        ctl[ch, C_REFQ] -= 1
        ctl[ch, C_REF_RANK] = -1
    return nres


@njit(cache=True)
def _refresh_command(ch, clk, refq, ctl, bs, p):
    """DRAMsim3's FinishRefresh: (PRE, bank) for an open bank of the rank to refresh whose PRECHARGE
    is allowed, (REF, rank) once every bank of it is closed and allows REFRESH, else (NONE, 0)."""
    bpr = p[P_BANKGROUPS] * p[P_BANKS_PER_GROUP]
    rank = refq[ch, 0]
    ctl[ch, C_REF_RANK] = rank
    n_ready = 0
    for b in range(rank * bpr, rank * bpr + bpr):
        if bs[ch, b, B_ROW] >= 0:
            if clk >= bs[ch, b, B_READY + PRE]:
                return PRE, b
        elif clk >= bs[ch, b, B_READY + REF]:
            n_ready += 1
    if n_ready == bpr:
        return REF, rank
    return NONE, 0


@njit(cache=True)
def _find_pending(ch, bank, addr, write, req, rq, wb, cq, cq_len, ctl):
    """The queued request (read if `write` is 0, else write) of byte address `addr`, or -1: in the read
    queue or write buffer, or already in its bank's command queue."""
    if write:
        for i in range(ctl[ch, C_WB]):
            if req[R_ADDR, wb[ch, i]] == addr:
                return wb[ch, i]
    else:
        for i in range(ctl[ch, C_RQ]):
            if req[R_ADDR, rq[ch, i]] == addr:
                return rq[ch, i]
    for i in range(cq_len[ch, bank]):
        r = cq[ch, bank, i]
        if req[R_ADDR, r] == addr and req[R_WRITE, r] == write:
            return r
    return -1


@njit(cache=True)
def _wake_time(clk, req, n, g, cq, cq_len, ctl, bs, faw, refq, p, idle_drain):
    """The first cycle from `clk` at which anything can happen, given that no transaction moved at
    `clk - 1` (so none can move before a command frees room): the next arrival that fits its queue,
    a write drain about to start, the next refresh, or the earliest cycle at which a queued command's
    next step (or a pending refresh's) meets its timing. A lower bound: arbitration is ignored."""
    if idle_drain or g[G_NEXT] >= n:
        for ch in range(cq_len.shape[0]):
            if ctl[ch, C_DRAINING] == 0 and ctl[ch, C_WB] > 0 and ctl[ch, C_RQ] == 0 and ctl[ch, C_CQ] == 0:
                return clk
    t = FOREVER
    nxt = g[G_NEXT]
    if nxt < n and ctl[req[R_CHANNEL, nxt], C_WB if req[R_WRITE, nxt] else C_RQ] < p[P_TRANS_QUEUE]:
        t = max(req[R_ARRIVAL, nxt], clk)
    interval = p[P_REFRESH_INTERVAL]
    t = min(t, max(clk, (clk + interval - 1) // interval * interval))
    nch = cq_len.shape[0]
    nq = cq_len.shape[1]
    bpr = p[P_BANKGROUPS] * p[P_BANKS_PER_GROUP]
    for ch in range(nch):
        if ctl[ch, C_REFQ] > 0:
            rank = refq[ch, 0]
            for b in range(rank * bpr, rank * bpr + bpr):
                t = min(t, bs[ch, b, B_READY + PRE] if bs[ch, b, B_ROW] >= 0 else bs[ch, b, B_READY + REF])
        for qi in range(nq):
            n_q = cq_len[ch, qi]
            if n_q == 0:
                continue
            orow = bs[ch, qi, B_ROW]
            for e in range(n_q):
                kind = _step_kind(cq[ch, qi, e], orow, req)
                ready = bs[ch, qi, B_READY + kind]
                if kind == ACT:
                    ready = max(ready, _faw_ready(ch, qi // bpr, faw, p))
                t = min(t, ready)
    return max(t, clk)


@njit(cache=True)
def _advance(req, n, done, merge_next, merge_tail, p, g, ctl, rq, wb, cq, cq_len, bs, faw, refq, stats,
             until, stop_on_transfer, idle_drain, xfer_left, xfer_finish, resolved):
    """Run the controllers from cycle g[G_CLK] over requests 0..n-1 (from g[G_NEXT] on not yet
    offered). Stops before cycle `until`; when nothing is queued and every request has been offered;
    or (stop_on_transfer) before the cycle at which the earliest transfer known to be complete is
    done. Returns how many transfers it wrote to `resolved`."""
    nch = p[P_CHANNELS]
    tq, cqs = p[P_TRANS_QUEUE], p[P_CMD_QUEUE]
    interval = p[P_REFRESH_INTERVAL]
    nres = 0
    stop = until
    clk = g[G_CLK]
    while clk < stop:
        busy = False
        for ch in range(nch):
            if ctl[ch, C_RQ] or ctl[ch, C_WB] or ctl[ch, C_CQ] or ctl[ch, C_REFQ]:
                busy = True
                break
        if not busy and g[G_NEXT] >= n:
            break   # idle with nothing to offer: resume later from here
        moved = False   # a transaction moved to a command queue (or a drain stopped)
        # front end: requests in order, each not before its arrival, while their queue has room
        while g[G_NEXT] < n and req[R_ARRIVAL, g[G_NEXT]] <= clk:
            r = g[G_NEXT]
            ch = req[R_CHANNEL, r]
            w = req[R_WRITE, r]
            if ctl[ch, C_WB if w else C_RQ] >= tq:
                break
            addr = req[R_ADDR, r]
            bank = req[R_BANK, r]
            if w:
                head = _find_pending(ch, bank, addr, 1, req, rq, wb, cq, cq_len, ctl)
                if head >= 0:
                    merge_next[merge_tail[head]] = r
                    merge_tail[head] = r
                else:
                    wb[ch, ctl[ch, C_WB]] = r
                    ctl[ch, C_WB] += 1
            elif _find_pending(ch, bank, addr, 1, req, rq, wb, cq, cq_len, ctl) >= 0:
                nres = _complete(r, clk + 1, done, g, req, xfer_left, xfer_finish, resolved, nres)
            else:
                head = _find_pending(ch, bank, addr, 0, req, rq, wb, cq, cq_len, ctl)
                if head >= 0:
                    merge_next[merge_tail[head]] = r
                    merge_tail[head] = r
                else:
                    rq[ch, ctl[ch, C_RQ]] = r
                    ctl[ch, C_RQ] += 1
            g[G_NEXT] += 1
        if idle_drain or g[G_NEXT] >= n:
            for ch in range(nch):
                if ctl[ch, C_DRAINING] == 0 and ctl[ch, C_WB] > 0 and ctl[ch, C_RQ] == 0 and ctl[ch, C_CQ] == 0:
                    ctl[ch, C_DRAINING] = ctl[ch, C_WB]
                    stats[ch, S_DRAINS] += 1
        for ch in range(nch):
            if clk % interval == 0 and clk > 0:
                refq[ch, ctl[ch, C_REFQ]] = ctl[ch, C_NEXT_REF_RANK]
                ctl[ch, C_REFQ] += 1
                ctl[ch, C_NEXT_REF_RANK] = (ctl[ch, C_NEXT_REF_RANK] + 1) % p[P_RANKS]
            kind, qi, e = NONE, 0, 0
            if ctl[ch, C_REFQ] > 0:
                kind, qi = _refresh_command(ch, clk, refq, ctl, bs, p)
            if kind == NONE:
                kind, qi, e = _next_command(ch, clk, req, cq, cq_len, ctl, bs, faw, p)
            if kind != NONE:
                nres = _issue(ch, clk, kind, qi, e, req, done, merge_next, cq, cq_len, ctl, bs, faw, refq, stats, p,
                              g, xfer_left, xfer_finish, resolved, nres)
                if p[P_DUAL]:
                    k2, q2, e2 = _next_command(ch, clk, req, cq, cq_len, ctl, bs, faw, p)
                    if k2 != NONE and (k2 == READ or k2 == WRITE) != (kind == READ or kind == WRITE):
                        nres = _issue(ch, clk, k2, q2, e2, req, done, merge_next, cq, cq_len, ctl, bs, faw, refq,
                                      stats, p, g, xfer_left, xfer_finish, resolved, nres)
                        stats[ch, S_DUAL] += 1
            # ScheduleTransaction: at most one transaction to its bank's command queue
            if ctl[ch, C_DRAINING] == 0:
                nwb = ctl[ch, C_WB]
                if nwb >= tq or (nwb > p[P_DRAIN_IDLE] and ctl[ch, C_CQ] == 0):
                    ctl[ch, C_DRAINING] = nwb
            if ctl[ch, C_DRAINING] > 0:
                for i in range(ctl[ch, C_WB]):
                    r = wb[ch, i]
                    b = req[R_BANK, r]
                    if cq_len[ch, b] < cqs:
                        moved = True
                        if _find_pending(ch, b, req[R_ADDR, r], 0, req, rq, wb, cq, cq_len, ctl) >= 0:
                            ctl[ch, C_DRAINING] = 0
                            break
                        ctl[ch, C_DRAINING] -= 1
                        cq[ch, b, cq_len[ch, b]] = r
                        cq_len[ch, b] += 1
                        ctl[ch, C_CQ] += 1
                        for j in range(i, ctl[ch, C_WB] - 1):
                            wb[ch, j] = wb[ch, j + 1]
                        ctl[ch, C_WB] -= 1
                        break
            else:
                for i in range(ctl[ch, C_RQ]):
                    r = rq[ch, i]
                    b = req[R_BANK, r]
                    if cq_len[ch, b] < cqs:
                        moved = True
                        cq[ch, b, cq_len[ch, b]] = r
                        cq_len[ch, b] += 1
                        ctl[ch, C_CQ] += 1
                        for j in range(i, ctl[ch, C_RQ] - 1):
                            rq[ch, j] = rq[ch, j + 1]
                        ctl[ch, C_RQ] -= 1
                        break
        if stop_on_transfer:
            for i in range(nres):
                stop = min(stop, xfer_finish[resolved[i]])
        clk += 1
        if not moved:   # the next cycles repeat this one until time makes something possible
            clk = min(_wake_time(clk, req, n, g, cq, cq_len, ctl, bs, faw, refq, p, idle_drain), stop)
    g[G_CLK] = clk
    return nres


@njit(cache=True)
def _offer_lines(req, merge_tail, start, first_line, count, line_bytes, arrival, write, transfer, fields):
    """Fill request table columns start.. with `count` consecutive lines from `first_line`;
    `fields` is (shift, mask) of channel, rank, bank group, bank, row, column, then banks per rank
    and banks per group."""
    for i in range(count):
        r = start + i
        a = (first_line + i) * line_bytes
        req[R_ADDR, r] = a
        req[R_ARRIVAL, r] = arrival
        req[R_WRITE, r] = write
        req[R_CHANNEL, r] = (a >> fields[0, 0]) & fields[0, 1]
        req[R_BANK, r] = (((a >> fields[1, 0]) & fields[1, 1]) * fields[6, 0] + ((a >> fields[2, 0]) & fields[2, 1])
                          * fields[6, 1] + ((a >> fields[3, 0]) & fields[3, 1]))
        req[R_ROW, r] = (a >> fields[4, 0]) & fields[4, 1]
        req[R_COL, r] = (a >> fields[5, 0]) & fields[5, 1]
        req[R_XFER, r] = transfer
        merge_tail[r] = r


class MemoryController:
    """The controllers of every channel of one DRAM: their state, the request table (requests in the
    order they were offered) and the transfers the requests belong to. Times are tCK cycles."""

    def __init__(self, timing: DramTiming, idle_drain: bool) -> None:
        self.params = controller_params(timing)
        self.idle_drain = idle_drain
        self.line_bytes = timing.request_bytes
        bits = timing.field_bits()
        self.fields = np.array([(bits[f][0], (1 << bits[f][1]) - 1) for f in ("ch", "ra", "bg", "ba", "ro", "co")]
                               + [(timing.banks_per_rank, timing.banks_per_group)], np.int64)
        nch, banks = timing.channels, timing.ranks * timing.bankgroups * timing.banks_per_group
        self.g = np.zeros(G_COUNT, np.int64)
        self.ctl = np.zeros((nch, C_COUNT), np.int64)
        self.ctl[:, C_REF_RANK] = -1
        self.rq = np.zeros((nch, timing.trans_queue_size), np.int64)
        self.wb = np.zeros((nch, timing.trans_queue_size), np.int64)
        self.cq = np.zeros((nch, banks, timing.cmd_queue_size), np.int64)
        self.cq_len = np.zeros((nch, banks), np.int64)
        self.bs = np.zeros((nch, banks, B_COUNT), np.int64)
        self.bs[:, :, B_ROW] = -1
        self.faw = np.zeros((nch, timing.ranks, 5), np.int64)   # last 4 ACTIVATE cycles, then their count
        self.refq = np.zeros((nch, 64), np.int64)
        self.stats = np.zeros((nch, S_COUNT), np.int64)
        self.n = 0                                             # requests offered
        self.req = np.zeros((R_COUNT, 1024), np.int64)
        self.done = np.full(1024, -1, np.int64)
        self.merge_next = np.full(1024, -1, np.int64)          # requests merged into one, as a list
        self.merge_tail = np.zeros(1024, np.int64)
        self.transfers = 0
        self.xfer_left = np.zeros(64, np.int64)                # requests of each transfer not done
        self.xfer_finish = np.zeros(64, np.int64)              # the latest done of its requests
        self.resolved = np.zeros(64, np.int64)

    @property
    def clk(self) -> int:
        """The next cycle to simulate."""
        return int(self.g[G_CLK])

    def offer(self, fields: np.ndarray, transfer: int = -1) -> None:
        """Append requests (columns of `fields`: rows R_ADDR .. R_COL, arrivals not before the previous
        request's nor before `clk`) belonging to `transfer` (-1: none)."""
        count = fields.shape[1]
        end = self.n + count
        self._room(end)
        self.req[:R_XFER, self.n:end] = fields
        self.req[R_XFER, self.n:end] = transfer
        self.merge_tail[self.n:end] = np.arange(self.n, end)
        self.g[G_UNFINISHED] += count
        self.n = end

    def offer_lines(self, first_line: int, count: int, arrival: int, write: bool, transfer: int) -> None:
        """Append `count` requests to consecutive lines from `first_line`, arriving at tCK `arrival`,
        belonging to `transfer` (as `offer`, decoding the addresses here)."""
        self._room(self.n + count)
        _offer_lines(self.req, self.merge_tail, self.n, first_line, count, self.line_bytes, arrival, int(write),
                     transfer, self.fields)
        self.g[G_UNFINISHED] += count
        self.n += count

    def new_transfer(self, requests: int) -> int:
        """Open a transfer of `requests` requests (offer them with its id); returns the id."""
        x = self.transfers
        if x == self.xfer_left.shape[0]:
            grow = np.zeros(x, np.int64)
            self.xfer_left = np.concatenate([self.xfer_left, grow])
            self.xfer_finish = np.concatenate([self.xfer_finish, grow])
            self.resolved = np.concatenate([self.resolved, grow])
        self.xfer_left[x] = requests
        self.xfer_finish[x] = 0
        self.transfers += 1
        return x

    def finish(self, transfer: int) -> int:
        """The cycle at which a transfer whose requests are all done is done."""
        return int(self.xfer_finish[transfer])

    def advance(self, until: int, stop_on_transfer: bool) -> np.ndarray:
        """Simulate up to (not including) cycle `until`, stopping early when idle with nothing left to
        offer or (stop_on_transfer) at the cycle the earliest newly complete transfer is done.
        Returns the ids of the transfers whose requests all became done."""
        count = _advance(self.req, self.n, self.done, self.merge_next, self.merge_tail, self.params, self.g,
                         self.ctl, self.rq, self.wb, self.cq, self.cq_len, self.bs, self.faw, self.refq,
                         self.stats, until, stop_on_transfer, self.idle_drain, self.xfer_left, self.xfer_finish,
                         self.resolved)
        return self.resolved[:count].copy()

    def _room(self, end: int) -> None:
        """Grow the request table to hold `end` requests."""
        if end > self.done.shape[0]:
            size = max(end, 2 * self.done.shape[0])
            self.req = np.concatenate([self.req, np.zeros((R_COUNT, size - self.req.shape[1]), np.int64)], axis=1)
            self.done = np.concatenate([self.done, np.full(size - self.done.shape[0], -1, np.int64)])
            self.merge_next = np.concatenate([self.merge_next, np.full(size - self.merge_next.shape[0], -1, np.int64)])
            self.merge_tail = np.concatenate([self.merge_tail, np.zeros(size - self.merge_tail.shape[0], np.int64)])


def controller_params(timing: DramTiming) -> np.ndarray:
    """The kernel's parameter vector: organisation, queues, and DRAMsim3's command-to-command
    constraints (`timing.cc`) in tCK."""
    t = timing
    p = np.zeros(P_COUNT, np.int64)
    p[P_CHANNELS], p[P_RANKS], p[P_BANKGROUPS], p[P_BANKS_PER_GROUP] = t.channels, t.ranks, t.bankgroups, t.banks_per_group
    p[P_TRANS_QUEUE], p[P_CMD_QUEUE], p[P_HIT_CAP] = t.trans_queue_size, t.cmd_queue_size, t.row_hit_cap
    p[P_DRAIN_IDLE], p[P_DUAL] = t.write_drain_idle, t.protocol == "HBM2"
    p[P_REFRESH_INTERVAL] = t.tREFI // t.ranks
    p[P_READ_DELAY], p[P_WRITE_DELAY] = t.read_delay, t.write_delay
    for key, value in timing.constraints().items():
        p[_CONSTRAINT_SLOT[key]] = value
    return p


_CONSTRAINT_SLOT = {
    "read_to_read_same_bankgroup": P_RR_L, "read_to_read_other_bankgroup": P_RR_S, "read_to_read_other_rank": P_RR_O,
    "read_to_write_same_rank": P_RW, "read_to_write_other_rank": P_RW_O, "read_to_precharge": P_RP,
    "write_to_read_same_bankgroup": P_WR_L, "write_to_read_other_bankgroup": P_WR_S,
    "write_to_read_other_rank": P_WR_O, "write_to_write_same_bankgroup": P_WW_L,
    "write_to_write_other_bankgroup": P_WW_S, "write_to_write_other_rank": P_WW_O, "write_to_precharge": P_WP,
    "activate_to_read": P_TRCD, "activate_to_write": P_TRCD, "activate_to_precharge": P_TRAS,
    "activate_to_activate_same_bank": P_TRC, "activate_to_activate_same_bankgroup": P_TRRD_L,
    "activate_to_activate_other_bankgroup": P_TRRD_S, "four_activate_window": P_TFAW,
    "precharge_to_activate": P_TRP, "refresh_to_activate": P_TRFC,
}
