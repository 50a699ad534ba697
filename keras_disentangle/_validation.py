"""Argument validators shared by every Keras object of the package.

Messages follow Keras's wording: they name the argument, what was expected
and what was received, so that a user can fix the call from the message alone.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def _describe(name: str, value) -> str:
    return f"Received: {name}={value!r}"


def check_bool(name: str, value) -> bool:
    """Returns ``value`` as a Python bool; raises unless it is a Python or
    NumPy boolean (``True``, ``np.bool_(True)``; never ``1`` or ``"yes"``).

    Every boolean argument of the package goes through it, so configs hold
    a plain Python bool that serialises to JSON.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"Invalid value for argument {name}: expected True or False. "
            f"{_describe(name, value)}"
        )
    return bool(value)


def check_non_negative(name: str, value) -> float:
    """Returns ``value`` as a Python float; raises if not finite and >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or float(value) < 0
    ):
        raise ValueError(
            f"Invalid value for argument {name}: expected a finite number >= 0. "
            f"{_describe(name, value)}"
        )
    return float(value)


def check_positive(name: str, value) -> float:
    """Returns ``value`` as a Python float; raises if not finite and > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or float(value) <= 0
    ):
        raise ValueError(
            f"Invalid value for argument {name}: expected a finite number > 0. "
            f"{_describe(name, value)}"
        )
    return float(value)


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    """Returns ``value`` as an int; raises unless it is an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"Invalid value for argument {name}: expected an integer >= {minimum}. "
            f"{_describe(name, value)}"
        )
    if int(value) < minimum:
        raise ValueError(
            f"Invalid value for argument {name}: expected an integer >= {minimum}. "
            f"{_describe(name, value)}"
        )
    return int(value)


def check_fraction(name: str, value, *, inclusive_zero: bool = False) -> float:
    """Returns ``value`` as a float in (0, 1] (or [0, 1]); raises otherwise."""
    low_ok = (lambda v: v >= 0) if inclusive_zero else (lambda v: v > 0)
    bracket = "[0, 1]" if inclusive_zero else "(0, 1]"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(float(value))
        or not low_ok(float(value))
        or float(value) > 1
    ):
        raise ValueError(
            f"Invalid value for argument {name}: expected a number in {bracket}. "
            f"{_describe(name, value)}"
        )
    return float(value)


def check_choice(name: str, value, choices) -> str:
    """Raises unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f"Invalid value for argument {name}: expected one of "
            f"{sorted(choices)}. {_describe(name, value)}"
        )
    return value


def check_no_reserved_keys(name: str, kwargs: dict, reserved) -> dict:
    """Raises if ``kwargs`` sets an argument the caller already sets itself."""
    clash = sorted(set(kwargs) & set(reserved))
    if clash:
        raise ValueError(
            f"Invalid value for argument {name}: {clash} are set by the function "
            f"itself; pass them as its own arguments. Received: {name}={kwargs!r}"
        )
    return kwargs


def check_seed(name: str, value: Any, *, allow_generator: bool = False) -> Any:
    """Returns ``value`` unchanged: ``None``, an integer >= 0 or (with
    ``allow_generator``) a ``keras.random.SeedGenerator``; raises otherwise.

    The one rule for every ``seed=`` argument of the package: booleans,
    negative numbers, floats (even whole ones) and strings raise a
    ``ValueError`` naming the argument; NumPy integers come back as ``int``.

    Example:

        >>> check_seed("seed", 3), check_seed("seed", None)
        (3, None)
    """
    if value is None or (
        not isinstance(value, bool)
        and isinstance(value, numbers.Integral)
        and int(value) >= 0
    ):
        return None if value is None else int(value)
    if allow_generator:
        import keras

        if isinstance(value, keras.random.SeedGenerator):
            return value
    expected = "None, an integer >= 0" + (
        " or a keras.random.SeedGenerator" if allow_generator else ""
    )
    raise ValueError(
        f"Invalid value for argument {name}: expected {expected}. "
        f"{_describe(name, value)}"
    )


def label_vector(
    name: str, value: Any, *, min_samples: int = 1, unlabelled: Any = None
) -> np.ndarray:
    """The one rule for NumPy labels: returns a 1-D array ``(N,)``.

    Accepts integer, boolean or string labels ``(N,)``, a column ``(N, 1)``
    and one-hot (or probability) rows ``(N, C)`` with ``C > 1`` (their
    argmax). Float labels must be whole numbers (returned as int64); NaN,
    infinity, fractions and missing values (``None`` in an object array)
    raise, as do ``None``, other ranks and other dtypes. With ``unlabelled``
    set (e.g. ``-1``), that value marks unlabelled samples and is kept as it
    is (callers mask it out). Every error is a ``ValueError`` naming ``name``.

    Example:

        >>> label_vector("labels", [[0, 1], [1, 0]]).tolist()
        [1, 0]
        >>> label_vector("labels", [[2.0], [0.0]]).tolist()
        [2, 0]
    """
    del unlabelled  # kept as is: callers mask it out
    if value is None:
        raise ValueError(
            f"Invalid value for argument {name}: expected labels (N,), (N, 1) or "
            f"one-hot (N, C). {_describe(name, value)}"
        )
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged nests
        raise ValueError(
            f"Invalid value for argument {name}: expected labels (N,), (N, 1) or "
            f"one-hot (N, C). ({error})"
        ) from error
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"Invalid value for argument {name}: expected finite labels, "
                "found NaN or infinity."
            )
        arr = arr.argmax(axis=1) if arr.shape[0] else np.zeros(0, np.int64)
    if arr.ndim != 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected labels (N,), (N, 1) or "
            f"one-hot (N, C). Received: {name}.shape={arr.shape}"
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least {min_samples} "
            f"sample(s). Received: {name}.shape={arr.shape}"
        )
    kind = arr.dtype.kind
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"Invalid value for argument {name}: expected finite labels, "
                "found NaN or infinity."
            )
        if not np.all(arr == np.round(arr)):
            raise ValueError(
                f"Invalid value for argument {name}: expected whole-number "
                f"labels, found fractions such as {arr[arr != np.round(arr)][:3]}."
            )
        arr = arr.astype(np.int64)
    elif kind == "b":
        arr = arr.astype(np.int64)
    elif kind == "O":
        for item in arr:
            missing = item is None or (
                isinstance(item, numbers.Real) and not math.isfinite(float(item))
            )
            if missing:
                raise ValueError(
                    f"Invalid value for argument {name}: expected a label for "
                    f"every sample, found {item!r}."
                )
    elif kind not in "iuUS":
        raise ValueError(
            f"Invalid dtype for argument {name}: expected integer or string "
            f"labels. Received: {name}.dtype={arr.dtype}"
        )
    return arr
