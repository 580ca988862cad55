"""Running many layers: repeated layers are simulated once, and the output equals one by one."""
from __future__ import annotations

import dataclasses

from tasdsim.simulator.config import load_hw
from tasdsim.simulator.run import LayerSeries, simulate_layer, simulate_layers
from tasdsim.traces.patterns import parse_series
from tasdsim.traces.workloads import Layer


def _layer(name: str, m: int, n: int, k: int) -> Layer:
    return Layer(name=name, kind="linear", m=m, n=n, k=k, groups=1, weight_shape=(n, k))


def test_repeated_layers_equal_simulating_each(monkeypatch):
    hw = load_hw("vegeta-m4")
    layers = [_layer("a", 64, 96, 128), _layer("b", 64, 96, 128), _layer("c", 64, 96, 128), _layer("d", 32, 64, 64)]
    series = [LayerSeries(), LayerSeries(), LayerSeries(weights=parse_series("2:4")), LayerSeries()]
    each = [simulate_layer(layer, hw, s, False) for layer, s in zip(layers, series)]
    calls = []
    import tasdsim.simulator.run as run

    real = run.simulate_layer
    monkeypatch.setattr(run, "simulate_layer", lambda layer, *a, **k: calls.append(layer.name) or real(layer, *a, **k))
    together = simulate_layers(layers, hw, series, False, jobs=1)
    assert calls == ["a", "c", "d"]  # b repeats a: same GEMM, same series
    assert [dataclasses.asdict(s) for s in together] == [dataclasses.asdict(s) for s in each]
    assert [s.name for s in together] == ["a", "b", "c", "d"]
