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
        fig.tight_layout()
        path = os.path.join(out, f"sweep_{key.replace('.', '_')}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    pts = [(r["metrics"]["cycles"], r["metrics"]["energy_pj"]) for r in ok]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(*zip(*pts), s=18, label="points")
    ax.plot(*zip(*front), color="C3", marker="o", label="Pareto front")
    ax.set_xlabel("cycles")
    ax.set_ylabel("energy (pJ)")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out, "sweep_pareto.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
