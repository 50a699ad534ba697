"""DeepInfoMax: arguments, loss, prior matching, saving, tuning and the example."""

import contextlib
import importlib.util
import json
import math
import pathlib

import keras
import numpy as np
import pytest
from helpers import assert_reload_resumes, numpy

import keras_disentangle  # noqa: F401  (registers the classes)
from keras_disentangle import estimators
from keras_disentangle.models import DeepInfoMax

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


@pytest.mark.parametrize("negatives", ["all_positions", "same_position"])
def test_local_infonce_negatives_against_numpy_loop(negatives):
    from test_estimators import np_nce_all_positions, np_nce_same_position

    kwargs = {} if negatives == "all_positions" else {"local_negatives": negatives}
    dim = DeepInfoMax(tiny_encoder(), "local", estimator="nce", alpha=0.0, **kwargs)
    assert dim.local_negatives == negatives  # the reference's form by default
    x = images(5)
    loss = float(numpy(dim.compute_loss(x, y_pred=dim(x), training=False)))
    local_model = keras.Model(dim.encoder.input, dim.encoder.get_layer("local").output)
    local = numpy(local_model(x)).reshape(5, -1, 4).astype("float64")
    ly = _np_projection(dim.local_critic_y, numpy(dim.encoder(x)).astype("float64"))
    lm = _np_projection(dim.local_critic_map, local)
    scores = np.einsum("iu,jlu->ijl", ly, lm)
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


def _assert_same_step(one, other, skip_logs=()):
    (b0, d0, logs0, _), (b1, d1, logs1, _) = one, other
    for w0, w1 in zip(b0, b1, strict=True):
        np.testing.assert_array_equal(w0, w1)  # the same initial weights
    scale = max(float(np.abs(d).max()) for d in d0)
    assert scale > 1e-4  # the step moved the weights
    for c0, c1 in zip(d0, d1, strict=True):
        np.testing.assert_allclose(c1, c0, rtol=1e-5, atol=1e-5 * scale)
    for key, value in logs0.items():
        if key not in skip_logs:
            assert logs1[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


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
    _assert_same_step(one, two, skip_logs=("discriminator_loss",))


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


@pytest.mark.slow
def test_example_trained_features_beat_untrained():
    result = load_example("deep_info_max_mnist").main([])
    assert result["trained_beats_untrained_every_seed"], result
    assert result["trained_mean"] > result["untrained_mean"] + 0.02, result
