"""The mutual-information estimators against independent NumPy loops."""

import math

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

from keras_disentangle import estimators
from keras_disentangle._backend import value_and_gradient


def _softplus(t):
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def _logsumexp(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


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
    return sum(pos) / len(pos) - (_logsumexp(neg) - math.log(len(neg)))


def np_nce_same_position(scores):
    n = scores.shape[0]
    rest = scores.reshape(n, n, -1)
    terms = []
    for i in range(n):
        for p in range(rest.shape[2]):
            candidates = [rest[i, j, p] for j in range(n)]
            terms.append(rest[i, i, p] - _logsumexp(candidates))
    return sum(terms) / len(terms) + math.log(n)


def np_nce_all_positions(scores):
    """rdevon/DIM's infonce_loss: the positive (i, i, p) against every
    position p' of every other image j (its own other positions left out)."""
    n = scores.shape[0]
    rest = scores.reshape(n, n, -1)
    positions = rest.shape[2]
    terms = []
    for i in range(n):
        negatives = [
            rest[i, j, q] for j in range(n) if j != i for q in range(positions)
        ]
        for p in range(positions):
            terms.append(rest[i, i, p] - _logsumexp([rest[i, i, p]] + negatives))
    return sum(terms) / len(terms) + math.log((n - 1) * positions + 1)


REFERENCES = {"jsd": np_jsd, "dv": np_dv, "nce": np_nce_all_positions}
SHAPES = [(2, 2), (5, 5), (4, 4, 3), (3, 3, 2, 2)]


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_numpy_loop(name, shape):
    rng = np.random.default_rng(sum(shape))
    scores = rng.normal(scale=3.0, size=shape)
    got = float(numpy(estimators.mutual_information(scores, name)))
    fn = getattr(estimators, f"{name}_lower_bound")
    assert float(numpy(fn(scores))) == pytest.approx(got, abs=1e-12)
    assert got == pytest.approx(REFERENCES[name](scores), rel=rtol(), abs=rtol())


@pytest.mark.parametrize("shape", SHAPES)
def test_nce_negatives_same_position_matches_numpy_loop(shape):
    scores = np.random.default_rng(len(shape)).normal(scale=2.0, size=shape)
    got = numpy(estimators.nce_lower_bound(scores, negatives="same_position"))
    assert float(got) == pytest.approx(
        np_nce_same_position(scores), rel=rtol(), abs=rtol()
    )
    if len(shape) == 2:  # one position: both forms are the batch InfoNCE
        assert float(got) == pytest.approx(np_nce_all_positions(scores), rel=1e-5)
    else:  # the reference's form differs: more negatives, a larger log K
        assert abs(float(got) - np_nce_all_positions(scores)) > 1e-3


def _block_log_sums(scores, bounds):
    """What each block of rows contributes to DV's gathered log-sum-exp."""
    n, positions = scores.shape[0], scores[0, 0].size
    rest = scores.reshape(n, n, positions)
    log_sums = []
    for lo, hi in bounds:
        negatives = [
            rest[i, j, p]
            for i in range(lo, hi)
            for j in range(n)
            if j != i
            for p in range(positions)
        ]
        log_sums.append(_logsumexp(negatives) if negatives else -1e30)
    return log_sums


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_blocks_of_rows_add_up_to_the_full_estimate(name):
    # Each replica holds its rows against the gathered batch (synchronized
    # DIM): the shares of a partition of the rows add up to the estimate.
    scores = np.random.default_rng(7).normal(scale=2.0, size=(7, 7, 3))
    bounds = [(0, 3), (3, 3), (3, 7)]  # the middle block is empty
    log_sums = _block_log_sums(scores, bounds) if name == "dv" else []

    def gather(x):
        return keras.ops.convert_to_tensor(np.array(log_sums), dtype=x.dtype)

    def sum_of_shares(s):
        total = 0.0
        for lo, hi in bounds:
            total = total + estimators.mutual_information(
                s[lo:hi], name, offset=lo, gather=gather if name == "dv" else None
            )
        return total

    total, grad = value_and_grad(sum_of_shares, scores)
    assert float(total) == pytest.approx(
        REFERENCES[name](scores), rel=rtol(), abs=rtol()
    )
    # The shares' gradients add up to the full estimate's gradient too.
    _, full = value_and_grad(lambda s: estimators.mutual_information(s, name), scores)
    np.testing.assert_allclose(grad, full, rtol=rtol(1e-9, 1e-4), atol=1e-7)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 4), (0, 0, 3), (0, 5, 2)])
def test_no_negatives_gives_zero_and_a_finite_gradient(name, shape):
    # A last batch of one sample (or an empty replica slice) has no negative
    # pair: the estimate is 0, never NaN, and so is its gradient.
    scores = np.random.default_rng(0).normal(size=shape).astype("float32")
    value, grad = value_and_grad(
        lambda s: estimators.mutual_information(s, name), scores
    )
    assert float(value) == 0.0
    assert grad.shape == shape and np.all(grad == 0.0)


def test_float64_kept_and_int_and_half_cast():
    scores = np.random.default_rng(0).normal(size=(3, 3))
    dtype = keras.backend.standardize_dtype
    if FLOAT64:
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
    good = float(numpy(estimators.mutual_information(separating, name)))
    bad = float(numpy(estimators.mutual_information(constant, name)))
    assert bad == pytest.approx(0.0, abs=1e-6)
    assert good > 1.0
    assert float(numpy(estimators.mutual_information(-separating, name))) < -1.0
    if name == "jsd":
        assert good == pytest.approx(2 * math.log(2), abs=1e-6)
    if name == "nce":
        assert good == pytest.approx(math.log(n), abs=1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("magnitude", [1e2, 1e4, 1e30])
def test_finite_values_and_gradients_for_large_scores(name, magnitude):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(4, 4, 3)).astype("float32") * magnitude
    value, gradient = value_and_grad(
        lambda s: estimators.mutual_information(s, name), scores
    )
    assert np.all(np.isfinite(gradient))
    if magnitude <= 1e4:
        assert np.isfinite(float(value))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradient_matches_finite_differences(name):
    base = np.random.default_rng(2).normal(size=(3, 3, 2))
    # float32 outside TensorFlow: a larger step and tolerance there.
    eps, tolerance = (1e-6, 1e-5) if FLOAT64 else (1e-2, 2e-3)
    _, gradient = value_and_grad(lambda s: estimators.mutual_information(s, name), base)
    for index in [(0, 1, 1), (2, 2, 0), (1, 0, 0)]:
        up, down = base.copy(), base.copy()
        up[index] += eps
        down[index] -= eps
        numeric = (REFERENCES[name](up) - REFERENCES[name](down)) / (2 * eps)
        assert gradient[index] == pytest.approx(numeric, rel=tolerance, abs=1e-6)


@pytest.mark.backends(
    "tensorflow", reason="tf.function with an unknown batch dimension"
)
def test_graph_mode_with_unknown_batch():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, None, 5), tf.float32)])
    def all_three(scores):
        return [estimators.mutual_information(scores, n) for n in REFERENCES]

    scores = np.random.default_rng(3).normal(size=(4, 4, 5)).astype("float32")
    values = [float(v) for v in all_three(scores)]
    expected = [REFERENCES[n](scores.astype("float64")) for n in REFERENCES]
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5)
    one = [float(v) for v in all_three(scores[:1, :1])]
    assert one == [0.0, 0.0, 0.0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="estimator"):
        estimators.mutual_information(np.zeros((2, 2)), "mine")
    with pytest.raises(ValueError, match="negatives"):
        estimators.nce_lower_bound(np.zeros((2, 2)), negatives="all")
    with pytest.raises(ValueError, match="negatives"):
        estimators.mutual_information(np.zeros((2, 2)), "jsd", negatives="x")
    with pytest.raises(ValueError, match="scores"):
        estimators.jsd_lower_bound(np.zeros(3))
    with pytest.raises(ValueError, match="scores.*n <= N"):
        estimators.dv_lower_bound(np.zeros((3, 2)))


def np_reference_infonce(scores, self_score=-10.0):
    """A transcription of rdevon/DIM's ``infonce_loss`` (dim_losses.py lines
    87-104) on ``scores[i, j, p]``: the softmax over the positive, then the
    ``N L`` entries ``u_n[i, j, p']`` with the image's own set to -10; it
    returns the mean log-probability of the positive (minus the loss)."""
    n = scores.shape[0]
    rest = scores.reshape(n, n, -1)
    positions = rest.shape[2]
    terms = []
    for i in range(n):
        row = [
            self_score if j == i else rest[i, j, q]
            for j in range(n)
            for q in range(positions)
        ]
        for p in range(positions):
            terms.append(rest[i, i, p] - _logsumexp([rest[i, i, p]] + row))
    return sum(terms) / len(terms)


def np_reference_dv(scores):
    """rdevon/DIM's ``donsker_varadhan_loss`` value (line 148), negated:
    the negatives' sum divided by N (N - 1) whatever L, and its 1e-6."""
    n = scores.shape[0]
    pos, neg = _pairs(scores)
    top = max(neg)
    e_neg = (
        math.log(sum(math.exp(v - top) for v in neg) + 1e-6)
        + top
        - math.log(n * (n - 1))
    )
    return sum(pos) / len(pos) - e_neg


@pytest.mark.parametrize("shape", SHAPES)
def test_nce_self_score_matches_the_reference_transcription(shape):
    # nce_lower_bound adds the constant log K; the reference returns the
    # mean log-probability only. With self_score=-10 the rest is the same.
    scores = np.random.default_rng(7 + len(shape)).normal(scale=0.3, size=shape)
    n = shape[0]
    positions = math.prod(shape[2:])
    log_k = math.log((n - 1) * positions + 1)
    got = float(numpy(estimators.nce_lower_bound(scores, self_score=-10.0)))
    reference = np_reference_infonce(scores)
    assert got - log_k == pytest.approx(reference, rel=rtol(), abs=rtol())
    # The default leaves the own positions out: a small, non-zero difference.
    default = float(numpy(estimators.nce_lower_bound(scores)))
    assert default == pytest.approx(np_nce_all_positions(scores), rel=rtol())
    assert 1e-8 < abs(default - got) < 1e-3
    via = estimators.mutual_information(scores, "nce", self_score=-10.0)
    assert float(numpy(via)) == pytest.approx(got, abs=1e-12)


def test_nce_self_score_gradient_matches_finite_differences():
    scores = np.random.default_rng(3).normal(scale=0.5, size=(3, 3, 2))

    def fn(s):
        return estimators.nce_lower_bound(s, self_score=-1.0)

    _, grad = value_and_grad(fn, scores)
    eps = 1e-5 if FLOAT64 else 1e-2
    for index in [(0, 0, 0), (0, 1, 1), (2, 2, 1)]:
        up, down = scores.copy(), scores.copy()
        up[index] += eps
        down[index] -= eps
        fd = (float(numpy(fn(up))) - float(numpy(fn(down)))) / (2 * eps)
        assert grad[index] == pytest.approx(fd, rel=1e-3 if FLOAT64 else 5e-2, abs=1e-4)


def test_nce_self_score_bad_values_raise():
    with pytest.raises(ValueError, match="argument self_score.*Received"):
        estimators.nce_lower_bound(np.zeros((2, 2)), self_score=float("nan"))
    with pytest.raises(ValueError, match="argument self_score.*same_position"):
        estimators.nce_lower_bound(
            np.zeros((2, 2, 3)), negatives="same_position", self_score=-10.0
        )


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 3), (3, 3, 2, 2)])
def test_dv_value_differs_from_the_reference_by_log_positions(shape):
    # The documented difference: the reference divides N (N - 1) L terms by
    # N (N - 1); the package's log-mean-exp is the bound's.
    scores = np.random.default_rng(11).normal(size=shape)
    got = float(numpy(estimators.dv_lower_bound(scores)))
    positions = math.prod(shape[2:])
    assert got - math.log(positions) == pytest.approx(
        np_reference_dv(scores), rel=rtol(single=1e-5), abs=1e-5
    )


# Bilinear scores S = y m^T in bounded row blocks
# (estimators.bilinear_mutual_information).

BILINEAR_CASES = {
    "jsd": ("jsd", {}),
    "dv": ("dv", {}),
    "nce": ("nce", {}),
    "nce_same_position": ("nce", {"negatives": "same_position"}),
    "nce_self_score": ("nce", {"self_score": -10.0}),
}


def np_bilinear_reference(case, scores):
    """The NumPy loops above for a case of ``BILINEAR_CASES``."""
    if case == "nce_same_position":
        return np_nce_same_position(scores)
    if case == "nce_self_score":
        n = scores.shape[0]
        positions = scores[0, 0].size
        return np_reference_infonce(scores) + math.log((n - 1) * positions + 1)
    return REFERENCES[case](scores)


@pytest.fixture
def counted_row_blocks(monkeypatch):
    return count_row_blocks(monkeypatch, 12)


def _split(x, y_shape, m_shape):
    size = math.prod(y_shape)
    ops = keras.ops
    return ops.reshape(x[:size], y_shape), ops.reshape(x[size:], m_shape)


@pytest.mark.parametrize("case", sorted(BILINEAR_CASES))
def test_bilinear_blocks_match_one_block_and_numpy(case, counted_row_blocks):
    """Value and gradient (w.r.t. y and m) in row blocks of 3 (7 rows: the
    last block padded with 2) equal the one-block path and the NumPy loop,
    eagerly and compiled, for L = 1 (m of rank 2) and L = 3."""
    rng = np.random.default_rng(len(case))
    for m_shape in [(7, 4), (7, 3, 4)]:
        _check_blocks(case, rng.normal(size=(7, 4)), rng.normal(size=m_shape))
    # The blocked path ran: eagerly and compiled (traced once), each L.
    assert counted_row_blocks == [3] * 4


def _check_blocks(case, y, m):
    estimator, kwargs = BILINEAR_CASES[case]
    blocks = 3 * math.prod(m.shape[:-1])  # 3 rows

    def fn(x, block_elements):
        y_x, m_x = _split(x, y.shape, m.shape)
        return estimators.bilinear_mutual_information(
            y_x, m_x, estimator, block_elements=block_elements, **kwargs
        )

    x = np.concatenate([y.ravel(), m.ravel()])
    one = value_and_grad(lambda x: fn(x, None), x)
    blocked = value_and_grad(lambda x: fn(x, blocks), x)
    traced = numpy(
        compiled(lambda x: value_and_gradient(lambda v: fn(v, blocks), x))(
            keras.ops.convert_to_tensor(x)
        )
    )
    scores = np.einsum("iu,j...u->ij...", y, m)
    assert float(one[0]) == pytest.approx(
        np_bilinear_reference(case, scores), rel=rtol(), abs=rtol()
    )
    for got in (blocked, traced):
        assert float(got[0]) == pytest.approx(
            float(one[0]), rel=rtol(1e-12, 1e-5), abs=rtol(1e-12, 1e-5)
        )
        np.testing.assert_allclose(
            got[1], one[1], rtol=rtol(1e-9, 1e-4), atol=rtol(1e-12, 1e-6)
        )
    assert np.abs(one[1][y.size :]).max() > 1e-3  # the gradients compared
    assert np.abs(one[1][: y.size]).max() > 1e-3


def _run_time_sized(fn, rank):
    """``value_and_gradient(fn)`` in a ``tf.function`` whose inputs' first
    axis is ``None`` (sizes known only at run time, as a ``tf.distribute``
    replica's); ``fn`` maps ``(y, m)`` to a scalar."""
    import tensorflow as tf

    shapes = [(None, 4), (None,) + (3,) * (rank - 2) + (4,)]

    @tf.function(input_signature=[tf.TensorSpec(s, "float64") for s in shapes])
    def step(y, m):
        with tf.GradientTape() as tape:
            tape.watch([y, m])
            value = fn(y, m)
        return [value, *tape.gradient(value, [y, m])]

    return lambda y, m: [x.numpy() for x in step(y, m)]


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="only TensorFlow traces with sizes unknown until run time",
)
@pytest.mark.parametrize("case", sorted(BILINEAR_CASES) + ["dv_gather"])
def test_bilinear_blocks_with_sizes_known_at_run_time(
    case, counted_row_blocks, monkeypatch
):
    """With a ``None`` batch the choice is made at run time: 7 rows (over
    12 scores) in blocks of 3 rows, 2 rows x 2 samples as one block; DV
    with a gather always runs the loop (one block of all rows when they
    fit), with ``M = 1`` finite and 0 as one block. All against the
    one-block values and gradients."""
    from keras_disentangle import _blocks

    estimator, kwargs = BILINEAR_CASES["dv" if case == "dv_gather" else case]
    if case == "dv_gather":
        kwargs = {"gather": lambda v: v}  # one replica
    runs = count_row_block_runs(monkeypatch)
    rng = np.random.default_rng(21)
    for rank in (2, 3):
        blocks = 3 * 3 ** (rank - 2) * 7  # 3 rows of 7 samples

        def fn(y, m, blocks=blocks):
            return estimators.bilinear_mutual_information(
                y, m, estimator, block_elements=blocks, **kwargs
            )

        step = _run_time_sized(fn, rank)
        del counted_row_blocks[:]
        for n in (7, 2, 1):  # one trace: rows per block chosen at run time
            y = rng.normal(size=(n, 4))
            m = rng.normal(size=(n,) + (3,) * (rank - 2) + (4,))
            before = int(runs.numpy())
            got = step(y, m)
            # 7 rows in blocks; 2 rows of 2 samples (<= 12 scores) and
            # M = 1 as one block; DV with a gather always in the loop.
            blocked = n == 7 or case == "dv_gather"
            assert int(runs.numpy()) - before == int(blocked), (rank, n)
            assert counted_row_blocks, "traced without the blocked loop"
            assert not any(isinstance(b, int) for b in counted_row_blocks)
            monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 10**9)
            want = value_and_grad(
                lambda x, y=y, m=m: fn(*_split(x, y.shape, m.shape)),
                np.concatenate([y.ravel(), m.ravel()]),
            )
            monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 12)
            assert np.isfinite(got[0]) and got[0] == pytest.approx(
                float(want[0]), rel=1e-9, abs=1e-12
            ), (rank, n)
            grad = np.concatenate([got[1].ravel(), got[2].ravel()])
            np.testing.assert_allclose(grad, want[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", sorted(BILINEAR_CASES))
def test_bilinear_blocks_of_rows_add_up_to_the_full_estimate(case, counted_row_blocks):
    """Replicas' rows (offset > 0, an empty one among them) in row blocks
    of 2: their shares and gradients add up to the full estimate's."""
    estimator, kwargs = BILINEAR_CASES[case]
    rng = np.random.default_rng(11)
    y = rng.normal(size=(7, 4))
    m = rng.normal(size=(7, 3, 4))
    scores = np.einsum("iu,jlu->ijl", y, m)
    bounds = [(0, 3), (3, 3), (3, 7)]
    log_sums = _block_log_sums(scores, bounds)  # for gather

    def gather(v):
        return keras.ops.convert_to_tensor(np.array(log_sums), dtype=v.dtype)

    def sum_of_shares(x, block_elements):
        y_x, m_x = _split(x, y.shape, m.shape)
        total = 0.0
        for lo, hi in bounds:
            total = total + estimators.bilinear_mutual_information(
                y_x[lo:hi],
                m_x,
                estimator,
                offset=lo,
                gather=gather if estimator == "dv" else None,
                block_elements=block_elements,
                **kwargs,
            )
        return total

    x = np.concatenate([y.ravel(), m.ravel()])
    total, grad = value_and_grad(lambda x: sum_of_shares(x, 42), x)
    assert counted_row_blocks == [2, 2]  # two replicas blocked, one empty
    assert float(total) == pytest.approx(
        np_bilinear_reference(case, scores), rel=rtol(), abs=rtol()
    )

    def full(x):
        y_x, m_x = _split(x, y.shape, m.shape)
        return estimators.bilinear_mutual_information(y_x, m_x, estimator, **kwargs)

    _, expected = value_and_grad(full, x)
    np.testing.assert_allclose(grad, expected, rtol=rtol(1e-9, 1e-4), atol=1e-7)


def test_bilinear_bad_shapes_raise():
    with pytest.raises(ValueError, match="arguments y and m.*same last"):
        estimators.bilinear_mutual_information(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="arguments y and m.*rank 2"):
        estimators.bilinear_mutual_information(np.zeros((2,)), np.zeros((2, 4)))


@pytest.mark.parametrize("case", sorted(BILINEAR_CASES))
def test_bilinear_blocks_keep_float32_precision_for_large_scores(
    case, counted_row_blocks
):
    """Scores of about 1e4: the float32 gradient in row blocks is as close
    to the one-block gradient as float32 allows (exp(S - max) / sum, not a
    difference of two logs of 1e4, which loses 1e-3)."""
    estimator, kwargs = BILINEAR_CASES[case]
    rng = np.random.default_rng(5)
    y = rng.normal(scale=100.0, size=(7, 4)).astype("float32")
    m = rng.normal(scale=100.0, size=(7, 3, 4)).astype("float32")

    def fn(x, block_elements):
        y_x, m_x = _split(x, y.shape, m.shape)
        return estimators.bilinear_mutual_information(
            y_x, m_x, estimator, block_elements=block_elements, **kwargs
        )

    x = np.concatenate([y.ravel(), m.ravel()])
    _, one = value_and_grad(lambda x: fn(x, None), x)
    _, blocked = value_and_grad(lambda x: fn(x, 42), x)
    assert counted_row_blocks == [2]
    scale = np.abs(one).max()
    assert scale > 1e-3
    np.testing.assert_allclose(blocked, one, rtol=0, atol=1e-5 * scale)
