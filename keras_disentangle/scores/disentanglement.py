"""Disentanglement scores (Kågebäck & Mogren 2018): MAPC, CVR, TdV and UD.

Pure NumPy: inputs are activation matrices ``(N, ...)``, outputs Python
numbers. A degenerate but valid representation (a constant unit, a collapsed
layer) gives a defined value documented in each function, never a NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from keras_disentangle._validation import check_fraction, check_positive_int
from keras_disentangle.scores._inputs import _matrix

__all__ = [
    "mapc",
    "cvr",
    "tdv",
    "utilized_dimensions",
    "active_unit_mask",
    "active_units",
]


def _covariance(h: np.ndarray) -> np.ndarray:
    """Sample covariance ``(1/(N-1)) Hc^T Hc`` in float64."""
    h = h.astype(np.float64, copy=False)
    hc = h - h.mean(axis=0, keepdims=True)
    return hc.T @ hc / (h.shape[0] - 1)


def _constant(h: np.ndarray) -> np.ndarray:
    """Boolean mask of the units that take one value over all samples."""
    return np.ptp(h, axis=0) == 0


def _variances(h: np.ndarray) -> np.ndarray:
    """Per-unit sample variances (``1/(N-1)``); exactly 0 for constant units."""
    h = h.astype(np.float64, copy=False)
    hc = h - h.mean(axis=0, keepdims=True)
    var = np.einsum("ni,ni->i", hc, hc) / (h.shape[0] - 1)
    var[_constant(h)] = 0.0
    return var


def _active(var: np.ndarray, min_variance_fraction: float) -> np.ndarray:
    """``var > 0`` and ``var >= min_variance_fraction * sum(var)``."""
    keep = var > 0
    if min_variance_fraction > 0:
        keep &= var >= min_variance_fraction * var.sum()
    return keep


def active_unit_mask(h: ArrayLike, min_variance_fraction: float = 0.01) -> np.ndarray:
    """Boolean mask of the units that hold a share of the layer's variance.

    With ``v_i`` the sample variance (``1/(N-1)``) of unit ``i``, unit ``i``
    is active when

    ``v_i > 0  and  v_i >= min_variance_fraction * sum_k v_k``.

    A constant unit (exactly one value over the samples) is never active; a
    representation with zero total variance has no active unit. This is the
    one variance-share rule of the package: ``mapc`` leaves out the inactive
    units and ``active_units`` counts the active ones.

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        min_variance_fraction: in ``[0, 1]``; 0 keeps every unit with
            non-zero variance.

    Returns:
        A boolean array ``(p,)``.

    Example:

        >>> import numpy as np
        >>> h = np.array([[0.0, 0.5, 1.0], [1.0, 0.5, 1.0], [0.0, 0.51, 0.0]])
        >>> active_unit_mask(h).tolist()
        [True, False, True]

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018
        (units switched off by L_Sigma).
    """
    h = _matrix("h", h, min_samples=2)
    min_variance_fraction = check_fraction(
        "min_variance_fraction", min_variance_fraction, inclusive_zero=True
    )
    return _active(_variances(h), min_variance_fraction)


def active_units(h: ArrayLike, min_variance_fraction: float = 0.01) -> int:
    """The number of active units: ``active_unit_mask(h, ...).sum()``.

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        min_variance_fraction: in ``[0, 1]``, the share of the total variance
            a unit must hold (1% by default).

    Returns:
        An int in ``[0, p]``.

    Example:

        >>> import numpy as np
        >>> active_units(np.array([[0.0, 0.5, 1.0], [1.0, 0.5, 1.0], [0.0, 0.51, 0.0]]))
        2

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018.
    """
    return int(active_unit_mask(h, min_variance_fraction).sum())


def mapc(h: ArrayLike, min_variance_fraction: float = 0.0) -> float:
    """Mean absolute Pearson correlation between the units of a representation.

    With ``C`` the sample covariance (``1/(N-1)``) of ``h`` ``(N, p)``:

    ``MAPC = 2/(q^2 - q) sum_{i<j} |C_ij| / sqrt(C_ii C_jj)``

    over the ``q`` units kept: those of ``active_unit_mask(h,
    min_variance_fraction)``. Units with zero variance (constant over the
    samples) are always left out: their correlation is undefined. With
    ``min_variance_fraction > 0``, units whose variance is below that fraction
    of the total variance are left out too: a penalty such as L_Sigma switches
    units off, and the correlations of near-dead units are noise. If fewer
    than two units are kept there is no pair to correlate and MAPC is 0.0
    (check ``utilized_dimensions`` to tell such a collapse apart).

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        min_variance_fraction: in ``[0, 1]``; units holding less than this
            share of the total variance are left out. 0 keeps every unit
            with non-zero variance.

    Returns:
        A float in ``[0, 1]``; lower is more disentangled.

    Example:

        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.1]])
        >>> round(mapc(x), 4)
        0.9999

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        section 4.
    """
    h = _matrix("h", h, min_samples=2)
    min_variance_fraction = check_fraction(
        "min_variance_fraction", min_variance_fraction, inclusive_zero=True
    )
    keep = _active(_variances(h), min_variance_fraction)
    if keep.sum() < 2:
        return 0.0
    c = _covariance(h[:, keep])
    std = np.sqrt(np.diag(c))
    corr = np.abs(c / np.outer(std, std))
    upper = np.triu_indices(corr.shape[0], k=1)
    return float(np.clip(corr[upper].mean(), 0.0, 1.0))


def cvr(h: ArrayLike) -> float:
    """Covariance-to-variance ratio: ``‖C‖_1 / tr(C)``.

    ``C`` is the sample covariance (``1/(N-1)``) of ``h`` ``(N, p)`` and
    ``‖C‖_1 = sum_ij |C_ij|`` (entrywise, the diagonal included). CVR is 1
    when the units are uncorrelated and grows to ``p`` when they are all
    perfectly correlated with equal variance.

    Note on the paper: Kågebäck & Mogren print a further factor ``1/p^2``,
    but state that the optimum is one and report 20.00 / 6.56 / 4.03 for
    ``p = 84`` in their Table 1; only ``‖C‖_1 / tr(C)`` fits both, so that is
    what is computed here.

    A representation with zero total variance (every unit constant) has no
    covariance at all; its CVR is defined as 1.0 (check
    ``utilized_dimensions`` to tell such a collapse apart).

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.

    Returns:
        A float >= 1; lower is more disentangled.

    Example:

        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
        >>> cvr(x)
        2.0

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        section 4 and Table 1.
    """
    h = _matrix("h", h, min_samples=2)
    c = _covariance(h)
    constant = _constant(h)  # exactly 0, whatever the rounding of the mean
    c[constant, :] = 0.0
    c[:, constant] = 0.0
    trace = float(np.trace(c))
    if trace <= 0:
        return 1.0
    return float(max(np.abs(c).sum() / trace, 1.0))


def tdv(h: ArrayLike, d: int) -> float:
    """Share of the total variance held by the ``d`` units of largest variance.

    ``TDV_d = sum_{k<=d} v_(k) / sum_k v_k`` with ``v`` the diagonal of the
    sample covariance sorted in decreasing order. A representation with zero
    total variance gives 1.0 (no unit is needed to hold all of nothing; this
    agrees with ``utilized_dimensions`` = 0).

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        d: number of units, ``1 <= d <= p``.

    Returns:
        A float in ``[0, 1]``.

    Example:

        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 0.0]])
        >>> round(tdv(x, 1), 4)
        0.9231

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018.
    """
    h = _matrix("h", h, min_samples=2)
    d = check_positive_int("d", d)
    if d > h.shape[1]:
        raise ValueError(
            "Invalid value for argument d: expected at most the number of units "
            f"({h.shape[1]}). Received: d={d}"
        )
    var = np.sort(_variances(h))[::-1]
    total = var.sum()
    if total <= 0:
        return 1.0
    return float(min(var[:d].sum() / total, 1.0))


def utilized_dimensions(h: ArrayLike, fraction: float = 0.9) -> int:
    """UD: the fewest units, by decreasing variance, holding ``fraction`` of it.

    ``UD = min { d : sum_{k<=d} v_(k) >= fraction * sum_k v_k }`` with ``v``
    the diagonal of the sample covariance sorted in decreasing order (UD_90%
    for ``fraction=0.9``). The comparison allows a relative rounding slack of
    1e-12. A representation with zero total variance uses 0 dimensions.

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        fraction: in ``(0, 1]``.

    Returns:
        An int in ``[0, p]``.

    Example:

        >>> import numpy as np
        >>> x = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
        >>> utilized_dimensions(x, fraction=0.9)
        1

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018.
    """
    h = _matrix("h", h, min_samples=2)
    fraction = check_fraction("fraction", fraction)
    var = np.sort(_variances(h))[::-1]
    total = var.sum()
    if total <= 0:
        return 0
    cumulative = np.cumsum(var)
    reached = cumulative >= fraction * total * (1.0 - 1e-12)
    return int(np.argmax(reached) + 1)
