"""Every penalty against an independent NumPy loop, plus the edge cases."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_disentangle import penalties

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- references
def np_softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def np_kl(p, q):
    return sum(p[k] * (np.log(p[k]) - np.log(q[k])) for k in range(len(p)))


def ref_kernel_kl_margin(w, m):
    w = w.reshape(-1, w.shape[-1])
    units = w.shape[1]
    d = [np_softmax(w[:, k]) for k in range(units)]
    total = 0.0
    for i in range(units):
        for j in range(i + 1, units):
            total += max(0.0, m - np_kl(d[i], d[j])) + max(0.0, m - np_kl(d[j], d[i]))
    return total


def ref_activity_kl_margin(h, m, labels=None):
    h = h.reshape(h.shape[0], -1)
    n = h.shape[0]
    s = [np_softmax(h[i]) for i in range(n)]
    total, pairs = 0.0, 0
    for i in range(n):
        for j in range(n):
            if labels is not None and labels[i] != labels[j]:
                continue
            total += max(0.0, m - np_kl(s[i], s[j])) + max(0.0, m - np_kl(s[j], s[i]))
            pairs += 1
    return total / pairs


def ref_cov(a, b, denominator):
    a = a.reshape(a.shape[0], -1)
    b = b.reshape(b.shape[0], -1)
    n = a.shape[0]
    ma, mb = a.mean(0), b.mean(0)
    c = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for j in range(b.shape[1]):
            c[i, j] = sum((a[k, i] - ma[i]) * (b[k, j] - mb[j]) for k in range(n))
    return c / denominator


def ref_decov(h):
    c = ref_cov(h, h, h.shape[0])
    return 0.5 * sum(
        c[i, j] ** 2 for i in range(len(c)) for j in range(len(c)) if i != j
    )


def ref_xcov(y, h):
    c = ref_cov(y, h, y.shape[0])
    return 0.5 * float((c**2).sum())


def ref_covariance_l1(h):
    c = ref_cov(h, h, max(h.shape[0] - 1, 1))
    return np.abs(c).sum() / c.size


def value(x):
    return float(ops.convert_to_numpy(x))


# ------------------------------------------------------------ against NumPy
@pytest.mark.parametrize("shape", [(4, 3), (7, 5), (3, 3, 6), (2, 2, 3, 4)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 5.0])
def test_kernel_kl_margin_matches_numpy(shape, margin):
    w = RNG.normal(scale=2.0, size=shape)
    got = value(penalties.kernel_kl_margin(w, margin))
    np.testing.assert_allclose(got, ref_kernel_kl_margin(w, margin), rtol=1e-9)


@pytest.mark.parametrize("shape", [(5, 4), (9, 15), (6, 3, 4)])
@pytest.mark.parametrize("margin", [0.1, 1.0, 10.0])
def test_activity_kl_margin_unlabelled_matches_numpy(shape, margin):
    h = RNG.normal(scale=2.0, size=shape)
    got = value(penalties.activity_kl_margin(h, margin))
    np.testing.assert_allclose(got, ref_activity_kl_margin(h, margin), rtol=1e-9)


@pytest.mark.parametrize("n_classes", [1, 2, 10])
@pytest.mark.parametrize("one_hot", [False, True])
def test_activity_kl_margin_labelled_matches_numpy(n_classes, one_hot):
    h = RNG.normal(scale=2.0, size=(16, 6))
    labels = RNG.integers(0, n_classes, size=16)
    given = np.eye(n_classes)[labels] if one_hot and n_classes > 1 else labels
    got = value(penalties.activity_kl_margin(h, 1.0, labels=given))
    np.testing.assert_allclose(got, ref_activity_kl_margin(h, 1.0, labels), rtol=1e-9)


def test_activity_kl_margin_accepts_column_labels():
    h = RNG.normal(size=(8, 4))
    labels = RNG.integers(0, 3, size=8)
    a = value(penalties.activity_kl_margin(h, 1.0, labels=labels[:, None]))
    b = value(penalties.activity_kl_margin(h, 1.0, labels=labels))
    assert a == pytest.approx(b)


@pytest.mark.parametrize("shape", [(2, 3), (10, 4), (7, 2, 3)])
def test_covariance_penalties_match_numpy(shape):
    h = RNG.normal(size=shape)
    y = RNG.normal(size=(shape[0], 2))
    np.testing.assert_allclose(value(penalties.decov(h)), ref_decov(h), rtol=1e-9)
    np.testing.assert_allclose(
        value(penalties.covariance_l1(h)), ref_covariance_l1(h), rtol=1e-9
    )
    np.testing.assert_allclose(value(penalties.xcov(y, h)), ref_xcov(y, h), rtol=1e-9)


def test_pairwise_kl_matches_numpy():
    x = RNG.normal(scale=3.0, size=(6, 5))
    got = ops.convert_to_numpy(penalties.pairwise_kl(x))
    s = [np_softmax(r) for r in x]
    want = np.array([[np_kl(s[i], s[j]) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ gradients
ALL = {
    "kernel_kl_margin": lambda x: penalties.kernel_kl_margin(x, 1.0),
    "activity_kl_margin": lambda x: penalties.activity_kl_margin(x, 1.0),
    "activity_kl_margin_labels": lambda x: penalties.activity_kl_margin(
        x, 1.0, labels=ops.arange(ops.shape(x)[0]) % 2
    ),
    "decov": penalties.decov,
    "covariance_l1": penalties.covariance_l1,
    "xcov": lambda x: penalties.xcov(x[:, :2], x),
}


def grad(fn, x):
    x = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = fn(x)
    return out.numpy(), tape.gradient(out, x).numpy()


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_values_and_gradients_finite(name, scale):
    x = RNG.normal(size=(8, 5)) * scale
    out, g = grad(ALL[name], x.astype("float32"))
    assert np.isfinite(out)
    assert np.all(np.isfinite(g))


def test_gradient_matches_finite_differences():
    x = RNG.normal(size=(5, 4))
    fn = ALL["activity_kl_margin"]
    _, g = grad(fn, x)
    eps = 1e-6
    for idx in [(0, 0), (2, 3), (4, 1)]:
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (value(fn(up)) - value(fn(down))) / (2 * eps)
        assert g[idx] == pytest.approx(fd, rel=1e-4, abs=1e-8)


# ----------------------------------------------------------------- edge cases
@pytest.mark.parametrize("fn", [penalties.decov, penalties.covariance_l1])
def test_batch_of_one_gives_zero(fn):
    assert value(fn(np.ones((1, 5)))) == 0.0
    assert value(penalties.xcov(np.ones((1, 2)), np.ones((1, 5)))) == 0.0


def test_no_shared_labels_gives_diagonal_terms_only():
    h = RNG.normal(size=(5, 4))
    labels = np.arange(5)
    # Only the N diagonal pairs are summed, each 2m, over N pairs: 2m.
    assert value(penalties.activity_kl_margin(h, 0.7, labels=labels)) == pytest.approx(
        1.4
    )


def test_large_logits_finite():
    h = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]])
    assert np.isfinite(value(penalties.activity_kl_margin(h, 1.0)))
    assert np.isfinite(value(penalties.kernel_kl_margin(h, 1.0)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", sorted(ALL))
def test_half_precision_computed_in_float32(dtype, name):
    x = RNG.normal(size=(8, 5)).astype("float32")
    half = ops.cast(x, dtype)
    reference = ALL[name](ops.cast(half, "float32"))  # same rounded inputs
    out = ALL[name](half)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    assert value(out) == pytest.approx(value(reference), rel=1e-5, abs=1e-6)


BATCH_STATISTICS = sorted(set(ALL) - {"kernel_kl_margin"})


@pytest.mark.parametrize("name", BATCH_STATISTICS)
def test_jit_compile_with_unknown_batch(name):
    fn = tf.function(
        ALL[name],
        input_signature=[tf.TensorSpec((None, 5), tf.float32)],
        jit_compile=True,
    )
    for n in (3, 9):
        x = RNG.normal(size=(n, 5)).astype("float32")
        assert float(fn(x)) == pytest.approx(value(ALL[name](x)), rel=1e-5)


def test_kernel_kl_margin_jit_compile():
    fn = tf.function(ALL["kernel_kl_margin"], jit_compile=True)
    w = RNG.normal(size=(6, 4)).astype("float32")
    assert float(fn(w)) == pytest.approx(value(ALL["kernel_kl_margin"](w)), rel=1e-5)


def test_rank3_unknown_batch_in_graph():
    fn = tf.function(
        penalties.covariance_l1,
        input_signature=[tf.TensorSpec((None, 3, 4), tf.float32)],
    )
    x = RNG.normal(size=(6, 3, 4)).astype("float32")
    assert float(fn(x)) == pytest.approx(value(penalties.covariance_l1(x)), rel=1e-5)


# ------------------------------------------------------------------ bad input
def test_bad_margin_and_shapes():
    with pytest.raises(ValueError, match="margin"):
        penalties.activity_kl_margin(np.ones((3, 2)), -1.0)
    with pytest.raises(ValueError, match="kernel"):
        penalties.kernel_kl_margin(np.ones((3,)), 1.0)
    with pytest.raises(ValueError, match="labels"):
        penalties.activity_kl_margin(np.ones((3, 2)), 1.0, labels=np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match="rank"):
        penalties.decov(np.float32(1.0))


def test_works_on_keras_variables():
    w = keras.Variable(RNG.normal(size=(4, 3)).astype("float32"))
    assert np.isfinite(value(penalties.kernel_kl_margin(w, 2.0)))
