"""DeepInfoMax: arguments, loss, prior matching, saving, tuning and the example."""

import contextlib
import importlib.util
import json
import math
import pathlib

import keras
import numpy as np
import pytest
from helpers import (
    assert_reload_resumes,
    count_row_block_runs,
    count_row_blocks,
    numpy,
    onednn_empty_slice_xfail,
)

import keras_disentangle  # noqa: F401  (registers the classes)
from keras_disentangle import estimators
from keras_disentangle._backend import variable_gradients
from keras_disentangle.models import DeepInfoMax, MI1x1ConvNet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tiny_encoder(seed=0, sigmoid=False, regularizer=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="local")(inputs)
    h = keras.layers.Flatten()(h)
    y = keras.layers.Dense(
        3,
        activation="sigmoid" if sigmoid else None,
        kernel_regularizer=regularizer,
        name="global",
    )(h)
    return keras.Model(inputs, y, name="encoder")


def images(n=32, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, 8, 8, 1)).astype("float32")


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_arguments_raise_value_errors_naming_them():
    encoder = tiny_encoder()
    with pytest.raises(
        ValueError, match="argument estimator.*Received: estimator='mine'"
    ):
        DeepInfoMax(encoder, "local", estimator="mine")
    with pytest.raises(
        ValueError, match="argument local_layer.*Received: local_layer='conv9'"
    ):
        DeepInfoMax(encoder, "conv9")
    with pytest.raises(ValueError, match="argument alpha"):
        DeepInfoMax(encoder, "local", alpha=-1.0)
    with pytest.raises(ValueError, match="alpha and beta"):
        DeepInfoMax(encoder, "local", alpha=0.0, beta=0.0)
    with pytest.raises(ValueError, match="argument gamma"):
        DeepInfoMax(encoder, "local", gamma=float("nan"))
    with pytest.raises(ValueError, match="argument units"):
        DeepInfoMax(encoder, "local", units=0)
    with pytest.raises(ValueError, match="argument encoder"):
        DeepInfoMax(keras.layers.Dense(3), "local")
    flat = keras.Model(encoder.input, encoder.get_layer("local").output)
    with pytest.raises(ValueError, match="argument encoder.*single output"):
        DeepInfoMax(flat, "local")
    dense_first = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, name="h"), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="argument local_layer.*feature map"):
        DeepInfoMax(dense_first, "h")


def _np_projection(layer, x):
    """The residual projection ``W2 relu(W1 x + b1) + b2 + Ws x`` in NumPy."""
    w1, b1 = (numpy(v) for v in layer.hidden.weights)
    w2, b2 = (numpy(v) for v in layer.out.weights)
    (ws,) = (numpy(v) for v in layer.shortcut.weights)
    return np.maximum(x @ w1 + b1, 0.0) @ w2 + b2 + x @ ws


@pytest.mark.parametrize("estimator", ["jsd", "dv", "nce"])
def test_loss_is_the_weighted_sum_of_the_estimates(estimator):
    dim = DeepInfoMax(tiny_encoder(), "local", estimator=estimator, alpha=0.3, beta=2.0)
    x = images(6)
    y_pred = dim(x, training=False)
    loss = float(dim.compute_loss(x, y_pred=y_pred, training=False))
    # Recomputed independently: the local map from the encoder's layer, the
    # projections in NumPy, the scores by loops and the estimators.
    local_model = keras.Model(dim.encoder.input, dim.encoder.get_layer("local").output)
    local = numpy(local_model(x)).reshape(6, -1, 4).astype("float64")
    glob = numpy(dim.encoder(x)).astype("float64")
    gy = _np_projection(dim.global_critic_y, glob)
    gm = _np_projection(dim.global_critic_map, local.reshape(6, -1))
    ly = _np_projection(dim.local_critic_y, glob)
    lm = _np_projection(dim.local_critic_map, local)
    g_scores = np.array([[gy[i] @ gm[j] for j in range(6)] for i in range(6)])
    l_scores = np.array(
        [
            [[ly[i] @ lm[j, p] for p in range(local.shape[1])] for j in range(6)]
            for i in range(6)
        ]
    )
    mi = estimators.mutual_information
    expected = -0.3 * float(mi(g_scores, estimator)) - 2.0 * float(
        mi(l_scores, estimator)
    )
    assert loss == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # Without the forward pass of call, compute_loss recomputes it: same value.
    again = float(
        dim.compute_loss(
            x, y_pred=keras.ops.convert_to_tensor(y_pred) + 0.0, training=False
        )
    )
    assert again == pytest.approx(loss, rel=1e-5)


def test_one_forward_pass_per_training_step():
    # BatchNormalization's moving mean after one step tells how many forward
    # passes the step ran: 0.5 * mean(x) for one, 0.75 * mean(x) for two.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.BatchNormalization(momentum=0.5, name="bn")(inputs)
    h = keras.layers.Conv2D(4, 3, strides=2, name="local")(h)
    y = keras.layers.Dense(3)(keras.layers.Flatten()(h))
    dim = DeepInfoMax(keras.Model(inputs, y), "local", units=4)
    dim.compile(optimizer="adam")
    x = images(16)
    dim.fit(x, epochs=1, batch_size=16, verbose=0)
    moving_mean = float(numpy(dim.encoder.get_layer("bn").moving_mean)[0])
    assert moving_mean == pytest.approx(0.5 * float(x.mean()), rel=1e-4)
    # Eagerly too: compute_loss reads the local map of the forward pass.
    y_pred = dim(x, training=False)
    assert np.isfinite(float(dim.compute_loss(None, y_pred=y_pred, training=False)))


def test_fit_evaluate_predict_and_regularizers():
    encoder = tiny_encoder(regularizer=keras.regularizers.L2(0.5))
    dim = DeepInfoMax(encoder, "local", alpha=0.5, beta=1.0, units=8)
    dim.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = images(64)
    history = dim.fit(x, epochs=3, batch_size=32, verbose=0)
    logs = history.history
    assert {"loss", "global_mi", "local_mi"} <= set(logs)
    assert logs["global_mi"][-1] > logs["global_mi"][0]
    results = dim.evaluate(x, verbose=0, return_dict=True)
    penalty = 0.5 * float(np.sum(numpy(encoder.get_layer("global").kernel) ** 2))
    expected = -0.5 * results["global_mi"] - results["local_mi"] + penalty
    assert results["loss"] == pytest.approx(expected, rel=1e-3)
    np.testing.assert_allclose(
        dim.predict(x, verbose=0), encoder.predict(x, verbose=0), atol=1e-6
    )


def test_prior_matching_is_a_real_min_max():
    dim = DeepInfoMax(tiny_encoder(sigmoid=True), "local", gamma=1.0, units=4, seed=0)
    dim.compile(optimizer=keras.optimizers.Adam(1e-2))
    d_ids = {id(v) for v in dim.discriminator.trainable_variables}
    assert d_ids and not d_ids & {id(v) for v in dim.trainable_variables}
    d_before = [numpy(v).copy() for v in dim.discriminator.trainable_variables]
    e_before = [numpy(v).copy() for v in dim.encoder.trainable_variables]
    history = dim.fit(images(64), epochs=2, batch_size=32, verbose=0)
    assert {"prior_loss", "discriminator_loss"} <= set(history.history)
    assert all(np.isfinite(history.history["discriminator_loss"]))
    # Both players moved, each by its own optimizer.
    for before, v in zip(d_before, dim.discriminator.trainable_variables, strict=True):
        assert not np.allclose(before, numpy(v))
    for before, v in zip(e_before, dim.encoder.trainable_variables, strict=True):
        assert not np.allclose(before, numpy(v))
    assert int(dim.discriminator_optimizer.iterations) == 4
    assert int(dim.optimizer.iterations) == 4
    evaluated = dim.evaluate(images(64), verbose=0, return_dict=True)
    assert evaluated["discriminator_loss"] > 0


def test_config_round_trip():
    dim = DeepInfoMax(
        tiny_encoder(),
        "local",
        estimator="nce",
        alpha=0.0,
        beta=2.0,
        gamma=0.5,
        units=5,
        seed=3,
    )
    config = dim.get_config()
    json.dumps(config)
    assert isinstance(config["beta"], float) and config["estimator"] == "nce"
    clone = DeepInfoMax.from_config(config)
    assert clone.get_config() == config
    assert not hasattr(clone, "global_critic_y")  # alpha = 0: no global critic


def test_save_reload_in_a_fresh_process_gives_identical_predictions(tmp_path):
    dim = DeepInfoMax(
        tiny_encoder(sigmoid=True), "local", estimator="dv", gamma=0.5, units=4, seed=1
    )
    dim.compile(optimizer="adam")
    x = images(32)
    dim.fit(x, epochs=1, batch_size=16, verbose=0)
    # The random stream survives the reload (it was reset to [0 0]).
    assert_reload_resumes(
        dim,
        x,
        tmp_path,
        """
assert type(model).__name__ == "DeepInfoMax", type(model)
assert model.estimator == "dv" and model.gamma == 0.5
        """,
    )


def test_keras_tuner_search_over_beta(tmp_path):
    kt = pytest.importorskip("keras_tuner")

    def build(hp):
        dim = DeepInfoMax(
            tiny_encoder(), "local", beta=hp.Choice("beta", [0.5, 2.0]), units=4
        )
        dim.compile(optimizer="adam")
        return dim

    tuner = kt.GridSearch(
        build,
        objective=kt.Objective("val_local_mi", "max"),
        max_trials=2,
        directory=tmp_path,
        project_name="dim",
        overwrite=True,
    )
    x = images(32)
    tuner.search(
        x, epochs=1, batch_size=16, validation_data=(images(16, 1),), verbose=0
    )
    assert len(tuner.oracle.trials) == 2
    best = tuner.get_best_hyperparameters()[0]
    assert best.get("beta") in (0.5, 2.0)


@pytest.mark.parametrize("estimator", ["jsd", "dv", "nce"])
def test_last_batch_of_one_sample_keeps_everything_finite(estimator):
    # N = 33 with batches of 32: the last batch has one sample and no
    # negatives. Its estimates are 0 (it was NaN: every weight became NaN).
    dim = DeepInfoMax(tiny_encoder(), "local", estimator=estimator, units=4)
    dim.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = dim.fit(images(33), epochs=2, batch_size=32, verbose=0)
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    for v in dim.weights:
        assert np.all(np.isfinite(numpy(v))), v.path
    one = images(1)
    y_pred = dim(one, training=False)
    assert float(numpy(dim.compute_loss(one, y_pred=y_pred, training=False))) == 0.0


def _local_loss_and_np_scores(dim, x):
    """The model's loss on ``x`` and its local scores ``T[i, j, p]`` in NumPy."""
    loss = float(numpy(dim.compute_loss(x, y_pred=dim(x), training=False)))
    local_model = keras.Model(dim.encoder.input, dim.encoder.get_layer("local").output)
    local = numpy(local_model(x)).reshape(len(x), -1, 4).astype("float64")
    ly = _np_projection(dim.local_critic_y, numpy(dim.encoder(x)).astype("float64"))
    lm = _np_projection(dim.local_critic_map, local)
    return loss, np.einsum("iu,jlu->ijl", ly, lm)


@pytest.mark.parametrize("negatives", ["all_positions", "same_position"])
def test_local_infonce_negatives_against_numpy_loop(negatives):
    from test_estimators import np_nce_all_positions, np_nce_same_position

    kwargs = {} if negatives == "all_positions" else {"local_negatives": negatives}
    dim = DeepInfoMax(tiny_encoder(), "local", estimator="nce", alpha=0.0, **kwargs)
    assert dim.local_negatives == negatives  # the reference's form by default
    loss, scores = _local_loss_and_np_scores(dim, images(5))
    reference = {
        "all_positions": np_nce_all_positions,
        "same_position": np_nce_same_position,
    }[negatives]
    assert loss == pytest.approx(-reference(scores), rel=1e-4, abs=1e-5)


def test_prior_matching_under_mixed_float16():
    # It crashed (a float16 prior term added to a float32 loss), and the
    # discriminator's optimizer had no loss scaling.
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        dim = DeepInfoMax(
            tiny_encoder(sigmoid=True), "local", gamma=1.0, units=4, seed=0
        )
        dim.compile(optimizer=keras.optimizers.Adam(1e-2))
        scaling = keras.optimizers.LossScaleOptimizer
        assert isinstance(dim.optimizer, scaling)
        assert isinstance(dim.discriminator_optimizer, scaling)
        history = dim.fit(images(32), epochs=1, batch_size=16, verbose=0)
        for key, values in history.history.items():
            assert np.all(np.isfinite(values)), (key, values)
        assert int(numpy(dim.discriminator_optimizer.iterations)) == 2
        for v in dim.weights + dim.discriminator.weights:
            assert np.all(np.isfinite(numpy(v))), v.path
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _one_step(strategy, x, batch_size=16, sigmoid=False, **kwargs):
    """Builds (under ``strategy``), fits one epoch with SGD; returns the
    initial weights, their change, the logs and the model."""
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        dim = DeepInfoMax(tiny_encoder(sigmoid=sigmoid), "local", units=4, **kwargs)
        dim.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [numpy(v) for v in dim.trainable_variables]
    history = dim.fit(x, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    change = [
        numpy(v) - b for v, b in zip(dim.trainable_variables, before, strict=True)
    ]
    logs = {k: v[-1] for k, v in history.history.items()}
    return before, change, logs, dim


def _assert_same_step(one, other, skip_logs=(), rtol=1e-5, log_atol=1e-6):
    (b0, d0, logs0, _), (b1, d1, logs1, _) = one, other
    for w0, w1 in zip(b0, b1, strict=True):
        np.testing.assert_array_equal(w0, w1)  # the same initial weights
    scale = max(float(np.abs(d).max()) for d in d0)
    assert scale > 1e-4  # the step moved the weights
    for c0, c1 in zip(d0, d1, strict=True):
        np.testing.assert_allclose(c1, c0, rtol=rtol, atol=rtol * scale)
    for key, value in logs0.items():
        if key not in skip_logs:
            assert logs1[key] == pytest.approx(value, rel=rtol, abs=log_atol), key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"estimator": "jsd"},
        {"estimator": "dv"},
        {"estimator": "nce"},
        {"estimator": "jsd", "gamma": 0.5, "seed": 0, "sigmoid": True},
    ],
)
def test_synchronized_step_under_a_strategy_equals_one_device(
    mirrored_strategy, kwargs
):
    # Two replicas score their 8 samples against the gathered 16: the step
    # (every loss term scaled per replica) and the logs equal one device's.
    x = images(16)
    one = _one_step(None, x, synchronized=True, **kwargs)
    two = _one_step(mirrored_strategy, x, synchronized=True, **kwargs)
    # The prior's random samples differ between replicas: the discriminator
    # (not among trainable_variables) and its logged loss are not compared.
    _assert_same_step(one, two, skip_logs=("discriminator_loss", "gradient_penalty"))


def test_per_replica_mode_logs_the_mean_of_the_slices(mirrored_strategy):
    # synchronized=False: each replica's own 8 samples; the logs (and the
    # loss) are the mean of the two slices' values, not twice it.
    x = images(16)
    _, _, logs, _ = _one_step(mirrored_strategy, x, synchronized=False)
    reference = DeepInfoMax(tiny_encoder(), "local", units=4)  # same init
    terms = []
    for half in (x[:8], x[8:]):
        local, glob = reference.feature_extractor(half)
        terms.append(
            [float(numpy(t)) for t in reference.mutual_information_terms(local, glob)]
        )
    global_mi, local_mi = np.mean(terms, axis=0)
    assert logs["global_mi"] == pytest.approx(global_mi, rel=1e-5)
    assert logs["local_mi"] == pytest.approx(local_mi, rel=1e-5)
    assert logs["loss"] == pytest.approx(-0.5 * global_mi - local_mi, rel=1e-5)


@onednn_empty_slice_xfail()
@pytest.mark.parametrize("synchronized", [False, True])
def test_empty_replica_slice_stays_finite(mirrored_strategy, synchronized):
    # 33 samples in batches of 32: the last global batch leaves one replica
    # one sample and the other none.
    _, change, logs, dim = _one_step(
        mirrored_strategy, images(33), batch_size=32, synchronized=synchronized
    )
    assert all(np.isfinite(v) for v in logs.values()), logs
    assert all(np.all(np.isfinite(c)) for c in change)


def test_save_and_load_after_training_under_a_strategy(mirrored_strategy, tmp_path):
    x = images(16)
    *_, dim = _one_step(mirrored_strategy, x, synchronized=True, estimator="nce")
    path = tmp_path / "dim.keras"
    dim.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.synchronized and loaded.estimator == "nce"
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), dim.predict(x, verbose=0), atol=1e-6
    )


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_jax_data_parallel_step_equals_one_device(data_parallel, gamma):
    # keras.distribution.DataParallel computes on the global batch.
    x = images(16)
    kwargs = {"gamma": gamma, "seed": 0, "sigmoid": gamma > 0}
    keras.distribution.set_distribution(None)
    one = _one_step(None, x, **kwargs)
    keras.distribution.set_distribution(data_parallel)
    two = _one_step(None, x, **kwargs)
    _assert_same_step(one, two)


def test_example_quick_runs():
    result = load_example("deep_info_max_mnist").main(["--quick"])
    (row,) = result["rows"]
    for key in ("trained", "untrained"):
        assert 0.0 <= row[key] <= 1.0
    assert math.isfinite(row["final_loss"])


@pytest.mark.reproduction
def test_example_trained_features_beat_untrained():
    result = load_example("deep_info_max_mnist").main([])
    assert result["trained_beats_untrained_every_seed"], result
    assert result["trained_mean"] > result["untrained_mean"] + 0.02, result


# --- The reference's gradient penalty, critic and InfoNCE self-scores. ---


def _np_discriminator(weights, x):
    """The prior discriminator (Dense relu, Dense relu, Dense) and its input
    gradient, by the chain rule in NumPy (float64)."""
    w1, b1, w2, b2, w3, b3 = weights
    h1 = x @ w1 + b1
    a1 = np.maximum(h1, 0.0)
    h2 = a1 @ w2 + b2
    out = np.maximum(h2, 0.0) @ w3 + b3
    grads = []
    for i in range(x.shape[0]):
        d2 = (h2[i] > 0) * w3[:, 0]
        d1 = (h1[i] > 0) * (w2 @ d2)
        grads.append(w1 @ d1)
    return out[:, 0], np.array(grads)


def _np_penalty(weights, real, fake, amount):
    """gp = amount * (E_P ||grad D||^2 + E_Q ||grad D||^2) / 2 (rdevon/DIM
    discriminator.py lines 47-49, gradient_penalty.py line 40)."""
    norms = [
        (_np_discriminator(weights, s)[1] ** 2).sum(1).mean() for s in (real, fake)
    ]
    return amount * 0.5 * (norms[0] + norms[1])


def test_gradient_penalty_and_its_weight_gradient_match_numpy():
    dim = DeepInfoMax(
        tiny_encoder(sigmoid=True),
        "local",
        gamma=1.0,
        units=4,
        discriminator_units=5,
        gradient_penalty=2.0,
        seed=0,
    )
    rng = np.random.default_rng(0)
    real = rng.uniform(size=(6, 3)).astype("float32")
    fake = rng.uniform(size=(6, 3)).astype("float32")
    for v in dim.discriminator.weights:  # the same weights on every backend
        v.assign(rng.normal(scale=0.8, size=v.shape).astype("float32"))
    weights = [numpy(v).astype("float64") for v in dim.discriminator.weights]
    norms = numpy(dim.input_gradient_norms(fake))
    expected = (_np_discriminator(weights, fake.astype("float64"))[1] ** 2).sum(1)
    np.testing.assert_allclose(norms, expected, rtol=1e-4, atol=1e-7)

    dim.prior_samples = lambda like: keras.ops.convert_to_tensor(real)
    variables = dim.discriminator.trainable_variables

    def loss_fn():
        total, penalty = dim._discriminator_loss(
            keras.ops.convert_to_tensor(fake), training=True
        )
        return penalty, total

    penalty, _, grads = variable_gradients(loss_fn, variables)
    reference = _np_penalty(
        weights, real.astype("float64"), fake.astype("float64"), 2.0
    )
    assert float(numpy(penalty)) == pytest.approx(reference, rel=1e-4)
    assert reference > 1e-4
    # Double backpropagation: d gp / d weights against central differences.
    eps = 1e-4
    checked = 0
    for k in (0, 2, 4):  # the three kernels
        g = numpy(grads[k])
        for index in [(0, 0), (1, 0)]:
            up = [w.copy() for w in weights]
            down = [w.copy() for w in weights]
            up[k][index] += eps
            down[k][index] -= eps
            fd = (
                _np_penalty(up, real, fake, 2.0) - _np_penalty(down, real, fake, 2.0)
            ) / (2 * eps)
            assert g[index] == pytest.approx(fd, rel=2e-3, abs=1e-5)
            checked += abs(fd) > 1e-6
    assert checked >= 2  # the penalty does depend on the weights


class _FixedPrior(DeepInfoMax):
    """Prior samples a fixed function of each vector: the same on one device
    and split over replicas (the random draws are not)."""

    def prior_samples(self, fake):
        return keras.ops.sigmoid(2.0 - 3.0 * fake)


def _discriminator_step(strategy, x, **kwargs):
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        dim = _FixedPrior(
            tiny_encoder(sigmoid=True),
            "local",
            units=4,
            gamma=0.5,
            seed=0,
            synchronized=True,
            discriminator_learning_rate=0.05,
            name="fixed_prior",
            **kwargs,
        )
        dim.compile(optimizer=keras.optimizers.SGD(0.1))
    before = [numpy(v) for v in dim.discriminator.trainable_variables]
    history = dim.fit(x, epochs=1, batch_size=16, shuffle=False, verbose=0)
    change = [
        numpy(v) - b
        for v, b in zip(dim.discriminator.trainable_variables, before, strict=True)
    ]
    return change, {k: v[-1] for k, v in history.history.items()}


def test_gradient_penalty_step_under_a_strategy_equals_one_device(mirrored_strategy):
    x = images(16)
    change0, logs0 = _discriminator_step(None, x)
    change1, logs1 = _discriminator_step(mirrored_strategy, x)
    scale = max(float(np.abs(c).max()) for c in change0)
    assert scale > 1e-4
    for c0, c1 in zip(change0, change1, strict=True):
        np.testing.assert_allclose(c1, c0, rtol=1e-5, atol=1e-5 * scale)
    assert logs0["gradient_penalty"] > 0
    for key in ("gradient_penalty", "discriminator_loss", "loss"):
        assert logs1[key] == pytest.approx(logs0[key], rel=1e-5), key


def _np_mi1x1(layer, x):
    """MI1x1ConvNet at inference (fresh BatchNorm statistics) in NumPy."""
    (w1,) = (numpy(v) for v in layer.hidden.weights)
    gamma, beta, mean, var = (numpy(v) for v in layer.batch_norm.weights)
    w2, b2 = (numpy(v) for v in layer.out.weights)
    (ws,) = (numpy(v) for v in layer.shortcut.weights)
    ln_gamma, ln_beta = (numpy(v) for v in layer.layer_norm.weights)
    h = (x @ w1 - mean) / np.sqrt(var + 1e-5) * gamma + beta
    h = np.maximum(h, 0.0) @ w2 + b2 + x @ ws
    mu = h.mean(-1, keepdims=True)
    sd = np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    return (h - mu) / sd * ln_gamma + ln_beta


def test_reference_critic_matches_numpy_and_starts_at_a_noisy_identity():
    keras.utils.set_random_seed(0)
    layer = MI1x1ConvNet(6)
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    out = numpy(layer(x, training=False))
    np.testing.assert_allclose(out, _np_mi1x1(layer, x), rtol=1e-4, atol=1e-5)
    ws = numpy(layer.shortcut.kernel)
    np.testing.assert_array_equal(np.diag(ws), np.ones(4))
    off = ws - np.eye(4, 6)
    assert np.abs(off).max() <= 0.01 and np.abs(off).max() > 0
    narrow = MI1x1ConvNet(2)
    narrow.build((None, 4))
    assert np.abs(numpy(narrow.shortcut.kernel)).max() > 0.01  # Glorot
    config = layer.get_config()
    assert config["units"] == 6
    again = MI1x1ConvNet.from_config(config)
    assert again.units == 6 and again.name == layer.name
    with pytest.raises(ValueError, match="argument units"):
        MI1x1ConvNet(0)


def test_reference_critic_and_self_scores_fit_save_and_reload(tmp_path):
    dim = DeepInfoMax(
        tiny_encoder(),
        "local",
        estimator="nce",
        units=4,
        critic="reference",
        nce_self_score=-10.0,
    )
    assert isinstance(dim.local_critic_map, MI1x1ConvNet)
    dim.compile(optimizer="adam")
    x = images(16)
    moving = numpy(dim.local_critic_map.batch_norm.moving_mean).copy()
    dim.fit(x, epochs=1, batch_size=8, verbose=0)
    # The critic's BatchNorm trained on the batches' statistics.
    assert np.abs(numpy(dim.local_critic_map.batch_norm.moving_mean) - moving).max() > 0
    config = dim.get_config()
    assert config["critic"] == "reference" and config["nce_self_score"] == -10.0
    assert config["gradient_penalty"] == 1.0
    path = tmp_path / "dim.keras"
    dim.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.critic == "reference" and loaded.nce_self_score == -10.0
    evaluated = dim.evaluate(x, verbose=0, return_dict=True)
    again = loaded.evaluate(x, verbose=0, return_dict=True)
    assert again["loss"] == pytest.approx(evaluated["loss"], rel=1e-5, abs=1e-6)


def test_reference_self_scores_against_numpy_loop():
    from test_estimators import np_reference_infonce

    dim = DeepInfoMax(
        tiny_encoder(), "local", estimator="nce", alpha=0.0, nce_self_score=-10.0
    )
    loss, scores = _local_loss_and_np_scores(dim, images(5))
    log_k = math.log(4 * scores.shape[2] + 1)
    assert -loss - log_k == pytest.approx(
        np_reference_infonce(scores), rel=1e-4, abs=1e-5
    )


def test_new_arguments_raise_value_errors_naming_them():
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match="argument critic.*Received: critic='x'"):
        DeepInfoMax(encoder, "local", critic="x")
    with pytest.raises(ValueError, match="argument gradient_penalty"):
        DeepInfoMax(encoder, "local", gradient_penalty=-1.0)
    with pytest.raises(ValueError, match="argument nce_self_score"):
        DeepInfoMax(encoder, "local", nce_self_score="low")
    with pytest.raises(ValueError, match="argument nce_self_score"):
        DeepInfoMax(
            encoder, "local", nce_self_score=-10.0, local_negatives="same_position"
        )


@pytest.fixture
def counted_row_blocks(monkeypatch):
    """Every score block over 12 scores in row blocks of 64 scores (the
    global term's 16 x 16 in 4 blocks of 4 rows, the local 16 x 16 x 9 in
    16 of one row), and a count of the blocked passes."""
    from keras_disentangle.models import deep_info_max

    monkeypatch.setattr(deep_info_max, "_CPU_BLOCK_ELEMENTS", 64)
    monkeypatch.setattr(deep_info_max, "_DEVICE_BLOCK_ELEMENTS", 64)
    return count_row_blocks(monkeypatch, 12)


def _one_block(monkeypatch):
    from keras_disentangle import _blocks

    monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", 10**9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"estimator": "jsd"},
        {"estimator": "dv"},
        {"estimator": "nce", "nce_self_score": -10.0},
    ],
)
def test_row_blocks_in_a_training_step(counted_row_blocks, monkeypatch, kwargs):
    """One ``fit`` step (compiled as Keras compiles it) with the scores in
    row blocks moves the weights as with one block; the logs agree."""
    x = images(16)
    blocked = _one_step(None, x, **kwargs)
    assert sorted(set(counted_row_blocks)) == [1, 4]  # both terms blocked
    _one_block(monkeypatch)
    del counted_row_blocks[:]
    # float32 sums in another order: DV's estimate and gradient cancel most
    # (its value, ~1e-4 here, is a difference of terms ~10: 1e-5 apart).
    _assert_same_step(_one_step(None, x, **kwargs), blocked, rtol=1e-4, log_atol=1e-5)
    assert counted_row_blocks == []


@pytest.mark.parametrize("estimator", ["dv", "nce"])
def test_row_blocks_under_jax_data_parallel(
    data_parallel, counted_row_blocks, monkeypatch, estimator
):
    """The global batch sharded over two devices, in row blocks: the step
    of one device in one block."""
    x = images(16)
    keras.distribution.set_distribution(data_parallel)
    two = _one_step(None, x, estimator=estimator)
    assert sorted(set(counted_row_blocks)) == [1, 4]
    keras.distribution.set_distribution(None)
    _one_block(monkeypatch)
    _assert_same_step(
        _one_step(None, x, estimator=estimator), two, rtol=1e-4, log_atol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"estimator": "jsd"},
        {"estimator": "dv"},
        {"estimator": "nce", "nce_self_score": -10.0},
    ],
)
def test_row_blocks_under_a_strategy(
    mirrored_strategy, counted_row_blocks, monkeypatch, kwargs
):
    """Two replicas score their 8 rows against the gathered 16 in row
    blocks, sized at run time (a replica's batch size is only known then):
    the step of one device in one block."""
    x = images(16)
    runs = count_row_block_runs(monkeypatch)
    two = _one_step(mirrored_strategy, x, synchronized=True, **kwargs)
    # Rows per block chosen at run time: tensors, not Python ints.
    assert counted_row_blocks
    assert not any(isinstance(b, int) for b in counted_row_blocks)
    assert int(runs.numpy()) == 4, "2 replicas x 2 terms ran the blocked loop"
    _one_block(monkeypatch)
    one = _one_step(None, x, synchronized=True, **kwargs)
    _assert_same_step(
        one,
        two,
        skip_logs=("discriminator_loss", "gradient_penalty"),
        rtol=1e-4,
        log_atol=1e-5,
    )
