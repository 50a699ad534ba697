"""Hashing scores (IMSAT's evaluation of binary codes): mean average
precision of the Hamming ranking, precision at k, precision within a Hamming
radius.

Pure NumPy: codes are ``{0, 1}`` matrices ``(N, bits)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from keras_disentangle._validation import check_positive_int, label_vector
from keras_disentangle.scores._inputs import _codes, _same_length

__all__ = ["hamming_ranking_map", "precision_at_k", "precision_within_radius"]

# Query-by-database entries per chunk of the Hamming computations.
_CHUNK_ENTRIES = 2_000_000


def _retrieval_inputs(query_codes, query_labels, db_codes, db_labels):
    q = _codes("query_codes", query_codes)
    d = _codes("db_codes", db_codes)
    if q.shape[1] != d.shape[1]:
        raise ValueError(
            "Invalid arguments query_codes and db_codes: expected the same "
            f"number of bits. Received: {q.shape[1]} and {d.shape[1]}"
        )
    ql = label_vector("query_labels", query_labels)
    dl = label_vector("db_labels", db_labels)
    _same_length("query_codes", q, "query_labels", ql)
    _same_length("db_codes", d, "db_labels", dl)
    return q, ql, d, dl


def _hamming_chunks(q, d):
    """Yields ``(start, distances)`` for chunks of queries (bounded memory)."""
    chunk = max(1, _CHUNK_ENTRIES // d.shape[0])
    d_ones = d.T
    d_zeros = (1.0 - d).T
    for start in range(0, q.shape[0], chunk):
        block = q[start : start + chunk]
        dist = block @ d_zeros + (1.0 - block) @ d_ones
        yield start, np.rint(dist).astype(np.int32)


def hamming_ranking_map(
    query_codes: ArrayLike,
    query_labels: ArrayLike,
    db_codes: ArrayLike,
    db_labels: ArrayLike,
) -> float:
    """Mean average precision of Hamming ranking over the whole database.

    For each query, the database is sorted by Hamming distance to the query
    code; ties are broken by database order (a stable sort), so the result is
    deterministic. An item is relevant when its label equals the query's.
    With ``rel_r`` the relevance at rank ``r`` and ``R`` the number of
    relevant items,

    ``AP = (1/R) sum_r rel_r * (sum_{s<=r} rel_s) / r``

    and mAP is the mean of AP over the queries. A query with no relevant item
    in the database has AP = 0.

    Args:
        query_codes: ``{0, 1}`` codes ``(Q, bits)`` (bool or numbers).
        query_labels: ``(Q,)`` labels.
        db_codes: ``{0, 1}`` codes ``(D, bits)``.
        db_labels: ``(D,)`` labels.

    Returns:
        A float in ``[0, 1]``.

    Example:

        >>> import numpy as np
        >>> codes = np.array([[0, 0], [0, 1], [1, 1]])
        >>> hamming_ranking_map(codes[:1], [0], codes, [0, 1, 0])
        0.8333333333333333

    References:
        Hu et al., "Learning Discrete Representations via Information
        Maximizing Self-Augmented Training" (IMSAT), ICML 2017, section 4.3.
    """
    q, ql, d, dl = _retrieval_inputs(query_codes, query_labels, db_codes, db_labels)
    ranks = np.arange(1, d.shape[0] + 1, dtype=np.float64)
    total = 0.0
    for start, dist in _hamming_chunks(q, d):
        order = np.argsort(dist, axis=1, kind="stable")
        rel = dl[order] == ql[start : start + dist.shape[0], None]
        hits = np.cumsum(rel, axis=1)
        n_rel = hits[:, -1]
        precision_sum = np.where(rel, hits / ranks, 0.0).sum(axis=1)
        ap = np.divide(
            precision_sum, n_rel, out=np.zeros_like(precision_sum), where=n_rel > 0
        )
        total += float(ap.sum())
    return total / q.shape[0]


def precision_at_k(
    query_codes: ArrayLike,
    query_labels: ArrayLike,
    db_codes: ArrayLike,
    db_labels: ArrayLike,
    k: int = 500,
) -> float:
    """Mean precision of the ``k`` nearest database items in Hamming distance.

    Each query ranks the database by Hamming distance with a stable sort (ties
    broken by database order) and scores the share of the first ``k`` items
    whose label equals its own; the result is the mean over queries. When the
    database holds fewer than ``k`` items, all of them are retrieved.

    Args:
        query_codes: ``{0, 1}`` codes ``(Q, bits)``.
        query_labels: ``(Q,)`` labels.
        db_codes: ``{0, 1}`` codes ``(D, bits)``.
        db_labels: ``(D,)`` labels.
        k: number of items retrieved, >= 1 (IMSAT uses 500).

    Returns:
        A float in ``[0, 1]``.

    Example:

        >>> import numpy as np
        >>> codes = np.array([[0, 0], [0, 1], [1, 1]])
        >>> precision_at_k(codes[:1], [0], codes, [0, 1, 0], k=2)
        0.5

    References:
        Hu et al., IMSAT, ICML 2017, section 4.3.
    """
    q, ql, d, dl = _retrieval_inputs(query_codes, query_labels, db_codes, db_labels)
    k = min(check_positive_int("k", k), d.shape[0])
    total = 0.0
    for start, dist in _hamming_chunks(q, d):
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        rel = dl[order] == ql[start : start + dist.shape[0], None]
        total += float(rel.mean(axis=1).sum())
    return total / q.shape[0]


def precision_within_radius(
    query_codes: ArrayLike,
    query_labels: ArrayLike,
    db_codes: ArrayLike,
    db_labels: ArrayLike,
    radius: int = 2,
) -> float:
    """Mean precision of the database items within a Hamming radius.

    Each query retrieves every database item at Hamming distance
    ``<= radius`` and scores the share of them whose label equals its own; a
    query that retrieves nothing scores 0. The result is the mean over
    queries.

    Args:
        query_codes: ``{0, 1}`` codes ``(Q, bits)``.
        query_labels: ``(Q,)`` labels.
        db_codes: ``{0, 1}`` codes ``(D, bits)``.
        db_labels: ``(D,)`` labels.
        radius: the Hamming radius, an integer >= 0 (IMSAT uses 2).

    Returns:
        A float in ``[0, 1]``.

    Example:

        >>> import numpy as np
        >>> codes = np.array([[0, 0], [0, 1], [1, 1]])
        >>> precision_within_radius(codes[:1], [0], codes, [0, 1, 0], radius=1)
        0.5

    References:
        Hu et al., IMSAT, ICML 2017, section 4.3.
    """
    q, ql, d, dl = _retrieval_inputs(query_codes, query_labels, db_codes, db_labels)
    radius = check_positive_int("radius", radius, minimum=0)
    total = 0.0
    for start, dist in _hamming_chunks(q, d):
        within = dist <= radius
        rel = within & (dl[None, :] == ql[start : start + dist.shape[0], None])
        n_within = within.sum(axis=1)
        precision = np.divide(
            rel.sum(axis=1),
            n_within,
            out=np.zeros(n_within.shape, dtype=np.float64),
            where=n_within > 0,
        )
        total += float(precision.sum())
    return total / q.shape[0]
