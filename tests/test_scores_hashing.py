"""keras_disentangle.scores.hashing against independent loops."""

import numpy as np
import pytest

from keras_disentangle.scores.hashing import (
    hamming_ranking_map,
    precision_at_k,
    precision_within_radius,
)

pytestmark = pytest.mark.backend_independent

# ------------------------------------------------------------ loop references


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


def test_hashing_bad_labels_name_the_argument():
    codes = np.array([[0, 1], [1, 1], [0, 0]])
    with pytest.raises(ValueError, match="argument db_labels"):
        hamming_ranking_map(codes[:1], [0], codes, [0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="argument query_labels"):
        precision_at_k(codes[:1], None, codes, [0, 1, 1])
    # One-hot labels are argmax-ed, as everywhere in the package.
    one_hot = np.eye(2)[[0, 1, 0]]
    assert hamming_ranking_map(codes[:1], [[1, 0]], codes, one_hot) == pytest.approx(
        hamming_ranking_map(codes[:1], [0], codes, [0, 1, 0])
    )
