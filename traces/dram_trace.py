"""DRAM request traces in DRAMsim3's format: one request per line, `0x<hex byte address> READ|WRITE
<arrival cycle>`, arrivals in DRAM tCK and non-decreasing. The same files run through DRAMsim3's
`TraceBasedCPU` and through `tasdsim dram`. Files ending in .gz are gzip-compressed."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasdsim.common import TasdsimError


@dataclass(frozen=True)
class DramTrace:
    """Requests in file order: byte addresses, write flags (0/1) and arrival cycles (int64 arrays)."""

    addresses: np.ndarray
    writes: np.ndarray
    arrivals: np.ndarray

    def __len__(self) -> int:
        return len(self.addresses)


def read_dram_trace(path: str | Path) -> DramTrace:
    """Read a trace; a line that is not `0x<hex> READ|WRITE <cycle>`, or whose cycle is earlier
    than the line before's, raises TasdsimError naming the file and the line. Blank lines are
    skipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("ascii")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise TasdsimError(f"{path}: cannot read the DRAM trace: {getattr(err, 'strerror', None) or err}") from None
    addresses, writes, arrivals = [], [], []
    last = 0
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{path}:{number}"
        if len(parts) != 3:
            raise TasdsimError(f"{where}: expected `0x<hex address> READ|WRITE <arrival cycle>`, got {line.strip()!r}")
        address, op, cycle = parts
        try:
            value = int(address, 16)
        except ValueError:
            value = -1
        if not address.lower().startswith("0x") or value < 0:
            raise TasdsimError(f"{where}: address must be 0x followed by hex digits, got {address!r}")
        if op not in ("READ", "WRITE"):
            raise TasdsimError(f"{where}: operation must be READ or WRITE, got {op!r}")
        if not cycle.isdigit():
            raise TasdsimError(f"{where}: arrival must be a non-negative integer cycle, got {cycle!r}")
        arrival = int(cycle)
        if arrival < last:
            raise TasdsimError(f"{where}: arrival {arrival} is earlier than the line before's ({last}): "
                               "lines must be in arrival order")
        if value >= 1 << 63 or arrival >= 1 << 61:
            raise TasdsimError(f"{where}: address or arrival too large")
        last = arrival
        addresses.append(value)
        writes.append(op == "WRITE")
        arrivals.append(arrival)
    if not addresses:
        raise TasdsimError(f"{path}: no requests in the DRAM trace")
    return DramTrace(np.array(addresses, np.int64), np.array(writes, np.int64), np.array(arrivals, np.int64))


def write_dram_trace(path: str | Path, addresses: np.ndarray, writes: np.ndarray, arrivals: np.ndarray) -> None:
    """Write requests in DRAMsim3's trace format (gzip when the name ends in .gz)."""
    lines = "".join(f"0x{a:x} {'WRITE' if w else 'READ'} {t}\n" for a, w, t in zip(addresses.tolist(),
                                                                                   writes.tolist(), arrivals.tolist()))
    data = lines.encode("ascii")
    path = Path(path)
    try:
        path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    except OSError as err:
        raise TasdsimError(f"{path}: cannot write the DRAM trace: {err.strerror or err}") from None
