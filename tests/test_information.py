"""keras_disentangle.information against independent NumPy loops."""

import math

import keras
import numpy as np
import pytest
from helpers import FLOAT64, numpy, rtol, value_and_grad

from keras_disentangle import information as info

# float64 is exact on TensorFlow only (helpers.FLOAT64); elsewhere Keras
# computes it partly in float32: absolute tolerances of float32 sums.
ATOL = 1e-12 if FLOAT64 else 1e-6


def _softmax_rows(rng, n, k):
    z = rng.normal(scale=2.0, size=(n, k))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _bits(rng, n, k):
    return 1.0 / (1.0 + np.exp(-rng.normal(scale=2.0, size=(n, k))))


def _h(dist):
    return -sum(v * math.log(v) for v in dist if v > 0)


def _np(x):
    return numpy(x)


SHAPES = [(1, 2), (5, 3), (17, 10), (64, 4)]


@pytest.mark.parametrize("n,k", SHAPES)
def test_categorical_entropies(n, k):
    p = _softmax_rows(np.random.default_rng(n * 100 + k), n, k)
    per_row = [_h(row) for row in p]
    mean_row = [sum(p[i, j] for i in range(n)) / n for j in range(k)]
    np.testing.assert_allclose(_np(info.entropy(p)), per_row, rtol=rtol(1e-10))
    np.testing.assert_allclose(
        float(info.conditional_entropy(p)), sum(per_row) / n, rtol=rtol(1e-10)
    )
    np.testing.assert_allclose(
        float(info.marginal_entropy(p)), _h(mean_row), rtol=rtol(1e-10)
    )


@pytest.mark.parametrize("n,k", SHAPES)
def test_bit_entropies(n, k):
    p = _bits(np.random.default_rng(n * 7 + k), n, k)
    cond = sum(_h([p[i, j], 1 - p[i, j]]) for i in range(n) for j in range(k)) / n
    marg = 0.0
    for j in range(k):
        m = sum(p[i, j] for i in range(n)) / n
        marg += _h([m, 1 - m])
    np.testing.assert_allclose(
        float(info.bit_conditional_entropy(p)), cond, rtol=rtol(1e-10)
    )
    np.testing.assert_allclose(
        float(info.bit_marginal_entropy(p)), marg, rtol=rtol(1e-10)
    )
    np.testing.assert_allclose(
        _np(info.bernoulli_entropy(p[0])),
        [_h([v, 1 - v]) for v in p[0]],
        rtol=rtol(1e-10),
    )


def _pair_mi_loop(p):
    n, k = p.shape
    total = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            joint = np.zeros((2, 2))
            for s in range(n):
                pi = (1 - p[s, i], p[s, i])
                pj = (1 - p[s, j], p[s, j])
                for a in (0, 1):
                    for b in (0, 1):
                        joint[a, b] += pi[a] * pj[b] / n
            mi_ = joint.sum(axis=1)
            mj_ = joint.sum(axis=0)
            for a in (0, 1):
                for b in (0, 1):
                    if joint[a, b] > 0:
                        total += joint[a, b] * math.log(joint[a, b] / (mi_[a] * mj_[b]))
    return total


@pytest.mark.parametrize("n,k", [(1, 2), (5, 3), (17, 6), (40, 16)])
def test_bit_pair_mutual_information(n, k):
    p = _bits(np.random.default_rng(n + 31 * k), n, k)
    np.testing.assert_allclose(
        float(info.bit_pair_mutual_information(p)), _pair_mi_loop(p), atol=ATOL
    )
    moments = info.bit_pair_mutual_information_from_moments(p.mean(0), p.T @ p / n)
    np.testing.assert_allclose(float(moments), _pair_mi_loop(p), atol=ATOL)


def test_bit_pair_mutual_information_bounds():
    rng = np.random.default_rng(0)
    independent = (rng.random((4000, 2)) > 0.5).astype("float64")
    copies = np.repeat(independent[:, :1], 3, axis=1)  # 3 pairs of equal bits
    assert float(info.bit_pair_mutual_information(independent)) < 1e-3
    np.testing.assert_allclose(
        float(info.bit_pair_mutual_information(copies)),
        3 * _h([copies[:, 0].mean(), 1 - copies[:, 0].mean()]),
        rtol=rtol(1e-9),
    )


@pytest.mark.parametrize("n,k", SHAPES)
def test_kl_divergences(n, k):
    rng = np.random.default_rng(n + k)
    p, q = _softmax_rows(rng, n, k), _softmax_rows(rng, n, k)
    loop = [
        sum(p[i, j] * math.log(p[i, j] / q[i, j]) for j in range(k)) for i in range(n)
    ]
    np.testing.assert_allclose(_np(info.categorical_kl(p, q)), loop, rtol=rtol(1e-9))
    np.testing.assert_allclose(_np(info.categorical_kl(p, p)), 0.0, atol=ATOL)
    b, c = _bits(rng, n, k), _bits(rng, n, k)
    loop = [
        sum(
            b[i, j] * math.log(b[i, j] / c[i, j])
            + (1 - b[i, j]) * math.log((1 - b[i, j]) / (1 - c[i, j]))
            for j in range(k)
        )
        for i in range(n)
    ]
    np.testing.assert_allclose(_np(info.bernoulli_kl(b, c)), loop, rtol=rtol(1e-9))


def test_saturated_inputs_stay_finite():
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for value in (
        info.conditional_entropy(p),
        info.marginal_entropy(p),
        info.bit_conditional_entropy(p),
        info.bit_marginal_entropy(p),
        info.bit_pair_mutual_information(p),
        info.categorical_kl(p, p[::-1]),
        info.bernoulli_kl(p, p[::-1]),
    ):
        assert np.all(np.isfinite(_np(value)))


def test_gradients_finite():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(8, 5)).astype("float32")
    ops = keras.ops

    def total(z):
        p = ops.softmax(z, axis=-1)
        b = ops.sigmoid(z)
        return (
            info.conditional_entropy(p)
            - info.marginal_entropy(p)
            + info.bit_conditional_entropy(b)
            - info.bit_marginal_entropy(b)
            + info.bit_pair_mutual_information(b)
            + ops.mean(info.categorical_kl(ops.stop_gradient(p), ops.flip(p, axis=0)))
            + ops.mean(info.bernoulli_kl(ops.stop_gradient(b), ops.flip(b, axis=0)))
        )

    value, grad = value_and_grad(total, logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_empty_batches_give_zero_not_nan():
    # an empty replica slice under a distribution strategy
    p = np.zeros((0, 4), dtype="float32")
    for fn in (
        info.conditional_entropy,
        info.marginal_entropy,
        info.bit_conditional_entropy,
        info.bit_marginal_entropy,
        info.bit_pair_mutual_information,
    ):
        assert float(_np(fn(p))) == 0.0, fn.__name__


def test_moments_form_checks_its_shapes():
    with pytest.raises(ValueError, match="argument mean"):
        info.bit_pair_mutual_information_from_moments(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="argument second_moment"):
        info.bit_pair_mutual_information_from_moments(np.ones(3), np.ones((2, 2)))


def test_half_precision_is_computed_in_float32():
    p = np.full((4, 2), 0.5, dtype="float16")
    dtype = info.marginal_entropy(p).dtype
    assert keras.backend.standardize_dtype(dtype) == "float32"


def test_bad_rank_raises():
    with pytest.raises(ValueError, match="argument p"):
        info.conditional_entropy(np.ones(3))
    with pytest.raises(ValueError, match="argument p"):
        info.bit_pair_mutual_information(np.ones((2, 2, 2)))
