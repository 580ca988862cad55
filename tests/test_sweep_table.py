"""The paper sweeps' EDP table, sweeps on ONNX models with their real tensors, and the bundled paper specs."""
import yaml

from tasdsim.simulator.cli import main
from tasdsim.simulator.sweep_spec import load_spec
from tasdsim.simulator.sweep_table import edp_rows

from onnx_models import conv_net


def row(hw, tasd, edp, status="ok", **axes):
    return {"status": status, "axes": {"hw": hw, "tasd": tasd, **axes}, "metrics": {"edp": edp},
            "config": {"run": {"hw": hw, "tasd": tasd}, "overrides": []}}


def test_edp_rows_compare_with_the_same_hardware_dense():
    rows = [row("stc", "none", 100.0, synthetic="gaussian"), row("stc", "auto", 80.0, synthetic="gaussian"),
            row("stc", "auto", 50.0, synthetic="pruned"), row("m8", "none", 200.0, synthetic="gaussian"),
            row("m8", "auto", 50.0, synthetic="gaussian"), row("m8", "auto", 1.0, "failed", synthetic="pruned"),
            row("dense", "auto", 1.0, synthetic="gaussian")]
    table = edp_rows(rows, ["hw", "synthetic", "tasd"])
    assert [(t["hw"], t["synthetic"], t["edp_dense"], round(t["improvement"], 6)) for t in table] == [
        ("stc", "gaussian", 100.0, 0.2), ("stc", "pruned", 100.0, 0.5), ("m8", "gaussian", 200.0, 0.75)]


def test_bundled_paper_sweeps():
    r50 = load_spec("paper-resnet50")
    points, _ = r50.points()
    assert len(points) == 3 * 13 and {p.run["hw"] for p in points} == {"stc-2of4", "vegeta-m4", "ttc-m8"}
    assert {(p.run["synthetic"], p.run["operand"]) for p in points if p.run["tasd"] == "auto"} == {
        (w, op) for w in ("gaussian", "gaussian:pruned=0.5", "gaussian:pruned=0.7", "gaussian:pruned=0.9")
        for op in ("weights", "activations", "both")}
    bert, _ = load_spec("paper-bert-base").points()
    assert len(bert) == 3 * 5 and all(p.run["objective"] == "edp" for p in bert)


def test_sweep_on_an_onnx_model_prints_the_edp_table(tmp_path, capsys):
    spec = {"hw": "vegeta-m4", "workload": {"name": conv_net(tmp_path / "c.onnx"), "input_shape": {"x": [1, 3, 32, 32]}},
            "memory": "ideal", "axes": {"tasd": ["none", "auto"], "objective": ["compute", "edp"]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    code = main(["sweep", str(path), "--jobs", "1", "--out", str(tmp_path / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "EDP improvement of TASD over the same hardware running dense" in out
    lines = [line.split() for line in out.splitlines() if line.startswith("vegeta-m4")]
    assert [(cells[1], cells[2]) for cells in lines] == [("compute", "auto"), ("edp", "auto")]
    compute, edp = (float(cells[-1].rstrip("%")) for cells in lines)
    assert edp >= compute  # EDP ranking never does worse on EDP than compute ranking
