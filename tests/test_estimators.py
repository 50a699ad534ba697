"""The mutual-information estimators against independent NumPy loops."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle import estimators


def _softplus(t):
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def _pairs(scores):
    """Positive and negative values of a score tensor, by explicit loops."""
    pos, neg = [], []
    n = scores.shape[0]
    for i in range(n):
        for j in range(n):
            for value in np.ravel(scores[i, j]):
                (pos if i == j else neg).append(float(value))
    return pos, neg


def np_jsd(scores):
    pos, neg = _pairs(scores)
    log2 = math.log(2.0)
    e_pos = sum(log2 - _softplus(-t) for t in pos) / len(pos)
    e_neg = sum(_softplus(t) - log2 for t in neg) / len(neg)
    return e_pos - e_neg


def np_dv(scores):
    pos, neg = _pairs(scores)
    return sum(pos) / len(pos) - math.log(sum(math.exp(t) for t in neg) / len(neg))


def np_nce(scores):
    n = scores.shape[0]
    rest = scores.reshape(n, n, -1)
    terms = []
    for i in range(n):
        for p in range(rest.shape[2]):
            denominator = sum(math.exp(rest[i, j, p]) for j in range(n))
            terms.append(rest[i, i, p] - math.log(denominator))
    return sum(terms) / len(terms) + math.log(n)


REFERENCES = {"jsd": np_jsd, "dv": np_dv, "nce": np_nce}
SHAPES = [(2, 2), (5, 5), (4, 4, 3), (3, 3, 2, 2)]


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_loop(name, shape):
    rng = np.random.default_rng(sum(shape))
    scores = rng.normal(scale=3.0, size=shape)
    got = float(estimators.mutual_information(scores, name))
    fn = getattr(estimators, f"{name}_lower_bound")
    assert float(fn(scores)) == pytest.approx(got, abs=1e-12)
    assert got == pytest.approx(REFERENCES[name](scores), rel=1e-9, abs=1e-9)


def test_float64_kept_and_int_cast():
    scores = np.random.default_rng(0).normal(size=(3, 3))
    dtype = keras.backend.standardize_dtype
    assert dtype(estimators.jsd_lower_bound(scores).dtype) == "float64"
    assert (
        dtype(estimators.nce_lower_bound(np.eye(3, dtype="int32")).dtype) == "float32"
    )
    assert (
        dtype(estimators.dv_lower_bound(np.eye(3, dtype="float16")).dtype) == "float32"
    )


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_separating_critic_scores_high_and_constant_scores_zero(name):
    n = 6
    separating = 20.0 * (2.0 * np.eye(n) - 1.0)
    # The best constant critic: JSD's is 0 (its bound at c is
    # 2 log 2 - softplus(c) - softplus(-c)); DV and NCE ignore the constant.
    constant = np.full((n, n), 0.0 if name == "jsd" else 0.7)
    good = float(estimators.mutual_information(separating, name))
    bad = float(estimators.mutual_information(constant, name))
    assert bad == pytest.approx(0.0, abs=1e-6)
    assert good > 1.0
    assert float(estimators.mutual_information(-separating, name)) < -1.0
    if name == "jsd":
        assert good == pytest.approx(2 * math.log(2), abs=1e-6)
    if name == "nce":
        assert good == pytest.approx(math.log(n), abs=1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("magnitude", [1e2, 1e4, 1e30])
def test_finite_values_and_gradients_for_large_scores(name, magnitude):
    rng = np.random.default_rng(1)
    scores = tf.Variable(rng.normal(size=(4, 4, 3)).astype("float32") * magnitude)
    with tf.GradientTape() as tape:
        value = estimators.mutual_information(scores, name)
    gradient = tape.gradient(value, scores)
    assert np.isfinite(float(value)) or name == "dv"
    assert np.all(np.isfinite(gradient.numpy()))
    if magnitude <= 1e4:
        assert np.isfinite(float(value))


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(3, 3, 2))
    for name in REFERENCES:
        scores = tf.Variable(base)
        with tf.GradientTape() as tape:
            value = estimators.mutual_information(scores, name)
        gradient = tape.gradient(value, scores).numpy()
        eps = 1e-6
        index = (0, 1, 1)
        up, down = base.copy(), base.copy()
        up[index] += eps
        down[index] -= eps
        numeric = (REFERENCES[name](up) - REFERENCES[name](down)) / (2 * eps)
        assert gradient[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_graph_mode_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec((None, None, 5), tf.float32)])
    def all_three(scores):
        return [estimators.mutual_information(scores, n) for n in REFERENCES]

    scores = np.random.default_rng(3).normal(size=(4, 4, 5)).astype("float32")
    values = [float(v) for v in all_three(scores)]
    expected = [REFERENCES[n](scores.astype("float64")) for n in REFERENCES]
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="estimator"):
        estimators.mutual_information(np.zeros((2, 2)), "mine")
    with pytest.raises(ValueError, match="scores"):
        estimators.jsd_lower_bound(np.zeros(3))
    with pytest.raises(ValueError, match="scores"):
        estimators.dv_lower_bound(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        estimators.nce_lower_bound(np.zeros((1, 1)))
