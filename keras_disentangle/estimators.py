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

**A block of rows.** ``scores`` may also be a block ``(n, M, ...)`` of the
full ``(M, M, ...)`` matrix: the rows of samples ``offset, ..., offset + n - 1``
against all ``M`` samples (on several devices, each replica holds its own
rows against the gathered global batch). The function then returns that
block's *share* of the estimate over the ``M`` samples: the shares of the
blocks of a partition of the rows add up to the full estimate, and so do
their gradients. The Donsker-Varadhan form needs one global log-sum-exp; it
takes a ``gather`` function (``keras_disentangle._distribute.replica_gather``)
for it.

**No negatives.** With ``M < 2`` samples (a last batch of one) there is no
negative pair and nothing to measure: every estimate is 0 with a zero
gradient, never NaN. An empty block (``n = 0``) has a share of 0.

Numerical stability: the Jensen-Shannon form uses ``softplus``; the
Donsker-Varadhan and InfoNCE forms use log-sum-exp with the maximum taken
out, so scores of any magnitude give finite values and finite gradients.
Integer and half-precision inputs are computed in float32
(``keras_disentangle._ops.as_float``).

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
from collections.abc import Callable
from typing import Any

from keras import ops

from keras_disentangle._ops import as_float
from keras_disentangle._validation import check_choice

__all__ = [
    "ESTIMATORS",
    "NCE_NEGATIVES",
    "jsd_lower_bound",
    "dv_lower_bound",
    "nce_lower_bound",
    "mutual_information",
]

ESTIMATORS = ("jsd", "dv", "nce")
NCE_NEGATIVES = ("all_positions", "same_position")

_LOG2 = math.log(2.0)
# A finite stand-in for log(0): an empty log-sum-exp. Finite, so that a
# multiplication by zero (no negatives) gives 0 and a zero gradient, not NaN.
_EMPTY = -1e30


def check_self_score(self_score: Any, name: str = "self_score") -> float | None:
    """None or a finite float: InfoNCE's score of an image's own positions."""
    if self_score is None:
        return None
    if (
        isinstance(self_score, bool)
        or not isinstance(self_score, (int, float))
        or not math.isfinite(self_score)
    ):
        raise ValueError(
            f"Invalid value for argument {name}: expected None or a finite "
            f"number. Received: {name}={self_score!r}"
        )
    return float(self_score)


def _scores(scores: Any) -> Any:
    """Checks the shape; returns a float tensor (the package's dtype rule)."""
    scores = as_float(scores)
    shape = scores.shape
    if len(shape) < 2:
        raise ValueError(
            "Invalid shape for argument scores: expected a tensor of rank >= 2 "
            "with scores[i, j, ...] = T(y_i, m_j). "
            f"Received: scores.shape={shape}"
        )
    if shape[0] is not None and shape[1] is not None and shape[0] > shape[1]:
        raise ValueError(
            "Invalid shape for argument scores: expected (N, N, ...), or a "
            "block (n, N, ...) of rows with n <= N. "
            f"Received: scores.shape={shape}"
        )
    return scores


class _Pairs:
    """The masks and pair counts of a block of rows ``(n, M, ...)``."""

    def __init__(self, scores: Any, offset: Any):
        shape = ops.shape(scores)
        dtype = scores.dtype
        self.rank = len(scores.shape)
        rows = ops.arange(shape[0]) + ops.cast(offset, "int32")
        mask = ops.equal(rows[:, None], ops.arange(shape[1])[None, :])
        for _ in range(self.rank - 2):
            mask = ops.expand_dims(mask, -1)
        self.pos_bool = mask
        self.pos = ops.cast(self.pos_bool, dtype)
        self.n = ops.cast(shape[0], dtype)
        self.m = ops.cast(shape[1], dtype)
        rest = ops.cast(1.0, dtype)
        for d in shape[2:]:
            rest = rest * ops.cast(d, dtype)
        self.positions = rest
        # Totals over the full (M, M, ...) matrix: the normalisers.
        self.n_pos = self.m * rest
        self.n_neg = self.m * (self.m - 1.0) * rest
        self.has_negatives = ops.cast(self.m > 1.5, dtype)
        self.row_share = self.n / ops.maximum(self.m, 1.0)

    def positives(self, scores: Any) -> Any:
        """``T(y_i, m_i)`` at each position: ``(n, ...)``."""
        return ops.sum(self.pos * scores, axis=1)

    def finish(self, value: Any) -> Any:
        """0 when the full matrix has no negative pair."""
        return self.has_negatives * value


def _masked_logsumexp(x: Any, mask: Any, axis: Any) -> Any:
    """``log sum exp x`` over the entries where ``mask`` holds, along ``axis``.

    An empty set gives ``_EMPTY`` (finite) with a zero gradient; the maximum
    is taken out first.
    """
    top = ops.stop_gradient(
        ops.max(ops.where(mask, x, _EMPTY), axis=axis, keepdims=True, initial=_EMPTY)
    )
    shifted = ops.where(mask, x - top, float("-inf"))
    total = ops.sum(ops.exp(shifted), axis=axis)
    top = ops.squeeze(top, axis=axis)
    nonempty = total > 0
    safe = ops.where(nonempty, total, ops.ones_like(total))
    return ops.where(nonempty, ops.log(safe) + top, _EMPTY)


def jsd_lower_bound(scores: Any, *, offset: Any = 0) -> Any:
    """Jensen-Shannon mutual-information estimate (Deep InfoMax's default).

    ``I_JSD = E_pos[log 2 - softplus(-T)] - E_neg[softplus(T) - log 2]``,

    the means taken over the positive pairs (``i == j``) and over the negative
    pairs (``i != j``) of ``scores``, at every position. It lies in
    ``[-inf, 2 log 2]``; it is ``2 log 2`` when the critic separates the pairs
    perfectly. The constants follow the reference code of Deep InfoMax
    (rdevon/DIM, ``fenchel_dual_loss``). For a block of rows the share is
    the block's sums divided by the full matrix's pair counts.

    Args:
        scores: critic scores ``(N, N)``, ``(N, N, ...)`` or a block
            ``(n, N, ...)`` of rows.
        offset: the index of the block's first row (an int or a scalar
            tensor); 0 for the full matrix.

    Returns:
        A scalar tensor, the estimate to maximise (0 when ``N < 2``).

    Example:

        >>> import numpy as np
        >>> round(float(jsd_lower_bound(np.zeros((3, 3)))), 6)
        0.0

    References:
        Hjelm et al., ICLR 2019, eq. 4; Nowozin et al., f-GAN, 2016.
    """
    scores = _scores(scores)
    pairs = _Pairs(scores, offset)
    e_pos = ops.sum(pairs.pos * (_LOG2 - ops.softplus(-scores)))
    e_neg = ops.sum((1.0 - pairs.pos) * (ops.softplus(scores) - _LOG2))
    return pairs.finish(
        e_pos / ops.maximum(pairs.n_pos, 1.0) - e_neg / ops.maximum(pairs.n_neg, 1.0)
    )


def dv_lower_bound(
    scores: Any,
    *,
    offset: Any = 0,
    gather: Callable[[Any], Any] | None = None,
) -> Any:
    """Donsker-Varadhan mutual-information estimate (MINE).

    ``I_DV = E_pos[T] - log E_neg[exp T]``,

    the log-mean-exp taken over all negative pairs (``i != j``, every
    position) as one log-sum-exp with the maximum taken out.

    **The reference's normalisation.** rdevon/DIM's ``donsker_varadhan_loss``
    (``cortex_DIM/functions/dim_losses.py`` line 148,
    ``E_neg = log(sum(n_mask * exp(u - u_max)) + 1e-6) + u_max -
    log(n_mask.sum())``) sums the ``N (N - 1) L`` negative scores of a map of
    ``L`` positions but divides by ``n_mask.sum() = N (N - 1)``: its value is
    this one minus ``log L`` (equal for ``L = 1``), with the same gradient.
    The true log-mean-exp, kept here, is the one that makes ``I_DV`` the
    Donsker-Varadhan bound; the reference's ``1e-6`` inside the log is left
    out too. For a block of rows the
    log-mean-exp is the global one: each block's log-sum-exp is passed
    through ``gather`` (without a gradient) and combined; the block's share
    then carries the exact gradient ``exp(T) / S`` of the global
    ``log S`` with respect to its own scores.

    Args:
        scores: critic scores ``(N, N)``, ``(N, N, ...)`` or a block
            ``(n, N, ...)`` of rows.
        offset: the index of the block's first row; 0 for the full matrix.
        gather: for a block, a function concatenating a ``(1,)`` tensor of
            every block (``_distribute.replica_gather``); None for the full
            matrix.

    Returns:
        A scalar tensor, the estimate to maximise (0 when ``N < 2``).

    Example:

        >>> import numpy as np
        >>> round(float(dv_lower_bound(np.eye(2) * np.log(3.0))), 6)
        1.098612

    References:
        Donsker & Varadhan, 1983; Belghazi et al., MINE, ICML 2018;
        Hjelm et al., ICLR 2019, eq. 2.
    """
    scores = _scores(scores)
    pairs = _Pairs(scores, offset)
    e_pos = ops.sum(pairs.pos * scores) / ops.maximum(pairs.n_pos, 1.0)
    axes = tuple(range(pairs.rank))
    log_sum = _masked_logsumexp(scores, ops.logical_not(pairs.pos_bool), axes)
    log_n_neg = ops.log(ops.maximum(pairs.n_neg, 1.0))
    if gather is None:
        return pairs.finish(e_pos - pairs.row_share * (log_sum - log_n_neg))
    # The global log-sum-exp from every block's, gathered without a gradient;
    # the gradient of log S (S the global sum) with respect to this block's
    # scores is exp(T) / S = (S_block / S) d log S_block: a term worth 0
    # carries it, so no collective runs in the backward pass.
    blocks = gather(ops.reshape(ops.stop_gradient(log_sum), (1,)))
    total = _masked_logsumexp(blocks, blocks > 0.5 * _EMPTY, 0)
    weight = ops.exp(log_sum - total)
    carrier = weight - ops.stop_gradient(weight)
    return pairs.finish(e_pos - pairs.row_share * (total - log_n_neg) - carrier)


def nce_lower_bound(
    scores: Any,
    *,
    offset: Any = 0,
    negatives: str = "all_positions",
    self_score: float | None = None,
) -> Any:
    """InfoNCE mutual-information estimate.

    Each positive ``T(y_i, m_i)`` at position ``p`` is classified against
    negatives with a log-softmax:

    - ``negatives="all_positions"`` (the reference's form, rdevon/DIM
      ``infonce_loss``): the ``(N - 1) L`` scores ``T(y_i, m_j)`` of the
      other images at *every* position ``p'``:
      ``I_NCE = log K + mean_{i,p} [T_iip - log(exp T_iip
      + sum_{j != i, p'} exp T_ijp')]`` with ``K = (N - 1) L + 1``;
    - ``negatives="same_position"`` (cheaper, weaker): the ``N - 1`` scores
      of the other images at the same position ``p``:
      ``I_NCE = log N + mean_{i,p} [T_iip - log sum_j exp T_ijp]``.

    With no trailing axis (``L = 1``) both are the usual InfoNCE over the
    batch. The estimate lies in ``[-inf, log K]``.

    **The reference's self-scores.** rdevon/DIM (``infonce_loss``,
    ``cortex_DIM/functions/dim_losses.py`` line 96,
    ``u_n = (n_mask * u_n) - (10. * (1 - n_mask))``) keeps the image's own
    ``L`` positions in the softmax with the constant score ``-10``: each
    denominator gets ``L exp(-10)`` more. By default (``self_score=None``)
    they are left out here (they are neither positives nor negatives; on
    random inputs the two differ by 1e-6 to 1e-5, more once a trained
    critic's scores are small). ``self_score=-10.0`` computes the
    reference's denominators exactly (``"all_positions"`` form, or
    ``L = 1``); the ``log K`` constant is the same either way.

    Args:
        scores: critic scores ``(N, N)``, ``(N, N, ...)`` or a block
            ``(n, N, ...)`` of rows.
        offset: the index of the block's first row; 0 for the full matrix.
        negatives: ``"all_positions"`` (default) or ``"same_position"``.
        self_score: None (default) to leave the image's own positions out;
            a float (the reference's ``-10.0``) to add them to every
            denominator with that score. Not defined for
            ``"same_position"`` with ``L > 1`` (raises).

    Returns:
        A scalar tensor, the estimate to maximise (0 when ``N < 2``).

    Example:

        >>> import numpy as np
        >>> round(float(nce_lower_bound(np.zeros((4, 4)))), 6)
        0.0
        >>> round(float(nce_lower_bound(np.zeros((4, 4)), self_score=-10.0)), 6)
        -1.1e-05

    References:
        van den Oord et al., CPC, 2018; Hjelm et al., ICLR 2019, eq. 5.
    """
    check_choice("negatives", negatives, NCE_NEGATIVES)
    self_score = check_self_score(self_score)
    scores = _scores(scores)
    if (
        self_score is not None
        and negatives == "same_position"
        and len(scores.shape) > 2
    ):
        raise ValueError(
            "Invalid value for argument self_score: expected None with "
            "negatives='same_position' (the reference's self-scores belong to "
            f"the 'all_positions' form). Received: self_score={self_score!r}"
        )
    pairs = _Pairs(scores, offset)
    positive = pairs.positives(scores)
    if negatives == "same_position" or pairs.rank == 2:
        log_denominator = ops.logsumexp(scores, axis=1)
        classes = pairs.m
    else:
        axes = tuple(range(1, pairs.rank))
        log_neg = _masked_logsumexp(scores, ops.logical_not(pairs.pos_bool), axes)
        log_neg = ops.reshape(log_neg, (-1,) + (1,) * (pairs.rank - 2))
        log_denominator = ops.logaddexp(positive, log_neg)
        classes = (pairs.m - 1.0) * pairs.positions + 1.0
    if self_score is not None:
        # The image's own L positions at a constant score (the reference's).
        own = self_score + ops.log(pairs.positions)
        log_denominator = ops.logaddexp(log_denominator, own)
    log_probs = positive - log_denominator
    mean = ops.sum(log_probs) / ops.maximum(pairs.n_pos, 1.0)
    return pairs.finish(mean + pairs.row_share * ops.log(ops.maximum(classes, 1.0)))


_FUNCTIONS = {
    "jsd": jsd_lower_bound,
    "dv": dv_lower_bound,
    "nce": nce_lower_bound,
}


def mutual_information(
    scores: Any,
    estimator: str = "jsd",
    *,
    offset: Any = 0,
    gather: Callable[[Any], Any] | None = None,
    negatives: str = "all_positions",
    self_score: float | None = None,
) -> Any:
    """Dispatches to ``jsd_lower_bound``, ``dv_lower_bound`` or ``nce_lower_bound``.

    Args:
        scores: critic scores ``(N, N)``, ``(N, N, ...)`` or a block
            ``(n, N, ...)`` of rows.
        estimator: one of ``"jsd"``, ``"dv"``, ``"nce"``.
        offset: the index of the block's first row; 0 for the full matrix.
        gather: the collective of a block's DV log-sum-exp (``"dv"`` only).
        negatives: the InfoNCE negatives (``"nce"`` only).
        self_score: the InfoNCE score of an image's own positions (``"nce"``
            only; None leaves them out, the reference uses ``-10.0``).

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> round(float(mutual_information(np.zeros((2, 2)), "nce")), 6)
        0.0
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("negatives", negatives, NCE_NEGATIVES)
    if estimator == "dv":
        return dv_lower_bound(scores, offset=offset, gather=gather)
    if estimator == "nce":
        return nce_lower_bound(
            scores, offset=offset, negatives=negatives, self_score=self_score
        )
    return jsd_lower_bound(scores, offset=offset)
