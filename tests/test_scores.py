"""keras_disentangle.metrics against independent, straightforward loops."""

import itertools
import math

import numpy as np
import pytest

from keras_disentangle.scores import (
    cluster_scores,
    clustering_accuracy,
    cvr,
    hamming_ranking_map,
    linear_probe_accuracy,
    mapc,
    precision_at_k,
    precision_within_radius,
    tdv,
    utilized_dimensions,
)

# ------------------------------------------------------------ loop references


def loop_accuracy(y_true, y_pred):
    """Best accuracy over every injective map of clusters to classes."""
    classes = sorted(set(y_true))
    clusters = sorted(set(y_pred))
    best = 0
    # Each cluster maps to a distinct class or to nothing (None).
    options = classes + [None] * len(clusters)
    for image in set(itertools.permutations(options, len(clusters))):
        mapping = dict(zip(clusters, image, strict=True))
        hits = sum(1 for t, p in zip(y_true, y_pred, strict=True) if mapping[p] == t)
        best = max(best, hits)
    return best / len(y_true)


def _counts(values):
    out = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _entropy(counts, n):
    return -sum(c / n * math.log(c / n) for c in counts.values())


def loop_mi(u, v):
    n = len(u)
    a, b = _counts(u), _counts(v)
    joint = _counts(list(zip(u, v, strict=True)))
    return sum(c / n * math.log(n * c / (a[i] * b[j])) for (i, j), c in joint.items())


def loop_emi(u, v):
    """Expected mutual information under the permutation model (Vinh 2010)."""
    n = len(u)
    a, b = _counts(u), _counts(v)
    lf = math.lgamma
    total = 0.0
    for ai in a.values():
        for bj in b.values():
            for nij in range(max(1, ai + bj - n), min(ai, bj) + 1):
                log_p = (
                    lf(ai + 1)
                    + lf(bj + 1)
                    + lf(n - ai + 1)
                    + lf(n - bj + 1)
                    - lf(n + 1)
                    - lf(nij + 1)
                    - lf(ai - nij + 1)
                    - lf(bj - nij + 1)
                    - lf(n - ai - bj + nij + 1)
                )
                total += nij / n * math.log(n * nij / (ai * bj)) * math.exp(log_p)
    return total


def loop_ami(u, v):
    n = len(u)
    hu, hv = _entropy(_counts(u), n), _entropy(_counts(v), n)
    emi = loop_emi(u, v)
    return (loop_mi(u, v) - emi) / ((hu + hv) / 2 - emi)


def loop_nmi(u, v):
    n = len(u)
    hu, hv = _entropy(_counts(u), n), _entropy(_counts(v), n)
    return loop_mi(u, v) / ((hu + hv) / 2)


def loop_ari(u, v):
    n = len(u)
    pairs = sum(math.comb(c, 2) for c in _counts(list(zip(u, v, strict=True))).values())
    sa = sum(math.comb(c, 2) for c in _counts(u).values())
    sb = sum(math.comb(c, 2) for c in _counts(v).values())
    expected = sa * sb / math.comb(n, 2)
    return (pairs - expected) / ((sa + sb) / 2 - expected)


def loop_cov(h):
    n, p = h.shape
    mean = [sum(h[k, i] for k in range(n)) / n for i in range(p)]
    c = np.zeros((p, p))
    for i in range(p):
        for j in range(p):
            c[i, j] = sum((h[k, i] - mean[i]) * (h[k, j] - mean[j]) for k in range(n))
            c[i, j] /= n - 1
    return c


def loop_mapc(h, min_variance_fraction=0.0):
    c = loop_cov(h)
    p = h.shape[1]
    var = [c[i, i] for i in range(p)]
    total = sum(var)
    keep = [
        i
        for i in range(p)
        if len(set(h[:, i].tolist())) > 1 and var[i] >= min_variance_fraction * total
    ]
    values = []
    for a in range(len(keep)):
        for b in range(a + 1, len(keep)):
            i, j = keep[a], keep[b]
            values.append(abs(c[i, j]) / math.sqrt(c[i, i] * c[j, j]))
    return sum(values) / len(values) if values else 0.0


def loop_cvr(h):
    c = loop_cov(h)
    p = h.shape[1]
    return sum(abs(c[i, j]) for i in range(p) for j in range(p)) / sum(
        c[i, i] for i in range(p)
    )


def loop_sorted_variances(h):
    c = loop_cov(h)
    return sorted((c[i, i] for i in range(h.shape[1])), reverse=True)


def loop_tdv(h, d):
    var = loop_sorted_variances(h)
    return sum(var[:d]) / sum(var)


def loop_ud(h, fraction):
    var = loop_sorted_variances(h)
    total, acc = sum(var), 0.0
    for d, v in enumerate(var, start=1):
        acc += v
        if acc >= fraction * total - 1e-12 * total:
            return d
    return len(var)


def loop_rankings(q, d):
    """Per query: database indices sorted by Hamming distance (stable)."""
    out = []
    for code in q:
        dist = [
            sum(int(a != b) for a, b in zip(code, other, strict=True)) for other in d
        ]
        out.append((sorted(range(len(d)), key=lambda i, dist=dist: dist[i]), dist))
    return out


def loop_map(q, ql, d, dl):
    aps = []
    for (order, _), label in zip(loop_rankings(q, d), ql, strict=True):
        hits, precisions = 0, []
        for rank, i in enumerate(order, start=1):
            if dl[i] == label:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / len(precisions) if precisions else 0.0)
    return sum(aps) / len(aps)


def loop_precision_at_k(q, ql, d, dl, k):
    values = []
    for (order, _), label in zip(loop_rankings(q, d), ql, strict=True):
        top = order[: min(k, len(d))]
        values.append(sum(dl[i] == label for i in top) / len(top))
    return sum(values) / len(values)


def loop_precision_radius(q, ql, d, dl, radius):
    values = []
    for (_, dist), label in zip(loop_rankings(q, d), ql, strict=True):
        found = [i for i in range(len(d)) if dist[i] <= radius]
        values.append(sum(dl[i] == label for i in found) / len(found) if found else 0)
    return sum(values) / len(values)


# ----------------------------------------------------------------- clustering


@pytest.mark.parametrize("seed", range(4))
def test_clustering_accuracy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = [(3, 3), (3, 5), (4, 2), (2, 4)][seed]
    y_true = rng.integers(0, n_classes, 30)
    y_pred = rng.integers(0, n_clusters, 30)
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(
        loop_accuracy(y_true.tolist(), y_pred.tolist())
    )


def test_clustering_accuracy_is_invariant_to_cluster_ids():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 50)
    y_pred = rng.integers(0, 4, 50)
    renamed = np.array([17, 3, 99, -1])[y_pred]
    assert clustering_accuracy(y_true, renamed) == clustering_accuracy(y_true, y_pred)
    assert clustering_accuracy(y_true, y_true + 10) == 1.0
    assert clustering_accuracy(["a", "b", "b"], [1, 0, 0]) == 1.0


def test_clustering_accuracy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="same number of samples"):
        clustering_accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="y_true"):
        clustering_accuracy(np.zeros((3, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match="at least 1"):
        clustering_accuracy([], [])


def _blobs(partition, dim=5, seed=0):
    """Embeddings whose KMeans clustering is exactly ``partition``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(partition.max() + 1, dim)) * 100
    return centres[partition] + rng.normal(size=(len(partition), dim)) * 0.01


@pytest.mark.parametrize("seed", range(3))
def test_cluster_scores_match_loop_references(seed):
    rng = np.random.default_rng(seed)
    n_classes = 3 + seed
    labels = rng.integers(0, n_classes, 60)
    # KMeans recovers the partition; the labels agree with it 70% of the time.
    partition = np.where(rng.random(60) < 0.7, labels, rng.integers(0, n_classes, 60))
    x = _blobs(partition, seed=seed)
    scores = cluster_scores(x, labels, n_clusters=len(set(partition)))
    u, v = labels.tolist(), partition.tolist()
    assert scores["ami"] == pytest.approx(loop_ami(u, v), abs=1e-9)
    assert scores["nmi"] == pytest.approx(loop_nmi(u, v), abs=1e-9)
    assert scores["ari"] == pytest.approx(loop_ari(u, v), abs=1e-9)
    assert scores["acc"] == pytest.approx(loop_accuracy(u, v), abs=1e-12)


def test_cluster_scores_good_and_bad_representations():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 1000)
    one_hot = np.eye(10)[labels]
    assert cluster_scores(one_hot, labels) == pytest.approx(
        {"ami": 1.0, "nmi": 1.0, "ari": 1.0, "acc": 1.0}
    )
    noise = rng.normal(size=(1000, 8))
    scores = cluster_scores(noise, labels, n_init=2, threads=1)
    assert abs(scores["ami"]) < 0.02
    assert abs(scores["ari"]) < 0.02
    assert scores["acc"] < 0.2


def test_cluster_scores_deterministic_and_label_permutation_invariant():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 200)
    x = np.eye(4)[labels] + rng.normal(size=(200, 4)) * 0.6
    first = cluster_scores(x, labels, seed=3)
    assert cluster_scores(x, labels, seed=3) == first
    permuted = np.array([2, 0, 3, 1])[labels]
    assert cluster_scores(x, permuted, seed=3) == pytest.approx(first)
    # n_clusters defaults to the number of classes; kwargs reach KMeans; the
    # number of threads does not change the result.
    assert cluster_scores(x, labels, n_clusters=4, seed=3) == first
    assert cluster_scores(x, labels, seed=3, threads=1) == pytest.approx(first)
    assert set(cluster_scores(x, labels, algorithm="lloyd", n_init=1)) == {
        "ami",
        "nmi",
        "ari",
        "acc",
    }


def test_cluster_scores_degenerate_inputs_are_defined():
    labels = np.repeat([0, 1, 2], 5)
    collapsed = cluster_scores(np.zeros((15, 3)), labels)
    assert collapsed == {"ami": 0.0, "nmi": 0.0, "ari": 0.0, "acc": 1 / 3}
    one_class = cluster_scores(np.random.rand(15, 3), np.zeros(15))
    assert one_class == {"ami": 1.0, "nmi": 1.0, "ari": 1.0, "acc": 1.0}
    one_cluster = cluster_scores(np.random.rand(15, 3), labels, n_clusters=1)
    assert one_cluster["ami"] == 0.0 and one_cluster["acc"] == pytest.approx(1 / 3)
    for scores in (collapsed, one_class, one_cluster):
        assert all(np.isfinite(v) for v in scores.values())
    # Rank-3 embeddings are flattened.
    assert cluster_scores(np.eye(3)[labels][:, :, None], labels)["acc"] == 1


def test_cluster_scores_rejects_bad_inputs():
    with pytest.raises(ValueError, match="at least 2 samples"):
        cluster_scores(np.zeros((1, 3)), [0])
    with pytest.raises(ValueError, match="same number of samples"):
        cluster_scores(np.zeros((4, 3)), [0, 1, 1])
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_scores(np.zeros((4, 3)), [0, 1, 1, 0], n_clusters=5)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_scores(np.zeros((4, 3)), [0, 1, 1, 0], n_clusters=0)
    with pytest.raises(ValueError, match="finite"):
        cluster_scores(np.full((4, 3), np.nan), [0, 1, 1, 0])
    with pytest.raises(ValueError, match="argument threads"):
        cluster_scores(np.zeros((4, 3)), [0, 1, 1, 0], threads=0)


# ------------------------------------------------------------ disentanglement


@pytest.mark.parametrize("shape", [(7, 2), (20, 5), (50, 9)])
def test_disentanglement_scores_match_loops(shape):
    rng = np.random.default_rng(shape[1])
    mixing = rng.normal(size=(shape[1], shape[1]))
    h = rng.normal(size=shape) @ mixing * rng.uniform(0.1, 3, shape[1])
    assert mapc(h) == pytest.approx(loop_mapc(h), rel=1e-10)
    assert mapc(h, 0.15) == pytest.approx(loop_mapc(h, 0.15), rel=1e-10)
    assert cvr(h) == pytest.approx(loop_cvr(h), rel=1e-10)
    for d in range(1, shape[1] + 1):
        assert tdv(h, d) == pytest.approx(loop_tdv(h, d), rel=1e-10)
    for fraction in (0.3, 0.5, 0.9, 0.99, 1.0):
        assert utilized_dimensions(h, fraction) == loop_ud(h, fraction)


def test_disentanglement_scores_good_and_bad_representations():
    rng = np.random.default_rng(0)
    independent = rng.normal(size=(5000, 6))
    assert mapc(independent) < 0.03
    assert cvr(independent) < 1.2
    assert utilized_dimensions(independent) == 6
    base = rng.normal(size=(5000, 1))
    correlated = np.hstack(
        [base, 2 * base, -base, base + 1e-3 * rng.normal(size=(5000, 1))]
    )
    assert mapc(correlated) > 0.99
    # Equal-magnitude perfectly correlated units: CVR approaches p.
    assert cvr(np.hstack([base] * 4)) == pytest.approx(4.0)
    assert utilized_dimensions(np.hstack([base * 10, base * 0.1])) == 1
    assert tdv(np.hstack([base * 10, base * 0.1]), 1) > 0.99


def test_mapc_leaves_out_dead_and_constant_units():
    rng = np.random.default_rng(0)
    live = rng.normal(size=(2000, 2))
    # Near-dead units: tiny activations dominated by one shared noise source.
    shared = rng.normal(size=(2000, 1))
    dead = 1e-3 * (shared + 0.3 * rng.normal(size=(2000, 8)))
    h = np.hstack([live, dead])
    assert mapc(h) > 0.5
    assert mapc(h, min_variance_fraction=0.05) < 0.05
    assert mapc(h, min_variance_fraction=0.05) == pytest.approx(mapc(live))
    # A constant unit is left out (its correlation is undefined), never a NaN.
    with_constant = np.hstack([live, np.full((2000, 1), 3.7)])
    assert mapc(with_constant) == pytest.approx(mapc(live))
    assert cvr(with_constant) == pytest.approx(cvr(live))


def test_disentanglement_degenerate_inputs():
    constant = np.full((10, 4), 0.3)
    assert mapc(constant) == 0.0
    assert cvr(constant) == 1.0
    assert tdv(constant, 2) == 1.0
    assert utilized_dimensions(constant) == 0
    one_live = np.hstack([np.arange(10.0)[:, None], np.ones((10, 3))])
    assert mapc(one_live) == 0.0
    assert utilized_dimensions(one_live) == 1
    with pytest.raises(ValueError, match="at least 2 samples"):
        mapc(np.ones((1, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        cvr(np.ones((1, 4)))
    with pytest.raises(ValueError, match="argument d"):
        tdv(np.random.rand(5, 3), 4)
    with pytest.raises(ValueError, match="argument d"):
        tdv(np.random.rand(5, 3), 0)
    with pytest.raises(ValueError, match="fraction"):
        utilized_dimensions(np.random.rand(5, 3), 0.0)
    with pytest.raises(ValueError, match="min_variance_fraction"):
        mapc(np.random.rand(5, 3), 1.5)
    with pytest.raises(ValueError, match="finite"):
        cvr(np.array([[0.0, np.inf], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="dtype"):
        cvr(np.array([["a", "b"], ["c", "d"]]))


def test_half_precision_and_integer_inputs_are_computed_in_float64():
    h = np.random.default_rng(0).normal(size=(30, 4)) * 3
    dtypes = [np.float16, np.int64]
    try:
        import ml_dtypes  # installed with TensorFlow; mixed_bfloat16 outputs

        dtypes.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    for dtype in dtypes:
        low = h.astype(dtype)
        expected = low.astype(np.float64)
        assert cvr(low) == pytest.approx(loop_cvr(expected))
        assert mapc(low) == pytest.approx(loop_mapc(expected))


# -------------------------------------------------------------------- hashing


def _random_codes(seed, q=15, d=70, bits=6, classes=3):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 2, (q, bits)),
        rng.integers(0, classes, q),
        rng.integers(0, 2, (d, bits)),
        rng.integers(0, classes, d),
    )


@pytest.mark.parametrize("seed", range(3))
def test_hashing_scores_match_loops(seed, monkeypatch):
    q, ql, d, dl = _random_codes(seed)
    lists = (q.tolist(), ql.tolist(), d.tolist(), dl.tolist())
    expected_map = loop_map(*lists)
    assert hamming_ranking_map(q, ql, d, dl) == pytest.approx(expected_map)
    for k in (1, 7, 70, 500):
        assert precision_at_k(q, ql, d, dl, k=k) == pytest.approx(
            loop_precision_at_k(*lists, k)
        )
    for radius in (0, 1, 2, 6):
        assert precision_within_radius(q, ql, d, dl, radius) == pytest.approx(
            loop_precision_radius(*lists, radius)
        )
    # Several chunks of queries give the same result.
    monkeypatch.setattr("keras_disentangle.scores.hashing._CHUNK_ENTRIES", 150)
    assert hamming_ranking_map(q, ql, d, dl) == pytest.approx(expected_map)
    assert precision_at_k(q, ql, d, dl, k=7) == pytest.approx(
        loop_precision_at_k(*lists, 7)
    )


def test_hashing_scores_good_and_bad_codes():
    rng = np.random.default_rng(0)
    class_codes = rng.integers(0, 2, (4, 16))
    class_codes[:, :4] = np.eye(4)  # distinct codes, >= 2 bits apart
    dl = rng.integers(0, 4, 400)
    ql = rng.integers(0, 4, 50)
    perfect = hamming_ranking_map(class_codes[ql], ql, class_codes[dl], dl)
    assert perfect == 1.0
    assert precision_at_k(class_codes[ql], ql, class_codes[dl], dl, k=50) == 1
    assert precision_within_radius(class_codes[ql], ql, class_codes[dl], dl) == 1
    noise_map = hamming_ranking_map(
        rng.integers(0, 2, (50, 16)), ql, rng.integers(0, 2, (400, 16)), dl
    )
    assert noise_map < 0.4


def test_hashing_degenerate_inputs():
    codes = np.array([[0, 0, 0], [1, 1, 1]], dtype=bool)
    # No relevant item: AP 0. Nothing within the radius: precision 0.
    assert hamming_ranking_map(codes[:1], [5], codes, [0, 1]) == 0.0
    assert precision_within_radius(codes[:1], [1], codes[1:], [1], 2) == 0.0
    assert precision_within_radius(codes[:1], [1], codes[1:], [1], 3) == 1.0
    with pytest.raises(ValueError, match="0, 1"):
        hamming_ranking_map(np.array([[0, 2]]), [0], np.array([[0, 1]]), [0])
    with pytest.raises(ValueError, match="number of bits"):
        precision_at_k(np.zeros((1, 2)), [0], np.zeros((3, 3)), [0, 0, 0])
    with pytest.raises(ValueError, match="same number of samples"):
        precision_at_k(np.zeros((2, 2)), [0], np.zeros((3, 2)), [0, 0, 0])
    with pytest.raises(ValueError, match="argument k"):
        precision_at_k(np.zeros((1, 2)), [0], np.zeros((3, 2)), [0, 0, 0], k=0)
    with pytest.raises(ValueError, match="argument radius"):
        precision_within_radius(
            np.zeros((1, 2)), [0], np.zeros((3, 2)), [0, 0, 0], radius=-1
        )


def test_linear_probe_accuracy_separable_and_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    separable = np.eye(4)[y] + 0.05 * rng.normal(size=(200, 4))
    assert linear_probe_accuracy((separable, y), (separable, y)) == 1.0
    noise_train, noise_test = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    chance = linear_probe_accuracy((noise_train, y), (noise_test, y))
    assert chance < 0.45


def test_linear_probe_accuracy_matches_sklearn_and_validates():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 5)), rng.integers(0, 3, size=60)
    scaler = StandardScaler().fit(x[:40])
    clf = LogisticRegression(C=0.5, max_iter=2000).fit(scaler.transform(x[:40]), y[:40])
    want = float(np.mean(clf.predict(scaler.transform(x[40:])) == y[40:]))
    got = linear_probe_accuracy((x[:40], y[:40]), (x[40:], y[40:]), C=0.5)
    assert got == want
    with pytest.raises(ValueError, match="C"):
        linear_probe_accuracy((x, y), (x, y), C=0)
    with pytest.raises(ValueError, match="same size"):
        linear_probe_accuracy((x, y), (x[:, :3], y))


def test_cluster_scores_rejects_reserved_kmeans_arguments():
    x = np.eye(3)[np.repeat([0, 1, 2], 5)]
    with pytest.raises(ValueError, match="kmeans_kwargs"):
        cluster_scores(x, np.repeat([0, 1, 2], 5), random_state=1)
