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

from keras_disentangle import _blocks
from keras_disentangle._backend import matmul
from keras_disentangle._ops import as_float
from keras_disentangle._validation import check_choice

__all__ = [
    "ESTIMATORS",
    "NCE_NEGATIVES",
    "jsd_lower_bound",
    "dv_lower_bound",
    "nce_lower_bound",
    "mutual_information",
    "bilinear_mutual_information",
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
    total = _gathered_log_sum(log_sum, gather)
    weight = ops.exp(log_sum - total)
    carrier = weight - ops.stop_gradient(weight)
    return pairs.finish(e_pos - pairs.row_share * (total - log_n_neg) - carrier)


def _gathered_log_sum(log_sum: Any, gather: Callable[[Any], Any]) -> Any:
    """The global log-sum-exp from every block's ``log_sum`` (no gradient)."""
    blocks = gather(ops.reshape(ops.stop_gradient(log_sum), (1,)))
    return _masked_logsumexp(blocks, blocks > 0.5 * _EMPTY, 0)


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


def _bilinear_scores(y: Any, m: Any) -> Any:
    """``S[i, j, ...] = sum_u y[i, u] m[j, ..., u]``: ``(n, M, ...)``."""
    if len(m.shape) == 2:
        return ops.matmul(y, ops.transpose(m))
    if len(m.shape) == 3:
        return ops.einsum("iu,jlu->ijl", y, m)
    flat = ops.reshape(m, (-1, ops.shape(m)[-1]))
    scores = matmul(y, ops.transpose(flat))
    return ops.reshape(scores, (ops.shape(y)[0],) + tuple(ops.shape(m)[:-1]))


def _factors(y: Any, m: Any) -> tuple[Any, Any]:
    """Checks the shapes; returns float tensors of one dtype."""
    y, m = as_float(y), as_float(m)
    if y.dtype != m.dtype:
        dtype = "float64" if "float64" in (y.dtype, m.dtype) else "float32"
        y, m = ops.cast(y, dtype), ops.cast(m, dtype)
    if len(y.shape) != 2 or len(m.shape) < 2:
        raise ValueError(
            "Invalid shape for arguments y and m: expected y of rank 2 "
            "(n, u) and m of rank >= 2 (M, ..., u). "
            f"Received: y.shape={y.shape}, m.shape={m.shape}"
        )
    u, v = y.shape[-1], m.shape[-1]
    if u is not None and v is not None and u != v:
        raise ValueError(
            "Invalid shape for arguments y and m: expected the same last "
            f"dimension u. Received: y.shape={y.shape}, m.shape={m.shape}"
        )
    return y, m


def bilinear_mutual_information(
    y: Any,
    m: Any,
    estimator: str = "jsd",
    *,
    offset: Any = 0,
    gather: Callable[[Any], Any] | None = None,
    negatives: str = "all_positions",
    self_score: float | None = None,
    block_elements: int | None = None,
) -> Any:
    """:func:`mutual_information` of the bilinear scores ``S = y m^T``, in
    bounded blocks of rows.

    ``S[i, j, ...] = sum_u y[i, u] m[j, ..., u]`` (Deep InfoMax's critic:
    ``y`` the ``(n, u)`` projected global vectors of the block's rows,
    ``m`` the ``(M, u)`` or ``(M, L, u)`` projected features of all
    ``M`` samples). The value and its gradient with respect to ``y`` and
    ``m`` are those of ``mutual_information(S, estimator, offset=offset,
    gather=gather, negatives=negatives, self_score=self_score)``.

    **Memory.** With ``block_elements=None``, or up to
    ``_blocks.MAX_BLOCK_ELEMENTS = 2^24`` scores (``n M L``), ``S`` is
    formed and differentiated whole (the same computation as
    :func:`mutual_information`): ``O(n M L)`` memory kept for the backward
    pass. (A size known only at run time, in a ``tf.function`` traced with
    a ``None`` batch or a ``tf.distribute`` replica, makes that choice at
    run time; ``"dv"`` with ``gather`` there always runs the loop, one
    block of all rows when they fit, since ``tf.distribute`` refuses a
    collective inside a ``cond``.) Beyond, the rows are taken
    ``b = block_elements // (M L)`` at a time (``_blocks.fused_row_blocks``),
    each block's scores giving its value and its derivative ``G_b =
    dI / dS_b`` at once, so memory is ``O((n + M L) u + b M L)``. The
    derivatives, with ``P`` the positive mask (``j = offset + i``), ``N =
    1 - P``, ``n_pos = M L``, ``n_neg = M (M - 1) L``, ``sigma`` the
    logistic function:

    - ``"jsd"``: ``G = P sigma(-S) / n_pos - N sigma(S) / n_neg``;
    - ``"dv"``: ``G = P / n_pos - c N exp(S - log Z)``, ``log Z`` the
      negatives' log-sum-exp (this block of rows' own, ``c = n / M``; with
      ``gather`` the global one, ``c = 1``). ``log Z`` is needed before any
      block's gradient: a first pass without gradient
      (``_blocks.scan_row_blocks``) folds the negatives' running maximum
      ``t`` and sum ``s = sum exp(S - t)`` (``log Z = t + log s``), then
      ``gather`` combines the replicas' as in :func:`dv_lower_bound`;
    - ``"nce"``, ``negatives="same_position"`` or ``L = 1``: with ``D_il
      = log(sum_j exp S_ijl [+ exp(self_score)])``, ``G_ijl = (P_ij -
      exp(S_ijl - D_il)) / n_pos``;
    - ``"nce"``, ``"all_positions"``: with ``D_il = log(exp S_iil + sum_{j
      != i, l'} exp S_ijl' [+ L exp(self_score)])`` and ``R_i = log
      sum_{j != i, l'} exp S_ijl'`` (the negatives' log-sum-exp),
      ``G_iil = (1 - exp(S_iil - D_il)) / n_pos`` and, for ``j != i``,
      ``G_ijl' = -exp(S_ijl' - R_i) sum_l exp(R_i - D_il) / n_pos``.

    Every ``exp(S - ...)`` is computed as ``exp(S - max) / sum`` (over the
    row, or DV's ``t`` and ``s``), never as the difference of two large
    logarithms, so float32 gradients keep their precision for scores of
    any magnitude (JSD's ``sigma(S) = exp(S - softplus(S))``). Each is
    the derivative of the block's rows' terms of the estimate; the
    blocks' values add up to the estimate (up to rounding: the sums are
    taken in another order). ``M < 2`` (no negatives) is one block.

    Args:
        y: ``(n, u)`` rows (the block's samples), ``n <= M``.
        m: ``(M, u)`` or ``(M, ..., u)`` columns (all samples).
        estimator: one of ``"jsd"``, ``"dv"``, ``"nce"``.
        offset: the index of ``y``'s first row among the ``M`` samples.
        gather: the collective of a block's DV log-sum-exp (``"dv"`` only).
        negatives: the InfoNCE negatives (``"nce"`` only).
        self_score: the InfoNCE score of an image's own positions.
        block_elements: the scores per block of rows beyond
            ``MAX_BLOCK_ELEMENTS`` (``2^19`` fits a CPU's cache, ``2^24``
            an accelerator's kernels); None for one block whatever the size.

    Returns:
        A scalar tensor, the estimate to maximise.

    Example:

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y, m = rng.normal(size=(4, 3)), rng.normal(size=(4, 2, 3))
        >>> a = bilinear_mutual_information(y, m, "nce")
        >>> b = mutual_information(np.einsum("iu,jlu->ijl", y, m), "nce")
        >>> bool(abs(float(a) - float(b)) < 1e-6)
        True

    References:
        Hjelm et al., ICLR 2019 (the bilinear critic of section 3 and
        appendix A.2).
    """
    check_choice("estimator", estimator, ESTIMATORS)
    check_choice("negatives", negatives, NCE_NEGATIVES)
    self_score = check_self_score(self_score)
    y, m = _factors(y, m)
    n, big_m = _blocks.size(y, 0), _blocks.size(m, 0)
    positions = None
    if all(isinstance(d, int) for d in m.shape[1:-1]):
        positions = math.prod(m.shape[1:-1])

    def one_block() -> tuple:
        scores = _bilinear_scores(y, m)
        return (
            mutual_information(
                scores,
                estimator,
                offset=offset,
                gather=gather,
                negatives=negatives,
                self_score=self_score,
            ),
        )

    def row_blocks(rows: Any) -> tuple:
        if isinstance(n, int) and isinstance(big_m, int) and n > big_m:
            raise ValueError(
                "Invalid shape for argument y: expected a block of n <= M rows "
                f"of the M samples of m. Received: y.shape={y.shape}, "
                f"m.shape={m.shape}"
            )
        if self_score is not None and negatives == "same_position" and len(m.shape) > 2:
            raise ValueError(
                "Invalid value for argument self_score: expected None with "
                "negatives='same_position' (the reference's self-scores belong "
                f"to the 'all_positions' form). Received: self_score={self_score!r}"
            )
        estimate = _BlockedEstimate(y, m, offset, rows)
        return (estimate.estimate(estimator, gather, negatives, self_score),)

    if block_elements is None or positions is None:
        return one_block()[0]
    few = big_m < 2 if isinstance(big_m, int) else ops.less(big_m, 2)
    return _blocks.one_or_row_blocks(
        n,
        big_m * positions,
        block_elements,
        one_block,
        row_blocks,
        one_block_if=few,
        collective_inside=estimator == "dv" and gather is not None,
    )[0]


class _BlockedEstimate:
    """:func:`bilinear_mutual_information` beyond one block: each
    estimator's block function (its value and ``dI / dS_b``)."""

    def __init__(self, y: Any, m: Any, offset: Any, rows: Any):
        self.y, self.m, self.rows = y, m, rows
        self.dtype = y.dtype
        self.n, self.m_count = _blocks.size(y, 0), _blocks.size(m, 0)
        self.positions = math.prod(m.shape[1:-1])
        self.rank = len(m.shape)  # the scores' rank
        # Python floats for sizes known when traced; else float tensors.
        n, m_count = self.n, self.m_count
        if not isinstance(n, int) or not isinstance(m_count, int):
            n, m_count = (ops.cast(x, self.dtype) for x in (n, m_count))
        self.n_pos = m_count * self.positions * 1.0
        self.n_neg = m_count * (m_count - 1) * self.positions * 1.0
        self.row_share = n / m_count
        # Passed as data, not closed over (keras.ops.custom_gradient).
        self.offset = ops.reshape(ops.cast(offset, self.dtype), (1,))

    def log(self, x: Any) -> Any:
        """``log x`` of a count: a Python float when ``x`` is a number,
        else a tensor (a size known only at run time; at least 1)."""
        if isinstance(x, (int, float)):
            return math.log(x)
        return ops.log(ops.maximum(ops.cast(x, self.dtype), 1.0))

    def positives(self, scores: Any, start: Any, offset: Any) -> tuple[Any, Any]:
        """The ``(b, M, 1, ...)`` mask of a block's positive pairs and their
        ``(b, ...)`` scores ``S_{i, offset + i}`` (taken, not masked: a
        padded row's is any of its scores)."""
        first = start + ops.cast(offset[0], "int32")
        index = first + ops.arange(_blocks.size(scores, 0), dtype="int32")
        mask = ops.equal(
            ops.expand_dims(index, 1),
            ops.expand_dims(ops.arange(self.m_count, dtype="int32"), 0),
        )
        trailing = (1,) * (self.rank - 2)
        mask = ops.reshape(mask, (-1, self.m_count) + trailing)
        column = ops.reshape(ops.clip(index, 0, self.m_count - 1), (-1, 1) + trailing)
        positive = ops.take_along_axis(scores, column, axis=1)
        return mask, ops.squeeze(positive, axis=1)

    def rows_mask(self, valid: Any, rank: int) -> Any:
        """``valid`` ``(b,)`` shaped to broadcast against rank-``rank``
        tensors."""
        return ops.reshape(valid, (-1,) + (1,) * (rank - 1))

    def fused(self, block: Any, *data: Any) -> Any:
        values = _blocks.fused_row_blocks(
            block,
            self.y,
            self.m,
            rows_per_block=self.rows,
            n_values=1,
            column_data=(self.offset, *data),
        )
        return values[0]

    def estimate(
        self,
        estimator: str,
        gather: Callable[[Any], Any] | None,
        negatives: str,
        self_score: float | None,
    ) -> Any:
        if estimator == "dv":
            return self.dv(gather)
        if estimator == "nce":
            return self.nce(negatives, self_score)
        return self.jsd()

    def jsd(self) -> Any:
        n_pos, n_neg = self.n_pos, self.n_neg
        rank = self.rank

        def block(scores, valid, start, row_part, column_part):
            # Every pair as a negative, then the positives corrected from
            # their (b, ...) scores: two passes over the block (softplus and
            # sigmoid(S) = exp(S - softplus(S))), the rest on (b, ...).
            pos, positive = self.positives(scores, start, column_part[0])
            w = self.rows_mask(valid, rank)
            soft = ops.softplus(scores)
            value = -ops.sum(w * (soft - _LOG2)) / n_neg
            v = self.rows_mask(valid, rank - 1)
            value = value + ops.sum(
                v
                * (
                    (_LOG2 - ops.softplus(-positive)) / n_pos
                    + (ops.softplus(positive) - _LOG2) / n_neg
                )
            )
            negative = -ops.exp(scores - soft) / n_neg
            fix = ops.sigmoid(-positive) / n_pos + ops.sigmoid(positive) / n_neg
            grad = ops.where(pos, negative + ops.expand_dims(fix, 1), negative)
            return ops.reshape(value, (1,)), w * grad

        return self.fused(block)

    def negatives_mask(self, scores: Any, valid: Any, start: Any, offset: Any):
        """The positive pairs' mask, their scores and the negatives' mask
        (real rows only), ``(b, M, 1, ...)``."""
        pos, positive = self.positives(scores, start, offset)
        real = self.rows_mask(valid, self.rank) > 0.5
        return pos, positive, ops.logical_and(ops.logical_not(pos), real)

    def dv(self, gather: Callable[[Any], Any] | None) -> Any:
        def fold(scores, valid, start, row_part, column_part, carry):
            """The negatives' running maximum and sum of ``exp(S - max)``."""
            top, total = carry
            _, _, neg = self.negatives_mask(scores, valid, start, column_part[0])
            new_top = ops.maximum(top, ops.max(ops.where(neg, scores, _EMPTY)))
            exps = ops.exp(ops.where(neg, scores - new_top, float("-inf")))
            return new_top, total * ops.exp(top - new_top) + ops.sum(exps)

        zero = ops.zeros((), dtype=self.dtype)
        top, total = _blocks.scan_row_blocks(
            fold,
            self.y,
            self.m,
            (zero + _EMPTY, zero),
            rows_per_block=self.rows,
            column_data=(self.offset,),
        )
        # total >= 1 when this block has a negative pair (M >= 2, n >= 1;
        # always so for sizes known when traced). Under a collective with
        # sizes known at run time a replica may have none (an empty slice,
        # M = 1): its log-sum is then the empty one, as dv_lower_bound's.
        some = total > 0
        total = ops.where(some, total, ops.ones_like(total))
        log_sum = ops.where(some, top + ops.log(total), _EMPTY)
        # d/dS of -c log Z over the negatives, c exp(S - log Z), as
        # exp(S - max) / sum times Z_rows / Z (1 without gather).
        factor = ops.reshape(self.row_share / total, (1,))
        log_z = log_sum
        if gather is not None:
            log_z = _gathered_log_sum(log_sum, gather)
            factor = ops.reshape(ops.exp(log_sum - log_z) / total, (1,))
        n_pos = self.n_pos

        def block(scores, valid, start, row_part, column_part):
            offset, top, factor = column_part
            pos, positive, neg = self.negatives_mask(scores, valid, start, offset)
            v = self.rows_mask(valid, self.rank - 1)
            value = ops.sum(v * positive) / n_pos
            negative = -factor[0] * ops.exp(
                ops.where(neg, scores - top[0], float("-inf"))
            )
            pos = ops.logical_and(pos, self.rows_mask(valid, self.rank) > 0.5)
            grad = ops.where(pos, negative + 1.0 / n_pos, negative)
            return ops.reshape(value, (1,)), grad

        e_pos = self.fused(block, ops.reshape(top, (1,)), ops.stop_gradient(factor))
        log_z = ops.stop_gradient(log_z)
        value = e_pos - self.row_share * (log_z - self.log(self.n_neg))
        if isinstance(self.m_count, int):
            return value
        # M known at run time: 0 without negative pairs (M < 2), as one block.
        return ops.where(self.m_count > 1, value, ops.zeros_like(value))

    def nce(self, negatives: str, self_score: float | None) -> Any:
        rank, n_pos = self.rank, self.n_pos
        own = None
        if self_score is not None:  # the reference's own L positions
            own = self_score + math.log(self.positions)
        same = negatives == "same_position" or rank == 2

        def same_position(scores, pos, positive):
            """``(P - D, dI/dS)``: the softmax over the images at each
            position, as ``exp(S - max) / sum``."""
            top = ops.max(scores, axis=1, keepdims=True)
            exps = ops.exp(scores - top)
            log_den = ops.log(ops.sum(exps, axis=1))  # D - max
            top = ops.squeeze(top, axis=1)
            if own is not None:
                log_den = ops.logaddexp(log_den, own - top)
            softmax = exps * ops.expand_dims(ops.exp(-log_den), 1)
            grad = ops.where(pos, 1.0 - softmax, -softmax)
            return positive - top - log_den, grad

        def all_positions(scores, pos_bool, positive):
            """``(P - D, dI/dS)`` with every score taken relative to the
            row's negatives, ``R = log sum_{j != i, l'} exp S_ijl'``, as
            ``exp(S - max) / sum`` (no difference of two large logs)."""
            other = ops.logical_not(pos_bool)
            axes = tuple(range(1, rank))
            top = ops.max(ops.where(other, scores, _EMPTY), axis=axes)  # (b,)
            top = ops.reshape(top, (-1,) + (1,) * (rank - 1))
            exps = ops.exp(ops.where(other, scores - top, float("-inf")))
            total = ops.sum(exps, axis=axes, keepdims=True)  # >= 1
            row = (-1,) + (1,) * (rank - 2)  # (b, 1, ...) against P (b, ...)
            shift = ops.reshape(top, row) + ops.log(ops.reshape(total, row))
            ratio = positive - shift  # P - R
            parts = [ops.zeros_like(ratio), ratio]
            if own is not None:
                parts.append(ops.broadcast_to(own - shift, ops.shape(ratio)))
            log_z = ops.logsumexp(ops.stack(parts), axis=0)  # D - R
            # 1 - exp(P - D): the share of the negatives (and own scores).
            rest = -log_z if own is None else ops.softplus(own - shift) - log_z
            # sum_l exp(S_ijl' - D_il) = exp(S_ijl' - R) sum_l exp(R - D_il).
            spread = ops.sum(ops.exp(-log_z), axis=tuple(range(1, rank - 1)))
            spread = ops.reshape(spread, (-1,) + (1,) * (rank - 1))
            grad = ops.where(
                pos_bool,
                ops.expand_dims(ops.exp(rest), 1),
                -exps * (spread / total),
            )
            return ratio - log_z, grad

        def block(scores, valid, start, row_part, column_part):
            pos_bool, positive = self.positives(scores, start, column_part[0])
            if same:
                log_probs, grad = same_position(scores, pos_bool, positive)
            else:
                log_probs, grad = all_positions(scores, pos_bool, positive)
            value = ops.sum(self.rows_mask(valid, rank - 1) * log_probs) / n_pos
            grad = self.rows_mask(valid, rank) * grad / n_pos
            return ops.reshape(value, (1,)), grad

        classes = self.m_count if same else (self.m_count - 1) * self.positions + 1
        return self.fused(block) + self.row_share * self.log(classes)
