"""The validation plot: simulated against modelled cycles, and against the roofline (matplotlib,
optional)."""
from __future__ import annotations

from typing import Any

from tasdsim.traces.patterns import parse_series


def plot_cycles(results: list[dict[str, Any]], summary: dict[str, Any], path: str) -> str | None:
    """Simulated against modelled cycles, log-log, with the tolerance band; None without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_roof) = plt.subplots(1, 2, figsize=(11, 5.2))
    for memory, marker in (("real", "o"), ("ideal", "s")):
        for status, color in (("exact", "C2"), ("within", "C0"), ("outside", "C3")):
            pts = [(r["sim_cycles"], r["model_cycles"]) for r in results
                   if r["memory"] == memory and r["status"] == status]
            if pts:
                ax.scatter(*zip(*pts), s=22, marker=marker, color=color, alpha=0.8, label=f"{memory}, {status}")
    values = [v for r in results for v in (r["sim_cycles"], r["model_cycles"], r["roofline_cycles"]) if v > 0]
    lo, hi = min(values) / 1.5, max(values) * 1.5
    tol = summary["tolerances"]["cycles_real"]
    d = summary["cycles_real"]
    detail = f": |diff| median {d['median'] * 100:.2f}%, max {d['max'] * 100:.2f}% (real DRAM)" if d["points"] else ""
    _diagonal(ax, lo, hi, tol, "modelled cycles (accelerator clock)", f"model: {summary['points']} points{detail}")
    for i, dominant in enumerate(sorted({r["dominant"] for r in results})):
        pts = [(r["sim_cycles"], r["roofline_cycles"]) for r in results if r["dominant"] == dominant]
        ax_roof.scatter(*zip(*pts), s=22, color=f"C{i}", alpha=0.8, label=f"dominant: {dominant}")
    _diagonal(ax_roof, lo, hi, tol, "roofline cycles (busiest unit + fill + drain)",
              "roofline: below the diagonal, stalls that do not overlap")
    hardware = ", ".join(sorted({r["hw"] for r in results}))
    workloads = ", ".join(sorted({r["layer"].get("workload", "GEMM") for r in results}))
    tasd = ", ".join(sorted({"dense" if parse_series(r["tasd"]).is_dense else
                             f"TASD-{'W' if r['operand'] == 'weights' else 'A'}" for r in results}))
    fig.suptitle(f"validate: {len(results)} points | hardware {hardware} | layers of {workloads} | {tasd}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _diagonal(ax: Any, lo: float, hi: float, tol: float, ylabel: str, title: str) -> None:
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax.fill_between([lo, hi], [lo * (1 - tol), hi * (1 - tol)], [lo * (1 + tol), hi * (1 + tol)], color="grey",
                    alpha=0.15, label=f"±{tol * 100:g}%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("simulated cycles (accelerator clock)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
