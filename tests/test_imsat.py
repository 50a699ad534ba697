"""IMSAT: loss against NumPy, VAT direction, BatchNorm state, saving, tuning."""

import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle.models import IMSAT
from keras_disentangle.models.imsat import knn_distance

ROOT = pathlib.Path(__file__).resolve().parents[1]


@keras.saving.register_keras_serializable(package="keras_disentangle_tests")
def halve(x):
    """A deterministic augmentation for the tests."""
    return 0.5 * x


def _linear_encoder(n_in=5, n_out=3, seed=0, **dense_kwargs):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((n_in,)), keras.layers.Dense(n_out, **dense_kwargs)]
    )


def _bn_encoder(n_in=6, n_out=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((n_in,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(momentum=0.5),
            keras.layers.ReLU(),
            keras.layers.Dense(n_out),
        ]
    )


def _data(n=40, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype("float32")


def _np_softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _dense_np(encoder, x):
    w, b = (keras.ops.convert_to_numpy(v).astype("float64") for v in encoder.weights)
    return x.astype("float64") @ w + b


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({}, "n_clusters"),
        ({"n_clusters": 3, "n_bits": 4}, "n_bits"),
        ({"n_clusters": 1}, "n_clusters"),
        ({"n_bits": 0}, "n_bits"),
        ({"n_clusters": 3, "augmentation": "mixup"}, "augmentation"),
        ({"n_clusters": 3, "lam": -1.0}, "lam"),
        ({"n_clusters": 3, "mu": float("nan")}, "mu"),
        ({"n_clusters": 3, "xi": 0.0}, "xi"),
        ({"n_clusters": 3, "epsilon": -0.1}, "epsilon"),
        ({"n_clusters": 3, "eps_scale": 0}, "eps_scale"),
        ({"n_clusters": 3, "n_neighbors": 0}, "n_neighbors"),
        ({"n_clusters": 3, "seed": "a"}, "seed"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"argument.*{name}"):
        IMSAT(_linear_encoder(), **kwargs)


def test_neither_or_both_heads_names_both_arguments():
    for kwargs in ({}, {"n_clusters": 3, "n_bits": 3}):
        with pytest.raises(ValueError) as info:
            IMSAT(_linear_encoder(), **kwargs)
        assert "n_clusters" in str(info.value) and "n_bits" in str(info.value)


def test_other_bad_inputs_raise():
    with pytest.raises(ValueError, match="argument encoder"):
        IMSAT("not a model", n_clusters=3)
    model = IMSAT(_linear_encoder(n_out=3), n_clusters=4)
    with pytest.raises(ValueError, match="argument encoder.*4 output logits"):
        model(_data())
    with pytest.raises(ValueError, match="argument loss"):
        model.compile("adam", loss="mse")
    with pytest.raises(ValueError, match="argument inputs"):
        model({"images": _data()})
    with pytest.raises(ValueError, match="argument x.*n_neighbors=5"):
        knn_distance(_data(n=5), n_neighbors=5)


def test_missing_distances_raise_and_fixed_epsilon_trains_on_plain_x():
    x = _data()
    model = IMSAT(_linear_encoder(), n_clusters=3, augmentation="rpt", seed=0)
    model.compile("adam")
    with pytest.raises(ValueError, match="knn_distance"):
        model.fit(x, epochs=1, verbose=0)
    fixed = IMSAT(_linear_encoder(), n_clusters=3, epsilon=0.5, seed=0)
    fixed.compile("adam")
    history = fixed.fit(x, epochs=1, batch_size=20, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_vat_outside_tensorflow_raises_a_clear_error(monkeypatch):
    from keras_disentangle import _backend

    model = IMSAT(_linear_encoder(), n_clusters=3, epsilon=0.5)
    x = _data()
    y_pred = model(x, training=True)
    monkeypatch.setattr(_backend.keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        model.compute_loss(x=x, y_pred=y_pred)


# ---------------------------------------------------------------- formulas


def test_knn_distance_matches_a_loop():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(37, 2, 3))
    x[5] = x[9]  # a duplicate is a neighbour at distance 0
    flat = x.reshape(37, -1)
    for k in (1, 3, 10):
        loop = []
        for i in range(37):
            dists = sorted(math.dist(flat[i], flat[j]) for j in range(37) if j != i)
            loop.append(dists[k - 1])
        for batch_size in (4, 512):
            np.testing.assert_allclose(
                knn_distance(x, n_neighbors=k, batch_size=batch_size),
                loop,
                rtol=1e-5,
                atol=1e-6,
            )
    assert knn_distance(x, n_neighbors=1)[5] == 0.0


def _clustering_loss_np(p, q, lam, mu):
    r_sat = np.mean(np.sum(p * np.log(p / q), axis=1))
    cond = np.mean(-np.sum(p * np.log(p), axis=1))
    pbar = p.mean(axis=0)
    marg = -np.sum(pbar * np.log(pbar))
    return r_sat + lam * (cond - mu * marg)


def _hashing_loss_np(p, q, lam):
    def hb(v):
        return -v * np.log(v) - (1 - v) * np.log(1 - v)

    r_sat = np.mean(
        np.sum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), axis=1)
    )
    cond = np.mean(np.sum(hb(p), axis=1))
    marg = np.sum(hb(p.mean(axis=0)))
    n, k = p.shape
    pair = 0.0
    for i in range(k):
        for j in range(k):
            if i == j:
                continue
            for a in (0, 1):
                for b in (0, 1):
                    pi = p[:, i] if a else 1 - p[:, i]
                    pj = p[:, j] if b else 1 - p[:, j]
                    joint = np.mean(pi * pj)
                    pair += joint * np.log(joint / (pi.mean() * pj.mean()))
    return r_sat + lam * (cond - marg + pair)


@pytest.mark.parametrize("n_bits", [None, 4])
def test_loss_matches_numpy(n_bits):
    x = _data()
    head = {"n_bits": n_bits} if n_bits else {"n_clusters": 3}
    encoder = _linear_encoder(n_out=n_bits or 3)
    model = IMSAT(encoder, augmentation=halve, lam=0.7, mu=2.5, **head)
    y_pred = model(x, training=True)
    loss = float(model.compute_loss(x=x, y_pred=y_pred))
    z, z_aug = _dense_np(encoder, x), _dense_np(encoder, 0.5 * x)
    if n_bits:
        expected = _hashing_loss_np(_np_sigmoid(z), _np_sigmoid(z_aug), 0.7)
    else:
        expected = _clustering_loss_np(_np_softmax(z), _np_softmax(z_aug), 0.7, 2.5)
    np.testing.assert_allclose(loss, expected, rtol=2e-5, atol=1e-6)


def test_loss_adds_the_encoders_regularisation_losses():
    x = _data()
    plain = IMSAT(_linear_encoder(seed=1), n_clusters=3, augmentation=halve)
    reg = IMSAT(
        _linear_encoder(
            seed=1,
            kernel_regularizer=keras.regularizers.L2(0.3),
            activity_regularizer=keras.regularizers.L1(0.2),
        ),
        n_clusters=3,
        augmentation=halve,
    )
    base = float(plain.compute_loss(x=x, y_pred=plain(x, training=True)))
    total = float(reg.compute_loss(x=x, y_pred=reg(x, training=True)))
    z = _dense_np(reg.encoder, x)
    w = keras.ops.convert_to_numpy(reg.encoder.weights[0])
    # Keras divides an activity regulariser by the batch size.
    expected = 0.3 * np.sum(w**2) + 0.2 * np.sum(np.abs(z)) / len(x)
    np.testing.assert_allclose(total - base, expected, rtol=1e-4)


def test_perturbation_radius_is_per_sample_or_fixed():
    x = _data()
    knn = np.linspace(0.5, 2.0, len(x)).astype("float32")
    for aug in ("rpt", "vat"):
        model = IMSAT(_linear_encoder(), n_clusters=3, augmentation=aug, seed=0)
        target = model(x)
        moved = model._augment(keras.ops.convert_to_tensor(x), knn, target, True)
        norms = np.linalg.norm(keras.ops.convert_to_numpy(moved) - x, axis=1)
        np.testing.assert_allclose(norms, 0.25 * knn, rtol=1e-4)
        model = IMSAT(
            _linear_encoder(), n_clusters=3, augmentation=aug, epsilon=0.3, seed=0
        )
        moved = model._augment(keras.ops.convert_to_tensor(x), None, target, True)
        norms = np.linalg.norm(keras.ops.convert_to_numpy(moved) - x, axis=1)
        np.testing.assert_allclose(norms, 0.3, rtol=1e-4)


@pytest.mark.parametrize("n_bits", [None, 3])
def test_vat_direction_matches_finite_differences(n_bits):
    x = _data(n=6, d=4)
    encoder = _linear_encoder(n_in=4, n_out=3, seed=2)
    head = {"n_bits": n_bits} if n_bits else {"n_clusters": 3}
    model = IMSAT(encoder, xi=2.0, **head)
    target = model(x)
    d = np.random.default_rng(0).normal(size=x.shape).astype("float32")
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    got = keras.ops.convert_to_numpy(
        model._adversarial_direction(
            keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(d), target, True
        )
    )
    p = keras.ops.convert_to_numpy(target).astype("float64")

    def kl_n(n, dn):
        z = _dense_np(encoder, (x[n] + 2.0 * dn)[None])
        if n_bits:
            q = _np_sigmoid(z)[0]
            return np.sum(
                p[n] * np.log(p[n] / q) + (1 - p[n]) * np.log((1 - p[n]) / (1 - q))
            )
        q = _np_softmax(z)[0]
        return np.sum(p[n] * np.log(p[n] / q))

    h = 1e-5
    for n in range(len(x)):
        g = np.array(
            [
                (kl_n(n, d[n] + h * e) - kl_n(n, d[n] - h * e)) / (2 * h)
                for e in np.eye(4)
            ]
        )
        np.testing.assert_allclose(got[n], g / np.linalg.norm(g), atol=2e-3)


def test_vat_perturbation_is_more_adversarial_than_random():
    x = _data(n=200, d=32)
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(16, activation="tanh"),
            keras.layers.Dense(4),
        ]
    )
    r = {}
    for aug in ("vat", "rpt"):
        model = IMSAT(
            encoder, n_clusters=4, augmentation=aug, epsilon=0.5, lam=0.0, seed=0
        )
        r[aug] = float(model.compute_loss(x=x, y_pred=model(x, training=True)))
    assert r["vat"] > 3 * r["rpt"]


# ---------------------------------------------------------- Keras behaviour


def test_only_the_clean_pass_updates_batchnorm_statistics():
    x = _data(n=32, d=6)

    def moving_mean_after_one_step(model):
        model.compile(keras.optimizers.SGD(0.0))
        model.fit(x, epochs=1, batch_size=32, shuffle=False, verbose=0)
        bn = model.encoder.layers[1]
        return keras.ops.convert_to_numpy(bn.moving_mean)

    encoder = _bn_encoder()
    h = keras.ops.convert_to_numpy(encoder.layers[0](x))
    expected = 0.5 * 0.0 + 0.5 * h.mean(axis=0)  # momentum 0.5, from zeros
    for aug in ("vat", "rpt", halve):
        model = IMSAT(_bn_encoder(), n_clusters=3, augmentation=aug, epsilon=3.0)
        np.testing.assert_allclose(
            moving_mean_after_one_step(model), expected, rtol=1e-4, atol=1e-5
        )

    # The check can fail: perturbed passes that update the statistics do.
    class Leaky(IMSAT):
        def _perturbed_predict(self, x, training):
            return self._activate(self.encoder(x, training=training))

    leaky = Leaky(_bn_encoder(), n_clusters=3, augmentation="rpt", epsilon=3.0)
    assert not np.allclose(moving_mean_after_one_step(leaky), expected, atol=1e-3)


def test_gradients_flow_through_the_perturbed_pass():
    x = _data()
    model = IMSAT(
        _bn_encoder(n_in=5), n_clusters=3, augmentation="vat", lam=0.0, epsilon=1.0
    )
    model(x)
    before = [keras.ops.convert_to_numpy(w) for w in model.encoder.trainable_weights]
    model.compile(keras.optimizers.SGD(1.0))
    history = model.fit(x, epochs=1, batch_size=40, verbose=0)
    after = [keras.ops.convert_to_numpy(w) for w in model.encoder.trainable_weights]
    assert history.history["r_sat"][0] > 0
    # Only R_SAT (lam=0), whose clean side is held constant: every weight
    # moves but the bias in front of BatchNormalization (which cancels it).
    for w, a, b in zip(model.encoder.trainable_weights, after, before, strict=True):
        assert np.allclose(a, b) == (w is model.encoder.layers[0].bias), w.path


@pytest.mark.parametrize("n_bits", [None, 5])
def test_fit_predict_and_logged_terms(n_bits):
    x = _data(n=60, d=5)
    head = {"n_bits": n_bits} if n_bits else {"n_clusters": 3}
    model = IMSAT(_bn_encoder(n_in=5, n_out=n_bits or 3), seed=0, **head)
    model.compile("adam")
    inputs = model.knn_inputs(x)
    history = model.fit(inputs, epochs=2, batch_size=20, verbose=0)
    logged = {"loss", "r_sat", "conditional_entropy", "marginal_entropy"}
    if n_bits:
        logged.add("pair_mutual_information")
    assert logged <= set(history.history)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    dataset = tf.data.Dataset.from_tensor_slices(inputs).shuffle(60).batch(20)
    history = model.fit(dataset, shuffle=False, verbose=0)
    assert np.isfinite(history.history["r_sat"][0])
    assert set(model.evaluate(inputs, verbose=0, return_dict=True)) >= logged
    proba = model.predict_proba(x, verbose=0)
    pred = model.predict(inputs, verbose=0)  # a knn_inputs dict works too
    if n_bits:
        assert proba.shape == (60, 5) and pred.shape == (60, 5)
        np.testing.assert_array_equal(pred, (proba > 0.5).astype("int32"))
    else:
        assert proba.shape == (60, 3) and pred.shape == (60,)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(pred, proba.argmax(axis=1))


def test_config_round_trip():
    model = IMSAT(
        _linear_encoder(),
        n_bits=3,
        augmentation=halve,
        lam=0.2,
        mu=1.0,
        xi=5.0,
        epsilon=0.4,
        eps_scale=0.5,
        n_neighbors=4,
        seed=7,
    )
    config = model.get_config()
    assert all(
        isinstance(config[k], float)
        for k in ("lam", "mu", "xi", "epsilon", "eps_scale")
    )
    clone = IMSAT.from_config(config)
    assert clone.augmentation is halve
    again = clone.get_config()
    again.pop("name"), config.pop("name")
    assert again == config


_RELOAD = """
import sys
import numpy as np
import keras
import keras_disentangle  # registers IMSAT
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
print(type(model).__name__, model.augmentation, model.n_clusters)
"""


def test_save_and_reload_in_a_fresh_process(tmp_path):
    x = _data(n=40, d=6)
    model = IMSAT(_bn_encoder(), n_clusters=3, seed=0)
    model.compile(keras.optimizers.Adam(0.01))
    model.fit(model.knn_inputs(x), epochs=2, batch_size=20, verbose=0)
    path = tmp_path / "imsat.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _RELOAD,
            str(path),
            str(tmp_path / "x.npy"),
            str(tmp_path / "p.npy"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-3:] == ["IMSAT", "vat", "3"]
    np.testing.assert_array_equal(
        np.load(tmp_path / "p.npy"), model.predict(x, verbose=0)
    )
    reloaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        reloaded.predict_proba(x, verbose=0), model.predict_proba(x, verbose=0)
    )
    # the same information terms; R_SAT draws new random directions (the
    # seed state is not saved, as for Keras's Dropout)
    inputs = model.knn_inputs(x)
    before = model.evaluate(inputs, batch_size=40, verbose=0, return_dict=True)
    after = reloaded.evaluate(inputs, batch_size=40, verbose=0, return_dict=True)
    for name in ("conditional_entropy", "marginal_entropy"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6)
    # compiled again on loading: training goes on
    reloaded.fit(reloaded.knn_inputs(x), epochs=1, batch_size=20, verbose=0)


def test_keras_tuner_search_over_lam(tmp_path):
    keras_tuner = pytest.importorskip("keras_tuner")
    x = _data(n=48, d=5)

    def build(hp):
        model = IMSAT(
            _linear_encoder(),
            n_clusters=3,
            augmentation="rpt",
            lam=hp.Choice("lam", [0.05, 0.2]),
            seed=0,
        )
        model.compile("adam")
        return model

    tuner = keras_tuner.GridSearch(
        build,
        objective=keras_tuner.Objective("r_sat", "min"),
        max_trials=2,
        directory=tmp_path,
        project_name="imsat",
    )
    tuner.search(
        IMSAT.knn_inputs(build(keras_tuner.HyperParameters()), x),
        epochs=1,
        batch_size=16,
        verbose=0,
    )
    trials = tuner.oracle.get_best_trials(2)
    assert {t.hyperparameters.get("lam") for t in trials} == {0.05, 0.2}
    assert all(np.isfinite(t.score) for t in trials)


# ------------------------------------------------------------------ example


def _load_example():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import imsat_mnist
    finally:
        sys.path.pop(0)
    return imsat_mnist


def test_example_quick(capsys):
    results = _load_example().main(["--quick"])
    out = capsys.readouterr().out
    for row in ("KMeans (raw pixels)", "IMSAT (VAT)", "IMSAT (RPT)", "sign of PCA"):
        assert row in out
    assert all(0.0 <= v <= 1.0 for vs in results["clustering"].values() for v in vs)


@pytest.mark.slow
def test_example_clustering_beats_kmeans_by_a_quarter():
    clus = _load_example().main(["--part", "clustering"])["clustering"]
    kmeans = np.mean(clus["KMeans (raw pixels)"])
    assert np.mean(clus["IMSAT (VAT)"]) >= kmeans + 0.25


@pytest.mark.slow
def test_example_hashing_beats_sign_of_pca():
    hashes = _load_example().main(["--part", "hashing"])["hashing"]
    pca = np.mean(hashes["sign of PCA (16 bits)"], axis=0)
    imsat = np.mean(hashes["IMSAT (16 bits, VAT)"], axis=0)
    assert imsat[0] > pca[0] and imsat[1] > pca[1]  # mAP, precision@500


def test_vat_outside_tensorflow_fails_at_construction(monkeypatch):
    from keras_disentangle import _backend

    monkeypatch.setattr(_backend.keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="KERAS_BACKEND=tensorflow"):
        IMSAT(_linear_encoder(), n_clusters=3, epsilon=0.5)
    IMSAT(_linear_encoder(), n_clusters=3, epsilon=0.5, augmentation="rpt")
