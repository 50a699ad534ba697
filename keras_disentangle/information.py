"""Information-theoretic quantities of predicted distributions (``keras.ops``).

Pure functions of probability tensors, used by IMSAT (Hu et al. 2017) and
usable on their own: entropies of categorical and Bernoulli predictions, the
entropy of the batch-mean prediction (the batch estimate of ``H(Y)``), the
mutual information between pairs of bits estimated from a batch, and the KL
divergences that IMSAT's self-augmentation penalty compares predictions with.

Every function takes probabilities (softmax rows or per-bit sigmoid outputs),
knows no Keras object and runs on every Keras 3 backend. Logarithms are taken
of ``max(p, 1e-12)``: ``0 log 0`` counts as 0 and a saturated sigmoid gives a
finite value and gradient. Half-precision inputs are computed in float32.
A batch mean over an empty batch is 0, not NaN (an empty replica slice).

Notation: ``p`` has shape ``(N, K)``, ``N`` samples of a categorical
distribution over ``K`` values, or ``N`` samples of ``K`` independent bits
(``p_nk = P(bit k = 1 | x_n)``).
"""

from __future__ import annotations

from keras import ops

from keras_disentangle._ops import as_float as _float  # one dtype policy

__all__ = [
    "entropy",
    "conditional_entropy",
    "marginal_entropy",
    "bernoulli_entropy",
    "bit_conditional_entropy",
    "bit_marginal_entropy",
    "bit_pair_mutual_information",
    "bit_pair_mutual_information_from_moments",
    "categorical_kl",
    "bernoulli_kl",
]

_TINY = 1e-12


def _log(p):
    return ops.log(ops.maximum(p, _TINY))


def _xlogx(p):
    return p * _log(p)


def _batch_mean(x):
    """Mean over axis 0 that is 0, not NaN, for an empty batch."""
    n = ops.cast(ops.shape(x)[0], x.dtype)
    return ops.sum(x, axis=0) / ops.maximum(n, 1.0)


def _check_2d(p, name):
    p = _float(p)
    if len(p.shape) != 2:
        raise ValueError(
            f"Invalid shape for argument {name}: expected a tensor of rank 2 "
            f"(samples, values). Received: {name}.shape={p.shape}"
        )
    return p


def entropy(p, axis: int = -1):
    """Shannon entropy (nats) of categorical distributions along ``axis``.

    ``H(p) = -sum_k p_k log p_k``.

    Args:
        p: probabilities summing to 1 along ``axis``.
        axis: the axis of the values.

    Returns:
        Tensor with ``axis`` removed.

    Example:

        >>> import numpy as np
        >>> round(float(entropy(np.array([0.5, 0.5]))), 4)  # log 2
        0.6931
    """
    return -ops.sum(_xlogx(_float(p)), axis=axis)


def conditional_entropy(p):
    """The batch estimate of ``H(Y|X)``: the mean entropy of the rows of ``p``.

    ``H(Y|X) ≈ 1/N sum_n H(p_n)``.

    Args:
        p: ``(N, K)`` softmax predictions.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> float(conditional_entropy(np.eye(3)))  # confident predictions
        0.0
    """
    return _batch_mean(entropy(_check_2d(p, "p"), axis=-1))


def marginal_entropy(p):
    """The batch estimate of ``H(Y)``: the entropy of the batch-mean prediction.

    ``H(Y) ≈ H(1/N sum_n p_n)``; maximal (``log K``) when the batch uses every
    value equally often.

    Args:
        p: ``(N, K)`` softmax predictions.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> round(float(marginal_entropy(np.eye(4))), 4)  # log 4
        1.3863
    """
    return entropy(_batch_mean(_check_2d(p, "p")))


def bernoulli_entropy(p):
    """Elementwise entropy (nats) of Bernoulli variables with ``P(1) = p``.

    ``H_b(p) = -p log p - (1 - p) log(1 - p)``.

    Args:
        p: probabilities of any shape.

    Returns:
        Tensor of the shape of ``p``.

    Example:

        >>> import numpy as np
        >>> [round(float(v), 4) for v in bernoulli_entropy(np.array([0.5, 1.0]))]
        [0.6931, 0.0]
    """
    p = _float(p)
    return -_xlogx(p) - _xlogx(1.0 - p)


def bit_conditional_entropy(p):
    """``H(Y|X)`` of independent bits: ``1/N sum_n sum_k H_b(p_nk)``.

    Args:
        p: ``(N, K)`` per-bit probabilities.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> round(float(bit_conditional_entropy(np.full((2, 3), 0.5))), 4)  # 3 log 2
        2.0794
    """
    p = _check_2d(p, "p")
    return _batch_mean(ops.sum(bernoulli_entropy(p), axis=-1))


def bit_marginal_entropy(p):
    """Sum of the bits' marginal entropies: ``sum_k H_b(1/N sum_n p_nk)``.

    Args:
        p: ``(N, K)`` per-bit probabilities.

    Returns:
        Scalar tensor.

    Example:

        >>> import numpy as np
        >>> round(float(bit_marginal_entropy(np.array([[0.0, 1.0], [1.0, 1.0]]))), 4)
        0.6931
    """
    p = _check_2d(p, "p")
    return ops.sum(bernoulli_entropy(_batch_mean(p)))


def bit_pair_mutual_information(p):
    """Mutual information of every pair of bits, from the batch, summed.

    The joint of bits ``i`` and ``j`` is the batch mean of the product of
    their (conditionally independent) predictions,
    ``P_ij(a, b) = 1/N sum_n p_ni(a) p_nj(b)`` with ``p_ni(1) = p_ni`` and
    ``p_ni(0) = 1 - p_ni``; its marginals are ``pbar_i(a) = 1/N sum_n
    p_ni(a)``. Then

    ``sum_{i<j} I(y_i; y_j) = sum_{i<j} sum_{a,b in {0,1}}
    P_ij(a, b) log(P_ij(a, b) / (pbar_i(a) pbar_j(b)))``.

    All joints come from one matmul, ``P_ij(1, 1) = (p^T p)_ij / N``, and the
    other cells from the marginals (``P_ij(1, 0) = pbar_i - P_ij(1, 1)``...),
    so the cost is ``O(N K^2)``.

    Args:
        p: ``(N, K)`` per-bit probabilities.

    Returns:
        Scalar tensor (>= 0 up to rounding): the sum over the ``K (K - 1) / 2``
        unordered pairs. Sums over ordered pairs (as the authors' code) are
        twice this.

    Example:

        >>> import numpy as np
        >>> copies = np.array([[0.0, 0.0], [1.0, 1.0]])  # bit 2 repeats bit 1
        >>> round(float(bit_pair_mutual_information(copies)), 4)  # log 2
        0.6931
    """
    p = _check_2d(p, "p")
    n = ops.maximum(ops.cast(ops.shape(p)[0], p.dtype), 1.0)
    return bit_pair_mutual_information_from_moments(
        _batch_mean(p), ops.matmul(ops.transpose(p), p) / n
    )


def bit_pair_mutual_information_from_moments(mean, second_moment):
    """``bit_pair_mutual_information`` from the batch moments of ``p``.

    With ``pbar = 1/N sum_n p_n`` (``mean``) and ``C = 1/N sum_n p_n p_n^T``
    (``second_moment``), the joint of bits ``i`` and ``j`` is
    ``P_ij(1, 1) = C_ij``, ``P_ij(1, 0) = pbar_i - C_ij``,
    ``P_ij(0, 1) = pbar_j - C_ij`` and ``P_ij(0, 0) = 1 - pbar_i - pbar_j +
    C_ij``, and the result is

    ``sum_{i<j} sum_{a,b} P_ij(a, b) log(P_ij(a, b) / (pbar_i(a) pbar_j(b)))``.

    The moments are sums divided by a count, so they can be summed over
    several devices first (IMSAT's ``synchronized=True``) or weighted.

    Args:
        mean: ``(K,)`` mean per-bit probabilities ``pbar``.
        second_moment: ``(K, K)`` mean outer products ``C``.

    Returns:
        Scalar tensor: the sum over the ``K (K - 1) / 2`` unordered pairs.

    Example:

        >>> import numpy as np
        >>> p = np.array([[0.0, 0.0], [1.0, 1.0]])  # bit 2 repeats bit 1
        >>> mi = bit_pair_mutual_information_from_moments(p.mean(0), p.T @ p / 2)
        >>> round(float(mi), 4)  # log 2
        0.6931
    """
    mean = _float(mean)
    second_moment = ops.cast(second_moment, mean.dtype)
    if len(mean.shape) != 1:
        raise ValueError(
            "Invalid shape for argument mean: expected a tensor of rank 1 (K,). "
            f"Received: mean.shape={mean.shape}"
        )
    k = mean.shape[0]
    if tuple(second_moment.shape) != (k, k):
        raise ValueError(
            "Invalid shape for argument second_moment: expected (K, K) with "
            f"K={k} (the length of mean). Received: "
            f"second_moment.shape={second_moment.shape}"
        )
    pi = ops.expand_dims(mean, 1)
    pj = ops.expand_dims(mean, 0)
    p11 = second_moment
    p10 = pi - p11
    p01 = pj - p11
    p00 = 1.0 - pi - pj + p11
    cells = (
        (p11, pi * pj),
        (p10, pi * (1.0 - pj)),
        (p01, (1.0 - pi) * pj),
        (p00, (1.0 - pi) * (1.0 - pj)),
    )
    mi = 0.0
    for joint, product in cells:
        joint = ops.maximum(joint, 0.0)  # rounding
        mi = mi + joint * (_log(joint) - _log(product))
    upper = ops.triu(ops.ones((k, k), dtype=mean.dtype), k=1)
    return ops.sum(mi * upper)


def categorical_kl(p, q):
    """KL divergence between categorical rows: ``sum_k p_k log(p_k / q_k)``.

    Args:
        p: ``(N, K)`` reference probabilities.
        q: ``(N, K)`` probabilities compared with ``p``.

    Returns:
        ``(N,)`` tensor.

    Example:

        >>> import numpy as np
        >>> kl = categorical_kl(np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]]))
        >>> round(float(kl[0]), 4)
        0.5108
    """
    p, q = _float(p), _float(q)
    return ops.sum(p * (_log(p) - _log(q)), axis=-1)


def bernoulli_kl(p, q):
    """KL divergence between independent bits, summed over the bits.

    ``sum_k [p_k log(p_k / q_k) + (1 - p_k) log((1 - p_k) / (1 - q_k))]``.

    Args:
        p: ``(N, K)`` reference per-bit probabilities.
        q: ``(N, K)`` per-bit probabilities compared with ``p``.

    Returns:
        ``(N,)`` tensor.

    Example:

        >>> import numpy as np
        >>> kl = bernoulli_kl(np.array([[0.5, 0.5]]), np.array([[0.9, 0.5]]))
        >>> round(float(kl[0]), 4)
        0.5108
    """
    p, q = _float(p), _float(q)
    return ops.sum(
        p * (_log(p) - _log(q)) + (1.0 - p) * (_log(1.0 - p) - _log(1.0 - q)),
        axis=-1,
    )
