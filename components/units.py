"""What every instruction-executing unit shares: an inbox port, completion events, stall causes.

A unit takes instructions in order from its inbox (a bounded FIFO filled by the dispatcher), waits
for the instructions they depend on, does its work and marks them done in the shared `Completions`
port. The cause recorded per instruction is what the PE array reports when it waits on it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import simpy

from tasdsim.traces.isa import Instr


class Inbox:
    """A bounded FIFO port from the dispatcher to one unit. Like a SimPy Store, but it makes an
    event only when the unit must wait; a dispatcher held by a full inbox is called back
    (`on_room`) as soon as the unit takes an item, which keeps the per-instruction cost low."""

    def __init__(self, env: simpy.Environment, capacity: int) -> None:
        self.env = env
        self.capacity = capacity
        self.items: deque = deque()
        self.on_room: Callable[[], None] | None = None  # called once when a full inbox gets room
        self._getter: simpy.Event | None = None

    def put(self, item: Any) -> bool:
        """Append `item` unless the inbox is full; whether it was appended."""
        if len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        if self._getter is not None:
            getter, self._getter = self._getter, None
            getter.succeed()
        return True

    def pop(self) -> Any:
        """The next item, or None when the inbox is empty (then `take`)."""
        if not self.items:
            return None
        item = self.items.popleft()
        if self.on_room is not None:
            on_room, self.on_room = self.on_room, None
            on_room()
        return item

    def take(self) -> Generator[simpy.Event, Any, Any]:
        """The next item, waiting while the inbox is empty (`pop` first is cheaper)."""
        while not self.items:
            self._getter = self.env.event()
            yield self._getter
        return self.pop()


class Completions:
    """Which instructions are unfinished, done events for those someone waits on, and the stall
    cause of each finished instruction. Events are made only when a unit must wait, which keeps
    the per-instruction cost low."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.waiting: dict[int, Instr] = {}  # dispatched, not finished
        self._events: dict[int, simpy.Event] = {}
        self.cause: dict[int, str] = {}
        self.last_cause = "dram"  # cause of the instruction that finished last

    def open(self, ins: Instr) -> None:
        self.waiting[ins.id] = ins

    def event(self, ins_id: int) -> simpy.Event | None:
        """An event that fires when instruction `ins_id` finishes; None if it already has."""
        if ins_id not in self.waiting:
            return None
        event = self._events.get(ins_id)
        if event is None:
            event = self._events[ins_id] = self.env.event()
        return event

    def done(self, ins: Instr, cause: str) -> None:
        self.cause[ins.id] = cause
        self.last_cause = cause
        del self.waiting[ins.id]
        event = self._events.pop(ins.id, None)
        if event is not None:
            event.succeed()

    def pending(self, ins: Instr) -> bool:
        """Whether any dependency of `ins` is unfinished (then `wait` for them)."""
        waiting = self.waiting
        for dep in ins.deps:
            if dep in waiting:
                return True
        return False

    def wait(self, ins: Instr) -> Generator[simpy.Event, Any, list[tuple[str, int]]]:
        """Wait for every dependency; returns (cause, cycles waited) per dependency that held it."""
        waited = []
        for dep in ins.deps:
            if dep in self.waiting:
                start = self.env.now
                yield self.event(dep)
                if self.env.now > start:
                    waited.append((self.cause.get(dep, "dram"), self.env.now - start))
        return waited

    def forget(self, below: int) -> None:
        """Drop what is kept of instructions that no later one can name (ids < below)."""
        for key in [k for k in self.cause if k < below]:
            del self.cause[key]


def take_ready(inbox: Inbox, completions: Completions) -> Generator[simpy.Event, Any, Instr]:
    """The next instruction of `inbox` once its dependencies have finished (for units that do not
    report what held them)."""
    ins = inbox.pop()
    if ins is None:
        ins = yield from inbox.take()
    if completions.pending(ins):
        yield from completions.wait(ins)
    return ins
