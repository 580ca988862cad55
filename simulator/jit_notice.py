"""One line on stderr when Numba compiles a kernel: the first run after installing (or after a
kernel changes) compiles them, later runs load them from Numba's on-disk cache (every kernel is
`cache=True`) and print nothing.

Numba fires its "numba:compile" event only when it really compiles, not when it loads a kernel
from the cache, so the listener says exactly that. The line is printed once per command, also when
the compiling happens in the command's forked worker processes (they share the flag and its lock).
"""
from __future__ import annotations

import multiprocessing
import sys

from numba.core import event

MESSAGE = "tasdsim: compiling kernels, first run only (later runs load them from Numba's cache)"


class _CompileNotice(event.Listener):
    def __init__(self) -> None:
        self.said = multiprocessing.Value("b", 0)  # shared with forked workers

    def on_start(self, ev: event.Event) -> None:
        with self.said.get_lock():
            if self.said.value:
                return
            self.said.value = 1
        print(MESSAGE, file=sys.stderr, flush=True)

    def on_end(self, ev: event.Event) -> None:
        pass


_notice: _CompileNotice | None = None


def install() -> None:
    """Listen for Numba compilations (once per process)."""
    global _notice
    if _notice is None:
        _notice = _CompileNotice()
        event.register("numba:compile", _notice)
