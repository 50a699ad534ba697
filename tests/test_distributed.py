"""Several devices: one step under two replicas against one device.

Under a 2-replica ``tf.distribute.MirroredStrategy`` (the
``mirrored_strategy`` fixture, 2 logical CPUs) every penalty, loss and layer
with ``synchronized=True`` must move the weights exactly as one device on the
same global batch; with ``synchronized=False`` as one device whose penalty is
the mean of the values on the two half batches. Under JAX's
``keras.distribution.DataParallel`` (``data_parallel``) the batch statistics
are global by construction: one step equals one device.
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import pytest
from helpers import count_row_block_runs, count_row_blocks, numpy
from keras import ops

from keras_disentangle import (
    _blocks,
    _distribute,
    layers,
    losses,
    penalties,
    regularizers,
)

KINDS = ["decov", "l1", "activity", "xcov", "labelled"]
GLOBAL_BATCH = 32
HALF = GLOBAL_BATCH // 2


def _penalty(kind, synchronized):
    """The activity regularizers are wrapped in ``ActivityPenalty`` when
    synchronized (the regularizers refuse ``synchronized=True``)."""
    if kind == "decov":
        return regularizers.DeCov(1.0)
    if kind == "l1":
        return regularizers.CovarianceL1(1.0)
    if kind == "activity":
        return regularizers.ActivityKLMargin(2.0, 1.0)
    if kind == "xcov":
        return layers.XCovPenalty(5.0, synchronized=synchronized, name="xcov")
    return losses.LabelledKLMargin(2.0, synchronized=synchronized)


# ------------------------------ one-device references of the per-replica mode
class _PerSliceRegularizer(keras.regularizers.Regularizer):
    """The mean of ``inner`` on the two half batches (Keras divides by N)."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, x):
        n = ops.cast(ops.shape(x)[0], "float32")
        halves = [self.inner(x[:HALF]) / HALF, self.inner(x[HALF:]) / HALF]
        return n * (halves[0] + halves[1]) / 2.0


class _PerSliceXCov(layers.XCovPenalty):
    def call(self, inputs):
        y, h = inputs
        values = [
            penalties.xcov(y[:HALF], h[:HALF]),
            penalties.xcov(y[HALF:], h[HALF:]),
        ]
        self.add_loss(self.weight * (values[0] + values[1]) / 2.0)
        return y


class _PerSliceLoss(losses.LabelledKLMargin):
    def __call__(self, y_true, y_pred, sample_weight=None):
        inner = super().__call__
        return (
            inner(y_true[:HALF], y_pred[:HALF]) + inner(y_true[HALF:], y_pred[HALF:])
        ) / 2.0


def _build(kind, synchronized, per_slice=False, task_loss=True):
    """Dense(5) "fc1" with the penalty, a sigmoid output "out" with binary
    cross-entropy (``task_loss``), SGD(0.1)."""
    penalty = _penalty(kind, synchronized)
    inputs = keras.Input((6,))
    activity = None
    if kind in ("decov", "l1", "activity") and not synchronized:
        activity = _PerSliceRegularizer(penalty) if per_slice else penalty
    h = keras.layers.Dense(5, activity_regularizer=activity, name="fc1")(inputs)
    if kind in ("decov", "l1", "activity") and synchronized:
        h = layers.ActivityPenalty(penalty, synchronized=True, name="penalty")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    if kind == "xcov":
        layer = _PerSliceXCov(5.0, name="xcov") if per_slice else penalty
        out = layer([out, h])
    if kind == "labelled":
        loss = _PerSliceLoss(2.0) if per_slice else penalty
        model = keras.Model(inputs, {"out": out, "fc1": h})
        task = {"out": "binary_crossentropy"} if task_loss else {}
        model.compile(keras.optimizers.SGD(0.1), loss={**task, "fc1": loss})
        return model
    model = keras.Model(inputs, out)
    model.compile(
        keras.optimizers.SGD(0.1), loss="binary_crossentropy" if task_loss else None
    )
    return model


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    labels = rng.integers(0, 3, size=n).astype("int32")
    return x, y, labels


def _targets(kind, y, labels, task_loss=True):
    if kind == "labelled":
        return {"out": y, "fc1": labels} if task_loss else {"fc1": labels}
    return y if task_loss else None


def _initial_weights(kind, synchronized):
    keras.utils.set_random_seed(1)
    return _build(kind, synchronized).get_weights()


def _numbers(weights):
    """The weights that hold numbers (a synchronized penalty layer's loss
    owner is an empty ``(0,)`` weight)."""
    return [w for w in weights if w.size]


def _step(
    kind,
    synchronized,
    scope=None,
    per_slice=False,
    n=GLOBAL_BATCH,
    epochs=1,
    task_loss=True,
    dataset=False,
):
    """Weight change, logged losses and the model after ``epochs`` of fit
    (on a ``tf.data.Dataset`` with a ``None`` batch size with ``dataset``)."""
    start = _initial_weights(kind, synchronized)
    with scope or contextlib.nullcontext():
        model = _build(kind, synchronized, per_slice, task_loss)
    model.set_weights(start)
    x, y, labels = _data(n)
    targets = _targets(kind, y, labels, task_loss)
    batches = {"batch_size": GLOBAL_BATCH}
    if dataset:
        import tensorflow as tf

        x = tf.data.Dataset.from_tensor_slices((x, targets)).batch(GLOBAL_BATCH)
        targets, batches = None, {}
    history = model.fit(x, targets, epochs=epochs, shuffle=False, verbose=0, **batches)
    change = [w - w0 for w, w0 in zip(model.get_weights(), start, strict=True)]
    change = _numbers(change)
    return change, history.history["loss"], model


def _assert_same_change(got, want):
    scale = max(float(np.abs(w).max()) for w in want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale)


def _differs(got, want):
    scale = max(float(np.abs(w).max()) for w in want)
    return any(
        np.abs(g - w).max() > 1e-3 * scale for g, w in zip(got, want, strict=True)
    )


# ------------------------------------------------------ tf.distribute: Mirrored
@pytest.mark.parametrize("kind", KINDS)
def test_synchronized_step_equals_one_device(kind, mirrored_strategy, tmp_path):
    one, one_loss, reference = _step(kind, True)
    sync, sync_loss, model = _step(kind, True, mirrored_strategy.scope())
    _assert_same_change(sync, one)
    # The logged loss is the one-device loss (equal slices of 16).
    assert sync_loss[0] == pytest.approx(one_loss[0], rel=1e-5)
    # The test can fail: the per-replica statistic moves the weights otherwise.
    local, _, _ = _step(kind, False, mirrored_strategy.scope())
    assert _differs(local, one), "the penalty has no effect on this step"
    # A model trained under the strategy saves and loads (one device).
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    x, y, labels = _data(GLOBAL_BATCH, seed=5)
    got = loaded.evaluate(x, _targets(kind, y, labels), verbose=0, return_dict=True)
    want = reference.evaluate(x, _targets(kind, y, labels), verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)


@pytest.mark.parametrize("kind", ["activity", "labelled"])
def test_synchronized_row_blocks_equal_one_device(kind, mirrored_strategy, monkeypatch):
    """Each replica's 16 rows against the gathered 32 in bounded row blocks,
    from a dataset of unknown batch size (blocks sized at run time), move
    the weights as one device in one block."""
    monkeypatch.setattr(penalties, "_CPU_BLOCK_ELEMENTS", 100)
    monkeypatch.setattr(penalties, "_DEVICE_BLOCK_ELEMENTS", 100)
    calls = count_row_blocks(monkeypatch, 12)
    runs = count_row_block_runs(monkeypatch)
    sync, sync_loss, _ = _step(kind, True, mirrored_strategy.scope(), dataset=True)
    assert any(not isinstance(b, int) for b in calls), calls  # chosen at run time
    assert int(runs.numpy()) == 2, "each replica's step ran the blocked loop"
    monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 10**9)
    one, one_loss, _ = _step(kind, True)
    _assert_same_change(sync, one)
    assert sync_loss[0] == pytest.approx(one_loss[0], rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_per_replica_step_is_the_mean_of_slice_values(kind, mirrored_strategy):
    local, local_loss, _ = _step(kind, False, mirrored_strategy.scope())
    mean_of_slices, mean_loss, _ = _step(kind, False, per_slice=True)
    _assert_same_change(local, mean_of_slices)
    assert local_loss[0] == pytest.approx(mean_loss[0], rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_replica_slice_is_finite_and_exact(kind, mirrored_strategy):
    """N=33 with a global batch of 32: the last step has slices of 1 and 0.

    The penalty alone: Keras's own per-sample losses are not exact on uneven
    slices (each replica divides by its local batch size).
    """
    n = GLOBAL_BATCH + 1
    one, _, _ = _step(kind, True, n=n, task_loss=False)
    sync, sync_loss, _ = _step(
        kind, True, mirrored_strategy.scope(), n=n, task_loss=False
    )
    _assert_same_change(sync, one)
    assert np.all(np.isfinite(sync_loss))
    local, local_loss, _ = _step(
        kind, False, mirrored_strategy.scope(), n=n, task_loss=False
    )
    assert np.all(np.isfinite(local_loss))
    assert all(np.all(np.isfinite(w)) for w in local)


@pytest.mark.parametrize(
    "name, fn",
    [
        ("decov", lambda h, c: penalties.decov(h, collectives=c)),
        ("covariance_l1", lambda h, c: penalties.covariance_l1(h, collectives=c)),
        ("xcov", lambda h, c: penalties.xcov(h[:, :2], h, collectives=c)),
        ("kl", lambda h, c: penalties.activity_kl_margin(h, 2.0, collectives=c)),
        (
            "kl_labels",
            lambda h, c: penalties.activity_kl_margin(
                h, 2.0, labels=ops.cast(h[:, 0] > 0, "int32"), collectives=c
            ),
        ),
    ],
)
def test_every_replica_gets_the_global_value(name, fn, mirrored_strategy):
    """Uneven slices (5 and 3 rows): each replica returns the global value."""
    h = np.random.default_rng(2).normal(size=(8, 4)).astype("float32")
    slices = [h[:5], h[5:]]
    values = mirrored_strategy.experimental_distribute_values_from_function(
        lambda context: slices[context.replica_id_in_sync_group]
    )
    per_replica = mirrored_strategy.run(
        lambda v: fn(v, _distribute.collectives()), args=(values,)
    )
    got = [
        float(numpy(v))
        for v in mirrored_strategy.experimental_local_results(per_replica)
    ]
    want = float(numpy(fn(h, None)))
    assert got == pytest.approx([want, want], rel=1e-5)


# --------------------------------------------------------- JAX: DataParallel
@pytest.mark.parametrize("kind", KINDS)
def test_data_parallel_step_equals_one_device(kind, data_parallel):
    keras.distribution.set_distribution(None)
    one, one_loss, _ = _step(kind, True)
    keras.distribution.set_distribution(data_parallel)
    for synchronized in (True, False):  # global batch either way on JAX
        got, got_loss, _ = _step(kind, synchronized)
        _assert_same_change(got, one)
        assert got_loss[0] == pytest.approx(one_loss[0], rel=1e-5)
