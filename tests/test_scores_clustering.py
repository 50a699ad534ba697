"""keras_disentangle.scores.clustering against independent, straightforward loops."""

import itertools
import math

import numpy as np
import pytest

from keras_disentangle.scores.clustering import (
    cluster_scores,
    clustering_accuracy,
    linear_probe_accuracy,
)

pytestmark = pytest.mark.backend_independent

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
        clustering_accuracy(np.zeros((3, 2, 2)), [0, 1, 1])
    # One-hot rows are labels too (the package's one label rule).
    assert clustering_accuracy(np.eye(2)[[0, 1, 1]], [5, 3, 3]) == 1.0
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


@pytest.mark.parametrize(
    "labels, message",
    [
        (None, "argument labels"),
        (np.array([0.0, 1.0, np.nan, 1.0]), "argument labels.*NaN"),
        (np.array([0.0, 1.5, 1.0, 1.0]), "argument labels.*fractions"),
        ([0, None, 1, 1], "argument labels"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1, 0], [1, 0]]), "argument labels"),
        (np.zeros((4, 2, 2)), "argument labels"),
    ],
)
def test_cluster_scores_bad_labels_raise_value_error_naming_labels(labels, message):
    # Issue 10 item 8: NaN labels gave scikit-learn's "Input contains NaN."
    # and None labels a TypeError.
    with pytest.raises(ValueError, match=message):
        cluster_scores(np.random.default_rng(0).normal(size=(4, 3)), labels)


def test_cluster_scores_accepts_every_label_form_alike():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 60)
    x = np.eye(3)[labels] + rng.normal(size=(60, 3)) * 0.3
    expected = cluster_scores(x, labels, seed=1)
    names = np.array(["a", "b", "c"])[labels]
    for form in (labels[:, None], np.eye(3)[labels], labels.astype(float), names):
        assert cluster_scores(x, form, seed=1) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_cluster_scores_bad_seed_names_the_argument(seed):
    x = np.eye(3)[np.repeat([0, 1, 2], 5)]
    with pytest.raises(ValueError, match="argument seed"):
        cluster_scores(x, np.repeat([0, 1, 2], 5), seed=seed)
