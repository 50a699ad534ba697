"""keras_disentangle.scores.disentanglement against independent loops."""

import math

import numpy as np
import pytest

from keras_disentangle.scores.disentanglement import (
    active_unit_mask,
    active_units,
    cvr,
    mapc,
    tdv,
    utilized_dimensions,
)

pytestmark = pytest.mark.backend_independent

# ------------------------------------------------------------ loop references


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


def loop_active(h, min_variance_fraction):
    c = loop_cov(h)
    total = sum(c[i, i] for i in range(h.shape[1]))
    return [
        len(set(h[:, i].tolist())) > 1 and c[i, i] >= min_variance_fraction * total
        for i in range(h.shape[1])
    ]


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


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.3])
def test_active_units_match_a_loop_and_define_the_units_of_mapc(fraction):
    rng = np.random.default_rng(5)
    h = rng.normal(size=(40, 7)) * np.array([3.0, 1.0, 0.3, 0.1, 0.02, 0.0, 1.5])
    h[:, 5] = 0.7  # a constant unit is never active
    expected = loop_active(h, fraction)
    assert active_unit_mask(h, fraction).tolist() == expected
    assert active_units(h, fraction) == sum(expected)
    assert mapc(h, fraction) == pytest.approx(mapc(h[:, expected]), rel=1e-12)


def test_active_units_degenerate_and_bad_arguments():
    assert active_units(np.ones((5, 3))) == 0
    assert active_units(np.eye(4)) == 4
    with pytest.raises(ValueError, match="min_variance_fraction"):
        active_units(np.eye(4), -0.1)
    with pytest.raises(ValueError, match="at least 2 samples"):
        active_unit_mask(np.ones((1, 3)))
