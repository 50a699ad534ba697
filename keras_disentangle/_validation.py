"""Argument validators shared by every Keras object of the package.

Messages follow Keras's wording: they name the argument, what was expected
and what was received, so that a user can fix the call from the message alone.
"""

from __future__ import annotations

import math
import numbers


def _describe(name: str, value) -> str:
    return f"Received: {name}={value!r}"


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
