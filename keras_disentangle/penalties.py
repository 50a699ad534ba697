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
formulation; covariances are one matmul ``Hc^T Hc``; the latent-centroid
distances of Karakulak et al. are ``‖h‖² − 2 h C^T + ‖C‖²``, never an
``N x K x D`` tensor.
"""

from __future__ import annotations

import math

import keras
from keras import ops
from keras import random as keras_random

from keras_disentangle._ops import as_float

__all__ = [
    "pairwise_kl",
    "kernel_kl_margin",
    "activity_kl_margin",
    "covariance",
    "cross_covariance",
    "decov",
    "xcov",
    "covariance_l1",
    "squared_distances",
    "min_centroid_distance",
    "random_location",
]

_float = as_float  # the package's dtype rule (keras_disentangle._ops)


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


def pairwise_kl(logits):
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
    neg_entropy, cross = _kl_terms(logits)
    return ops.maximum(ops.expand_dims(neg_entropy, -1) - cross, 0.0)


def _kl_terms(logits):
    """``sum_k s_ik log s_ik`` (N,) and ``S @ log S^T`` (N, N) of the softmaxes."""
    logits = _float(logits)
    log_s = ops.log_softmax(logits, axis=-1)
    s = ops.exp(log_s)
    return ops.sum(s * log_s, axis=-1), ops.matmul(s, ops.transpose(log_s))


def _kl_hinge(logits, margin):
    """``max(0, m - KL(s_i‖s_j))`` for all pairs, in one fused expression.

    ``m - KL_ij = cross_ij + (m - sum_k s_ik log s_ik)``: one broadcast add on
    the matmul's output, no ``N x N`` KL matrix kept apart.
    """
    neg_entropy, cross = _kl_terms(logits)
    return ops.relu(cross + ops.expand_dims(margin - neg_entropy, -1))


def kernel_kl_margin(kernel, margin):
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
        >>> float(kernel_kl_margin(np.zeros((3, 2)), margin=1.0))  # 2 equal units
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
    hinge = _kl_hinge(w, margin)
    # Summing max(0, m - KL_ij) over all ordered pairs i != j covers both
    # directions of every unordered pair i < j; each diagonal term is m.
    return ops.sum(hinge) - ops.sum(ops.diagonal(hinge))


def _same_label_mask(labels):
    """``(N, N)`` float mask of pairs with equal labels; int or one-hot labels."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] is not None and labels.shape[-1] > 1:
        labels = ops.argmax(labels, axis=-1)
    elif len(labels.shape) == 2:
        labels = ops.squeeze(labels, axis=-1)
    elif len(labels.shape) != 1:
        raise ValueError(
            "Invalid shape for argument labels: expected integer labels of shape "
            "(N,) or (N, 1), or one-hot labels of shape (N, C). "
            f"Received: labels.shape={labels.shape}"
        )
    if not keras.backend.standardize_dtype(labels.dtype).startswith(("int", "uint")):
        labels = ops.cast(ops.round(ops.cast(labels, "float32")), "int32")
    return ops.cast(
        ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(labels, 0)), "float32"
    )


def activity_kl_margin(h, margin, labels=None):
    """L_multi: a hinge on the KL divergence between samples' activations.

    ``s_n = softmax(h_n)`` over the features (all axes but the batch axis are
    flattened). Over ORDERED pairs ``(i, j)``, the diagonal included as the
    paper's equations write it,

    ``L = 1/P sum_{i,j} [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    restricted to ``labels_i == labels_j`` when labels are given (eq. 4),
    all pairs otherwise (eq. 6); ``P`` is the number of pairs summed,
    ``sum_c N_c^2`` with labels or ``N^2`` without. Each diagonal pair adds
    ``2 m``, so the minimum is ``2 m N / P``, not 0.

    Args:
        h: activations ``(N, ...)``.
        margin: the margin ``m >= 0``.
        labels: optional ``(N,)`` / ``(N, 1)`` integer or ``(N, C)`` one-hot
            labels.

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
    hinge = _kl_hinge(h, margin)
    # The pair set is symmetric, so the sum of max(0, m - KL(s_j‖s_i)) over it
    # equals that of max(0, m - KL(s_i‖s_j)): twice one direction.
    if labels is None:
        n = _n_samples(h)
        return 2.0 * ops.sum(hinge) / ops.maximum(n * n, 1.0)
    mask = ops.cast(_same_label_mask(labels), hinge.dtype)
    return 2.0 * ops.sum(hinge * mask) / ops.maximum(ops.sum(mask), 1.0)


def covariance(h, ddof: int = 1):
    """Sample covariance ``Hc^T Hc / max(N - ddof, 1)`` of ``(N, ...)`` rows.

    ``Hc`` is ``h`` centred over the batch; all axes but the first are
    flattened into ``p`` features. A batch of one gives a zero matrix.

    Args:
        h: activations ``(N, ...)``.
        ddof: ``1`` for the unbiased estimate, ``0`` for ``1/N``.

    Returns:
        ``(p, p)`` tensor.
    """
    hc = _centre(_flatten_samples(h, "h"))
    return _gram(hc, hc, ddof)


def cross_covariance(y, h, ddof: int = 0):
    """``Yc^T Hc / max(N - ddof, 1)``, both centred over the batch.

    Args:
        y: ``(N, ...)`` tensor, flattened to ``(N, q)``.
        h: ``(N, ...)`` tensor, flattened to ``(N, p)``.
        ddof: delta degrees of freedom of the denominator.

    Returns:
        ``(q, p)`` tensor.
    """
    yc = _centre(_flatten_samples(y, "y"))
    hc = _centre(_flatten_samples(h, "h"))
    return _gram(yc, hc, ddof)


def _centre(h):
    return h - ops.mean(h, axis=0, keepdims=True)


def _gram(yc, hc, ddof):
    n = _n_samples(hc)
    return ops.matmul(ops.transpose(yc), hc) / ops.maximum(n - ddof, 1.0)


def decov(h):
    """DeCov: the squared off-diagonal covariances of a layer's activations.

    ``C = (1/N) Hc^T Hc`` with ``Hc`` the batch-centred activations;
    ``L = 0.5 (‖C‖_F^2 - ‖diag C‖_2^2)``.

    Args:
        h: activations ``(N, ...)``.

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
    c = covariance(h, ddof=0)
    return 0.5 * (ops.sum(ops.square(c)) - ops.sum(ops.square(ops.diagonal(c))))


def xcov(y, h):
    """XCov: the squared cross-covariances between predictions and a latent.

    ``C = (1/N) Yc^T Hc`` (both centred over the batch);
    ``L = 0.5 sum_ij C_ij^2``.

    Args:
        y: predictions ``(N, ...)``.
        h: latent activations ``(N, ...)``.

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
    c = cross_covariance(y, h, ddof=0)
    return 0.5 * ops.sum(ops.square(c))


def covariance_l1(h):
    """L_Sigma: the L1 norm of the activation covariance over ``p^2``.

    ``C = (1/(N-1)) Hc^T Hc``; ``L = (1/p^2) sum_ij |C_ij|``, diagonal
    included (Kågebäck & Mogren 2018, eq. 1-2).

    Args:
        h: activations ``(N, ...)``, flattened to ``(N, p)``.

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
    return ops.mean(ops.abs(covariance(h, ddof=1)))


def squared_distances(h, centroids):
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
    cross = ops.matmul(h, ops.transpose(centroids))  # (N, K)
    return ops.maximum(h_sq - 2.0 * cross + c_sq[None, :], 0.0)


def min_centroid_distance(h, centroids):
    """Mean squared distance of each sample to its nearest centroid.

    ``mean_n min_j ‖h_n − C_j‖²``, the k-means objective of a batch, computed
    as ``‖h‖² − 2 h C^T + ‖C‖²`` clipped at 0 (never an ``N x K x D`` tensor).
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
    return ops.mean(ops.min(squared_distances(h, centroids), axis=-1))


def random_location(h, seed=None, data_format: str = "channels_last"):
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
