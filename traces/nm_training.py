"""Training an MLP from scratch: dense, or N:M sparse with STE or SR-STE (Zhou et al., ICLR 2021).

Every method keeps dense weights W and updates them with SGD with momentum on seeded minibatches,
the learning rate following a cosine from `lr` to 0 over all steps:

- dense: forward and backward with W.
- ste: every step, forward with W~ = W * mask(W) (the N:M mask of the current W, groups along
  `in`); the gradient with respect to W~ is applied to the dense W (straight-through).
- srste: as ste, plus the sparse-refined term on the pruned weights:
  W <- W - lr * (grad(W~) + lambda_w * (1 - mask) * W), lambda_w = 2e-4 by default
  (lambda_w = 0 is plain STE). The term goes through the momentum buffer, like the gradient.

SAD per epoch counts the mask entries (over all layers) that differ between the end of the epoch
and the end of the one before (the first epoch: the masks at initialisation), raw and divided by
the mask size. For `dense` it is the SAD of the masks the pattern would take from the dense
weights. The trained model is the weights the method evaluates: W for dense, W~ for ste and srste
(exactly N:M). Everything draws from one np.random.default_rng(seed), so a seed gives the same
model bit for bit.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tasdsim.traces import mlp
from tasdsim.traces.digits import Dataset
from tasdsim.common import TasdsimError
from tasdsim.traces.nm_masks import mask_size, masks_of, sad
from tasdsim.traces.patterns import Pattern

METHODS = ("dense", "ste", "srste")
DEFAULT_LAMBDA_W = 2e-4


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run."""

    method: str = "srste"
    pattern: Pattern = Pattern(2, 4)
    epochs: int = 30
    seed: int = 0
    lr: float = 0.05
    momentum: float = 0.9
    batch: int = 32
    lambda_w: float = DEFAULT_LAMBDA_W
    hidden: tuple[int, ...] = mlp.DEFAULT_HIDDEN

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TasdsimError(f'unknown method "{self.method}"; methods: {", ".join(METHODS)}')
        for name in ("epochs", "batch"):
            if getattr(self, name) < 1:
                raise TasdsimError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise TasdsimError(f"learning rate must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise TasdsimError(f"momentum must be in [0, 1), got {self.momentum}")
        if not (self.lambda_w >= 0 and math.isfinite(self.lambda_w)):
            raise TasdsimError(f"lambda_w must be a non-negative number, got {self.lambda_w}")
        if not self.hidden or min(self.hidden) < 1:
            raise TasdsimError(f"hidden sizes must be positive, got {self.hidden}")

    @property
    def sparse(self) -> bool:
        return self.method != "dense"


@dataclass
class TrainResult:
    """A trained model and its history, one entry per epoch."""

    config: TrainConfig
    params: dict[str, np.ndarray]  # the model as evaluated: masked weights for ste/srste, and biases
    test_accuracy: float
    accuracy: list[float] = field(default_factory=list)  # test accuracy after each epoch
    train_accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # mean training loss of each epoch
    sad: list[int] = field(default_factory=list)
    mask_size: int = 0

    @property
    def sad_normalized(self) -> list[float]:
        return [s / self.mask_size for s in self.sad]

    def as_dict(self) -> dict:
        c = self.config
        return {
            "method": c.method, "pattern": str(c.pattern), "epochs": c.epochs, "seed": c.seed, "lr": c.lr,
            "momentum": c.momentum, "batch": c.batch, "lambda_w": c.lambda_w if c.method == "srste" else 0.0,
            "layers": {n: list(w.shape) for n, w in self.params.items() if w.ndim == 2},
            "test_accuracy": self.test_accuracy, "accuracy": self.accuracy, "train_accuracy": self.train_accuracy,
            "loss": self.loss, "sad": self.sad, "sad_normalized": self.sad_normalized,
            "sad_total": sum(self.sad), "mask_size": self.mask_size,
        }


def effective_weights(params: dict[str, np.ndarray], masks: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """The weights the forward pass uses: W, or W~ = W * mask."""
    names = mlp.layer_names(params)
    if masks is None:
        return {n: params[n] for n in names}
    return {n: params[n] * masks[n] for n in names}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run BLAS on one thread: these matrices are tiny, and a thread pool on a busy machine makes
    them tens of times slower. threadpoolctl comes with scikit-learn; without it, BLAS as it is."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def train(data: Dataset, config: TrainConfig) -> TrainResult:
    """Train an MLP (features, hidden..., classes) on `data` with `config`; see the module doc."""
    with one_blas_thread():
        return _train(data, config)


def _train(data: Dataset, config: TrainConfig) -> TrainResult:
    rng = np.random.default_rng(config.seed)
    params = mlp.init_mlp((data.features, *config.hidden, data.classes), rng)
    names = mlp.layer_names(params)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    masks = masks_of({n: params[n] for n in names}, config.pattern)
    previous = masks
    result = TrainResult(config, params, 0.0, mask_size=mask_size(masks))
    samples = len(data.y_train)
    steps_per_epoch = -(-samples // config.batch)
    total_steps = steps_per_epoch * config.epochs
    step = 0
    for _ in range(config.epochs):
        order = rng.permutation(samples)
        losses = []
        for start in range(0, samples, config.batch):
            batch = order[start:start + config.batch]
            if config.sparse:
                masks = masks_of({n: params[n] for n in names}, config.pattern)
            weights = effective_weights(params, masks if config.sparse else None)
            logits, inputs = mlp.forward(weights, params, data.x_train[batch])
            loss, grad_logits = mlp.softmax_cross_entropy(logits, data.y_train[batch])
            grads = mlp.backward(weights, params, inputs, grad_logits)
            if config.method == "srste" and config.lambda_w:
                for n in names:
                    grads[n] = grads[n] + np.float32(config.lambda_w) * ~masks[n] * params[n]
            lr = np.float32(0.5 * config.lr * (1 + math.cos(math.pi * step / total_steps)))
            for k, g in grads.items():
                velocity[k] = np.float32(config.momentum) * velocity[k] + g
                params[k] = params[k] - lr * velocity[k]
            losses.append(loss)
            step += 1
        masks = masks_of({n: params[n] for n in names}, config.pattern)
        result.sad.append(sad(previous, masks))
        previous = masks
        weights = effective_weights(params, masks if config.sparse else None)
        result.loss.append(float(np.mean(losses)))
        result.train_accuracy.append(mlp.accuracy(weights, params, data.x_train, data.y_train))
        result.accuracy.append(mlp.accuracy(weights, params, data.x_test, data.y_test))
    final = {**params, **effective_weights(params, masks if config.sparse else None)}
    result.params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in final.items()}
    result.test_accuracy = mlp.accuracy(result.params, result.params, data.x_test, data.y_test)
    return result
