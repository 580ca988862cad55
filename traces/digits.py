"""The digits dataset: 1,797 8x8 handwritten digits that ship inside scikit-learn (no download).

Features are the 64 pixel intensities (0..16) scaled to [0, 1]; labels are 0..9. The train/test
split is fixed — a seeded permutation (SPLIT_SEED) holding out TEST_FRACTION of the samples — so
every model, whatever its training seed, is judged on the same 450 test digits. scikit-learn is
imported only here and only when the data are asked for; without it the error says how to get it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasdsim.common import TasdsimError

DATASETS = ("digits",)
SPLIT_SEED = 0
TEST_FRACTION = 0.25
MISSING_SKLEARN = "the digits dataset needs scikit-learn: pip install 'tasdsim[train]'"


@dataclass(frozen=True)
class Dataset:
    """Features (samples, features) float32 and integer labels, split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def features(self) -> int:
        return self.x_train.shape[1]


def load_dataset(name: str) -> Dataset:
    """A dataset by name (only "digits" for now)."""
    if name != "digits":
        raise TasdsimError(f'unknown dataset "{name}"; datasets: {", ".join(DATASETS)}')
    return load_digits()


def load_digits() -> Dataset:
    """The digits, scaled to [0, 1], split by the fixed seeded permutation."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise TasdsimError(MISSING_SKLEARN) from None
    data = sklearn_digits()
    x = (np.asarray(data.data, dtype=np.float32) / np.float32(16.0))
    y = np.asarray(data.target, dtype=np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test = round(TEST_FRACTION * len(y))
    test_idx, train_idx = np.sort(order[:test]), np.sort(order[test:])
    return Dataset("digits", x[train_idx], y[train_idx], x[test_idx], y[test_idx], int(y.max()) + 1)
