"""Scores of representations: clustering, disentanglement and hashing.

Pure NumPy / SciPy / scikit-learn: every function takes arrays (NumPy arrays
or anything ``np.asarray`` accepts, such as the output of ``model.predict``)
and returns Python floats or ints. Nothing here builds a training graph; the
Keras callbacks of ``keras_disentangle.callbacks`` call these functions at the
end of an epoch.

- Clustering (Romanov & Rumshisky): ``clustering_accuracy``,
  ``cluster_scores`` (KMeans, then AMI, NMI, ARI and accuracy).
- Disentanglement (Kågebäck & Mogren): ``mapc``, ``cvr``, ``tdv``,
  ``utilized_dimensions``.
- Hashing (IMSAT's evaluation of binary codes): ``hamming_ranking_map``,
  ``precision_at_k``, ``precision_within_radius``.

Inputs are checked: a wrong rank, lengths that disagree, too few samples or
non-finite values raise a ``ValueError`` naming the argument. A degenerate
but valid representation (a constant unit, a collapsed layer, one cluster)
gives a defined value documented in each function, never a NaN.
"""

from __future__ import annotations

import numpy as np

from keras_disentangle._validation import (
    check_fraction,
    check_no_reserved_keys,
    check_positive,
    check_positive_int,
)

__all__ = [
    "clustering_accuracy",
    "cluster_scores",
    "linear_probe_accuracy",
    "mapc",
    "cvr",
    "tdv",
    "utilized_dimensions",
    "hamming_ranking_map",
    "precision_at_k",
    "precision_within_radius",
]

# KMeans restarts used by ``cluster_scores`` unless ``n_init`` is given.
_DEFAULT_N_INIT = 10
# Query-by-database entries per chunk of the Hamming computations.
_CHUNK_ENTRIES = 2_000_000


# ----------------------------------------------------------------- validation


def _labels(name: str, value, min_samples: int = 1) -> np.ndarray:
    """A 1-D label array (any hashable dtype)."""
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected a 1-D array of labels "
            f"(N,). Received: {name}.shape={arr.shape}"
        )
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least {min_samples} "
            f"sample(s). Received: {name}.shape={arr.shape}"
        )
    return arr


def _same_length(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"Invalid arguments {name_a} and {name_b}: expected the same number "
            f"of samples. Received: {name_a} has {a.shape[0]}, {name_b} has "
            f"{b.shape[0]}"
        )


def _matrix(name: str, value, min_samples: int = 2) -> np.ndarray:
    """A finite float array ``(N, F)``; axes after the first are flattened."""
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise ValueError(
            f"Invalid shape for argument {name}: expected an array (N, ...) with "
            f"samples on the first axis. Received: {name}.shape={arr.shape}"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.dtype not in (np.float32, np.float64):
        # Integers, booleans, float16 and bfloat16 (mixed precision) alike.
        try:
            if arr.dtype.kind in "OUSM":
                raise TypeError(arr.dtype)
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"Invalid dtype for argument {name}: expected numbers. "
                f"Received: {name}.dtype={arr.dtype}"
            ) from error
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least {min_samples} "
            f"samples. Received: {name}.shape={arr.shape}"
        )
    if arr.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected at least 1 feature. "
            f"Received: {name}.shape={arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"Invalid value for argument {name}: expected finite numbers, found "
            "NaN or infinity (did the training diverge?)."
        )
    return arr


def _codes(name: str, value) -> np.ndarray:
    """A {0, 1} code matrix ``(N, bits)`` as float32 (exact up to 2^24 bits)."""
    arr = np.asarray(value)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(
            f"Invalid shape for argument {name}: expected a 2-D array of binary "
            f"codes (N, bits) with N >= 1. Received: {name}.shape={arr.shape}"
        )
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError(
            f"Invalid value for argument {name}: expected codes with entries in "
            "{0, 1} (threshold or sign-map the activations first). Received "
            f"values such as {np.unique(arr)[:5].tolist()}"
        )
    return arr.astype(np.float32)


# ----------------------------------------------------------------- clustering


def clustering_accuracy(y_true, y_pred) -> float:
    """Unsupervised clustering accuracy under the best cluster-to-class map.

    ``acc = max_m (1/N) sum_n [y_true_n == m(y_pred_n)]`` over one-to-one maps
    ``m`` from clusters to classes, found by the Hungarian method on the
    contingency table (``scipy.optimize.linear_sum_assignment``). With more
    clusters than classes, each class takes at most one cluster and the
    samples of the unmatched clusters count as errors. Labels may be any
    values (ints, strings); only their equality matters, so permuting cluster
    ids leaves the accuracy unchanged.

    Args:
        y_true: class labels, shape ``(N,)``.
        y_pred: cluster ids, shape ``(N,)``.

    Returns:
        A float in ``[0, 1]``.

    Example:

    >>> clustering_accuracy([0, 0, 1, 1, 2], [5, 5, 3, 3, 3])
    0.8

    References:
        Xie, Girshick & Farhadi, "Unsupervised Deep Embedding for Clustering
        Analysis", 2016 (the ACC of deep clustering papers).
    """
    from scipy.optimize import linear_sum_assignment

    y_true = _labels("y_true", y_true)
    y_pred = _labels("y_pred", y_pred)
    _same_length("y_true", y_true, "y_pred", y_pred)
    _, t = np.unique(y_true, return_inverse=True)
    _, p = np.unique(y_pred, return_inverse=True)
    table = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(table, (p.ravel(), t.ravel()), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.shape[0])


def cluster_scores(
    embeddings,
    labels,
    n_clusters: int | None = None,
    seed: int = 0,
    threads: int | None = 1,
    **kmeans_kwargs,
) -> dict[str, float]:
    """KMeans on a representation, scored against the class labels.

    Runs ``sklearn.cluster.KMeans(n_clusters, n_init=10, random_state=seed)``
    on the embeddings (axes after the first are flattened) and compares the
    cluster ids with the labels:

    - ``ami``: adjusted mutual information (scikit-learn's, arithmetic
      normalisation), as Romanov & Rumshisky report;
    - ``nmi``: normalised mutual information;
    - ``ari``: adjusted Rand index;
    - ``acc``: ``clustering_accuracy`` (Hungarian matching).

    The result is a deterministic function of the data and ``seed``. One
    cluster against one class scores 1 everywhere; one cluster against
    several classes scores ``ami = nmi = ari = 0`` and ``acc`` = the share of
    the largest class.

    Args:
        embeddings: array ``(N, ...)``, N >= 2, finite.
        labels: class labels ``(N,)``.
        n_clusters: number of KMeans clusters, between 1 and N; defaults to
            the number of distinct labels.
        seed: ``random_state`` of KMeans.
        threads: OpenMP/BLAS threads of the KMeans (set with
            ``threadpoolctl``), 1 by default; None leaves scikit-learn's
            default, all cores. One thread is plenty for tens of thousands
            of points, and far faster when the CPU is shared with other work
            (TensorFlow's own thread pool in the same process included): the
            OpenMP threads then wait on each other (measured 20-40x slower
            at 10,000 x 16 on a busy 2-core machine).
        **kmeans_kwargs: further arguments of ``sklearn.cluster.KMeans``
            (``n_init``, ``algorithm``, ``max_iter``, ``tol``, ...).

    Returns:
        ``{"ami": float, "nmi": float, "ari": float, "acc": float}``.

    Example:

    >>> import numpy as np
    >>> labels = np.repeat([0, 1, 2], 10)
    >>> scores = cluster_scores(np.eye(3)[labels], labels)
    >>> {k: round(v, 3) for k, v in scores.items()}
    {'ami': 1.0, 'nmi': 1.0, 'ari': 1.0, 'acc': 1.0}

    References:
        Romanov & Rumshisky, "Forced to Learn: Discovering Disentangled
        Representations Without Exhaustive Labels", 2017 (AMI of KMeans);
        Vinh, Epps & Bailey, "Information Theoretic Measures for Clusterings
        Comparison", JMLR 2010.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import (
        adjusted_mutual_info_score,
        adjusted_rand_score,
        normalized_mutual_info_score,
    )

    x = _matrix("embeddings", embeddings, min_samples=2)
    y = _labels("labels", labels)
    _same_length("embeddings", x, "labels", y)
    if n_clusters is None:
        n_clusters = int(np.unique(y).shape[0])
    n_clusters = check_positive_int("n_clusters", n_clusters)
    if n_clusters > x.shape[0]:
        raise ValueError(
            "Invalid value for argument n_clusters: expected at most the number "
            f"of samples ({x.shape[0]}). Received: n_clusters={n_clusters}"
        )
    if threads is not None:
        threads = check_positive_int("threads", threads)
    check_no_reserved_keys("kmeans_kwargs", kmeans_kwargs, ("random_state",))
    kmeans_kwargs.setdefault("n_init", _DEFAULT_N_INIT)
    if n_clusters == 1:
        predicted = np.zeros(x.shape[0], dtype=np.int64)
    else:
        import contextlib
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        kmeans = KMeans(n_clusters=n_clusters, random_state=seed, **kmeans_kwargs)
        limit = (
            contextlib.nullcontext()
            if threads is None
            else threadpool_limits(limits=threads)
        )
        with warnings.catch_warnings(), limit:
            # Fewer distinct points than clusters (a collapsed layer) is a
            # valid state of training; the scores below still hold.
            warnings.simplefilter("ignore", ConvergenceWarning)
            predicted = kmeans.fit_predict(x)
    scores = {
        "ami": float(adjusted_mutual_info_score(y, predicted)),
        "nmi": float(normalized_mutual_info_score(y, predicted)),
        "ari": float(adjusted_rand_score(y, predicted)),
        "acc": clustering_accuracy(y, predicted),
    }
    for name, value in scores.items():  # scikit-learn defines these; be sure
        if not np.isfinite(value):  # pragma: no cover - defensive
            scores[name] = 0.0
    return scores


# ------------------------------------------------------------ disentanglement


def linear_probe_accuracy(train, test, C: float = 1.0) -> float:
    """Test accuracy of a linear classifier on frozen features.

    The standard score of self-supervised encoders (Deep InfoMax, AET): a
    scikit-learn pipeline of ``StandardScaler`` and ``LogisticRegression(C)``
    is fitted on the training features and scored on the test features.

    Args:
        train: ``(features, labels)`` to fit on; features ``(N, ...)``.
        test: ``(features, labels)`` to score.
        C: inverse regularisation strength of the logistic regression.

    Returns:
        The share of test samples classified correctly.

    Example:

    >>> import numpy as np
    >>> x = np.repeat(np.eye(3), 10, axis=0)
    >>> y = np.repeat([0, 1, 2], 10)
    >>> linear_probe_accuracy((x, y), (x, y))
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    C = check_positive("C", C)
    (f_train, y_train), (f_test, y_test) = train, test
    f_train = _matrix("train features", f_train, min_samples=2)
    f_test = _matrix("test features", f_test, min_samples=1)
    y_train, y_test = _labels("train labels", y_train), _labels("test labels", y_test)
    _same_length("train features", f_train, "train labels", y_train)
    _same_length("test features", f_test, "test labels", y_test)
    if f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            "Invalid shapes for arguments train and test: expected features of "
            f"the same size. Received: {f_train.shape[1]} and {f_test.shape[1]}"
        )
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    probe.fit(f_train, y_train)
    return float(probe.score(f_test, y_test))


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


def mapc(h, min_variance_fraction: float = 0.0) -> float:
    """Mean absolute Pearson correlation between the units of a representation.

    With ``C`` the sample covariance (``1/(N-1)``) of ``h`` ``(N, p)``:

    ``MAPC = 2/(q^2 - q) sum_{i<j} |C_ij| / sqrt(C_ii C_jj)``

    over the ``q`` units kept. Units with zero variance (constant over the
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
    var = _variances(h)
    keep = var > 0
    if min_variance_fraction > 0:
        keep &= var >= min_variance_fraction * var.sum()
    if keep.sum() < 2:
        return 0.0
    c = _covariance(h[:, keep])
    std = np.sqrt(np.diag(c))
    corr = np.abs(c / np.outer(std, std))
    upper = np.triu_indices(corr.shape[0], k=1)
    return float(np.clip(corr[upper].mean(), 0.0, 1.0))


def cvr(h) -> float:
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


def tdv(h, d: int) -> float:
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


def utilized_dimensions(h, fraction: float = 0.9) -> int:
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


# -------------------------------------------------------------------- hashing


def _retrieval_inputs(query_codes, query_labels, db_codes, db_labels):
    q = _codes("query_codes", query_codes)
    d = _codes("db_codes", db_codes)
    if q.shape[1] != d.shape[1]:
        raise ValueError(
            "Invalid arguments query_codes and db_codes: expected the same "
            f"number of bits. Received: {q.shape[1]} and {d.shape[1]}"
        )
    ql = _labels("query_labels", query_labels)
    dl = _labels("db_labels", db_labels)
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


def hamming_ranking_map(query_codes, query_labels, db_codes, db_labels) -> float:
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
    query_codes, query_labels, db_codes, db_labels, k: int = 500
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
    query_codes, query_labels, db_codes, db_labels, radius: int = 2
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
