"""keras_disentangle.information against independent NumPy loops."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle import information as info


def _softmax_rows(rng, n, k):
    z = rng.normal(scale=2.0, size=(n, k))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _bits(rng, n, k):
    return 1.0 / (1.0 + np.exp(-rng.normal(scale=2.0, size=(n, k))))


def _h(dist):
    return -sum(v * math.log(v) for v in dist if v > 0)


def _np(x):
    return keras.ops.convert_to_numpy(x)


SHAPES = [(1, 2), (5, 3), (17, 10), (64, 4)]


@pytest.mark.parametrize("n,k", SHAPES)
def test_categorical_entropies(n, k):
    p = _softmax_rows(np.random.default_rng(n * 100 + k), n, k)
    per_row = [_h(row) for row in p]
    mean_row = [sum(p[i, j] for i in range(n)) / n for j in range(k)]
    np.testing.assert_allclose(_np(info.entropy(p)), per_row, rtol=1e-10)
    np.testing.assert_allclose(
        float(info.conditional_entropy(p)), sum(per_row) / n, rtol=1e-10
    )
    np.testing.assert_allclose(
        float(info.marginal_entropy(p)), _h(mean_row), rtol=1e-10
    )


@pytest.mark.parametrize("n,k", SHAPES)
def test_bit_entropies(n, k):
    p = _bits(np.random.default_rng(n * 7 + k), n, k)
    cond = sum(_h([p[i, j], 1 - p[i, j]]) for i in range(n) for j in range(k)) / n
    marg = 0.0
    for j in range(k):
        m = sum(p[i, j] for i in range(n)) / n
        marg += _h([m, 1 - m])
    np.testing.assert_allclose(float(info.bit_conditional_entropy(p)), cond, rtol=1e-10)
    np.testing.assert_allclose(float(info.bit_marginal_entropy(p)), marg, rtol=1e-10)
    np.testing.assert_allclose(
        _np(info.bernoulli_entropy(p[0])),
        [_h([v, 1 - v]) for v in p[0]],
        rtol=1e-10,
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
        float(info.bit_pair_mutual_information(p)), _pair_mi_loop(p), atol=1e-12
    )


def test_bit_pair_mutual_information_bounds():
    rng = np.random.default_rng(0)
    independent = (rng.random((4000, 2)) > 0.5).astype("float64")
    copies = np.repeat(independent[:, :1], 3, axis=1)  # 3 pairs of equal bits
    assert float(info.bit_pair_mutual_information(independent)) < 1e-3
    np.testing.assert_allclose(
        float(info.bit_pair_mutual_information(copies)),
        3 * _h([copies[:, 0].mean(), 1 - copies[:, 0].mean()]),
        rtol=1e-9,
    )


@pytest.mark.parametrize("n,k", SHAPES)
def test_kl_divergences(n, k):
    rng = np.random.default_rng(n + k)
    p, q = _softmax_rows(rng, n, k), _softmax_rows(rng, n, k)
    loop = [
        sum(p[i, j] * math.log(p[i, j] / q[i, j]) for j in range(k)) for i in range(n)
    ]
    np.testing.assert_allclose(_np(info.categorical_kl(p, q)), loop, rtol=1e-9)
    np.testing.assert_allclose(_np(info.categorical_kl(p, p)), 0.0, atol=1e-12)
    b, c = _bits(rng, n, k), _bits(rng, n, k)
    loop = [
        sum(
            b[i, j] * math.log(b[i, j] / c[i, j])
            + (1 - b[i, j]) * math.log((1 - b[i, j]) / (1 - c[i, j]))
            for j in range(k)
        )
        for i in range(n)
    ]
    np.testing.assert_allclose(_np(info.bernoulli_kl(b, c)), loop, rtol=1e-9)


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
    logits = tf.Variable(rng.normal(size=(8, 5)).astype("float32"))
    with tf.GradientTape() as tape:
        p = tf.nn.softmax(logits)
        b = tf.nn.sigmoid(logits)
        total = (
            info.conditional_entropy(p)
            - info.marginal_entropy(p)
            + info.bit_conditional_entropy(b)
            - info.bit_marginal_entropy(b)
            + info.bit_pair_mutual_information(b)
            + tf.reduce_mean(info.categorical_kl(tf.stop_gradient(p), p[::-1]))
            + tf.reduce_mean(info.bernoulli_kl(tf.stop_gradient(b), b[::-1]))
        )
    grad = tape.gradient(total, logits)
    assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0)


def test_half_precision_is_computed_in_float32():
    p = np.full((4, 2), 0.5, dtype="float16")
    assert str(info.marginal_entropy(p).dtype) in ("float32", "<dtype: 'float32'>")


def test_bad_rank_raises():
    with pytest.raises(ValueError, match="argument p"):
        info.conditional_entropy(np.ones(3))
    with pytest.raises(ValueError, match="argument p"):
        info.bit_pair_mutual_information(np.ones((2, 2, 2)))
