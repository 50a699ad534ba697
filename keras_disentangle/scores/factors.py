"""Ground-truth disentanglement scores: MIG, SAP, DCI, modularity, BetaVAE
and FactorVAE (the field's standard, Locatello et al. 2019).

Each function follows the inner function of google-research's
``disentanglement_lib`` named in its docstring, with samples as rows:
``codes`` is ``(N, d)`` (one code per row; disentanglement_lib keeps
``(d, N)``) and ``factors`` ``(N, F)`` holds the integer values of the
factors that generated each sample. Inputs are checked: NaN, lengths that
disagree, a factor with a single value (its entropy is 0) raise a
``ValueError`` naming the argument; a constant code column gives a finite
score (it carries no information).

The ``*_score`` functions that need sampling (``beta_vae_score``,
``factor_vae_score``) take an ``encoder`` (any callable from a batch of
images to codes ``(n, d)``, e.g. ``lambda x: model.predict(x, verbose=0)``)
and a ``sample(n, seed, fixed_factor=None) -> (images, factors)`` sampler,
such as ``datasets.shapes2d().sample``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from keras_disentangle._validation import check_positive_int, check_seed
from keras_disentangle.scores._inputs import _factors, _matrix, _same_length

__all__ = [
    "mig",
    "sap",
    "dci",
    "modularity_explicitness",
    "beta_vae_score",
    "factor_vae_score",
    "histogram_discretize",
    "discrete_mutual_info",
]


# ------------------------------------------------------------------ inputs


def _codes_factors(
    codes: ArrayLike,
    factors: ArrayLike,
    codes_name: str = "codes",
    factors_name: str = "factors",
) -> tuple[np.ndarray, np.ndarray]:
    c = _matrix(codes_name, codes, min_samples=2).astype(np.float64, copy=False)
    f = _factors(factors_name, factors, min_samples=2)
    _same_length(codes_name, c, factors_name, f)
    return c, f


def _check_varied(name: str, f: np.ndarray) -> None:
    """Every factor takes at least two values (else its entropy is 0)."""
    single = [j for j in range(f.shape[1]) if np.all(f[:, j] == f[0, j])]
    if single:
        raise ValueError(
            f"Invalid value for argument {name}: expected every factor to take "
            f"at least 2 values. Received: {name}[:, {single[0]}] is constant "
            f"({f[0, single[0]]})"
        )


def _train_test(
    codes, factors, test_codes, test_factors
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    c, f = _codes_factors(codes, factors)
    ct, ft = _codes_factors(test_codes, test_factors, "test_codes", "test_factors")
    if ct.shape[1] != c.shape[1]:
        raise ValueError(
            "Invalid shape for argument test_codes: expected as many code "
            f"units as codes ({c.shape[1]}). Received: test_codes.shape="
            f"{ct.shape}"
        )
    if ft.shape[1] != f.shape[1]:
        raise ValueError(
            "Invalid shape for argument test_factors: expected as many factors "
            f"as factors ({f.shape[1]}). Received: test_factors.shape={ft.shape}"
        )
    _check_varied("factors", f)
    return c, f, ct, ft


# ------------------------------------------------------- shared utilities


def histogram_discretize(codes: ArrayLike, n_bins: int = 20) -> np.ndarray:
    """Each code column in ``n_bins`` equal-width bins, as integers.

    Column ``i`` gets the edges ``e_0 < ... < e_n`` of
    ``np.histogram(codes[:, i], n_bins)`` (equal widths between its minimum
    and maximum) and each value ``x`` the bin ``#{k < n : e_k <= x}`` in
    ``1..n_bins`` (``np.digitize(x, e[:-1])``), as disentanglement_lib's
    ``utils._histogram_discretize``. A constant column falls in one bin.
    Vectorised over samples (one comparison against the edges).

    Args:
        codes: ``(N, d)``, N >= 2, finite.
        n_bins: bins per column, >= 1.

    Returns:
        An int64 array ``(N, d)`` with values in ``1..n_bins``.

    Example:

        >>> histogram_discretize([[0.0], [0.5], [1.0]], n_bins=2)[:, 0].tolist()
        [1, 2, 2]
    """
    c = _matrix("codes", codes, min_samples=2).astype(np.float64, copy=False)
    n_bins = check_positive_int("n_bins", n_bins)
    return _discretize(c, n_bins)


def _discretize(c: np.ndarray, n_bins: int) -> np.ndarray:
    lo, hi = c.min(axis=0), c.max(axis=0)
    same = lo == hi  # np.histogram widens a constant range by 0.5 each side
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)
    # np.histogram's edges: linspace(lo, hi, n_bins + 1) per column.
    steps = np.linspace(0.0, 1.0, n_bins + 1)[:-1]
    edges = lo[:, None] + (hi - lo)[:, None] * steps[None, :]  # (d, n_bins)
    edges[:, 0] = lo
    out = np.empty(c.shape, dtype=np.int64)
    for i in range(c.shape[1]):  # a loop over code units, not samples
        out[:, i] = np.searchsorted(edges[i], c[:, i], side="right")
    return out


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1), len(values)


def _mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``I(a_i; b_j)`` in nats for every column pair, from joint counts."""
    n = a.shape[0]
    dense_a = [_dense(a[:, i]) for i in range(a.shape[1])]
    dense_b = [_dense(b[:, j]) for j in range(b.shape[1])]
    out = np.zeros((a.shape[1], b.shape[1]))
    for i, (ai, ka) in enumerate(dense_a):
        pa = np.bincount(ai, minlength=ka) / n
        for j, (bj, kb) in enumerate(dense_b):
            joint = np.bincount(ai * kb + bj, minlength=ka * kb).reshape(ka, kb) / n
            pb = np.bincount(bj, minlength=kb) / n
            nz = joint > 0
            ratio = joint[nz] / (pa[:, None] * pb[None, :])[nz]
            out[i, j] = max(0.0, float(np.sum(joint[nz] * np.log(ratio))))
    return out


def discrete_mutual_info(codes: ArrayLike, factors: ArrayLike) -> np.ndarray:
    """Mutual information (nats) between every discrete code and factor.

    ``m[i, j] = sum_{a, b} p(a, b) log(p(a, b) / (p(a) p(b)))`` over the
    values ``a`` of code column ``i`` and ``b`` of factor ``j``, from their
    joint counts: scikit-learn's ``mutual_info_score(factors[:, j],
    codes[:, i])``, as disentanglement_lib's ``utils.discrete_mutual_info``.

    Args:
        codes: discrete codes ``(N, d)`` (e.g. ``histogram_discretize``).
        factors: integer factors ``(N, F)``.

    Returns:
        A float64 array ``(d, F)``, entries >= 0.

    Example:

        >>> m = discrete_mutual_info([[0], [0], [1], [1]], [[0], [0], [1], [1]])
        >>> round(float(m[0, 0]), 4)  # log 2
        0.6931
    """
    a = _factors("codes", codes)
    b = _factors("factors", factors)
    _same_length("codes", a, "factors", b)
    return _mutual_info(a, b)


def _entropy(f: np.ndarray) -> np.ndarray:
    """``H(f_j)`` in nats for each column (``I(f_j; f_j)``)."""
    out = np.zeros(f.shape[1])
    for j in range(f.shape[1]):
        p = np.bincount(_dense(f[:, j])[0]) / f.shape[0]
        out[j] = -np.sum(p * np.log(p))
    return out


# ---------------------------------------------------------------- scores


def mig(codes: ArrayLike, factors: ArrayLike, n_bins: int = 20) -> float:
    """Mutual Information Gap of codes against ground-truth factors.

    Each code column is discretised into ``n_bins`` equal-width bins
    (``histogram_discretize``); with ``I(z_i; v_j)`` the mutual information
    of code ``i`` and factor ``j`` and ``H(v_j)`` the factor's entropy,

    ``MIG = (1/F) sum_j (I(z_(1); v_j) - I(z_(2); v_j)) / H(v_j)``

    where ``z_(1)``, ``z_(2)`` are the two codes most informative about
    ``v_j``. With one code column the second is taken as 0.
    disentanglement_lib's ``mig._compute_mig`` (``discrete_mig``).

    Args:
        codes: ``(N, d)`` codes, one sample per row, finite.
        factors: ``(N, F)`` integer factors; each takes >= 2 values.
        n_bins: histogram bins per code column.

    Returns:
        A float in ``[0, 1]``; higher is more disentangled.

    Example:

        >>> import numpy as np
        >>> f = np.stack(np.meshgrid(np.arange(4), np.arange(5)), -1).reshape(-1, 2)
        >>> round(mig(f.astype(float), f), 4)  # each code is one factor
        1.0

    References:
        Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in
        Variational Autoencoders", NeurIPS 2018; Locatello et al.,
        "Challenging Common Assumptions in the Unsupervised Learning of
        Disentangled Representations", ICML 2019.
    """
    c, f = _codes_factors(codes, factors)
    n_bins = check_positive_int("n_bins", n_bins)
    _check_varied("factors", f)
    m = _mutual_info(_discretize(c, n_bins), f)
    if m.shape[0] < 2:
        m = np.concatenate([m, np.zeros_like(m)], axis=0)
    top = np.sort(m, axis=0)[::-1]
    return float(np.mean((top[0] - top[1]) / _entropy(f)))


def sap(
    codes: ArrayLike,
    factors: ArrayLike,
    test_codes: ArrayLike,
    test_factors: ArrayLike,
    continuous_factors: bool = False,
) -> float:
    """Separated Attribute Predictability of codes.

    A score matrix ``S (d, F)``: for discrete factors, ``S_ij`` is the test
    accuracy of a linear SVM (``LinearSVC(C=0.01,
    class_weight="balanced")``) predicting factor ``j`` from code ``i``
    alone; for continuous factors, ``S_ij = Cov(z_i, v_j)^2 / (Var z_i Var
    v_j)`` (0 where ``Var z_i <= 1e-12``) on the training codes. Then

    ``SAP = (1/F) sum_j (S_(1)j - S_(2)j)``,

    the mean gap between the two best codes of each factor.
    disentanglement_lib's ``sap_score._compute_sap``
    (``compute_score_matrix``, ``compute_avg_diff_top_two``).

    Args:
        codes: training codes ``(N, d)``.
        factors: training factors ``(N, F)``, integers.
        test_codes: test codes ``(M, d)``.
        test_factors: test factors ``(M, F)``.
        continuous_factors: use the squared correlation instead of the
            classifiers.

    Returns:
        A float in ``[0, 1]``; higher is more disentangled.

    Example:

        >>> import numpy as np
        >>> f = np.stack(np.meshgrid(np.arange(2), np.arange(2)), -1).reshape(-1, 2)
        >>> f = np.tile(f, (10, 1))
        >>> round(sap(f.astype(float), f, f.astype(float), f), 4)  # 1 - 0.5 (chance)
        0.5

    References:
        Kumar, Sattigeri & Balakrishnan, "Variational Inference of
        Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018.
    """
    from sklearn.svm import LinearSVC

    c, f, ct, ft = _train_test(codes, factors, test_codes, test_factors)
    if not isinstance(continuous_factors, bool):
        raise ValueError(
            "Invalid value for argument continuous_factors: expected a bool. "
            f"Received: continuous_factors={continuous_factors!r}"
        )
    d, n_factors = c.shape[1], f.shape[1]
    score = np.zeros((d, n_factors))
    if continuous_factors:
        cc = c - c.mean(axis=0)
        ff = f - f.mean(axis=0)
        cov = cc.T @ ff / (c.shape[0] - 1)
        var_c = np.einsum("ni,ni->i", cc, cc) / (c.shape[0] - 1)
        var_f = np.einsum("nj,nj->j", ff, ff) / (c.shape[0] - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            score = cov**2 / (var_c[:, None] * var_f[None, :])
        score[var_c <= 1e-12, :] = 0.0
    else:
        for i in range(d):
            for j in range(n_factors):
                classifier = LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(c[:, i : i + 1], f[:, j])
                score[i, j] = np.mean(classifier.predict(ct[:, i : i + 1]) == ft[:, j])
    if d < 2:
        score = np.concatenate([score, np.zeros_like(score)], axis=0)
    top = np.sort(score, axis=0)
    return float(np.mean(top[-1] - top[-2]))


def _entropy_normalised(p: np.ndarray, base: int) -> np.ndarray:
    """``scipy.stats.entropy(p, base=base)`` over axis 0 (p normalised)."""
    p = p / p.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(p), 0.0)
    return -np.sum(p * logs, axis=0) / np.log(base)


def _dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    d, n_factors = importance.shape
    # disentanglement_lib's 1e-11 keeps the entropies defined for zero rows.
    per_code = (
        1.0 - _entropy_normalised(importance.T + 1e-11, n_factors)
        if n_factors > 1
        else np.ones(d)
    )
    per_factor = (
        1.0 - _entropy_normalised(importance + 1e-11, d)
        if d > 1
        else np.ones(n_factors)
    )
    weights = importance if importance.sum() > 0 else np.ones_like(importance)
    code_share = weights.sum(axis=1) / weights.sum()
    factor_share = weights.sum(axis=0) / weights.sum()
    return float(np.sum(per_code * code_share)), float(
        np.sum(per_factor * factor_share)
    )


def dci(
    codes: ArrayLike,
    factors: ArrayLike,
    test_codes: ArrayLike,
    test_factors: ArrayLike,
    random_state: int | None = 0,
) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness of codes.

    For each factor ``j`` a ``GradientBoostingClassifier(random_state=
    random_state)`` predicts ``v_j`` from all codes; its feature importances
    form column ``j`` of ``R (d, F)``. With ``P_ij = R_ij / sum_k R_ik`` and
    ``Q_ij = R_ij / sum_k R_kj``:

    - ``disentanglement = sum_i rho_i (1 - H_F(P_i.))`` with
      ``rho_i = sum_j R_ij / sum R`` (entropy in base ``F``);
    - ``completeness = sum_j rho_j (1 - H_d(Q_.j))`` with
      ``rho_j = sum_i R_ij / sum R`` (entropy in base ``d``);
    - ``informativeness_train`` / ``_test``: the classifiers' mean accuracy
      on the training / test codes.

    disentanglement_lib's ``dci._compute_dci`` (``compute_importance_gbt``,
    ``disentanglement``, ``completeness``, with their ``1e-11`` added to
    ``R`` in the entropies). The reference leaves the trees unseeded, and DCI
    then moves by up to 6e-3 from run to run; here they are seeded. With one
    factor (or one code) the entropy base would be 1: that score is 1.

    Args:
        codes: training codes ``(N, d)``.
        factors: training factors ``(N, F)``, integers.
        test_codes: test codes ``(M, d)``.
        test_factors: test factors ``(M, F)``.
        random_state: seed of the boosted trees (an integer >= 0 or None).

    Returns:
        A dict with ``disentanglement``, ``completeness`` (in ``[0, 1]``,
        higher is better), ``informativeness_train`` and
        ``informativeness_test`` (accuracies).

    Example:

        >>> import numpy as np
        >>> f = np.stack(np.meshgrid(np.arange(3), np.arange(3)), -1).reshape(-1, 2)
        >>> f = np.tile(f, (5, 1))
        >>> s = dci(f.astype(float), f, f.astype(float), f)
        >>> round(s["disentanglement"], 3), round(s["informativeness_test"], 3)
        (1.0, 1.0)

    References:
        Eastwood & Williams, "A Framework for the Quantitative Evaluation of
        Disentangled Representations", ICLR 2018.
    """
    from sklearn.ensemble import GradientBoostingClassifier

    c, f, ct, ft = _train_test(codes, factors, test_codes, test_factors)
    random_state = check_seed("random_state", random_state)
    importance = np.zeros((c.shape[1], f.shape[1]))
    train, test = [], []
    for j in range(f.shape[1]):
        model = GradientBoostingClassifier(random_state=random_state)
        model.fit(c, f[:, j])
        importance[:, j] = np.abs(model.feature_importances_)
        train.append(np.mean(model.predict(c) == f[:, j]))
        test.append(np.mean(model.predict(ct) == ft[:, j]))
    disentanglement, completeness = _dci_from_importance(importance)
    return {
        "disentanglement": disentanglement,
        "completeness": completeness,
        "informativeness_train": float(np.mean(train)),
        "informativeness_test": float(np.mean(test)),
    }


def _modularity(m: np.ndarray) -> float:
    squared = m**2
    top = squared.max(axis=1)
    n_factors = squared.shape[1]
    if n_factors < 2:  # nothing else to share the information with
        per_code = np.ones(squared.shape[0])
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (squared.sum(axis=1) - top) / (top * (n_factors - 1.0))
        per_code = 1.0 - delta
    per_code[top == 0] = 0.0
    return float(np.mean(per_code))


def _explicitness(c, y, ct, yt) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    classifier = LogisticRegression().fit(c, y)
    classes = classifier.classes_

    def auc(x, labels) -> float:
        proba = classifier.predict_proba(x)
        truth = label_binarize(labels, classes=classes)
        if len(classes) == 2:  # label_binarize gives one column
            truth = np.concatenate([1 - truth, truth], axis=1)
        # Classes absent from (or filling) this split have no ROC curve.
        keep = (truth.min(axis=0) == 0) & (truth.max(axis=0) == 1)
        return float(roc_auc_score(truth[:, keep], proba[:, keep], average="macro"))

    return auc(c, y), auc(ct, yt)


def modularity_explicitness(
    codes: ArrayLike,
    factors: ArrayLike,
    test_codes: ArrayLike,
    test_factors: ArrayLike,
    n_bins: int = 20,
) -> dict[str, float]:
    """Modularity and explicitness of codes (Ridgeway & Mozer 2018).

    Modularity: with ``m_ij`` the mutual information of the discretised code
    ``i`` (``histogram_discretize``, ``n_bins``) and factor ``j`` on the
    training codes, and ``theta_i = max_j m_ij``,

    ``modularity = (1/d) sum_i (1 - (sum_j m_ij^2 - theta_i^2) /
    (theta_i^2 (F - 1)))``,

    a code with no information (``theta_i = 0``) counting 0. Explicitness:
    the codes standardised with the training mean and standard deviation (a
    constant column is left at 0), one ``LogisticRegression()``
    (scikit-learn's current defaults: lbfgs, 100 iterations, which may warn
    that it did not converge on factors with many values, as the reference
    does) per factor, and the macro ROC-AUC of
    its one-vs-rest probabilities on the training and the test codes,
    averaged over factors.

    disentanglement_lib's ``modularity_explicitness.
    compute_modularity_explicitness`` (``modularity``,
    ``explicitness_per_factor``), except that classes absent from a split
    are left out of that split's AUC (the reference then compares columns of
    different classes) and a constant code is not divided by its zero
    standard deviation.

    Args:
        codes: training codes ``(N, d)``.
        factors: training factors ``(N, F)``, integers.
        test_codes: test codes ``(M, d)``.
        test_factors: test factors ``(M, F)``.
        n_bins: histogram bins per code column for the mutual information.

    Returns:
        A dict with ``modularity``, ``explicitness_train`` and
        ``explicitness_test``, each in ``[0, 1]``, higher is better.

    Example:

        >>> import numpy as np
        >>> f = np.stack(np.meshgrid(np.arange(3), np.arange(3)), -1).reshape(-1, 2)
        >>> f = np.tile(f, (5, 1))
        >>> s = modularity_explicitness(f.astype(float), f, f.astype(float), f)
        >>> round(s["modularity"], 3)
        1.0

    References:
        Ridgeway & Mozer, "Learning Deep Disentangled Embeddings With the
        F-Statistic Loss", NeurIPS 2018.
    """
    c, f, ct, ft = _train_test(codes, factors, test_codes, test_factors)
    n_bins = check_positive_int("n_bins", n_bins)
    modularity = _modularity(_mutual_info(_discretize(c, n_bins), f))
    mean, std = c.mean(axis=0), c.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    cn, ctn = (c - mean) / std, (ct - mean) / std
    pairs = [_explicitness(cn, f[:, j], ctn, ft[:, j]) for j in range(f.shape[1])]
    return {
        "modularity": modularity,
        "explicitness_train": float(np.mean([p[0] for p in pairs])),
        "explicitness_test": float(np.mean([p[1] for p in pairs])),
    }


# ------------------------------------------------------ sampling scores

Sampler = Callable[..., tuple[Any, Any]]


def _check_sampling(
    encoder: Any,
    sample: Any,
    batch_size: int,
    num_train: int,
    num_eval: int,
    random_state: Any,
) -> tuple[int, int, int, np.random.Generator, int]:
    for name, fn in (("encoder", encoder), ("sample", sample)):
        if not callable(fn):
            raise ValueError(
                f"Invalid value for argument {name}: expected a callable. "
                f"Received: {name}={fn!r}"
            )
    batch_size = check_positive_int("batch_size", batch_size, minimum=2)
    num_train = check_positive_int("num_train", num_train)
    num_eval = check_positive_int("num_eval", num_eval)
    rng = np.random.default_rng(check_seed("random_state", random_state))
    _, probe = sample(2, 0)
    n_factors = _factors("sample", probe).shape[1]
    return batch_size, num_train, num_eval, rng, n_factors


def _encode(encoder: Any, images: Any, name: str = "encoder") -> np.ndarray:
    return _matrix(name, np.asarray(encoder(images)), min_samples=1).astype(
        np.float64, copy=False
    )


def _fixed_sample(sample, n, seed, k):
    images, fac = sample(n, seed, fixed_factor=k)
    fac = _factors("sample", fac, min_samples=1)
    if not np.all(fac[:, k] == fac[0, k]):
        raise ValueError(
            "Invalid value for argument sample: sample(n, seed, fixed_factor=k) "
            f"must give samples that share factor k. Received: factor {k} takes "
            f"{len(np.unique(fac[:, k]))} values"
        )
    return images


def _beta_vae_points(encoder, sample, batch_size, num_points, rng, n_factors, chunk):
    labels = rng.integers(n_factors, size=num_points)
    seeds = rng.integers(2**31 - 1, size=num_points)
    features = []
    for start in range(0, num_points, chunk):
        stop = min(num_points, start + chunk)
        images = [
            _fixed_sample(sample, 2 * batch_size, int(seeds[p]), int(labels[p]))
            for p in range(start, stop)
        ]
        z = _encode(encoder, np.concatenate(images, axis=0))
        z = z.reshape(stop - start, 2, batch_size, -1)
        features.append(np.mean(np.abs(z[:, 0] - z[:, 1]), axis=1))
    return np.concatenate(features, axis=0), labels


def beta_vae_score(
    encoder: Callable[[Any], Any],
    sample: Sampler,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    random_state: int | None = 0,
    chunk: int = 64,
) -> dict[str, float]:
    """BetaVAE score: how well a linear classifier names the fixed factor.

    Each point draws a factor ``k`` uniformly and ``2 * batch_size`` images
    that share factor ``k``'s value (``sample(2 * batch_size, seed,
    fixed_factor=k)``), pairs image ``b`` with image ``batch_size + b`` and
    takes the feature ``mean_b |z(x_b) - z(x_{batch_size + b})|`` (``d``
    values). A ``LogisticRegression(random_state=random_state)`` predicts
    ``k`` from ``num_train`` such features; the score is its accuracy on
    them and on ``num_eval`` new ones.

    disentanglement_lib's ``beta_vae.compute_beta_vae_sklearn``
    (``_generate_training_batch``), except that the pairs of one point share
    one value of factor ``k`` (drawn once per point, as FactorVAE's batches
    are), where the reference draws it per pair: the sampler has one
    ``fixed_factor`` per call. The images of ``chunk`` points are encoded in
    one call.

    Args:
        encoder: a callable from a batch of images to codes ``(n, d)``.
        sample: ``sample(n, seed, fixed_factor=None) -> (images, factors)``.
        batch_size: pairs per point.
        num_train: points to fit the classifier.
        num_eval: points to evaluate it.
        random_state: seed of the draws and of the classifier.
        chunk: points encoded per encoder call.

    Returns:
        A dict with ``train_accuracy`` and ``eval_accuracy``.

    Example:

        >>> import numpy as np
        >>> def sample(n, seed, fixed_factor=None):  # observations = factors
        ...     f = np.random.default_rng(seed).integers(4, size=(n, 3))
        ...     if fixed_factor is not None:
        ...         f[:, fixed_factor] = f[0, fixed_factor]
        ...     return f.astype(float), f
        >>> s = beta_vae_score(lambda x: x, sample, 8, 50, 20)
        >>> s["eval_accuracy"]
        1.0

    References:
        Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a
        Constrained Variational Framework", ICLR 2017.
    """
    from sklearn.linear_model import LogisticRegression

    batch_size, num_train, num_eval, rng, n_factors = _check_sampling(
        encoder, sample, batch_size, num_train, num_eval, random_state
    )
    chunk = check_positive_int("chunk", chunk)
    x_train, y_train = _beta_vae_points(
        encoder, sample, batch_size, num_train, rng, n_factors, chunk
    )
    x_eval, y_eval = _beta_vae_points(
        encoder, sample, batch_size, num_eval, rng, n_factors, chunk
    )
    if len(np.unique(y_train)) < 2:
        raise ValueError(
            "Invalid value for argument num_train: expected enough points to "
            f"draw at least 2 factors. Received: num_train={num_train}"
        )
    seed = check_seed("random_state", random_state)
    model = LogisticRegression(random_state=seed).fit(x_train, y_train)
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval)),
    }


def _factor_vae_votes(
    encoder, sample, batch_size, num_points, rng, n_factors, scale, active, chunk
):
    labels = rng.integers(n_factors, size=num_points)
    seeds = rng.integers(2**31 - 1, size=num_points)
    votes = np.zeros((n_factors, int(active.sum())), dtype=np.int64)
    for start in range(0, num_points, chunk):
        stop = min(num_points, start + chunk)
        images = [
            _fixed_sample(sample, batch_size, int(seeds[p]), int(labels[p]))
            for p in range(start, stop)
        ]
        z = _encode(encoder, np.concatenate(images, axis=0))
        z = z.reshape(stop - start, batch_size, -1)
        local = np.var(z, axis=1, ddof=1)[:, active] / scale[active]
        np.add.at(votes, (labels[start:stop], np.argmin(local, axis=1)), 1)
    return votes


def factor_vae_score(
    encoder: Callable[[Any], Any],
    sample: Sampler,
    batch_size: int = 64,
    num_train: int = 10000,
    num_eval: int = 5000,
    num_variance_estimate: int = 10000,
    random_state: int | None = 0,
    chunk: int = 64,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """FactorVAE score: majority vote of the least-varying code per factor.

    The global variance ``s_i^2`` of each code over ``num_variance_estimate``
    samples; codes with ``s_i < prune_threshold`` are inactive. Each point
    draws a factor ``k`` and ``batch_size`` images sharing its value, and
    votes ``(k, argmin_i Var_batch(z_i) / s_i^2)`` over the active codes.
    The classifier maps each code to the factor with most votes; the score
    is the share of votes it gets right on ``num_train`` and on
    ``num_eval`` new points:

    ``accuracy = sum_i V[argmax_k V_ki, i] / sum V``.

    No active code gives 0 and ``num_active_dims = 0``.
    disentanglement_lib's ``factor_vae.compute_factor_vae``
    (``_compute_variances``, ``_prune_dims``, ``_generate_training_batch``).

    Args:
        encoder: a callable from a batch of images to codes ``(n, d)``.
        sample: ``sample(n, seed, fixed_factor=None) -> (images, factors)``.
        batch_size: images per point.
        num_train: points to set the majority vote.
        num_eval: points to evaluate it.
        num_variance_estimate: samples for the global variances.
        random_state: seed of the draws.
        chunk: points encoded per encoder call.
        prune_threshold: the standard deviation below which a code is
            inactive.

    Returns:
        A dict with ``train_accuracy``, ``eval_accuracy`` and
        ``num_active_dims``.

    Example:

        >>> import numpy as np
        >>> def sample(n, seed, fixed_factor=None):  # observations = factors
        ...     f = np.random.default_rng(seed).integers(4, size=(n, 3))
        ...     if fixed_factor is not None:
        ...         f[:, fixed_factor] = f[0, fixed_factor]
        ...     return f.astype(float), f
        >>> s = factor_vae_score(lambda x: x, sample, 8, 50, 20, 200)
        >>> s["eval_accuracy"], s["num_active_dims"]
        (1.0, 3)

    References:
        Kim & Mnih, "Disentangling by Factorising", ICML 2018.
    """
    batch_size, num_train, num_eval, rng, n_factors = _check_sampling(
        encoder, sample, batch_size, num_train, num_eval, random_state
    )
    chunk = check_positive_int("chunk", chunk)
    num_variance_estimate = check_positive_int(
        "num_variance_estimate", num_variance_estimate, minimum=2
    )
    images, _ = sample(num_variance_estimate, int(rng.integers(2**31 - 1)))
    variances = np.var(_encode(encoder, images), axis=0, ddof=1)
    active = np.sqrt(variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    args = (encoder, sample, batch_size)
    rest = (rng, n_factors, variances, active, chunk)
    train = _factor_vae_votes(*args, num_train, *rest)
    classifier = np.argmax(train, axis=0)
    columns = np.arange(train.shape[1])
    evaluation = _factor_vae_votes(*args, num_eval, *rest)
    return {
        "train_accuracy": float(train[classifier, columns].sum() / train.sum()),
        "eval_accuracy": float(
            evaluation[classifier, columns].sum() / evaluation.sum()
        ),
        "num_active_dims": int(active.sum()),
    }
