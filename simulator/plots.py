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


METRIC_LABELS = {"cycles": "cycles (accelerator clock)", "energy_pj": "energy (pJ)", "edp": "EDP (pJ·ns)"}
ROOFLINE_NAMED = 6  # the roofline names the layers that take the most cycles


def sweep_plots(rows: list[dict[str, Any]], axis_keys: list[str], out: str, title: str) -> list[str]:
    """One plot of cycles, energy and EDP against each axis, and the cycles-energy Pareto front.
    Every point is coloured by its hardware preset; in the Pareto plot the marker tells the tasd
    settings apart. `title` names the sweep, its workload and its TASD setting."""
    plt = _pyplot()
    ok = [r for r in rows if r["status"] == "ok"]
    if plt is None or not ok:
        return []
    presets = list(dict.fromkeys(r["config"]["run"]["hw"] for r in ok))
    colour = {hw: f"C{i % 10}" for i, hw in enumerate(presets)}
    written = []
    for key in axis_keys:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        labels = sorted({str(r["axes"][key]) for r in ok}, key=_natural)
        for ax, metric in zip(axes, ("cycles", "energy_pj", "edp")):
            for i, hw in enumerate(presets):
                mine = [r for r in ok if r["config"]["run"]["hw"] == hw]
                spread = 0.0 if key == "hw" else 0.6 / len(presets)  # presets side by side at each value
                offset = (i - (len(presets) - 1) / 2) * spread
                ax.scatter([labels.index(str(r["axes"][key])) + offset for r in mine],
                           [r["metrics"][metric] for r in mine], s=22, color=colour[hw], label=hw)
            ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
            ax.set_xlabel(key)
            ax.set_ylabel(METRIC_LABELS[metric])
        axes[0].legend(fontsize=8, title="hardware", title_fontsize=8)
        fig.suptitle(f"{title}\ncycles, energy and EDP against {key}", fontsize=10)
        written.append(_save(plt, fig, out, f"sweep_{key.replace('.', '_')}.png"))
    settings = list(dict.fromkeys(str(r["config"]["run"]["tasd"]) for r in ok))
    markers = dict(zip(settings, "osD^v<>ph*"))
    fig, ax = plt.subplots(figsize=(7, 5))
    for hw in presets:
        for tasd in settings:
            pts = [(r["metrics"]["cycles"], r["metrics"]["energy_pj"]) for r in ok
                   if r["config"]["run"]["hw"] == hw and str(r["config"]["run"]["tasd"]) == tasd]
            if pts:  # tasd none hollow and larger, so a TASD point on top of it stays visible
                hollow = tasd == "none" and len(settings) > 1
                ax.scatter(*zip(*pts), s=110 if hollow else 40, marker=markers.get(tasd, "o"),
                           facecolors="none" if hollow else colour[hw], edgecolors=colour[hw],
                           label=f"{hw}, tasd {tasd}" if len(settings) > 1 else hw)
    front = pareto_front([(r["metrics"]["cycles"], r["metrics"]["energy_pj"]) for r in ok])
    ax.plot(*zip(*front), color="grey", lw=1, ls="--", zorder=0, label="Pareto front")
    ax.set_xlabel(METRIC_LABELS["cycles"])
    ax.set_ylabel(METRIC_LABELS["energy_pj"])
    ax.set_title(f"{title}\ncycles against energy, lower left is better", fontsize=10)
    ax.legend(fontsize=7)
    written.append(_save(plt, fig, out, "sweep_pareto.png"))
    return written


def _natural(text: str) -> tuple:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def run_plots(layers: list[dict[str, Any]], pes: int, dram_bytes_per_cycle: float, out: str,
              title: str) -> list[str]:
    """Per-layer cycle breakdown (compute and each stall cause), utilisation per layer, and a
    roofline: useful MACs per DRAM byte against useful MACs per cycle, with the array's compute
    roof (PEs) and the DRAM roof (bytes per cycle x intensity), the slowest layers named.
    `title` names the hardware, the workload and the TASD setting."""
    plt = _pyplot()
    if plt is None or not layers:
        return []
    names = [layer["name"] for layer in layers]
    xs = range(len(layers))
    width = max(6.0, 0.18 * len(layers) + 2)
    written = []

    fig, ax = plt.subplots(figsize=(width, 4.5))
    bottom = [0.0] * len(layers)
    parts = [("compute", [layer["compute_cycles"] for layer in layers])]
    causes = sorted({c for layer in layers for c, v in layer["stall_cycles"].items() if v})
    parts += [(f"stall: {c}", [layer["stall_cycles"].get(c, 0) for layer in layers]) for c in causes]
    for label, values in parts:
        ax.bar(xs, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values)]
    _layer_axis(ax, names, "cycles (accelerator clock)")
    ax.set_title(f"{title}\ncycles per layer, compute and stalls by cause", fontsize=10)
    ax.legend(fontsize=8)
    written.append(_save(plt, fig, out, "cycles_breakdown.png"))

    fig, ax = plt.subplots(figsize=(width, 4))
    ax.bar(xs, [layer["utilization"] for layer in layers])
    _layer_axis(ax, names, "PE utilisation\n(useful MACs / (cycles x PEs))")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}\nPE utilisation per layer", fontsize=10)
    written.append(_save(plt, fig, out, "utilization.png"))

    fig, ax = plt.subplots(figsize=(7, 5.5))
    points = [(layer["macs_useful"] / max(1, layer["dram_bytes"]["read"] + layer["dram_bytes"]["write"]),
               layer["macs_useful"] / max(1, layer["cycles"])) for layer in layers]
    lo = min(p[0] for p in points) / 4
    hi = max(max(p[0] for p in points) * 4, 4 * pes / dram_bytes_per_cycle)
    grid = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    ax.plot(grid, [min(pes, dram_bytes_per_cycle * x) for x in grid], color="k",
            label=f"roofline: {pes} PEs, DRAM {dram_bytes_per_cycle:.3g} B/cycle")
    ax.scatter(*zip(*points), s=16, color="C1", label="layers")
    at: dict[tuple[float, float], list[int]] = {}  # layers of the same shape land on the same point
    for i, point in enumerate(points):
        at.setdefault(point, []).append(i)
    slowest = sorted(at.values(), key=lambda same: -layers[same[0]]["cycles"])[:ROOFLINE_NAMED]
    for rank, same in enumerate(sorted(slowest, key=lambda same: points[same[0]][1])):
        label = names[same[0]] + (f" (+{len(same) - 1} alike)" if len(same) > 1 else "")
        left = rank % 2  # alternate sides, so neighbouring labels do not overlap
        ax.annotate(label, points[same[0]], xytext=(-6 if left else 6, -3), textcoords="offset points",
                    fontsize=7, ha="right" if left else "left")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operational intensity (useful MACs / DRAM byte)")
    ax.set_ylabel("performance (useful MACs / cycle)")
    named = "every layer named" if len(at) <= ROOFLINE_NAMED else f"the {ROOFLINE_NAMED} slowest layers named"
    ax.set_title(f"{title}\nroofline, {named}", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    written.append(_save(plt, fig, out, "roofline.png"))
    return written


def _layer_axis(ax: Any, names: list[str], ylabel: str) -> None:
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6 if len(names) > 20 else 8)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)


def _save(plt: Any, fig: Any, out: str, name: str) -> str:
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
