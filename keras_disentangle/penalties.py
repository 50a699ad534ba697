"""The penalties of the papers as pure ``keras.ops`` functions.

Every function here takes tensors and returns an unweighted scalar; it knows
no Keras object, so it runs on every Keras 3 backend (TensorFlow, JAX,
PyTorch), inside ``jit_compile=True`` and with an unknown batch dimension.
The Keras adapters (``keras_disentangle.regularizers``, ``.losses``,
``.layers``) validate arguments, hold the weights and call these functions.

Half-precision inputs (float16, bfloat16) are computed in float32: softmax,
logarithms and covariances lose too much in 8 or 11 bits of mantissa.

Speed: pairwise KL divergences come from one matrix product,
``KL(s_i‖s_j) = sum_k s_ik log s_ik - (S @ log S^T)_ij``, so memory is
``O(N^2 + N k)`` rather than the ``N x N x k`` tensor of an all-pairs
formulation (and ``O(N k)`` plus one bounded block beyond ``2^24`` pairs:
``_hinge_sums``); covariances are one matmul ``Hc^T Hc``; the latent-centroid
distances of Karakulak et al. are ``‖h‖² − 2 h C^T + ‖C‖²``, never an
``N x K x D`` tensor.

Several devices: the batch statistics take ``collectives`` (``None``, the
default, for one device), as ``estimators`` takes ``gather``: an object
with ``sum(x)`` (all-reduce) and ``gather(x)`` (all-gather along axis 0),
both differentiable, which the Keras adapters get from the runtime in use
(``keras_disentangle._distribute.collectives``: ``tf.distribute``,
``torch.distributed``; JAX's global arrays need none). With them,
covariances come from all-reduced sufficient statistics (count, sums,
centred Gram matrices) and pairwise terms from a local-by-global block of
the all-gathered samples, so every replica gets the global value. This
module never looks up the runtime or the backend.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops
from keras import random as keras_random

from keras_disentangle import _blocks
from keras_disentangle._backend import computes_on_cpu, concrete_value
from keras_disentangle._backend import matmul as _matmul
from keras_disentangle._ops import as_float
from keras_disentangle._validation import label_vector

__all__ = [
    "pairwise_kl",
    "kernel_kl_margin",
    "activity_kl_margin",
    "batch_moments",
    "covariance",
    "covariance_from_statistics",
    "cross_covariance",
    "decov",
    "xcov",
    "covariance_l1",
    "squared_distances",
    "min_centroid_distance",
    "random_location",
]

_float = as_float  # the package's dtype rule (keras_disentangle._ops)

Tensor = Any  # a backend tensor, a Keras variable or a NumPy array

#: What a covariance penalty treats as features (``features=`` argument).
FEATURES = ("flatten", "channels")

#: The most features a covariance penalty accepts: a ``p x p`` float32
#: covariance of 8192 features is 256 MiB (and as much again for its
#: gradient); beyond it the penalties raise instead of allocating.
MAX_COVARIANCE_FEATURES = 8192


def _flatten_samples(h, name: str):
    """Reshapes ``(N, ...)`` to ``(N, F)``; a rank-1 input is one feature each."""
    h = _float(h)
    if len(h.shape) == 0:
        raise ValueError(
            f"Invalid shape for argument {name}: expected a tensor of rank >= 1 "
            f"with samples on the first axis. Received: {name}.shape={h.shape}"
        )
    if len(h.shape) == 1:
        return ops.expand_dims(h, -1)
    if len(h.shape) == 2:
        return h
    inner = h.shape[1:]
    if any(d is None for d in inner):
        raise ValueError(
            f"Invalid shape for argument {name}: all axes but the first must be "
            f"known to flatten the features. Received: {name}.shape={h.shape}"
        )
    return ops.reshape(h, (-1, math.prod(inner)))


def _feature_rows(h, name: str, features: str):
    """The ``(rows, p)`` matrix a covariance is computed over.

    ``"flatten"``: one row per sample, all other axes flattened into ``p``
    features. ``"channels"``: one row per sample and spatial position of a
    channels-last feature map, the channels as features.
    """
    if features not in FEATURES:
        raise ValueError(
            f"Invalid value for argument features: expected one of "
            f"{sorted(FEATURES)}. Received: features={features!r}"
        )
    h = _float(h)
    if features == "channels" and len(h.shape) > 2:
        channels = h.shape[-1]
        if channels is None:
            raise ValueError(
                f"Invalid shape for argument {name}: the channel axis (last) must "
                f"be known for features='channels'. Received: {name}.shape={h.shape}"
            )
        rows = ops.reshape(h, (-1, channels))
    else:
        rows = _flatten_samples(h, name)
    p = rows.shape[-1]
    if p is not None and p > MAX_COVARIANCE_FEATURES:
        gib = 4.0 * p * p / 2**30
        if features == "flatten" and len(h.shape) > 2:
            raise ValueError(
                "Invalid value for argument features: features='flatten' makes "
                f"{p} features of {name}.shape={h.shape}, a {p} x {p} covariance "
                f"(about {gib:.0f} GiB in float32; the limit is "
                f"{MAX_COVARIANCE_FEATURES} features). Pass features='channels' to "
                "treat the spatial positions as samples and the channels as "
                "features. Received: features='flatten'"
            )
        raise ValueError(
            f"Invalid shape for argument {name}: expected at most "
            f"{MAX_COVARIANCE_FEATURES} features for a covariance, found {p} "
            f"(a {p} x {p} matrix, about {gib:.0f} GiB in float32); reduce them "
            f"first (pooling, a Dense layer). Received: {name}.shape={h.shape}"
        )
    return rows


def _n_samples(h):
    return ops.cast(ops.shape(h)[0], h.dtype)


def _check_margin(margin):
    if not isinstance(margin, (int, float)) or isinstance(margin, bool):
        return margin  # a tensor or variable: checked by the adapters
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(
            "Invalid value for argument margin: expected a finite number >= 0. "
            f"Received: margin={margin!r}"
        )
    return margin


def pairwise_kl(logits: Tensor) -> Tensor:
    """KL divergences between the softmax distributions of all pairs of rows.

    With ``s_i = softmax(logits_i)``:
    ``KL[i, j] = KL(s_i‖s_j) = sum_k s_ik (log s_ik - log s_jk)``, computed as
    ``sum_k s_ik log s_ik - (S @ log S^T)_ij`` with ``log_softmax``, so it is
    one matmul and stays finite for logits of any magnitude.

    Args:
        logits: tensor of shape ``(N, k)``.

    Returns:
        Tensor of shape ``(N, N)``, non-negative (rounding clipped at 0).

    Example:

        >>> import numpy as np
        >>> kl = pairwise_kl(np.array([[0.0, 0.0], [0.0, 1.0]]))
        >>> [round(float(v), 4) for v in np.asarray(kl).ravel()]
        [0.0, 0.1201, 0.1109, 0.0]
    """
    logits = _float(logits)
    log_s = ops.log_softmax(logits, axis=-1)
    s = ops.exp(log_s)
    neg_entropy = ops.sum(s * log_s, axis=-1, keepdims=True)
    return ops.relu(neg_entropy - _matmul(s, ops.transpose(log_s)))


# Elements of one slice of the N x N hinge block on the CPU: 2**19 float32
# values (2 MiB) stay in cache through the product, the hinge, its mask and
# the two backward products (benchmarks/penalties.py --backend B). Also the
# size of a row block of the bounded loop on the CPU.
_CPU_BLOCK_ELEMENTS = 2**19
# A row block of the bounded loop on an accelerator (64 MiB in float32).
_DEVICE_BLOCK_ELEMENTS = 2**24


def _column_slices(n_rows, n_columns, on_cpu: bool):
    """The column ranges of the pair block, one slice each.

    On the CPU the block is cut into slices of about ``_CPU_BLOCK_ELEMENTS``;
    on an accelerator, or when a size is only known at run time, it is one.
    """
    if not on_cpu or not isinstance(n_rows, int) or not isinstance(n_columns, int):
        return [None]
    width = max(1, _CPU_BLOCK_ELEMENTS // max(n_rows, 1))
    if width >= n_columns:
        return [None]
    return [slice(start, start + width) for start in range(0, n_columns, width)]


class _Pairs:
    """The pair weights ``w_ij`` of rows ``i`` against columns ``j``.

    ``w_ij = [id_i == id_j] * a_i * b_j * [i != j]``, each factor present
    only when given: ``ids`` (labels, on both sides), ``weights`` (sample
    weights, on both sides) and ``off_diagonal`` (rows and columns are the
    same set, indexed alike).
    """

    def __init__(
        self,
        row_ids=None,
        column_ids=None,
        row_weights=None,
        column_weights=None,
        off_diagonal: bool = False,
    ):
        self.rows = {"ids": row_ids, "weights": row_weights}
        self.columns = {"ids": column_ids, "weights": column_weights}
        self.off_diagonal = off_diagonal


def _pair_weights(dtype, rows: dict, columns: dict, row_index=None, column_index=None):
    """``w_ij`` (:class:`_Pairs`) of a row slice against a column slice:
    ``rows`` / ``columns`` map ``"ids"`` and ``"weights"`` to the slices'
    values (or None), ``row_index`` / ``column_index`` are their indices
    when the diagonal is left out (else None). None when ``w = 1``."""
    w = None
    if rows["ids"] is not None:
        w = ops.equal(
            ops.expand_dims(rows["ids"], 1), ops.expand_dims(columns["ids"], 0)
        )
        w = ops.cast(w, dtype)
    if rows["weights"] is not None:
        outer = ops.expand_dims(ops.cast(rows["weights"], dtype), 1) * (
            ops.expand_dims(ops.cast(columns["weights"], dtype), 0)
        )
        w = outer if w is None else w * outer
    if row_index is not None:
        off = ops.not_equal(
            ops.expand_dims(row_index, 1), ops.expand_dims(column_index, 0)
        )
        off = ops.cast(off, dtype)
        w = off if w is None else w * off
    return w


def _hinge_sums(log_rows, log_columns, margin, pairs: _Pairs | None = None, count=True):
    """``sum_ij w_ij max(0, m - KL(s_i‖s_j))`` and ``sum_ij w_ij``.

    Rows ``i`` against columns ``j`` (all ordered pairs, the diagonal
    included unless ``pairs.off_diagonal``). ``m - KL_ij = sum_k s_ik log
    s_jk + (m - sum_k s_ik log s_ik)``: the row term rides along as one more
    column of the matmul (``[s, m - H] @ [log S, 1]^T``), so the only
    ``N x N`` passes are the product and the hinge, forward and backward.

    Memory and speed, by size of the pair block:

    - up to ``2^24`` pairs (64 MiB in float32) it is differentiated as one
      block; on the CPU the columns are taken in slices that fit the cache
      (the same sum; 1.1x to 1.6x faster at ``N = 2048``, by backend);
    - beyond, the rows are taken in blocks of ``2^19`` (CPU) or ``2^24``
      (accelerator) pairs in a loop that computes the value and its
      gradient together (``keras_disentangle._blocks``): memory
      ``O(N k)`` plus one block, whatever ``N``; a batch size known only
      at run time (a ``tf.function`` traced with a ``None`` batch, a
      ``tf.distribute`` replica) chooses between the two at run time.

    ``pairs`` gives the pair weights ``w`` (:class:`_Pairs`); without it
    ``w = 1``. The pair count is ``None`` without weights or with
    ``count=False``.
    """
    s = ops.exp(log_rows)
    bias = margin - ops.sum(s * log_rows, axis=-1, keepdims=True)
    left = ops.concatenate([s, ops.cast(bias, s.dtype)], axis=-1)
    right = ops.concatenate([log_columns, ops.ones_like(log_columns[:, :1])], axis=-1)
    if (
        pairs is not None
        and all(v is None for v in pairs.rows.values())
        and not pairs.off_diagonal
    ):
        pairs = None
    on_cpu = computes_on_cpu(left)
    return _blocks.one_or_row_blocks(
        _blocks.size(left, 0),
        _blocks.size(right, 0),
        _CPU_BLOCK_ELEMENTS if on_cpu else _DEVICE_BLOCK_ELEMENTS,
        lambda: _one_block_hinge_sums(left, right, pairs, count, on_cpu),
        lambda rows: _blocked_hinge_sums(left, right, pairs, rows, count),
    )


def _one_block_hinge_sums(left, right, pairs, count, on_cpu):
    """:func:`_hinge_sums` as one block, in cache-sized column slices on the
    CPU (``[s, m - H]`` rows ``left``, ``[log S, 1]`` columns ``right``)."""
    total, n_pairs = None, None
    for columns in _column_slices(left.shape[0], right.shape[0], on_cpu):
        block = right if columns is None else right[columns]
        hinge = ops.relu(_matmul(left, ops.transpose(block)))
        if pairs is None:
            part = ops.sum(hinge)
        else:

            def cut(x, columns=columns):
                return x if x is None or columns is None else x[columns]

            row_index = column_index = None
            if pairs.off_diagonal:
                row_index = ops.arange(_blocks.size(left, 0))
                column_index = cut(ops.arange(_blocks.size(right, 0)))
            weights = _pair_weights(
                hinge.dtype,
                pairs.rows,
                {k: cut(v) for k, v in pairs.columns.items()},
                row_index,
                column_index,
            )
            weights = ops.stop_gradient(weights)
            part = ops.sum(hinge * weights)
            if count:
                n = ops.sum(weights)
                n_pairs = n if n_pairs is None else n_pairs + n
        total = part if total is None else total + part
    return total, n_pairs


def _blocked_hinge_sums(left, right, pairs, rows, count):
    """:func:`_hinge_sums` in bounded row blocks (``_blocks.fused_row_blocks``)."""
    dtype = left.dtype
    names = [] if pairs is None else [k for k, v in pairs.rows.items() if v is not None]
    row_data = [ops.stop_gradient(ops.cast(pairs.rows[k], dtype)) for k in names]
    column_data = [ops.stop_gradient(ops.cast(pairs.columns[k], dtype)) for k in names]

    def block(scores, valid, start, row_part, column_part):
        hinge = ops.relu(scores)
        on = ops.cast(scores > 0, dtype)
        if pairs is None:  # padded rows are zero: their scores and hinges are 0
            return ops.reshape(ops.sum(hinge), (1,)), on
        row_index = column_index = None
        if pairs.off_diagonal:
            row_index = start + ops.arange(_blocks.size(scores, 0), dtype="int32")
            column_index = ops.arange(_blocks.size(scores, 1), dtype="int32")
        w = _pair_weights(
            dtype,
            {k: dict(zip(names, row_part, strict=True)).get(k) for k in pairs.rows},
            {
                k: dict(zip(names, column_part, strict=True)).get(k)
                for k in pairs.columns
            },
            row_index,
            column_index,
        )
        w = ops.expand_dims(valid, 1) if w is None else w * ops.expand_dims(valid, 1)
        return ops.stack([ops.sum(hinge * w), ops.sum(w)]), on * w

    values = _blocks.fused_row_blocks(
        block,
        left,
        right,
        rows_per_block=rows,
        n_values=1 if pairs is None else 2,
        row_data=row_data,
        column_data=column_data,
    )
    if pairs is None or not count:
        return values[0], None
    return values[0], values[1]


def kernel_kl_margin(kernel: Tensor, margin: float | Tensor) -> Tensor:
    """L_single: a hinge on the KL divergence between the units' weight vectors.

    Units are the LAST axis of a Keras kernel (Dense ``(in, units)``, Conv
    ``(..., in, units)``); the other axes are flattened into the fan-in.
    ``d_k = softmax(W[:, k])`` over the fan-in, and

    ``L = sum_{i<j} [max(0, m - KL(d_i‖d_j)) + max(0, m - KL(d_j‖d_i))]``

    with no normalisation (Romanov & Rumshisky 2017, eq. 1-3).

    Args:
        kernel: weight tensor of rank >= 2, units on the last axis.
        margin: the margin ``m >= 0``.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> round(float(kernel_kl_margin(np.zeros((3, 2)), margin=1.0)), 4)  # 2 units
        2.0

    References:
        Romanov & Rumshisky, "Forced to Learn: Discovering Disentangled
        Representations Without Exhaustive Labels", ICLR workshop 2017.
    """
    margin = _check_margin(margin)
    kernel = _float(kernel)
    if len(kernel.shape) < 2:
        raise ValueError(
            "Invalid shape for argument kernel: expected a kernel of rank >= 2 "
            f"with units on the last axis. Received: kernel.shape={kernel.shape}"
        )
    units = kernel.shape[-1]
    w = ops.transpose(ops.reshape(kernel, (-1, units)))  # (units, fan_in)
    log_d = ops.log_softmax(w, axis=-1)
    # Summing max(0, m - KL_ij) over all ordered pairs i != j covers both
    # directions of every unordered pair i < j.
    pairs = _Pairs(off_diagonal=True)
    total, _ = _hinge_sums(log_d, log_d, margin, pairs, count=False)
    return total


def _check_rows(name: str, value, h, rows_name: str = "h"):
    """Static check: one entry of ``value`` per row of ``h``."""
    n, m = value.shape[0], h.shape[0]
    if n is not None and m is not None and n != m:
        raise ValueError(
            f"Invalid shape for argument {name}: expected one entry per sample "
            f"of {rows_name} ({m}). Received: {name}.shape={tuple(value.shape)}, "
            f"{rows_name}.shape={tuple(h.shape)}"
        )


def _label_ids(labels, h, unlabelled, rows_name):
    """``(ids, labelled, bad)``: int32 ids ``(N,)``, a float mask of the
    labelled samples (or None) and a flag of non-whole traced labels (or None).

    Concrete labels follow the package's NumPy label rule
    (``_validation.label_vector``: NaN and fractions raise, strings and
    one-hot rows are accepted); traced labels are only checked for shape,
    and a non-whole value makes the penalty NaN instead of being rounded.
    """
    concrete = concrete_value(labels)
    if concrete is not None:
        if concrete.ndim == 0:
            raise ValueError(
                "Invalid shape for argument labels: expected labels (N,), (N, 1) "
                f"or one-hot (N, C). Received: labels.shape={concrete.shape}"
            )
        _check_rows("labels", concrete, h, rows_name)
        vector = label_vector("labels", concrete, min_samples=0)
        labelled = None
        if unlabelled is not None:
            keep = vector != np.asarray(unlabelled, dtype=vector.dtype)
            labelled = ops.convert_to_tensor(keep.astype("float32"))
        if vector.dtype.kind not in "iu":  # strings: ids of the distinct values
            vector = np.unique(vector, return_inverse=True)[1]
        return ops.convert_to_tensor(vector.astype("int32")), labelled, None
    labels = ops.convert_to_tensor(labels)
    _check_rows("labels", labels, h, rows_name)
    if len(labels.shape) == 2 and labels.shape[-1] is not None and labels.shape[-1] > 1:
        labels = ops.argmax(labels, axis=-1)
    elif len(labels.shape) == 2 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    elif len(labels.shape) != 1:
        raise ValueError(
            "Invalid shape for argument labels: expected integer labels of shape "
            "(N,) or (N, 1), or one-hot labels of shape (N, C). "
            f"Received: labels.shape={labels.shape}"
        )
    labelled = bad = None
    if unlabelled is not None:
        labelled = ops.cast(
            ops.not_equal(labels, ops.cast(unlabelled, labels.dtype)), "float32"
        )
    if not keras.backend.standardize_dtype(labels.dtype).startswith(("int", "uint")):
        whole = ops.equal(labels, ops.round(labels))  # False for NaN
        bad = ops.logical_not(ops.all(whole))
        labels = ops.where(whole, labels, ops.zeros_like(labels))
    return ops.cast(labels, "int32"), labelled, bad


def activity_kl_margin(
    h: Tensor,
    margin: float | Tensor,
    labels: Tensor | None = None,
    *,
    sample_weight: Tensor | None = None,
    unlabelled: int | None = None,
    collectives: Any = None,
) -> Tensor:
    """L_multi: a hinge on the KL divergence between samples' activations.

    ``s_n = softmax(h_n)`` over the features (all axes but the batch axis are
    flattened). Over ORDERED pairs ``(i, j)``, the diagonal included as the
    paper's equations write it,

    ``L = 1/P sum_{i,j} w_ij [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    with ``w_ij = [labels_i == labels_j]`` when labels are given (eq. 4) and
    1 otherwise (eq. 6), times ``sample_weight_i * sample_weight_j`` when
    weights are given; a sample whose weight is 0 or whose label is
    ``unlabelled`` is left out of every pair. ``P = sum_{i,j} w_ij`` (the
    number of pairs summed: ``sum_c N_c^2`` with labels, ``N^2`` without);
    the value is 0 when no pair is left. Each diagonal pair adds ``2 m``, so
    the minimum is ``2 m N / P``, not 0.

    The pair set is symmetric, so the sum is twice that of one direction:
    one ``N x N`` matmul (on the CPU taken in column slices that fit the
    cache; the same sum). With ``collectives`` (several devices, see the
    module docstring), each replica computes the block of its
    ``N_r`` samples against the all-gathered ``N`` samples of the global
    batch (``N_r x N``, never ``N x N``), and the block sums and pair counts
    are all-reduced: every replica returns the value on the global batch,
    and gradients flow back through the collectives.

    Label values are checked when they are known (eager calls): NaN and
    fractions raise. Inside a compiled function (``fit``) only shapes are
    checked, and a non-whole label makes the value NaN rather than being
    rounded.

    Args:
        h: activations ``(N, ...)`` with at least 2 features.
        margin: the margin ``m >= 0``.
        labels: optional ``(N,)`` / ``(N, 1)`` integer or ``(N, C)`` one-hot
            labels.
        sample_weight: optional ``(N,)`` non-negative weights of the samples.
        unlabelled: a label value that marks unlabelled samples (e.g. -1).
        collectives: ``sum`` and ``gather`` over the replicas (module
            docstring), or None for one device.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> h = np.array([[10.0, 0.0], [0.0, 10.0]])
        >>> round(float(activity_kl_margin(h, margin=1.0)), 4)  # diagonal only
        1.0

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 4 and 6.
    """
    margin = _check_margin(margin)
    h = _flatten_samples(h, "h")
    _check_distributions(h, "h")
    weights, bad = None, None
    if labels is not None:
        ids, weights, bad = _label_ids(labels, h, unlabelled, "h")
    if sample_weight is not None:
        sample_weight = ops.convert_to_tensor(sample_weight)
        if len(sample_weight.shape) == 2 and sample_weight.shape[-1] == 1:
            sample_weight = ops.squeeze(sample_weight, axis=-1)
        if len(sample_weight.shape) != 1:
            raise ValueError(
                "Invalid shape for argument sample_weight: expected (N,) weights. "
                f"Received: sample_weight.shape={sample_weight.shape}"
            )
        _check_rows("sample_weight", sample_weight, h)
        sample_weight = ops.cast(sample_weight, h.dtype)
        weights = (
            sample_weight
            if weights is None
            else sample_weight * ops.cast(weights, h.dtype)
        )
    log_s = ops.log_softmax(h, axis=-1)
    columns: Any = log_s
    column_weights: Any = weights
    column_ids: Any = None
    if labels is not None:
        column_ids = ids
    if collectives is not None:
        # One all-gather of one tensor [log s, weight, label] (integer labels
        # would live on the host, and a mixed nest cannot be gathered at once).
        parts = [log_s]
        if weights is not None:
            parts.append(ops.expand_dims(ops.cast(weights, log_s.dtype), -1))
        if labels is not None:
            parts.append(ops.expand_dims(ops.cast(ids, log_s.dtype), -1))
        gathered = collectives.gather(ops.concatenate(parts, axis=-1))
        k = log_s.shape[-1]
        columns = gathered[:, :k]
        if weights is not None:
            column_weights = ops.stop_gradient(gathered[:, k])
        if labels is not None:
            column_ids = ops.cast(ops.stop_gradient(gathered[:, -1]), "int32")
    pair_set = _Pairs(
        row_ids=ids if labels is not None else None,
        column_ids=column_ids,
        row_weights=weights,
        column_weights=column_weights if weights is not None else None,
    )
    total, pairs = _hinge_sums(log_s, columns, margin, pair_set)
    if pairs is None:
        pairs = _n_samples(log_s) * _n_samples(columns)
    if collectives is not None:  # one all-reduce of one tensor
        sums = collectives.sum(ops.stack([total, ops.cast(pairs, total.dtype)]))
        total, pairs = sums[0], sums[1]
    value = 2.0 * total / ops.where(pairs > 0, pairs, ops.ones_like(pairs))
    if bad is not None:
        value = ops.where(bad, ops.cast(float("nan"), value.dtype), value)
    return value


def _check_distributions(h, name: str):
    """A softmax over one feature is 1 for every sample: every KL is 0."""
    if h.shape[-1] == 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least 2 features "
            "(the softmax over a single feature is 1 for every sample, so every "
            f"KL divergence is 0 and the penalty a constant 2 * margin). "
            f"Received: {name}.shape={tuple(h.shape)}"
        )


def batch_moments(
    *rows: Tensor, collectives: Any = None
) -> tuple[Tensor, list[Tensor]]:
    """The count and the centred rows of one or more ``(n, p_i)`` matrices.

    ``n`` and ``sum_n rows`` are the sufficient statistics of the mean: with
    ``collectives`` they are summed over the replicas in one all-reduce, so
    each replica centres its slice on the mean of the global batch. An empty
    slice gives a count of 0 and no rows (never a NaN).

    Args:
        *rows: ``(n, p_i)`` tensors with the same number of rows.
        collectives: ``sum`` over the replicas, or None for one device.

    Returns:
        ``(count, [rows_i - mean_i, ...])``.
    """
    count = _n_samples(rows[0])
    totals = [ops.sum(r, axis=0) for r in rows]
    if collectives is not None:  # one all-reduce of [n, sum rows_1, ...]
        sizes = [r.shape[-1] for r in rows]
        packed = collectives.sum(
            ops.concatenate([ops.reshape(count, (1,)), *totals], 0)
        )
        count, offset, totals = packed[0], 1, []
        for size in sizes:
            totals.append(packed[offset : offset + size])
            offset += size
    denominator = ops.maximum(count, 1.0)
    return count, [r - t / denominator for r, t in zip(rows, totals, strict=True)]


def covariance_from_statistics(
    count: Tensor, centred_gram: Tensor, ddof: int = 1
) -> Tensor:
    """``C = G / max(n - ddof, 1)`` from the count ``n`` and the centred
    Gram matrix ``G = Hc^T Hc`` (or ``Yc^T Hc``) of the batch.

    Both are sums over samples, so the covariance of a global batch follows
    from their sums over the replicas. A batch of one (or none) gives 0.
    """
    return centred_gram / ops.maximum(count - ddof, 1.0)


def _centred_gram(a, b, collectives):
    gram = _matmul(ops.transpose(a), b)
    return gram if collectives is None else collectives.sum(gram)


def covariance(
    h: Tensor, ddof: int = 1, *, features: str = "flatten", collectives: Any = None
) -> Tensor:
    """Sample covariance ``Hc^T Hc / max(N - ddof, 1)`` of ``(N, ...)`` rows.

    ``Hc`` is ``h`` centred over the batch; ``features`` says what a feature
    is (``"flatten"``: all axes but the first, ``"channels"``: the last axis,
    the spatial positions of a feature map counting as samples). A batch of
    one gives a zero matrix.

    With ``collectives`` (module docstring) the statistics are all-reduced
    (``N`` and ``sum h`` first, then the Gram matrix of the rows centred on
    the global mean): the covariance of the
    global batch on every replica, from ``p + p^2`` numbers per replica,
    never the activations themselves.

    Args:
        h: activations ``(N, ...)``.
        ddof: ``1`` for the unbiased estimate, ``0`` for ``1/N``.
        features: ``"flatten"`` or ``"channels"``.
        collectives: compute it on the global batch of all replicas
            (module docstring); None for one device.

    Returns:
        ``(p, p)`` tensor.
    """
    rows = _feature_rows(h, "h", features)
    count, (hc,) = batch_moments(rows, collectives=collectives)
    return covariance_from_statistics(count, _centred_gram(hc, hc, collectives), ddof)


def cross_covariance(
    y: Tensor,
    h: Tensor,
    ddof: int = 0,
    *,
    features: str = "flatten",
    collectives: Any = None,
) -> Tensor:
    """``Yc^T Hc / max(N - ddof, 1)``, both centred over the batch.

    With ``features="channels"`` and a feature map ``h``, each spatial
    position is a sample: ``y`` is either ``(N, q)`` (repeated at every
    position) or a map with the same positions. ``collectives`` as in
    ``covariance`` (the cross terms ``Yc^T Hc`` are all-reduced).

    Args:
        y: ``(N, ...)`` tensor, flattened to ``(N, q)``.
        h: ``(N, ...)`` tensor, flattened to ``(N, p)``.
        ddof: delta degrees of freedom of the denominator.
        features: ``"flatten"`` or ``"channels"``.
        collectives: compute it on the global batch of all replicas
            (module docstring); None for one device.

    Returns:
        ``(q, p)`` tensor.
    """
    h = _float(h)
    y = ops.cast(_float(y), h.dtype)
    rows_h = _feature_rows(h, "h", features)
    if features == "channels" and len(h.shape) > 2 and len(y.shape) <= 2:
        positions = math.prod(h.shape[1:-1]) if None not in h.shape[1:-1] else None
        if positions is None:
            raise ValueError(
                "Invalid shape for argument h: the spatial axes must be known to "
                f"repeat y at every position. Received: h.shape={h.shape}"
            )
        y = ops.repeat(_flatten_samples(y, "y"), positions, axis=0)
    rows_y = _feature_rows(y, "y", features)
    count, (yc, hc) = batch_moments(rows_y, rows_h, collectives=collectives)
    return covariance_from_statistics(count, _centred_gram(yc, hc, collectives), ddof)


def decov(h: Tensor, *, features: str = "flatten", collectives: Any = None) -> Tensor:
    """DeCov: the squared off-diagonal covariances of a layer's activations.

    ``C = (1/N) Hc^T Hc`` with ``Hc`` the batch-centred activations;
    ``L = 0.5 (‖C‖_F^2 - ‖diag C‖_2^2)``. ``features`` and
    ``collectives`` as in ``covariance``.

    Args:
        h: activations ``(N, ...)``.
        features: ``"flatten"`` (all axes but the batch axis are features)
            or ``"channels"`` (positions of a feature map are samples).
        collectives: compute it on the global batch of all replicas
            (module docstring); None for one device.

    Returns:
        Scalar tensor; 0 for a batch of one.

    Example:

        >>> import numpy as np
        >>> float(decov(np.array([[1.0, 1.0], [-1.0, -1.0]])))
        1.0

    References:
        Cogswell et al., "Reducing Overfitting in Deep Networks by
        Decorrelating Representations", ICLR 2016 (arXiv 2015).
    """
    c = covariance(h, ddof=0, features=features, collectives=collectives)
    return 0.5 * (ops.sum(ops.square(c)) - ops.sum(ops.square(ops.diagonal(c))))


def xcov(
    y: Tensor, h: Tensor, *, features: str = "flatten", collectives: Any = None
) -> Tensor:
    """XCov: the squared cross-covariances between predictions and a latent.

    ``C = (1/N) Yc^T Hc`` (both centred over the batch);
    ``L = 0.5 sum_ij C_ij^2``. ``features`` and ``collectives`` as in
    ``cross_covariance``.

    Args:
        y: predictions ``(N, ...)``.
        h: latent activations ``(N, ...)``.
        features: ``"flatten"`` or ``"channels"``.
        collectives: compute it on the global batch of all replicas
            (module docstring); None for one device.

    Returns:
        Scalar tensor; 0 for a batch of one.

    Example:

        >>> import numpy as np
        >>> float(xcov(np.array([[1.0], [-1.0]]), np.array([[2.0], [-2.0]])))
        2.0

    References:
        Cheung et al., "Discovering Hidden Factors of Variation in Deep
        Networks", ICLR workshop 2015 (arXiv 2014).
    """
    c = cross_covariance(y, h, ddof=0, features=features, collectives=collectives)
    return 0.5 * ops.sum(ops.square(c))


def covariance_l1(
    h: Tensor, *, features: str = "flatten", collectives: Any = None
) -> Tensor:
    """L_Sigma: the L1 norm of the activation covariance over ``p^2``.

    ``C = (1/(N-1)) Hc^T Hc``; ``L = (1/p^2) sum_ij |C_ij|``, diagonal
    included (Kågebäck & Mogren 2018, eq. 1-2). ``features`` and
    ``collectives`` as in ``covariance``.

    Args:
        h: activations ``(N, ...)``, flattened to ``(N, p)``.
        features: ``"flatten"`` or ``"channels"``.
        collectives: compute it on the global batch of all replicas
            (module docstring); None for one device.

    Returns:
        Scalar tensor; 0 for a batch of one.

    Example:

        >>> import numpy as np
        >>> float(covariance_l1(np.array([[1.0, 1.0], [-1.0, -1.0]])))
        2.0

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks",
        NeurIPS workshop 2017 (arXiv 2018).
    """
    c = covariance(h, ddof=1, features=features, collectives=collectives)
    return ops.mean(ops.abs(c))


def squared_distances(h: Tensor, centroids: Tensor) -> Tensor:
    """All squared Euclidean distances ``(N, K)`` between rows, clipped at 0.

    Args:
        h: samples ``(N, D)``.
        centroids: centroids ``(K, D)``.

    Returns:
        ``D2[n, j] = max(‖h_n‖² − 2 h_n·C_j + ‖C_j‖², 0)``.
    """
    h = _float(h)
    centroids = ops.cast(_float(centroids), h.dtype)
    for name, value in (("h", h), ("centroids", centroids)):
        if len(value.shape) != 2:
            raise ValueError(
                f"Invalid shape for argument {name}: expected a tensor of rank 2. "
                f"Received: {name}.shape={value.shape}"
            )
    if (
        h.shape[-1] is not None
        and centroids.shape[-1] is not None
        and h.shape[-1] != centroids.shape[-1]
    ):
        raise ValueError(
            "Invalid shapes for arguments h and centroids: expected the same "
            f"feature size on the last axis. Received: h.shape={h.shape}, "
            f"centroids.shape={centroids.shape}"
        )
    h_sq = ops.sum(ops.square(h), axis=-1, keepdims=True)  # (N, 1)
    c_sq = ops.sum(ops.square(centroids), axis=-1)  # (K,)
    cross = _matmul(h, ops.transpose(centroids))  # (N, K)
    return ops.relu(h_sq - 2.0 * cross + c_sq[None, :])


def min_centroid_distance(h: Tensor, centroids: Tensor) -> Tensor:
    """Mean squared distance of each sample to its nearest centroid.

    ``mean_n min_j ‖h_n − C_j‖²``, the k-means objective of a batch: the
    nearest centroid from ``‖h‖² − 2 h C^T + ‖C‖²`` (never an ``N x K x D``
    tensor), then its distance ``‖h_n − C_j‖²`` taken directly (exact, 0 on
    a centroid, at any norm).
    Its gradient pulls each sample towards its nearest centroid and that
    centroid towards the samples it wins.

    Args:
        h: latent vectors ``(N, D)``; half-precision inputs are computed in
            float32.
        centroids: centroids ``(K, D)``.

    Returns:
        A scalar.

    Example:

        >>> import numpy as np
        >>> h = np.array([[0.0, 0.0], [3.0, 4.0]])
        >>> c = np.array([[0.0, 0.0], [3.0, 3.0]])
        >>> float(min_centroid_distance(h, c))
        0.5

    References:
        Karakulak et al., "Clustering latent representations for
        semi-supervised learning", 2019; reference code
        https://github.com/skarakulak/CLR_SSL (``get_cdist``).
    """
    h = _float(h)
    centroids = ops.cast(_float(centroids), h.dtype)
    nearest = ops.argmin(squared_distances(h, centroids), axis=-1)
    # The expansion picks the nearest centroid; its distance is then taken
    # directly, ``‖h − c‖²``, which is exact (0 on a centroid) where the
    # expansion cancels catastrophically for large norms.
    # (A one-hot product rather than a gather: a dense centroid gradient.)
    one_hot = ops.one_hot(nearest, centroids.shape[0], dtype=h.dtype)
    difference = h - _matmul(one_hot, centroids)
    return ops.mean(ops.sum(ops.square(difference), axis=-1))


def random_location(
    h: Tensor, seed: Any = None, data_format: str = "channels_last"
) -> Tensor:
    """Picks one random spatial position per image of a feature map.

    ``(N, *spatial, C)`` (or ``(N, C, *spatial)``) becomes ``(N, C)``: the
    channel vector at a position drawn uniformly for each image, as the
    reference code samples conv layers before its centroid distance. A rank-2
    input is returned unchanged.

    Args:
        h: a feature map with samples on the first axis.
        seed: a ``keras.random.SeedGenerator``, an int, or None.
        data_format: ``"channels_last"`` or ``"channels_first"``.

    Returns:
        ``(N, C)`` tensor.

    Example:

        >>> import numpy as np
        >>> h = np.ones((2, 4, 4, 3), "float32")
        >>> tuple(random_location(h, seed=0).shape)
        (2, 3)
    """
    h = ops.convert_to_tensor(h)
    rank = len(h.shape)
    if rank < 2:
        raise ValueError(
            "Invalid shape for argument h: expected a tensor of rank >= 2 with "
            f"samples on the first axis. Received: h.shape={h.shape}"
        )
    if rank == 2:
        return h
    if data_format == "channels_first":
        h = ops.moveaxis(h, 1, -1)
    elif data_format != "channels_last":
        raise ValueError(
            "Invalid value for argument data_format: expected one of "
            "['channels_first', 'channels_last']. "
            f"Received: data_format={data_format!r}"
        )
    channels = h.shape[-1]
    if channels is None:
        raise ValueError(
            "Invalid shape for argument h: the channel axis must be known. "
            f"Received: h.shape={h.shape}"
        )
    spatial = h.shape[1:-1]
    if all(d is not None for d in spatial):
        positions = math.prod(spatial)
    else:
        shape = ops.shape(h)
        positions = 1
        for axis in range(1, rank - 1):
            positions = positions * shape[axis]
    n = ops.shape(h)[0]
    flat = ops.reshape(h, (-1, channels))  # (N * P, C)
    index = keras_random.randint((n,), 0, positions, dtype="int32", seed=seed)
    index = ops.arange(n, dtype="int32") * ops.cast(positions, "int32") + index
    return ops.take(flat, index, axis=0)
