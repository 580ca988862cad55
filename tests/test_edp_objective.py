"""TASDER's --objective edp: per layer, the lowest simulated EDP among the series that meet the bound."""
import json

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import EdpObjective, LayerSeries, choose_series, simulate_layer, sparse_patterns
from tasdsim.traces import layer_tensors
from tasdsim.traces.decompose import decompose
from tasdsim.traces.metrics import relative_error_from_residual
from tasdsim.traces.search import candidate_series, parse_constraint
from tasdsim.traces.workloads import load_workload

from cli_helpers import cli
from onnx_models import conv_net


def test_edp_objective_is_the_brute_force_minimum_and_never_worse_than_dense():
    hw = load_hw("ttc-m8")
    constraint = parse_constraint("relative_error<=0.3")
    layer = load_workload("resnet50").select(["layer3.0.conv2"]).layers[0]
    weights = layer_tensors.synthetic_weights(layer, 0)
    feasible = [s for s in candidate_series(sparse_patterns(hw), 2)
                if relative_error_from_residual(weights, decompose(weights, s).residual) <= 0.3]
    edps = {str(s): simulate_layer(layer, hw, LayerSeries(weights=s), False).edp for s in feasible}
    edps["dense"] = simulate_layer(layer, hw, LayerSeries(), False).edp
    objective = EdpObjective(ideal_memory=False)
    chosen = choose_series(layer, hw, "auto", "weights", constraint, 2, 0, 0.5, objective=objective)
    assert str(chosen.weights) == min(edps, key=edps.get)
    assert len(objective.cache) == len(edps)  # each series simulated once
    by_compute = choose_series(layer, hw, "auto", "weights", constraint, 2, 0, 0.5)
    assert edps[str(chosen.weights)] <= edps[str(by_compute.weights)] <= edps["dense"]


def test_both_operands_take_the_cheaper_one_and_need_tasd_units():
    constraint = parse_constraint("relative_error<=0.3")
    layer = load_workload("resnet50").select(["layer1.0.conv2"]).layers[0]
    both = choose_series(layer, load_hw("ttc-m8"), "auto", "both", constraint, 2, 0, 0.9)
    assert both.weights.is_dense and not both.activations.is_dense  # 90% zeros: activations are cheaper
    vegeta = choose_series(layer, load_hw("vegeta-m4"), "auto", "both", constraint, 2, 0, 0.9)
    assert vegeta.activations.is_dense and not vegeta.weights.is_dense  # no TASD units: weights only


def test_search_objective_edp_cli(capsys, tmp_path):
    code, out, _ = cli(capsys, "search", "--weights", conv_net(tmp_path / "c.onnx"), "--hw", "ttc-m8", "--quality",
                       "relative_error<=0.3", "--objective", "edp", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["objective"] == "edp" and result["patterns"] == "1:8,2:8,4:8"
    assert all(c["relative_error"] <= 0.3 for c in result["layers"])
    code, _, err = cli(capsys, "search", "--workload", "resnet50", "--quality", "relative_error<=0.3",
                       "--objective", "edp", "--patterns", "2:4")
    assert code == 2 and "--objective edp needs --hw" in err


def test_search_edp_on_activations_needs_tasd_units(capsys, tmp_path):
    code, _, err = cli(capsys, "search", "--weights", conv_net(tmp_path / "c.onnx"), "--hw", "vegeta-m4", "--quality",
                       "relative_error<=0.3", "--objective", "edp", "--operand", "activations")
    assert code == 2 and "vegeta-m4 has none" in err
