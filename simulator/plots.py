"""Plots (optional: matplotlib, headless Agg backend). Every function writes PNG files and returns
their paths; without matplotlib they return nothing and the caller says so."""
from __future__ import annotations

import os
from typing import Any


def _pyplot() -> Any | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def available() -> bool:
    return _pyplot() is not None


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both coordinates (lower is better), by the first."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def sweep_plots(rows: list[dict[str, Any]], axis_keys: list[str], out: str) -> list[str]:
    """One plot of cycles, energy and EDP against each axis, and the cycles-energy Pareto front."""
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    if plt is None or not ok:
        return []
    written = []
    for key in axis_keys:
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
        labels = sorted({str(r["axes"][key]) for r in ok}, key=_natural)
        for ax, metric in zip(axes, ("cycles", "energy_pj", "edp")):
            xs = [labels.index(str(r["axes"][key])) for r in ok]
            ax.scatter(xs, [r["metrics"][metric] for r in ok], s=18)
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
            ax.set_xlabel(key)
            ax.set_ylabel(metric)
        written.append(_save(plt, fig, out, f"sweep_{key.replace('.', '_')}.png"))
    pts = [(r["metrics"]["cycles"], r["metrics"]["energy_pj"]) for r in ok]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(*zip(*pts), s=18, label="points")
    ax.plot(*zip(*front), color="C3", marker="o", label="Pareto front")
    ax.set_xlabel("cycles")
    ax.set_ylabel("energy (pJ)")
    ax.legend()
    written.append(_save(plt, fig, out, "sweep_pareto.png"))
    return written


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def run_plots(layers: list[dict[str, Any]], pes: int, dram_bytes_per_cycle: float, out: str) -> list[str]:
    """Per-layer cycle breakdown (compute and each stall cause), utilisation per layer, and a
    roofline: useful MACs per DRAM byte against useful MACs per cycle, with the array's compute
    roof (PEs) and the DRAM roof (bytes per cycle x intensity)."""
    plt = _pyplot()
    if plt is None or not layers:
        return []
    names = [layer["name"] for layer in layers]
    xs = range(len(layers))
    width = max(6.0, 0.18 * len(layers) + 2)
    written = []

    fig, ax = plt.subplots(figsize=(width, 4))
    bottom = [0.0] * len(layers)
    parts = [("compute", [layer["compute_cycles"] for layer in layers])]
    causes = sorted({c for layer in layers for c, v in layer["stall_cycles"].items() if v})
    parts += [(f"stall: {c}", [layer["stall_cycles"].get(c, 0) for layer in layers]) for c in causes]
    for label, values in parts:
        ax.bar(xs, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    _layer_axis(ax, names, "cycles")
    ax.legend(fontsize=8)
    written.append(_save(plt, fig, out, "cycles_breakdown.png"))

    fig, ax = plt.subplots(figsize=(width, 3.5))
    ax.bar(xs, [layer["utilization"] for layer in layers])
    _layer_axis(ax, names, "PE utilisation")
    written.append(_save(plt, fig, out, "utilization.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    points = [(layer["macs_useful"] / max(1, layer["dram_bytes"]["read"] + layer["dram_bytes"]["write"]),
               layer["macs_useful"] / max(1, layer["cycles"])) for layer in layers]
    lo = min(p[0] for p in points) / 4
    hi = max(max(p[0] for p in points) * 4, 4 * pes / dram_bytes_per_cycle)
    grid = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    ax.plot(grid, [min(pes, dram_bytes_per_cycle * x) for x in grid], color="k", label="roofline")
    ax.scatter(*zip(*points), s=16, color="C1", label="layers")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (useful MACs / DRAM byte)")
    ax.set_ylabel("useful MACs / cycle")
    ax.legend(fontsize=8)
    written.append(_save(plt, fig, out, "roofline.png"))
    return written


def _layer_axis(ax: Any, names: list[str], ylabel: str) -> None:
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6 if len(names) > 20 else 8)
    ax.set_ylabel(ylabel)


def _save(plt: Any, fig: Any, out: str, name: str) -> str:
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
