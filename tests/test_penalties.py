"""Every penalty against an independent NumPy loop, plus the edge cases."""

import keras
import numpy as np
import pytest
from helpers import (
    FLOAT64,
    compiled,
    count_row_block_runs,
    count_row_blocks,
    numpy,
    rtol,
    value_and_grad,
)
from keras import ops

from keras_disentangle import _blocks, penalties

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
    np.testing.assert_allclose(got, ref_kernel_kl_margin(w, margin), rtol=rtol())


@pytest.mark.parametrize("shape", [(5, 4), (9, 15), (6, 3, 4)])
@pytest.mark.parametrize("margin", [0.1, 1.0, 10.0])
def test_activity_kl_margin_unlabelled_matches_numpy(shape, margin):
    h = RNG.normal(scale=2.0, size=shape)
    got = value(penalties.activity_kl_margin(h, margin))
    np.testing.assert_allclose(got, ref_activity_kl_margin(h, margin), rtol=rtol())


@pytest.mark.parametrize("n_classes", [1, 2, 10])
@pytest.mark.parametrize("one_hot", [False, True])
def test_activity_kl_margin_labelled_matches_numpy(n_classes, one_hot):
    h = RNG.normal(scale=2.0, size=(16, 6))
    labels = RNG.integers(0, n_classes, size=16)
    given = np.eye(n_classes)[labels] if one_hot and n_classes > 1 else labels
    got = value(penalties.activity_kl_margin(h, 1.0, labels=given))
    np.testing.assert_allclose(got, ref_activity_kl_margin(h, 1.0, labels), rtol=rtol())


def test_activity_kl_margin_accepts_column_labels():
    h = RNG.normal(size=(8, 4))
    labels = RNG.integers(0, 3, size=8)
    a = value(penalties.activity_kl_margin(h, 1.0, labels=labels[:, None]))
    b = value(penalties.activity_kl_margin(h, 1.0, labels=labels))
    assert a == pytest.approx(b)


@pytest.fixture
def small_cpu_blocks(monkeypatch):
    """Column slices of 3 x 4 elements, so every pairwise test below is cut
    into several slices (slices are only taken on the CPU)."""
    monkeypatch.setattr(penalties, "_CPU_BLOCK_ELEMENTS", 12)
    monkeypatch.setattr(penalties, "computes_on_cpu", lambda x=None: True)
    assert len(penalties._column_slices(10, 10, True)) == 10
    assert penalties._column_slices(10, 10, False) == [None]
    assert penalties._column_slices(None, 10, True) == [None]


def test_column_slices_give_the_same_sums(small_cpu_blocks):
    h = RNG.normal(scale=2.0, size=(10, 5))
    labels = RNG.integers(0, 3, size=10)
    weights = RNG.random(10)
    np.testing.assert_allclose(
        value(penalties.activity_kl_margin(h, 1.0)),
        ref_activity_kl_margin(h, 1.0),
        rtol=rtol(),
    )
    np.testing.assert_allclose(
        value(penalties.activity_kl_margin(h, 1.0, labels=labels)),
        ref_activity_kl_margin(h, 1.0, labels),
        rtol=rtol(),
    )
    w = RNG.normal(scale=2.0, size=(4, 7))
    np.testing.assert_allclose(
        value(penalties.kernel_kl_margin(w, 0.5)),
        ref_kernel_kl_margin(w, 0.5),
        rtol=rtol(),
    )
    # Sample weights: w_ij = w_i w_j [y_i == y_j], against the same sums in
    # one slice.
    weighted = value(
        penalties.activity_kl_margin(h, 1.0, labels=labels, sample_weight=weights)
    )
    _, g = grad(lambda x: penalties.activity_kl_margin(x, 1.0), h)
    penalties._CPU_BLOCK_ELEMENTS = 10**9
    assert weighted == pytest.approx(
        value(
            penalties.activity_kl_margin(h, 1.0, labels=labels, sample_weight=weights)
        ),
        rel=rtol(1e-12, 1e-6),
    )
    _, g_one = grad(lambda x: penalties.activity_kl_margin(x, 1.0), h)
    np.testing.assert_allclose(g, g_one, rtol=rtol(1e-9, 1e-5), atol=rtol(1e-15, 1e-8))


@pytest.fixture
def small_row_blocks(monkeypatch):
    """The bounded loop (``_blocks.fused_row_blocks``) for every pair block
    over 12 elements, in blocks of 30 pairs: 3 rows of 10 columns, so 10
    rows make 4 blocks, the last one padded with 2 rows. Returns the list of
    the blocked passes' rows per block, filled as they run."""
    monkeypatch.setattr(penalties, "_CPU_BLOCK_ELEMENTS", 30)
    monkeypatch.setattr(penalties, "_DEVICE_BLOCK_ELEMENTS", 30)
    calls = count_row_blocks(monkeypatch, 12)
    assert _blocks.rows_per_block(10, 10, 30) == 3
    assert _blocks.rows_per_block(3, 4, 30) is None  # 12 pairs: one block
    assert _blocks.rows_per_block(None, 10, 30) is None  # size known at run time
    yield calls
    assert calls, "the blocked loop never ran"


def _one_block(monkeypatch):
    monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 10**9)
    monkeypatch.setattr(penalties, "_CPU_BLOCK_ELEMENTS", 10**9)


def test_row_blocks_match_numpy_and_one_block(small_row_blocks, monkeypatch):
    rng = np.random.default_rng(7)  # its own draws, whatever the test order
    h = rng.normal(scale=2.0, size=(10, 5))
    labels = rng.integers(0, 3, size=10)
    weights = rng.random(10) * (rng.random(10) > 0.2)
    w = rng.normal(scale=2.0, size=(4, 7))  # 7 units: blocks of 4 rows, 1 padded
    calls = {
        "unlabelled": lambda x: penalties.activity_kl_margin(x, 1.0),
        "labelled": lambda x: penalties.activity_kl_margin(x, 1.0, labels=labels),
        "weighted": lambda x: penalties.activity_kl_margin(
            x, 1.0, labels=labels, sample_weight=weights, unlabelled=2
        ),
        "kernel": lambda x: penalties.kernel_kl_margin(x, 0.5),
    }
    inputs = {"unlabelled": h, "labelled": h, "weighted": h, "kernel": w}
    blocked = {k: value_and_grad(f, inputs[k]) for k, f in calls.items()}
    traced = {
        k: value(compiled(f)(ops.convert_to_tensor(inputs[k])))
        for k, f in calls.items()
    }
    np.testing.assert_allclose(
        blocked["unlabelled"][0], ref_activity_kl_margin(h, 1.0), rtol=rtol()
    )
    np.testing.assert_allclose(
        blocked["labelled"][0], ref_activity_kl_margin(h, 1.0, labels), rtol=rtol()
    )
    np.testing.assert_allclose(
        blocked["kernel"][0], ref_kernel_kl_margin(w, 0.5), rtol=rtol()
    )
    _one_block(monkeypatch)
    for name, f in calls.items():
        v, g = value_and_grad(f, inputs[name])
        assert blocked[name][0] == pytest.approx(v, rel=rtol(1e-12, 1e-6)), name
        assert traced[name] == pytest.approx(v, rel=rtol(1e-12, 1e-6)), name
        # float32: a gradient that is 0 in one order of the sums may be a
        # rounding error (1e-8) in the other, so the absolute tolerance is
        # relative to the largest entry.
        scale = np.abs(g).max()
        np.testing.assert_allclose(
            blocked[name][1], g, rtol=rtol(1e-9, 1e-5), atol=rtol(1e-15, 1e-6) * scale
        )
        assert np.abs(g).max() > 0, name  # the gradients compared are not 0


def test_row_blocks_in_a_training_step(small_row_blocks, monkeypatch):
    """One ``fit`` step (compiled as Keras compiles it) moves the weights as
    with one block."""
    from keras_disentangle import regularizers

    rng = np.random.default_rng(8)
    x = rng.normal(size=(10, 4)).astype("float32")
    y = rng.normal(size=(10, 1)).astype("float32")

    def step():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(
                    6, activity_regularizer=regularizers.ActivityKLMargin(1.0, 1.0)
                ),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.SGD(0.1), "mse")
        before = [numpy(v) for v in model.trainable_variables]
        model.fit(x, y, batch_size=10, epochs=1, verbose=0)
        after = model.trainable_variables
        return [numpy(v) - b for v, b in zip(after, before, strict=True)]

    blocked = step()
    _one_block(monkeypatch)
    for a, b in zip(blocked, step(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    assert np.abs(blocked[0]).max() > 0


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="only TensorFlow traces with sizes unknown until run time",
)
@pytest.mark.parametrize("case", ["unlabelled", "labelled", "weighted"])
def test_row_blocks_with_a_batch_size_known_at_run_time(
    small_row_blocks, monkeypatch, case
):
    """A ``tf.function`` traced with a ``None`` batch (a replica's slice, a
    retraced last batch) chooses at run time: 10 rows in blocks of 3, 3
    rows (9 pairs) as one block; value and gradient as one block."""
    import tensorflow as tf

    runs = count_row_block_runs(monkeypatch)

    def f(h, labels, weights):
        if case == "unlabelled":
            return penalties.activity_kl_margin(h, 1.0)
        if case == "labelled":
            return penalties.activity_kl_margin(h, 1.0, labels=labels)
        return penalties.activity_kl_margin(
            h, 1.0, labels=labels, sample_weight=weights, unlabelled=2
        )

    specs = [
        tf.TensorSpec(s, d)
        for s, d in [((None, 5), "float64"), ((None,), "int32"), ((None,), "float64")]
    ]

    @tf.function(input_signature=specs)
    def step(h, labels, weights):
        with tf.GradientTape() as tape:
            tape.watch(h)
            value = f(h, labels, weights)
        return value, tape.gradient(value, h)

    rng = np.random.default_rng(12)
    for n in (10, 3):
        h = rng.normal(scale=2.0, size=(n, 5))
        labels = rng.integers(0, 3, size=n).astype("int32")
        weights = rng.random(n)
        before = int(runs.numpy())
        value, grad = (x.numpy() for x in step(h, labels, weights))
        assert int(runs.numpy()) - before == int(n == 10), n
        monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 10**9)
        want = value_and_grad(lambda x, a=labels, w=weights: f(x, a, w), h)
        monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 12)
        assert value == pytest.approx(float(want[0]), rel=1e-12), n
        np.testing.assert_allclose(grad, want[1], rtol=1e-9, atol=1e-15)
    assert small_row_blocks and not isinstance(small_row_blocks[-1], int)


class _OneReplica:
    """Collectives of one replica (``sum`` and ``gather`` are identities):
    the synchronized code path, its gathered columns a separate tensor."""

    def sum(self, x):
        return x

    def gather(self, x):
        return ops.concatenate([x[:0], x], axis=0)


def test_row_blocks_through_collectives(small_row_blocks, monkeypatch):
    """The synchronized path (rows against all-gathered columns, their
    labels and weights gathered too) in row blocks, against one block."""
    rng = np.random.default_rng(10)
    h = rng.normal(scale=2.0, size=(10, 5))
    labels = rng.integers(0, 3, size=10)
    weights = rng.random(10)

    def f(x):
        return penalties.activity_kl_margin(
            x, 1.0, labels=labels, sample_weight=weights, collectives=_OneReplica()
        )

    blocked = value_and_grad(f, h)
    _one_block(monkeypatch)
    v, g = value_and_grad(f, h)
    assert blocked[0] == pytest.approx(v, rel=rtol(1e-12, 1e-6))
    scale = np.abs(g).max()
    np.testing.assert_allclose(
        blocked[1], g, rtol=rtol(1e-9, 1e-5), atol=rtol(1e-15, 1e-6) * scale
    )
    assert v == pytest.approx(
        value(
            penalties.activity_kl_margin(h, 1.0, labels=labels, sample_weight=weights)
        ),
        rel=rtol(1e-12, 1e-6),
    )


def test_fused_row_blocks_matches_numpy_loop():
    """The block loop against a NumPy loop over the pairs: value, statistic
    and both gradients, for columns with a trailing axis (scores n x M x L)."""
    rng = np.random.default_rng(9)
    rows = rng.normal(size=(7, 3))
    columns = rng.normal(size=(5, 2, 3))
    weights = rng.random(7)

    def block(scores, valid, start, row_part, column_part):
        (w,) = row_part
        w = ops.reshape(w * valid, (-1, 1, 1))
        return ops.stack([ops.sum(ops.square(scores) * w), ops.sum(valid)]), (
            2.0 * scores * w
        )

    def run(r, c):
        return _blocks.fused_row_blocks(
            block,
            r,
            c,
            rows_per_block=3,
            n_values=2,
            row_data=(ops.convert_to_tensor(weights, dtype=r.dtype),),
        )

    flat = np.concatenate([rows.ravel(), columns.ravel()])

    def total(x):
        return run(ops.reshape(x[:21], (7, 3)), ops.reshape(x[21:], (5, 2, 3)))[0]

    got_value, got_grad = value_and_grad(total, flat)
    stats = numpy(run(ops.convert_to_tensor(rows), ops.convert_to_tensor(columns)))
    want, d_rows, d_columns = 0.0, np.zeros_like(rows), np.zeros_like(columns)
    for i in range(7):
        for j in range(5):
            for p in range(2):
                score = sum(rows[i, u] * columns[j, p, u] for u in range(3))
                want += weights[i] * score**2
                d_rows[i] += weights[i] * 2 * score * columns[j, p]
                d_columns[j, p] += weights[i] * 2 * score * rows[i]
    np.testing.assert_allclose(got_value, want, rtol=rtol())
    assert stats[1] == pytest.approx(7.0)  # padded rows are not counted
    want_grad = np.concatenate([d_rows.ravel(), d_columns.ravel()])
    np.testing.assert_allclose(
        got_grad,
        want_grad,
        rtol=rtol(),
        atol=rtol(1e-12, 1e-6) * np.abs(want_grad).max(),  # float32 sums
    )


@pytest.mark.parametrize("shape", [(2, 3), (10, 4), (7, 2, 3)])
def test_covariance_penalties_match_numpy(shape):
    h = RNG.normal(size=shape)
    y = RNG.normal(size=(shape[0], 2))
    np.testing.assert_allclose(value(penalties.decov(h)), ref_decov(h), rtol=rtol())
    np.testing.assert_allclose(
        value(penalties.covariance_l1(h)), ref_covariance_l1(h), rtol=rtol()
    )
    np.testing.assert_allclose(value(penalties.xcov(y, h)), ref_xcov(y, h), rtol=rtol())


def test_pairwise_kl_matches_numpy():
    x = RNG.normal(scale=3.0, size=(6, 5))
    got = numpy(penalties.pairwise_kl(x))
    s = [np_softmax(r) for r in x]
    want = np.array([[np_kl(s[i], s[j]) for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(got, want, rtol=rtol(), atol=rtol(1e-12, 1e-6))


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
    return value_and_grad(fn, x)


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
    eps = rtol(1e-6, 1e-2)  # float32 backends: a wider step
    for idx in [(0, 0), (2, 3), (4, 1)]:
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (value(fn(up)) - value(fn(down))) / (2 * eps)
        assert g[idx] == pytest.approx(fd, rel=rtol(1e-4, 5e-2), abs=rtol(1e-8, 1e-3))


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


@pytest.mark.backends("tensorflow", reason="tf.function with an input signature")
@pytest.mark.parametrize("name", BATCH_STATISTICS)
def test_jit_compile_with_unknown_batch(name):
    import tensorflow as tf

    fn = tf.function(
        ALL[name],
        input_signature=[tf.TensorSpec((None, 5), tf.float32)],
        jit_compile=True,
    )
    for n in (3, 9):
        x = RNG.normal(size=(n, 5)).astype("float32")
        assert float(fn(x)) == pytest.approx(value(ALL[name](x)), rel=1e-5)


def test_kernel_kl_margin_jit_compile():
    fn = compiled(ALL["kernel_kl_margin"])
    w = RNG.normal(size=(6, 4)).astype("float32")
    assert float(fn(w)) == pytest.approx(value(ALL["kernel_kl_margin"](w)), rel=1e-5)


@pytest.mark.backends("tensorflow", reason="tf.function with an input signature")
def test_rank3_unknown_batch_in_graph():
    import tensorflow as tf

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


# --------------------------------------------- several devices: no strategy
class _OneReplica:
    """Collectives of a single replica: what the maths see on one device."""

    size = 1

    def sum(self, x):
        return x

    def gather(self, x):
        return x


@pytest.mark.parametrize("name", ["decov", "covariance_l1", "xcov", "kl", "kl_labels"])
def test_one_replica_collectives_give_the_plain_value(name):
    h = RNG.normal(size=(9, 4))
    labels = RNG.integers(0, 2, size=9)
    fns = {
        "decov": lambda c: penalties.decov(h, collectives=c),
        "covariance_l1": lambda c: penalties.covariance_l1(h, collectives=c),
        "xcov": lambda c: penalties.xcov(h[:, :2], h, collectives=c),
        "kl": lambda c: penalties.activity_kl_margin(h, 1.0, collectives=c),
        "kl_labels": lambda c: penalties.activity_kl_margin(
            h, 1.0, labels=labels, collectives=c
        ),
    }
    assert value(fns[name](_OneReplica())) == pytest.approx(value(fns[name](None)))


@pytest.mark.parametrize("fn", [penalties.decov, penalties.covariance_l1])
def test_empty_batch_is_finite(fn):
    assert value(fn(np.zeros((0, 3)))) == 0.0
    assert value(penalties.activity_kl_margin(np.zeros((0, 3)), 1.0)) == 0.0


def test_covariance_from_statistics_matches_numpy():
    # Its own generator: the module's RNG is drawn in an order that depends
    # on which tests a pytest-xdist worker ran before.
    h = np.random.default_rng(11).normal(size=(7, 3))
    count, (hc,) = penalties.batch_moments(ops.convert_to_tensor(h))
    gram = ops.matmul(ops.transpose(hc), hc)
    got = numpy(penalties.covariance_from_statistics(count, gram, ddof=1))
    # float32 backends: an entry near 0 carries the absolute error of a sum
    # of O(1) terms, so it is compared with an absolute tolerance as well.
    np.testing.assert_allclose(
        got, np.cov(h, rowvar=False), rtol=rtol(), atol=0.0 if FLOAT64 else 1e-6
    )


# ------------------------------------------------------ conv feature maps
@pytest.mark.parametrize("name", ["decov", "covariance_l1"])
def test_channels_treats_positions_as_samples(name):
    fn = getattr(penalties, name)
    h = RNG.normal(size=(3, 4, 5, 6))
    got = value(fn(h, features="channels"))
    want = value(fn(h.reshape(-1, 6)))
    assert got == pytest.approx(want, rel=rtol())
    assert got != pytest.approx(value(fn(h)), rel=1e-3)  # flatten differs


def test_xcov_channels_repeats_predictions_at_every_position():
    h = RNG.normal(size=(4, 2, 3, 5))
    y = RNG.normal(size=(4, 2))
    got = value(penalties.xcov(y, h, features="channels"))
    want = ref_xcov(np.repeat(y, 6, axis=0), h.reshape(-1, 5))
    assert got == pytest.approx(want, rel=rtol())


def test_flattened_feature_map_too_large_raises_before_allocating():
    h = np.zeros((2, 32, 32, 64), "float32")  # 65,536 features
    with pytest.raises(ValueError, match="features='channels'"):
        penalties.decov(h)
    with pytest.raises(ValueError, match="features='channels'"):
        penalties.xcov(np.zeros((2, 1)), h)
    with pytest.raises(ValueError, match="at most 8192 features"):
        penalties.covariance_l1(np.zeros((2, penalties.MAX_COVARIANCE_FEATURES + 1)))
    assert value(penalties.decov(h, features="channels")) == 0.0
    with pytest.raises(ValueError, match="argument features"):
        penalties.decov(h, features="pixels")


# ------------------------------------- labels, weights and unlabelled samples
def test_sample_weight_zero_and_unlabelled_leave_samples_out():
    h = RNG.normal(size=(10, 4))
    labels = np.array([0, 0, 1, 1, -1, 2, 2, 0, -1, 1])
    weights = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 1], "float32")
    keep = (labels != -1) & (weights > 0)
    got = value(
        penalties.activity_kl_margin(
            h, 1.0, labels=labels, sample_weight=weights, unlabelled=-1
        )
    )
    want = ref_activity_kl_margin(h[keep], 1.0, labels[keep])
    assert got == pytest.approx(want, rel=rtol())
    # Without `unlabelled`, -1 is a class of its own.
    assert value(penalties.activity_kl_margin(h, 1.0, labels=labels)) == pytest.approx(
        ref_activity_kl_margin(h, 1.0, labels), rel=rtol()
    )


def test_real_sample_weights_weight_each_pair():
    h = RNG.normal(size=(6, 3))
    w = RNG.uniform(0.1, 2.0, size=6)
    s = [np_softmax(r) for r in h]
    total = sum(
        w[i] * w[j] * (max(0, 1 - np_kl(s[i], s[j])) + max(0, 1 - np_kl(s[j], s[i])))
        for i in range(6)
        for j in range(6)
    )
    want = total / (w.sum() ** 2)
    got = value(penalties.activity_kl_margin(h, 1.0, sample_weight=w))
    assert got == pytest.approx(want, rel=rtol())


def test_every_sample_left_out_gives_zero():
    h = RNG.normal(size=(4, 3))
    got = penalties.activity_kl_margin(h, 1.0, labels=-np.ones(4), unlabelled=-1)
    assert value(got) == 0.0


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([0.0, 1.0, 0.5, 1.0]), "whole-number"),
        (np.array([0.0, 1.0, np.nan, 1.0]), "finite"),
        (np.array([0, 1, 1]), "one entry per sample"),
    ],
)
def test_bad_labels_raise_naming_the_argument(labels, match):
    with pytest.raises(ValueError, match=f"argument labels.*{match}|{match}"):
        penalties.activity_kl_margin(RNG.normal(size=(4, 3)), 1.0, labels=labels)


def test_fractional_labels_in_a_compiled_step_give_nan_not_rounding():
    h = RNG.normal(size=(4, 3)).astype("float32")
    fn = compiled(lambda labels: penalties.activity_kl_margin(h, 1.0, labels=labels))
    fractional = np.array([0.0, 1.0, 0.5, 1.0], "float32")
    if keras.backend.backend() == "torch":  # eager: the values are checked
        with pytest.raises(ValueError, match="whole-number"):
            fn(fractional)
    else:
        assert np.isnan(value(fn(fractional)))
    assert np.isfinite(value(fn(np.array([0.0, 1.0, 1.0, 1.0], "float32"))))


def test_one_feature_raises():
    with pytest.raises(ValueError, match="at least 2 features"):
        penalties.activity_kl_margin(np.ones((4, 1)), 1.0)
    with pytest.raises(ValueError, match="at least 2 features"):
        penalties.activity_kl_margin(np.ones((4,)), 1.0, labels=np.zeros(4))


# ---------------------------------------------------------- centroid distances
def test_min_centroid_distance_exact_on_centroids_at_large_norms():
    c = RNG.normal(size=(4, 6)) * 1e3
    for dtype in ("float32", "float64"):
        got = value(penalties.min_centroid_distance(c[[0, 2, 3]].astype(dtype), c))
        assert got == 0.0
