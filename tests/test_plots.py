"""Plots a reader understands: each figure's title names the hardware, the workload and the TASD
setting; every axis is labelled; the roofline names its slowest layers; sweep plots colour each
hardware preset apart. The figures are caught as they are saved and their texts read."""
import pytest

from tasdsim.simulator import plots
from tasdsim.simulator.cli import main

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """name -> {"title": every title text, "axes": [(xlabel, ylabel)], "notes": annotations, "legend": labels}"""
    seen = {}
    save = plots._save

    def catch(plt, fig, out, name):
        axes = [ax for ax in fig.axes if ax.get_xlabel() or ax.get_ylabel()]
        seen[name] = {
            "title": " ".join([fig._suptitle.get_text() if fig._suptitle else ""] + [ax.get_title() for ax in axes]),
            "axes": [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes],
            "notes": [t.get_text() for ax in axes for t in ax.texts],
            "legend": [t.get_text() for ax in axes if ax.get_legend() for t in ax.get_legend().get_texts()],
        }
        return save(plt, fig, out, name)

    monkeypatch.setattr(plots, "_save", catch)
    return seen


def _labelled(figure):
    assert figure["axes"] and all(x and y for x, y in figure["axes"]), figure["axes"]


def test_run_plots_name_hardware_workload_and_tasd(tmp_path, capsys, figures):
    assert main(["simulate", "--hw", "ttc-m8", "--workload", "resnet50", "--layers",
                 "conv1,layer1.0.conv2,layer1.1.conv2,layer2.0.conv1,layer3.0.conv2,layer4.0.conv2,fc",
                 "--tasd", "4:8+1:8", "--out", str(tmp_path)]) == 0
    assert set(figures) == {"cycles_breakdown.png", "utilization.png", "roofline.png"}
    for figure in figures.values():
        for needle in ("ttc-m8", "32x32 ws", "resnet50", "TASD-W 4:8+1:8"):
            assert needle in figure["title"]
        _labelled(figure)
    assert "cycles (accelerator clock)" in figures["cycles_breakdown.png"]["axes"][0][1]
    roofline = figures["roofline.png"]
    assert roofline["axes"] == [("operational intensity (useful MACs / DRAM byte)",
                                 "performance (useful MACs / cycle)")]
    assert len(roofline["notes"]) == plots.ROOFLINE_NAMED
    assert "layer1.0.conv2 (+1 alike)" in roofline["notes"]  # layer1.1.conv2 has the same point


def test_sweep_plots_colour_each_preset(tmp_path, capsys, figures):
    spec = tmp_path / "s.yaml"
    spec.write_text("hw: vegeta-m4\nworkload: {gemm: 64x48x96}\naxes:\n  hw: [stc-2of4, vegeta-m4]\n"
                    "  tasd: [none, '2:4']\n  pe_array.rows: [16, 32]\n")
    assert main(["sweep", str(spec), "--jobs", "1", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert set(figures) == {"sweep_hw.png", "sweep_tasd.png", "sweep_pe_array_rows.png", "sweep_pareto.png"}
    for figure in figures.values():
        assert "sweep s" in figure["title"] and "GEMM 64x48x96" in figure["title"] and "none vs 2:4" in figure["title"]
        _labelled(figure)
    assert figures["sweep_pe_array_rows.png"]["legend"] == ["stc-2of4", "vegeta-m4"]
    assert set(figures["sweep_pareto.png"]["legend"]) >= {"stc-2of4, tasd none", "vegeta-m4, tasd 2:4"}


def test_validate_plot_names_its_points(tmp_path, capsys, monkeypatch):
    names = []
    import matplotlib.figure

    savefig = matplotlib.figure.Figure.savefig

    def catch(fig, path, **kwargs):
        names.append((fig._suptitle.get_text(), [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]))
        return savefig(fig, path, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", catch)
    assert main(["validate", "--no-scalesim", "--out", str(tmp_path), "--points",
                 "dense/r50-fc,vegeta/r50-l1.0.conv1/1:4"]) in (0, 1)
    ((title, axes),) = names
    assert "2 points" in title and "dense-ws-32x32" in title and "vegeta-m4" in title and "TASD-W" in title
    assert all(x and y for x, y in axes)
