"""A multilayer perceptron in numpy: linear layers with ReLU between them, softmax cross-entropy.

Parameters are a plain dict of float32 tensors in PyTorch's layout, the same dict a model file
holds: `fc{i}.weight` (out, in) and `fc{i}.bias` (out,). A linear layer computes
y = x · W^T + b, so its GEMM has K = in (the reduction axis N:M groups run along), N = out and
M = the batch. `forward` caches what `backward` needs; the weights used may differ from the
stored ones (N:M training runs the masked weights), so both take the weights explicitly.
"""
from __future__ import annotations

import numpy as np

from tasdsim.common import TasdsimError

DEFAULT_HIDDEN = (256, 128)


def layer_names(params: dict[str, np.ndarray]) -> list[str]:
    """The linear layers' weight names in forward order: fc1.weight, fc2.weight, ..."""
    names = [n for n in params if n.startswith("fc") and n.endswith(".weight")]
    try:
        return sorted(names, key=lambda n: int(n[2:-len(".weight")]))
    except ValueError:
        raise TasdsimError(f"model tensors must be named fc<i>.weight / fc<i>.bias, got {', '.join(names)}") from None


def init_mlp(sizes: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """He-normal weights and zero biases for layer sizes (features, hidden..., classes)."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        std = np.sqrt(2.0 / fan_in)
        params[f"fc{i}.weight"] = (rng.standard_normal((fan_out, fan_in)) * std).astype(np.float32)
        params[f"fc{i}.bias"] = np.zeros(fan_out, dtype=np.float32)
    return params


def forward(weights: dict[str, np.ndarray], params: dict[str, np.ndarray],
            x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits (batch, classes) and every layer's input (the cache for backward).
    `weights` maps weight names to the weights to use; biases come from `params`."""
    inputs = []
    h = x
    names = layer_names(params)
    for i, name in enumerate(names):
        inputs.append(h)
        h = h @ weights[name].T + params[name[:-len("weight")] + "bias"]
        if i < len(names) - 1:
            h = np.maximum(h, 0)
    return h, inputs


def layer_inputs(weights: dict[str, np.ndarray], params: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Each linear layer's input activations (batch, in) on `x`, by weight name."""
    _, inputs = forward(weights, params, x)
    return dict(zip(layer_names(params), inputs))


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy loss and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    batch = len(y)
    loss = float(-np.log(probs[np.arange(batch), y] + 1e-12).mean())
    grad = probs
    grad[np.arange(batch), y] -= 1
    return loss, grad / batch


def backward(weights: dict[str, np.ndarray], params: dict[str, np.ndarray], inputs: list[np.ndarray],
             grad_logits: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of the loss for every parameter, given forward's cache. The weight gradients are
    with respect to the weights used in forward (for N:M training: the masked weights W~)."""
    grads = {}
    grad = grad_logits
    names = layer_names(params)
    for i in range(len(names) - 1, -1, -1):
        name = names[i]
        grads[name] = (grad.T @ inputs[i]).astype(np.float32, copy=False)
        grads[name[:-len("weight")] + "bias"] = grad.sum(axis=0).astype(np.float32, copy=False)
        if i:
            grad = (grad @ weights[name]) * (inputs[i] > 0)  # ReLU of the previous layer
    return grads


def accuracy(weights: dict[str, np.ndarray], params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of samples whose largest logit is the label (ties: the lowest class)."""
    logits, _ = forward(weights, params, x)
    return float((logits.argmax(axis=1) == y).mean())
