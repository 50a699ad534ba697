"""Clustering scores (Romanov & Rumshisky): accuracy under the best
cluster-to-class map, KMeans followed by AMI, NMI, ARI and accuracy, and the
linear-probe accuracy of self-supervised encoders.

Pure NumPy / scikit-learn: inputs are arrays, outputs Python floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from keras_disentangle._validation import (
    check_no_reserved_keys,
    check_positive,
    check_positive_int,
    check_seed,
    label_vector,
)
from keras_disentangle.scores._inputs import _matrix, _same_length

__all__ = ["clustering_accuracy", "cluster_scores", "linear_probe_accuracy"]

# KMeans restarts used by ``cluster_scores`` unless ``n_init`` is given.
_DEFAULT_N_INIT = 10


def clustering_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unsupervised clustering accuracy under the best cluster-to-class map.

    ``acc = max_m (1/N) sum_n [y_true_n == m(y_pred_n)]`` over one-to-one maps
    ``m`` from clusters to classes, found by the Hungarian method on the
    contingency table (scikit-learn's ``contingency_matrix``, then
    ``scipy.optimize.linear_sum_assignment``). With more
    clusters than classes, each class takes at most one cluster and the
    samples of the unmatched clusters count as errors. Labels may be any
    values (ints, strings); only their equality matters, so permuting cluster
    ids leaves the accuracy unchanged.

    Args:
        y_true: class labels ``(N,)``, ``(N, 1)`` or one-hot ``(N, C)``.
        y_pred: cluster ids, in the same forms.

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
    from sklearn.metrics.cluster import contingency_matrix

    y_true = label_vector("y_true", y_true)
    y_pred = label_vector("y_pred", y_pred)
    _same_length("y_true", y_true, "y_pred", y_pred)
    table = contingency_matrix(y_true, y_pred)  # (classes, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / y_true.shape[0])


def cluster_scores(
    embeddings: ArrayLike,
    labels: ArrayLike,
    n_clusters: int | None = None,
    seed: int | None = 0,
    threads: int | None = 1,
    **kmeans_kwargs: Any,
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
        labels: class labels ``(N,)``, ``(N, 1)`` or one-hot ``(N, C)``
            (integers, whole floats or strings; NaN, fractions and None
            raise a ``ValueError`` naming ``labels``).
        n_clusters: number of KMeans clusters, between 1 and N; defaults to
            the number of distinct labels.
        seed: ``random_state`` of KMeans, an integer >= 0; None draws a
            fresh one (then the result is not reproducible).
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
    y = label_vector("labels", labels)
    seed = check_seed("seed", seed)
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


def linear_probe_accuracy(
    train: tuple[ArrayLike, ArrayLike],
    test: tuple[ArrayLike, ArrayLike],
    C: float = 1.0,
) -> float:
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
    y_train = label_vector("train labels", y_train)
    y_test = label_vector("test labels", y_test)
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
