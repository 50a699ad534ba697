"""Small ``keras.ops`` helpers shared by the pure-maths modules.

The dtype rule: every formula is computed in float32 or float64; integer,
boolean and half-precision (float16, bfloat16 under mixed precision) inputs
are computed in float32, and the caller casts the result back if it needs to.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

__all__ = ["as_float"]

_HALF = ("float16", "bfloat16")


def as_float(x: Any) -> Any:
    """``x`` as a tensor of float32 or float64 (the package's dtype rule)."""
    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype(x.dtype)
    if "float" not in dtype or dtype in _HALF:
        x = ops.cast(x, "float32")
    return x
