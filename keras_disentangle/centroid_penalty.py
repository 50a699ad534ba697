"""The latent-centroid penalty of Karakulak et al. as pure ``keras.ops`` code.

Two functions, no Keras object: ``min_centroid_distance(h, centroids)`` (the
penalty) and ``random_location(h, seed)`` (one random spatial position per
image of a feature map, as the reference code samples conv layers). The layer
``keras_disentangle.layers.LatentCentroids`` holds the centroids and the weight
and calls them.

Speed: the squared distances come from one matrix product,
``‖h_n − C_j‖² = ‖h_n‖² − 2 h_n·C_j + ‖C_j‖²``, so memory is ``O(N K + (N + K) D)``
rather than the ``N x K x D`` tensor of a broadcast difference.
"""

from __future__ import annotations

import math

from keras import ops
from keras import random as keras_random

__all__ = ["min_centroid_distance", "random_location"]

_HALF = ("float16", "bfloat16")


def _float(x):
    """Converts to a float tensor of at least 32 bits."""
    x = ops.convert_to_tensor(x)
    dtype = str(x.dtype)
    if "float" not in dtype or any(h in dtype for h in _HALF):
        x = ops.cast(x, "float32")
    return x


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
