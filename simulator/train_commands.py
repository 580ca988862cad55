"""The training commands: `tasdsim train` (N:M training from scratch) and `tasdsim tasd-vs-train`
(TASD-W and accuracy-constrained TASDER on a dense-trained model beside an SR-STE model, each
simulated on a hardware preset).

Each linear layer of a model runs as one GEMM with M = the test samples, K = in, N = out, weights
decomposed along `in`; a model's cycles and energy are its layers' sums, run one after another,
and its EDP is total energy x total delay (simulator.stats.total).
"""
from __future__ import annotations

import argparse

import numpy as np

from tasdsim.simulator.cli_format import add_command
from tasdsim.simulator.config import HwConfig, load_hw
from tasdsim.simulator.output import print_json, print_table
from tasdsim.simulator.run import LayerSeries, simulate_layer, sparse_patterns
from tasdsim.simulator.stats import LayerStats, total
from tasdsim.traces import mlp, tensors
from tasdsim.traces.accuracy_search import DENSE_SERIES, compute_density, model_accuracy, search_accuracy
from tasdsim.traces.digits import DATASETS, Dataset, load_dataset
from tasdsim.common import TasdsimError
from tasdsim.traces.nm_training import DEFAULT_LAMBDA_W, METHODS, TrainConfig, one_blas_thread, train
from tasdsim.traces.patterns import Pattern, Series, parse_pattern
from tasdsim.traces.search import candidate_series
from tasdsim.traces.workloads import Layer

DEFAULTS = TrainConfig()


def add_train_parsers(sub: argparse._SubParsersAction) -> None:
    """The `train` and `tasd-vs-train` sub-commands."""
    p = add_command(sub, "train", "train an MLP from scratch: dense, or N:M by STE or SR-STE")
    _add_training_options(p)
    p.add_argument("--method", required=True, choices=METHODS,
                   help="dense, ste (straight-through N:M) or srste (STE plus lambda_w decay of pruned weights)")
    p.add_argument("--out", required=True, metavar="MODEL.safetensors",
                   help="write the trained model (fc<i>.weight (out, in), fc<i>.bias)")
    p.add_argument("--activations-out", metavar="ACTS.safetensors",
                   help="also write every layer's test-set inputs (tokens, in) under its weight's name")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = add_command(sub, "tasd-vs-train", "TASD on a dense-trained MLP against training it for N:M",
                    "Trains dense and SR-STE models with the same seed, applies TASD-W and accuracy-constrained\n"
                    "TASDER to the dense one, and reports accuracy, compute density, simulated cycles and EDP.")
    _add_training_options(p)
    p.add_argument("--hw", required=True, metavar="NAME", help="hardware preset name or YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a hardware config key (repeatable)")
    p.add_argument("--memory", choices=["real", "ideal"], default="real",
                   help="ideal: no memory stalls and unbounded buffers")
    p.add_argument("--max-terms", type=int, default=2, help="most terms TASDER uses")
    p.add_argument("--min-accuracy", type=float, default=0.99,
                   help="TASDER keeps test accuracy >= this fraction of the dense model's")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="dataset (digits comes with scikit-learn)")
    p.add_argument("--pattern", default="2:4", help="N:M pattern of the masks, groups along in")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="training epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and minibatch order")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr,
                   help="peak learning rate, cosine to 0")
    p.add_argument("--batch", type=int, default=DEFAULTS.batch, help="minibatch size")
    p.add_argument("--lambda-w", type=float, default=DEFAULT_LAMBDA_W,
                   help="SR-STE decay of pruned weights")


def _config(args: argparse.Namespace, method: str) -> TrainConfig:
    return TrainConfig(method=method, pattern=parse_pattern(args.pattern), epochs=args.epochs, seed=args.seed,
                       lr=args.lr, batch=args.batch, lambda_w=args.lambda_w)


def _describe(data: Dataset, params: dict[str, np.ndarray]) -> dict:
    sizes = [params[n].shape[1] for n in mlp.layer_names(params)] + [data.classes]
    return {"dataset": data.name, "model": "mlp " + "-".join(str(s) for s in sizes),
            "train_samples": len(data.y_train), "test_samples": len(data.y_test)}


# ---------------------------------------------------------------- tasdsim train


def run_train(args: argparse.Namespace) -> int:
    """Train one model, save it, print its accuracy and SAD per epoch."""
    config = _config(args, args.method)
    data = load_dataset(args.dataset)
    result = train(data, config)
    tensors.save_safetensors(args.out, result.params)
    out = {**_describe(data, result.params), **result.as_dict(), "out": args.out}
    if args.activations_out:
        inputs = mlp.layer_inputs(result.params, result.params, data.x_test)
        tensors.save_safetensors(args.activations_out, {n: np.ascontiguousarray(a) for n, a in inputs.items()})
        out["activations_out"] = args.activations_out
    if args.json:
        print_json(out)
        return 0
    decay = f", lambda_w {config.lambda_w:g}" if config.method == "srste" else ""
    print(f"{out['dataset']}: {out['model']}, {out['train_samples']} train / {out['test_samples']} test samples; "
          f"{config.method} {config.pattern}{decay}, {config.epochs} epochs, seed {config.seed}")
    print_table(["epoch", "loss", "train_acc", "test_acc", "sad", "sad_norm"],
                [[i + 1, f"{result.loss[i]:.4f}", f"{result.train_accuracy[i]:.4f}", f"{result.accuracy[i]:.4f}",
                  result.sad[i], f"{result.sad_normalized[i]:.4f}"] for i in range(config.epochs)])
    print(f"test accuracy {result.test_accuracy:.4f}; SAD total {sum(result.sad)} over {result.mask_size} mask "
          f"entries ({sum(result.sad_normalized):.4f} normalised)")
    also = f", layer inputs to {args.activations_out}" if args.activations_out else ""
    print(f"model written to {args.out}{also}")
    return 0


# ---------------------------------------------------------------- tasdsim tasd-vs-train


def simulate_model(params: dict[str, np.ndarray], series: dict[str, Series], hw: HwConfig, tokens: int,
                   ideal: bool, cache: dict | None = None) -> list[LayerStats]:
    """Every linear layer as a GEMM (M = tokens, K = in, N = out) with its weights' series."""
    cache = {} if cache is None else cache
    stats = []
    for name in mlp.layer_names(params):
        n, k = params[name].shape
        key = (name, n, k, str(series[name]))
        if key not in cache:
            layer = Layer(name, "linear", m=tokens, n=n, k=k, weight_shape=(n, k))
            cache[key] = simulate_layer(layer, hw, LayerSeries(weights=series[name]), ideal)
        stats.append(cache[key])
    return stats


def _model_row(training: str, params: dict[str, np.ndarray], series: dict[str, Series], accuracy: float,
               stats: list[LayerStats], hw: HwConfig) -> dict:
    t = total(stats, hw.pe_array.rows * hw.pe_array.cols, hw.clock_ghz)
    return {
        "training": training,
        "series": {n: str(s) for n, s in series.items()},
        "accuracy": accuracy,
        "compute_density": compute_density(params, series),
        "cycles": t["cycles"],
        "energy_pj": t["energy_pj"].get("total", 0.0),
        "edp": t["edp"],
        "layers": [{"name": s.name, "series": s.series["weights"], "cycles": s.cycles,
                    "energy_pj": s.energy_pj.get("total", 0.0), "edp": s.edp} for s in stats],
    }


def _check_pattern(pattern: Pattern, hw: HwConfig) -> None:
    if not hw.supports(pattern):
        supported = ", ".join(str(p) for p in sparse_patterns(hw)) or "none"
        raise TasdsimError(f"pattern {pattern} is not supported by hardware {hw.name} (sparse patterns: {supported}); "
                           "the SR-STE model and TASD-W with that pattern could not run sparse on it")


def compare(args: argparse.Namespace) -> dict:
    """Train dense and SR-STE with the same seed; apply TASD-W and accuracy-constrained TASDER to the
    dense model; simulate all four on the hardware. Returns the JSON object."""
    hw = load_hw(args.hw, args.set)
    pattern = parse_pattern(args.pattern)
    _check_pattern(pattern, hw)
    if not 0 < args.min_accuracy <= 1:
        raise TasdsimError(f"--min-accuracy must be a fraction in (0, 1], got {args.min_accuracy}")
    data = load_dataset(args.dataset)
    trained = {m: train(data, _config(args, m)) for m in ("dense", "srste")}
    dense, srste = trained["dense"].params, trained["srste"].params
    x, y = data.x_test, data.y_test
    names = mlp.layer_names(dense)
    dense_accuracy = trained["dense"].test_accuracy
    bound = args.min_accuracy * dense_accuracy
    candidates = candidate_series(sparse_patterns(hw), args.max_terms) if sparse_patterns(hw) else []
    tasder = search_accuracy(dense, candidates, x, y, bound)
    fixed = {n: Series((pattern,)) for n in names}
    models = {
        "dense": ("dense", dense, {n: DENSE_SERIES for n in names}, dense_accuracy),
        "tasd_w": ("dense", dense, fixed, model_accuracy(dense, fixed, x, y)),
        "tasder": ("dense", dense, tasder.series, tasder.accuracy),
        "srste": ("srste", srste, fixed, trained["srste"].test_accuracy),
    }
    cache: dict = {}
    ideal = args.memory == "ideal"
    rows = {key: _model_row(training, params, series, accuracy,
                            simulate_model(params, series, hw, len(y), ideal, cache), hw)
            for key, (training, params, series, accuracy) in models.items()}
    return {
        **_describe(data, dense),
        "pattern": str(pattern), "seed": args.seed, "epochs": args.epochs,
        "hardware": hw.name, "memory": args.memory, "tokens": len(y),
        "dense_accuracy": dense_accuracy, "min_accuracy": bound, "accuracy_fraction": args.min_accuracy,
        "models": rows,
        "tasder": {"patterns": [str(p) for p in sparse_patterns(hw)], "max_terms": args.max_terms,
                   "meets": tasder.accuracy >= bound, **tasder.as_dict()},
        "training": {m: {k: v for k, v in r.as_dict().items() if k != "layers"} for m, r in trained.items()},
    }


def run_tasd_vs_train(args: argparse.Namespace) -> int:
    """Print the comparison as a table (or JSON)."""
    with one_blas_thread():  # TASDER measures ~100 small models: one thread is fastest and repeatable
        result = compare(args)
    if args.json:
        print_json(result)
        return 0
    models = result["models"]
    base = models["dense"]
    names = list(base["series"])
    print(f"{result['dataset']}: {result['model']}, {result['train_samples']} train / {result['test_samples']} test "
          f"samples, seed {result['seed']}, {result['epochs']} epochs, pattern {result['pattern']}")
    print(f"hardware {result['hardware']}, memory {result['memory']}; each layer a GEMM with M = "
          f"{result['tokens']} test samples")
    print_table(["model", "training", f"weights ({', '.join(names)})", "accuracy", "compute_density", "cycles",
                 "energy_uJ", "edp_pJns", "cycles_vs_dense", "edp_vs_dense"],
                [[key.replace("_", "-"), m["training"], ", ".join(m["series"].values()), f"{m['accuracy']:.4f}",
                  f"{m['compute_density']:.4f}", m["cycles"], f"{m['energy_pj'] / 1e6:.2f}", f"{m['edp']:.4g}",
                  f"{m['cycles'] / base['cycles']:.3f}", f"{m['edp'] / base['edp']:.3f}" if base["edp"] else "-"]
                 for key, m in models.items()])
    t = result["tasder"]
    print(f"TASDER: accuracy >= {result['accuracy_fraction']:g} x dense = {t['min_accuracy']:.4f} on the test set, "
          f"patterns {', '.join(t['patterns']) or 'none'}, up to {t['max_terms']} terms: accuracy "
          f"{t['accuracy']:.4f} ({'meets' if t['meets'] else 'misses'}), {len(t['steps'])} steps, "
          f"{t['evaluations']} models measured")
    sr = result["training"]["srste"]
    print(f"SR-STE {sr['pattern']}: SAD total {sr['sad_total']} over {sr['mask_size']} mask entries "
          f"(per epoch: {', '.join(str(s) for s in sr['sad'][:5])}{', ...' if len(sr['sad']) > 5 else ''})")
    return 0
