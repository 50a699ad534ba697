"""Input checks shared by the scores: feature matrices, binary codes, lengths.

Each raises a ``ValueError`` naming the argument, in Keras's words. Labels
go through ``keras_disentangle._validation.label_vector``, the package's one
label rule.
"""

from __future__ import annotations

import numpy as np


def _same_length(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"Invalid arguments {name_a} and {name_b}: expected the same number "
            f"of samples. Received: {name_a} has {a.shape[0]}, {name_b} has "
            f"{b.shape[0]}"
        )


def _matrix(name: str, value, min_samples: int = 2) -> np.ndarray:
    """A finite float array ``(N, F)``; axes after the first are flattened."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ValueError(
            f"Invalid shape for argument {name}: expected an array (N, ...) with "
            f"samples on the first axis. Received: {name}.shape={arr.shape}"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.dtype not in (np.float32, np.float64):
        # Integers, booleans, float16 and bfloat16 (mixed precision) alike.
        try:
            if arr.dtype.kind in "OUSM":
                raise TypeError(arr.dtype)
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Invalid dtype for argument {name}: expected numbers. "
                f"Received: {name}.dtype={arr.dtype}"
            ) from error
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least {min_samples} "
            f"samples. Received: {name}.shape={arr.shape}"
        )
    if arr.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least 1 feature. "
            f"Received: {name}.shape={arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"Invalid value for argument {name}: expected finite numbers, found "
            "NaN or infinity (did the training diverge?)."
        )
    return arr


def _codes(name: str, value) -> np.ndarray:
    """A {0, 1} code matrix ``(N, bits)`` as float32 (exact up to 2^24 bits)."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected a 2-D array of binary "
            f"codes (N, bits) with N >= 1. Received: {name}.shape={arr.shape}"
        )
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"Invalid value for argument {name}: expected codes with entries in "
            "{0, 1} (threshold or sign-map the activations first). Received "
            f"values such as {np.unique(arr)[:5].tolist()}"
        )
    return arr.astype(np.float32)


def _factors(name: str, value, min_samples: int = 2) -> np.ndarray:
    """Integer ground-truth factors ``(N, F)`` as int64 (a vector is ``F=1``).

    Whole-number floats are accepted; NaN, infinity, fractions and other
    dtypes raise.
    """
    arr = np.asarray(value)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(
            f"Invalid shape for argument {name}: expected integer factors "
            f"(N, F). Received: {name}.shape={arr.shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"Invalid dtype for argument {name}: expected integer factors. "
            f"Received: {name}.dtype={arr.dtype}"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"Invalid value for argument {name}: expected finite integer "
                "factors, found NaN or infinity."
            )
        if not np.all(arr == np.round(arr)):
            raise ValueError(
                f"Invalid value for argument {name}: expected whole-number "
                "factors, found fractions."
            )
    if arr.shape[0] < min_samples or arr.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least "
            f"{min_samples} samples and 1 factor. Received: {name}.shape="
            f"{arr.shape}"
        )
    return arr.astype(np.int64)
