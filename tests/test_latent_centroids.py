"""LatentCentroids and its pure formula, against independent NumPy loops."""

import math

import keras
import numpy as np
import pytest
from helpers import FLOAT64, numpy, reload_in_fresh_process, rtol, value_and_grad

from keras_disentangle import penalties
from keras_disentangle.callbacks import CentroidReinit, CentroidWeightRamp
from keras_disentangle.layers import LatentCentroids


def numpy_min_distance(h, c):
    """mean_n min_j sum_d (h_nd - c_jd)^2 by explicit loops."""
    total = 0.0
    for n in range(h.shape[0]):
        best = math.inf
        for j in range(c.shape[0]):
            d = 0.0
            for k in range(h.shape[1]):
                d += (h[n, k] - c[j, k]) ** 2
            best = min(best, d)
        total += best
    return total / h.shape[0]


# ----------------------------------------------------------------- the formula


@pytest.mark.parametrize("n, k, d", [(1, 1, 1), (7, 3, 5), (16, 10, 2), (5, 12, 9)])
def test_min_centroid_distance_matches_numpy_loop(n, k, d):
    rng = np.random.default_rng(n * 100 + k * 10 + d)
    h = rng.normal(size=(n, d))
    c = rng.normal(size=(k, d)) * 2.0
    got = keras.ops.convert_to_numpy(penalties.min_centroid_distance(h, c))
    np.testing.assert_allclose(
        got, numpy_min_distance(h, c), rtol=rtol(1e-10), atol=1e-12
    )


def test_min_centroid_distance_zero_on_centroids_and_clipped():
    rng = np.random.default_rng(0)
    # Large norms: cancellation in the expansion (float32 backends: smaller).
    c = rng.normal(size=(4, 6)) * (1e3 if FLOAT64 else 10.0)
    h = c[[0, 2, 2, 3, 1]]
    d2 = keras.ops.convert_to_numpy(penalties.squared_distances(h, c))
    assert d2.min() >= 0.0  # clipped, never negative
    got = float(penalties.min_centroid_distance(h, c))
    assert got == pytest.approx(0.0, abs=1e-6 if FLOAT64 else 1e-3)


def test_min_centroid_distance_gradient_finite_and_correct():
    rng = np.random.default_rng(3)
    hv = rng.normal(size=(8, 4))
    cv = rng.normal(size=(3, 4))
    _, grad_h = value_and_grad(lambda h: penalties.min_centroid_distance(h, cv), hv)
    _, grad_c = value_and_grad(lambda c: penalties.min_centroid_distance(hv, c), cv)
    assert np.all(np.isfinite(grad_h)) and np.all(np.isfinite(grad_c))
    # d/dh_n = 2 (h_n - c_nearest(n)) / N, by a NumPy loop
    nearest = [int(np.argmin([np.sum((x - cc) ** 2) for cc in cv])) for x in hv]
    expected_h = np.stack(
        [2 * (hv[i] - cv[nearest[i]]) / len(hv) for i in range(len(hv))]
    )
    np.testing.assert_allclose(grad_h, expected_h, rtol=rtol(1e-8), atol=1e-7)
    expected_c = np.zeros_like(cv)
    for i, j in enumerate(nearest):
        expected_c[j] -= 2 * (hv[i] - cv[j]) / len(hv)
    np.testing.assert_allclose(grad_c, expected_c, rtol=rtol(1e-8), atol=1e-7)


def test_min_centroid_distance_half_precision_computed_in_float32():
    h = np.random.default_rng(1).normal(size=(6, 3)).astype("float16")
    c = np.random.default_rng(2).normal(size=(2, 3)).astype("float32")
    got = penalties.min_centroid_distance(h, c)
    assert "float32" in str(got.dtype)
    np.testing.assert_allclose(
        float(got),
        numpy_min_distance(h.astype("float64"), c.astype("float64")),
        rtol=1e-5,
    )


def test_min_centroid_distance_bad_shapes():
    with pytest.raises(ValueError, match="h"):
        penalties.min_centroid_distance(np.zeros((2, 3, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="centroids"):
        penalties.min_centroid_distance(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_random_location_picks_one_position_per_image(data_format):
    n, hgt, wid, ch = 6, 3, 4, 5
    # Every (image, position, channel) value is unique: the picked vector tells
    # which position it came from.
    h = np.arange(n * hgt * wid * ch, dtype="float32").reshape(n, hgt, wid, ch)
    source = h if data_format == "channels_last" else np.moveaxis(h, -1, 1)
    seen = set()
    seed = keras.random.SeedGenerator(0)
    for _ in range(10):
        z = keras.ops.convert_to_numpy(
            penalties.random_location(source, seed=seed, data_format=data_format)
        )
        assert z.shape == (n, ch)
        for i in range(n):
            matches = [
                (a, b)
                for a in range(hgt)
                for b in range(wid)
                if np.array_equal(z[i], h[i, a, b])
            ]
            assert len(matches) == 1
            seen.add(matches[0])
    assert len(seen) > 3  # positions vary between calls


def test_random_location_rank2_unchanged_and_bad_format():
    h = np.ones((3, 2), "float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(penalties.random_location(h)), h
    )
    with pytest.raises(ValueError, match="data_format"):
        penalties.random_location(np.ones((2, 3, 3, 1)), data_format="nhwc")


# ------------------------------------------------------------------- the layer


def test_layer_passes_through_and_adds_weighted_loss():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(9, 4)).astype("float32")
    layer = LatentCentroids(3, weight=0.7)
    out = layer(h)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), h)
    c = keras.ops.convert_to_numpy(layer.centroids).astype("float64")
    expected = 0.7 * numpy_min_distance(h.astype("float64"), c)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(numpy(layer.losses[0])), expected, rtol=1e-5)
    # the weight is a variable a callback can change
    layer.weight.assign(0.0)
    layer(h)
    assert float(numpy(layer.losses[0])) == 0.0
    assert [v.name for v in layer.trainable_weights] == ["centroids"]
    assert "weight" in [v.name for v in layer.non_trainable_weights]


def test_layer_on_feature_map_uses_channel_vectors():
    # All positions of an image hold the same channel vector: the random
    # position does not matter, the loss is exact.
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5, 3)).astype("float32")
    fmap = np.broadcast_to(vectors[:, None, None, :], (5, 4, 4, 3)).copy()
    layer = LatentCentroids(2, weight=1.0, seed=3)
    layer(fmap)
    assert tuple(layer.centroids.shape) == (2, 3)
    c = keras.ops.convert_to_numpy(layer.centroids).astype("float64")
    np.testing.assert_allclose(
        float(numpy(layer.losses[0])),
        numpy_min_distance(vectors.astype("float64"), c),
        rtol=1e-5,
    )
    # channels_first: the channel axis is 1
    layer = LatentCentroids(2, data_format="channels_first")
    layer(np.moveaxis(fmap, -1, 1))
    assert tuple(layer.centroids.shape) == (2, 3)


def test_centroids_learn_the_clusters_of_the_data():
    # Only the centroids train (the loss is the penalty alone): they must move
    # from N(0, 1) to the centres of two far-apart blobs.
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 5.0], [-5.0, 5.0]])
    x = np.concatenate([c + 0.1 * rng.normal(size=(100, 2)) for c in centres]).astype(
        "float32"
    )
    inputs = keras.Input((2,))
    layer = LatentCentroids(
        2,
        weight=1.0,
        centroids_initializer=keras.initializers.Constant([[1.0, 0.0], [-1.0, 0.0]]),
    )
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(0.5), loss=lambda y, p: 0.0 * keras.ops.sum(p))
    model.fit(x, x, epochs=20, batch_size=200, verbose=0)
    c = keras.ops.convert_to_numpy(layer.centroids)
    c = c[np.argsort(-c[:, 0])]
    np.testing.assert_allclose(c, centres, atol=0.2)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_clusters": 2.5}, "n_clusters"),
        ({"n_clusters": True}, "n_clusters"),
        ({"n_clusters": 2, "weight": -1.0}, "weight"),
        ({"n_clusters": 2, "weight": float("nan")}, "weight"),
        ({"n_clusters": 2, "weight": float("inf")}, "weight"),
        ({"n_clusters": 2, "weight": "1"}, "weight"),
        ({"n_clusters": 2, "data_format": "nhwc"}, "data_format"),
        ({"n_clusters": 2, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"argument {name}"):
        LatentCentroids(**kwargs)


def test_bad_shapes_raise_at_build():
    with pytest.raises(ValueError, match="rank >= 2"):
        LatentCentroids(2).build((5,))
    with pytest.raises(ValueError, match="feature"):
        LatentCentroids(2)(keras.Input((None,)))


def test_config_round_trip():
    layer = LatentCentroids(
        4, weight=0.25, data_format="channels_first", seed=7, name="lc"
    )
    layer.weight.assign(3.0)  # ramped: the config keeps the initial float
    config = layer.get_config()
    assert config["weight"] == 0.25 and isinstance(config["weight"], float)
    clone = LatentCentroids.from_config(config)
    assert clone.get_config() == config
    assert float(clone.weight) == 0.25
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, LatentCentroids) and restored.get_config() == config


def _small_model():
    inputs = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = LatentCentroids(3, weight=0.5, seed=1, name="lc_conv")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, activation="relu")(h)
    h = LatentCentroids(4, weight=0.1, name="lc_dense")(h)
    outputs = keras.layers.Dense(3, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_fit_save_reload_in_fresh_process_gives_identical_predictions(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 6, 6, 1)).astype("float32")
    y = np.arange(40) % 3
    model = _small_model()
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=10,
        verbose=0,
        callbacks=[
            CentroidWeightRamp("lc_conv", end=2.0, delay=1),
            CentroidReinit((x, y), layer="lc_dense"),
        ],
    )
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    out = reload_in_fresh_process(
        path,
        f"""
        model = keras.saving.load_model(PATH)
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "p.npy")!r}, model.predict(x, verbose=0))
        weight = model.get_layer("lc_conv").weight
        print(float(keras.ops.convert_to_numpy(weight)))
        """,
    )
    np.testing.assert_array_equal(
        np.load(tmp_path / "p.npy"), model.predict(x, verbose=0)
    )
    # the ramped weight (not the initial 0.5) is restored with the weights
    assert float(out.strip().splitlines()[-1]) == pytest.approx(2.0)
    # and in this process, the same centroids
    reloaded = keras.saving.load_model(path)
    layer = reloaded.get_layer("lc_dense")
    np.testing.assert_array_equal(
        numpy(layer.centroids), numpy(model.get_layer("lc_dense").centroids)
    )


def test_keras_tuner_search_over_the_weight(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    rng = np.random.default_rng(0)
    x = rng.random((48, 8)).astype("float32")
    y = np.arange(48) % 2

    def build(hp):
        inputs = keras.Input((8,))
        h = keras.layers.Dense(4, activation="relu")(inputs)
        h = LatentCentroids(2, weight=hp.Choice("weight", [0.0, 0.5]))(h)
        model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    ramp = CentroidWeightRamp(delay=1)
    reinit = CentroidReinit((x[:10], y[:10]))
    tuner = keras_tuner.GridSearch(
        build, objective="val_loss", max_trials=2, directory=tmp_path, project_name="lc"
    )
    tuner.search(
        x,
        y,
        validation_split=0.25,
        epochs=2,
        batch_size=12,
        verbose=0,
        callbacks=[ramp, reinit],
    )
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2
    assert {t.hyperparameters.get("weight") for t in trials} == {0.0, 0.5}
    assert all(np.isfinite(t.score) for t in trials)


def test_mixed_precision_and_unknown_spatial_size_under_xla():
    inputs = keras.Input((None, None, 2))
    h = keras.layers.Conv2D(3, 3, dtype="mixed_float16")(inputs)
    layer = LatentCentroids(4, weight=0.5, dtype="mixed_float16")
    h = keras.layers.GlobalAveragePooling2D(dtype="float32")(layer(h))
    model = keras.Model(inputs, h)
    model.compile("adam", "mse", jit_compile=True)
    x = np.random.default_rng(0).random((8, 5, 5, 2)).astype("float32")
    history = model.fit(x, np.zeros((8, 3)), epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert layer.centroids.dtype == "float32" and layer.weight.dtype == "float32"
    layer(keras.ops.ones((2, 3, 3, 3), dtype="float16"))  # eager: losses kept
    assert "float32" in str(layer.losses[0].dtype)


# ------------------------------------------------------------ several devices


def _distributed_model():
    inputs = keras.Input((4,))
    h = keras.layers.Dense(3, name="enc")(inputs)
    h = LatentCentroids(5, weight=0.7, name="lc")(h)
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(h))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _distributed_data():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    labels = np.arange(16) % 5
    return x, y, labels


def _one_step(model, initial, reinit):
    """One fit step on the global batch of 16 (with the callbacks or not)."""
    x, y, labels = _distributed_data()
    model.set_weights(initial)
    callbacks = (
        [CentroidReinit((x, labels), seed=0), CentroidWeightRamp(start=0.3, end=0.3)]
        if reinit
        else []
    )
    history = model.fit(
        x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=callbacks
    )
    return [numpy(w) for w in model.weights], history.history["loss"][0]


def _one_device(reinit):
    keras.utils.set_random_seed(0)
    model = _distributed_model()
    initial = [numpy(w) for w in model.weights]
    return initial, _one_step(model, initial, reinit)


@pytest.mark.parametrize("reinit", [False, True])
def test_one_step_under_mirrored_strategy_equals_one_device(mirrored_strategy, reinit):
    # Issue 8: LatentCentroids is exact under tf.distribute without a
    # collective: its penalty is a per-sample mean, which Keras scales by 1/R
    # per replica (equal slices of 8 here), so the summed gradient is the
    # global-batch gradient. CentroidReinit assigns the same centroids and
    # CentroidWeightRamp the same weight.
    initial, (expected, expected_loss) = _one_device(reinit)
    with mirrored_strategy.scope():
        model = _distributed_model()
    assert mirrored_strategy.num_replicas_in_sync == 2
    weights, loss = _one_step(model, initial, reinit)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for got, want in zip(weights, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # The step moved the centroids (the penalty reached the optimizer).
    index = [w.path for w in model.weights].index("lc/centroids")
    assert not np.allclose(weights[index], initial[index])


@pytest.mark.parametrize("reinit", [False, True])
def test_one_step_under_jax_data_parallel_equals_one_device(data_parallel, reinit):
    keras.distribution.set_distribution(None)
    try:
        initial, (expected, expected_loss) = _one_device(reinit)
    finally:
        keras.distribution.set_distribution(data_parallel)
    model = _distributed_model()
    weights, loss = _one_step(model, initial, reinit)
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    for got, want in zip(weights, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_empty_replica_slice_gives_a_finite_loss(mirrored_strategy):
    # Issue 8 item 3: N=17 with batch 16 leaves the last global batch of one
    # sample to one replica; the other one's mean over nothing was NaN, and
    # the logged loss with it.
    with mirrored_strategy.scope():
        model = _distributed_model()
    x = np.random.default_rng(0).normal(size=(17, 4)).astype("float32")
    history = model.fit(
        x, np.zeros((17, 2), "float32"), batch_size=16, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert all(np.all(np.isfinite(numpy(w))) for w in model.weights)
    # One sample alone, on one device: the penalty of a batch of one is its
    # distance to the nearest centroid, and an empty batch adds nothing.
    layer = LatentCentroids(2, weight=1.0)
    layer(np.zeros((1, 3), "float32"))
    assert np.isfinite(float(numpy(layer.losses[0])))
