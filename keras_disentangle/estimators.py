"""Lower bounds on mutual information from a critic's score matrix.

Pure ``keras.ops`` functions, as ``keras_disentangle.penalties``: they know no
Keras object and run on every Keras 3 backend, inside ``jit_compile=True`` and
with an unknown batch dimension.

Every function takes ``scores`` of shape ``(N, N)`` or ``(N, N, ...)``:
``scores[i, j, ...] = T(y_i, m_j)`` is a critic's score of the pair made of
the first view of sample ``i`` and the second view of sample ``j`` (in Deep
InfoMax: the global vector of image ``i`` and the local feature of image ``j``
at some position). Pairs with ``i == j`` are the positives, drawn from the
joint distribution; pairs with ``i != j`` are the negatives, drawn from the
product of the marginals. Trailing axes (positions of a feature map) are
further pairs of the same kind. Each function returns a scalar estimate to
*maximise*; its negative is a loss.

Numerical stability: the Jensen-Shannon form uses ``softplus``; the
Donsker-Varadhan and InfoNCE forms use log-sum-exp with the maximum taken
out, so scores of any magnitude give finite values and finite gradients.
Half-precision inputs are computed in float32.

References:
    Hjelm et al., "Learning deep representations by mutual information
    estimation and maximization", ICLR 2019 (section 3.1, appendix A.1).
    Nowozin et al., "f-GAN", NeurIPS 2016 (the Jensen-Shannon form).
    Donsker & Varadhan, 1983; Belghazi et al., "MINE", ICML 2018 (DV form).
    van den Oord et al., "Representation learning with contrastive predictive
    coding", 2018 (InfoNCE).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_disentangle._validation import check_choice

__all__ = [
    "ESTIMATORS",
    "jsd_lower_bound",
    "dv_lower_bound",
    "nce_lower_bound",
    "mutual_information",
]

ESTIMATORS = ("jsd", "dv", "nce")

_LOG2 = math.log(2.0)


def _scores(scores):
    """Checks the shape and converts to a float tensor of at least 32 bits."""
    scores = ops.convert_to_tensor(scores)
    dtype = keras.backend.standardize_dtype(scores.dtype)
    if dtype not in ("float32", "float64"):
        scores = ops.cast(scores, "float32")
    shape = scores.shape
    if len(shape) < 2:
        raise ValueError(
            "Invalid shape for argument scores: expected a tensor of rank >= 2 "
            "with scores[i, j, ...] = T(y_i, m_j). "
            f"Received: scores.shape={shape}"
        )
    if shape[0] is not None and shape[1] is not None and shape[0] != shape[1]:
        raise ValueError(
            "Invalid shape for argument scores: the first two axes must have "
            f"the same length (one per sample). Received: scores.shape={shape}"
        )
    if shape[0] is not None and shape[0] < 2:
        raise ValueError(
            "Invalid shape for argument scores: at least 2 samples are needed "
            f"to form negative pairs. Received: scores.shape={shape}"
        )
    return scores


def _positive_mask(scores):
    """A ``(N, N, 1, ...)`` float mask, 1 where ``i == j``, broadcastable."""
    n = ops.shape(scores)[0]
    idx = ops.arange(n)
    mask = ops.cast(ops.equal(idx[:, None], idx[None, :]), scores.dtype)
    return ops.reshape(mask, (n, n) + (1,) * (len(scores.shape) - 2))


def _pair_counts(scores):
    """Numbers of positive and negative pairs as float tensors."""
    shape = ops.shape(scores)
    n = ops.cast(shape[0], scores.dtype)
    rest = 1.0
    for d in shape[2:]:
        rest = rest * ops.cast(d, scores.dtype)
    return n * rest, n * (n - 1.0) * rest


def jsd_lower_bound(scores):
    """Jensen-Shannon mutual-information estimate (Deep InfoMax's default).

    ``I_JSD = E_pos[log 2 - softplus(-T)] - E_neg[softplus(T) - log 2]``,

    the means taken over the positive pairs (``i == j``) and over the negative
    pairs (``i != j``) of ``scores``. It lies in ``[-inf, 2 log 2]``; it is
    ``2 log 2`` when the critic separates the pairs perfectly. The constants
    follow the reference code of Deep InfoMax (rdevon/DIM).

    Args:
        scores: critic scores, shape ``(N, N)`` or ``(N, N, ...)``, N >= 2.

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> round(float(jsd_lower_bound(np.zeros((3, 3)))), 6)
        0.0

    References:
        Hjelm et al., ICLR 2019, eq. 4; Nowozin et al., f-GAN, 2016.
    """
    scores = _scores(scores)
    pos = _positive_mask(scores)
    n_pos, n_neg = _pair_counts(scores)
    e_pos = ops.sum(pos * (_LOG2 - ops.softplus(-scores))) / n_pos
    e_neg = ops.sum((1.0 - pos) * (ops.softplus(scores) - _LOG2)) / n_neg
    return e_pos - e_neg


def dv_lower_bound(scores):
    """Donsker-Varadhan mutual-information estimate (MINE).

    ``I_DV = E_pos[T] - log E_neg[exp T]``,

    the log-mean-exp taken over all negative pairs (``i != j``) as one
    log-sum-exp with the maximum taken out.

    Args:
        scores: critic scores, shape ``(N, N)`` or ``(N, N, ...)``, N >= 2.

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> round(float(dv_lower_bound(np.eye(2) * np.log(3.0))), 6)
        1.098612

    References:
        Donsker & Varadhan, 1983; Belghazi et al., MINE, ICML 2018;
        Hjelm et al., ICLR 2019, eq. 2.
    """
    scores = _scores(scores)
    pos = _positive_mask(scores)
    n_pos, n_neg = _pair_counts(scores)
    e_pos = ops.sum(pos * scores) / n_pos
    negatives = ops.where(pos > 0, float("-inf"), scores)
    top = ops.stop_gradient(ops.max(negatives))
    log_sum = ops.log(ops.sum(ops.exp(negatives - top))) + top
    return e_pos - (log_sum - ops.log(n_neg))


def nce_lower_bound(scores):
    """InfoNCE mutual-information estimate.

    ``I_NCE = log N + mean_{i, ...} [T_ii - log sum_j exp T_ij]``:

    each positive ``T(y_i, m_i)`` (at each trailing position) is classified
    against the ``N - 1`` negatives ``T(y_i, m_j)`` sharing its first view
    (and its position), with a log-softmax over ``j``. The estimate lies in
    ``[-inf, log N]``.

    Args:
        scores: critic scores, shape ``(N, N)`` or ``(N, N, ...)``, N >= 2.

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> round(float(nce_lower_bound(np.zeros((4, 4)))), 6)
        0.0

    References:
        van den Oord et al., CPC, 2018; Hjelm et al., ICLR 2019, eq. 5.
    """
    scores = _scores(scores)
    pos = _positive_mask(scores)
    n_pos, _ = _pair_counts(scores)
    log_probs = ops.log_softmax(scores, axis=1)
    n = ops.cast(ops.shape(scores)[0], scores.dtype)
    return ops.sum(pos * log_probs) / n_pos + ops.log(n)


_FUNCTIONS = {
    "jsd": jsd_lower_bound,
    "dv": dv_lower_bound,
    "nce": nce_lower_bound,
}


def mutual_information(scores, estimator: str = "jsd"):
    """Dispatches to ``jsd_lower_bound``, ``dv_lower_bound`` or ``nce_lower_bound``.

    Args:
        scores: critic scores, shape ``(N, N)`` or ``(N, N, ...)``, N >= 2.
        estimator: one of ``"jsd"``, ``"dv"``, ``"nce"``.

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> round(float(mutual_information(np.zeros((2, 2)), "nce")), 6)
        0.0
    """
    check_choice("estimator", estimator, ESTIMATORS)
    return _FUNCTIONS[estimator](scores)
