"""The Keras adapters: scaling, configs, validation, fit/save/reload."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import rtol
from keras import ops

from keras_disentangle import layers, losses, penalties, regularizers

RNG = np.random.default_rng(1)

ACTIVITY = {
    "ActivityKLMargin": (
        lambda: regularizers.ActivityKLMargin(margin=0.8, weight=0.3),
        lambda h: penalties.activity_kl_margin(h, 0.8),
    ),
    "DeCov": (lambda: regularizers.DeCov(weight=0.3), penalties.decov),
    "CovarianceL1": (
        lambda: regularizers.CovarianceL1(weight=0.3),
        penalties.covariance_l1,
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVITY))
@pytest.mark.parametrize("batch_size", [1, 8, 64])
def test_activity_loss_is_weight_times_formula(name, batch_size):
    make, formula = ACTIVITY[name]
    dense = keras.layers.Dense(6, activity_regularizer=make())
    x = RNG.normal(size=(batch_size, 5)).astype("float32")
    h = dense(x)
    assert len(dense.losses) == 1
    got = float(ops.convert_to_numpy(dense.losses[0]))
    want = 0.3 * float(ops.convert_to_numpy(formula(h)))
    assert got == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_kernel_regularizer_is_weight_times_formula():
    reg = regularizers.KernelKLMargin(margin=5.0, weight=0.01)
    dense = keras.layers.Dense(4, kernel_regularizer=reg)
    dense.build((None, 7))
    got = float(ops.convert_to_numpy(dense.losses[0]))
    want = 0.01 * float(
        ops.convert_to_numpy(penalties.kernel_kl_margin(dense.kernel, 5.0))
    )
    assert got == pytest.approx(want, rel=1e-6)


CONFIGURED = [
    regularizers.KernelKLMargin(margin=7.0, weight=0.02),
    regularizers.ActivityKLMargin(margin=0.5, weight=0.2),
    regularizers.DeCov(weight=0.05),
    regularizers.CovarianceL1(weight=0.4),
    losses.LabelledKLMargin(margin=0.25),
    layers.XCovPenalty(weight=2.0, name="xcov"),
    layers.ActivityPenalty(
        regularizers.ActivityKLMargin(margin=0.5, weight=0.2), synchronized=True
    ),
    layers.ActivityPenalty(regularizers.DeCov(weight=0.05, features="channels")),
    losses.LabelledKLMargin(margin=0.25, unlabelled=None, synchronized=True),
    layers.XCovPenalty(weight=2.0, features="channels", synchronized=True, name="x"),
]


@pytest.mark.parametrize("obj", CONFIGURED, ids=lambda o: type(o).__name__)
def test_config_round_trip(obj):
    config = obj.get_config()
    assert all(not hasattr(v, "numpy") for v in config.values())  # plain Python
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    assert serialized["registered_name"].startswith("keras_disentangle>")
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(obj)
    assert restored.get_config() == config


@pytest.mark.parametrize(
    "make",
    [
        lambda v: regularizers.KernelKLMargin(margin=v),
        lambda v: regularizers.KernelKLMargin(weight=v),
        lambda v: regularizers.ActivityKLMargin(margin=v),
        lambda v: regularizers.DeCov(weight=v),
        lambda v: regularizers.CovarianceL1(weight=v),
        lambda v: losses.LabelledKLMargin(margin=v),
        lambda v: layers.XCovPenalty(weight=v),
    ],
)
@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", None, True])
def test_bad_arguments_raise_value_error(make, bad):
    with pytest.raises(ValueError, match=r"Invalid value for argument (margin|weight)"):
        make(bad)


def test_error_message_names_argument_and_value():
    with pytest.raises(ValueError) as info:
        regularizers.ActivityKLMargin(margin=-1)
    assert "expected a finite number >= 0" in str(info.value)
    assert "Received: margin=-1" in str(info.value)


def test_xcov_layer_needs_two_inputs():
    with pytest.raises(ValueError, match="prediction, latent"):
        layers.XCovPenalty(1.0)(keras.Input((3,)))


def test_xcov_layer_adds_weight_times_formula_and_passes_prediction_through():
    y = RNG.normal(size=(16, 1)).astype("float32")
    h = RNG.normal(size=(16, 4)).astype("float32")
    layer = layers.XCovPenalty(weight=0.5)
    out = layer([y, h])
    np.testing.assert_array_equal(ops.convert_to_numpy(out), y)
    got = float(ops.convert_to_numpy(layer.losses[0]))
    assert got == pytest.approx(0.5 * float(penalties.xcov(y, h)), rel=1e-6)


def test_labelled_loss_matches_formula():
    h = RNG.normal(size=(12, 5)).astype("float32")
    labels = RNG.integers(0, 3, size=12)
    loss = losses.LabelledKLMargin(margin=0.5)
    got = float(loss(labels, h))
    want = float(penalties.activity_kl_margin(h, 0.5, labels=labels))
    assert got == pytest.approx(want, rel=1e-6)


# ---------------------------------------------------- fit, save, fresh reload
def _data():
    x = RNG.normal(size=(64, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")[:, None]
    return x, y


def _build(kind):
    inputs = keras.Input((6,))
    if kind == "kernel":
        h = keras.layers.Dense(
            5, kernel_regularizer=regularizers.KernelKLMargin(5.0, 0.01)
        )(inputs)
    elif kind in ("activity", "decov", "l1"):
        reg = {
            "activity": regularizers.ActivityKLMargin(1.0, 0.1),
            "decov": regularizers.DeCov(0.1),
            "l1": regularizers.CovarianceL1(0.1),
        }[kind]
        h = keras.layers.Dense(5, activity_regularizer=reg)(inputs)
    else:
        h = keras.layers.Dense(5, name="fc1")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    if kind == "xcov":
        out = layers.XCovPenalty(1.0, name="xcov")([out, h])
    if kind == "labelled":
        model = keras.Model(inputs, {"out": out, "fc1": h})
        model.compile(
            "adam",
            loss={"out": "binary_crossentropy", "fc1": losses.LabelledKLMargin(0.5)},
            loss_weights={"out": 1.0, "fc1": 0.1},
        )
        return model
    model = keras.Model(inputs, out)
    model.compile("adam", loss="binary_crossentropy")
    return model


KINDS = ["kernel", "activity", "decov", "l1", "xcov", "labelled"]

RELOAD_SCRIPT = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
import keras_disentangle  # registers the custom objects
path, kinds = sys.argv[1], json.loads(sys.argv[2])
x, y = np.load(os.path.join(path, "x.npy")), np.load(os.path.join(path, "y.npy"))
out = {}
for kind in kinds:
    model = keras.saving.load_model(os.path.join(path, kind + ".keras"))
    t = y
    if kind == "labelled":
        t = {"out": y, "fc1": (y[:, 0] > 0).astype("int32")}
    logs = model.evaluate(x, t, batch_size=64, verbose=0, return_dict=True)
    out[kind] = float(logs["loss"])
print("RESULT" + json.dumps(out))
"""


def test_fit_save_and_reload_in_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = _data()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    losses_before = {}
    for kind in KINDS:
        model = _build(kind)
        targets = y
        if kind == "labelled":
            targets = {"out": y, "fc1": (y[:, 0] > 0).astype("int32")}
        history = model.fit(x, targets, epochs=2, batch_size=16, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        losses_before[kind] = float(
            model.evaluate(x, targets, batch_size=64, verbose=0, return_dict=True)[
                "loss"
            ]
        )
        if kind != "labelled":
            # The penalty really reaches the total loss (an eager call fills
            # model.losses on every backend; fit's JAX step is stateless).
            model(x[:16], training=True)
            assert len(model.losses) >= 1
        model.save(tmp_path / f"{kind}.keras")
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(tmp_path), json.dumps(KINDS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = [s for s in result.stdout.splitlines() if s.startswith("RESULT")][0]
    reloaded = json.loads(line[len("RESULT") :])
    for kind in KINDS:
        assert reloaded[kind] == pytest.approx(losses_before[kind], rel=1e-5), kind


def test_penalty_changes_the_loss():
    keras.utils.set_random_seed(0)
    x, y = _data()
    plain = _build("plain")
    with_decov = keras.Model.from_config(_build("decov").get_config())
    with_decov.compile("adam", loss="binary_crossentropy")
    with_decov.set_weights(plain.get_weights())
    a = plain.evaluate(x, y, verbose=0)
    b = with_decov.evaluate(x, y, verbose=0)
    assert b > a


def test_xcov_layer_rejects_single_eager_tensor_of_two_rows():
    with pytest.raises(ValueError, match="prediction, latent"):
        layers.XCovPenalty(1.0)(np.ones((2, 3), "float32"))


@pytest.mark.parametrize("name", sorted(ACTIVITY))
def test_float64_activations(name):
    make, formula = ACTIVITY[name]
    h = RNG.normal(size=(6, 4))  # float64
    got = float(ops.convert_to_numpy(make()(h)))
    assert got == pytest.approx(0.3 * 6 * float(formula(h)), rel=rtol())


def test_labelled_loss_config_keeps_dtype():
    loss = losses.LabelledKLMargin(margin=0.5, dtype="float64")
    assert losses.LabelledKLMargin.from_config(loss.get_config()).dtype == "float64"


@pytest.mark.parametrize(
    "make",
    [
        lambda v: regularizers.ActivityKLMargin(synchronized=v),
        lambda v: regularizers.DeCov(synchronized=v),
        lambda v: regularizers.CovarianceL1(synchronized=v),
        lambda v: losses.LabelledKLMargin(synchronized=v),
        lambda v: layers.XCovPenalty(synchronized=v),
    ],
)
def test_bad_synchronized_raises(make):
    with pytest.raises(ValueError, match="argument synchronized"):
        make("yes")
    with pytest.raises(ValueError, match="argument synchronized"):
        make(1)


SYNCHRONIZABLE = [
    lambda v: losses.LabelledKLMargin(synchronized=v),
    lambda v: layers.XCovPenalty(synchronized=v),
    lambda v: layers.ActivityPenalty(regularizers.DeCov(), synchronized=v),
]


@pytest.mark.parametrize("make", SYNCHRONIZABLE)
def test_numpy_bool_synchronized_is_accepted_as_python_bool(make):
    """``np.bool_`` (from a NumPy comparison, a config array) is a boolean:
    accepted everywhere, stored as a Python bool so configs are JSON."""
    for flag in (np.bool_(True), np.bool_(False)):
        config = make(flag).get_config()
        assert config["synchronized"] is bool(flag)


@pytest.mark.parametrize(
    "cls",
    [regularizers.ActivityKLMargin, regularizers.DeCov, regularizers.CovarianceL1],
)
def test_synchronized_regularizer_names_the_layer_to_use(cls):
    """An activity regularizer cannot own a global-batch loss: True raises
    and names ActivityPenalty; False (also np.bool_) is kept for configs."""
    for flag in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="ActivityPenalty") as info:
            cls(synchronized=flag)
        assert "argument synchronized" in str(info.value)
    assert cls(synchronized=np.bool_(False)).get_config()["synchronized"] is False


def test_activity_penalty_refuses_other_penalties():
    with pytest.raises(ValueError, match="argument penalty"):
        layers.ActivityPenalty(regularizers.KernelKLMargin())


def test_activity_penalty_adds_the_regularizer_loss():
    """The layer adds ``weight * formula``, the loss the regularizer adds."""
    x = np.random.default_rng(0).normal(size=(7, 6)).astype("float32")
    kernel = keras.initializers.GlorotUniform(seed=0)
    for synchronized in (False, True):
        inputs = keras.Input((6,))
        dense = keras.layers.Dense(4, kernel_initializer=kernel)
        reg = regularizers.DeCov(0.3)
        out = layers.ActivityPenalty(reg, synchronized=synchronized)(dense(inputs))
        model = keras.Model(inputs, out)
        model(x)
        h = keras.ops.matmul(x, dense.kernel) + dense.bias
        want = 0.3 * float(keras.ops.convert_to_numpy(penalties.decov(h)))
        got = float(keras.ops.convert_to_numpy(keras.ops.sum(model.losses)))
        assert got == pytest.approx(want, rel=1e-5)


def test_xcov_different_batch_sizes_raise_value_error():
    """Two inputs of different batch sizes: a ValueError naming both
    (statically at build, and at call for eager tensors)."""
    with pytest.raises(ValueError, match="prediction.shape=.*latent.shape"):
        layers.XCovPenalty(1.0)(
            [keras.Input((1,), batch_size=4), keras.Input((3,), batch_size=5)]
        )
    rng = np.random.default_rng(0)
    y, h = rng.normal(size=(4, 1)), rng.normal(size=(5, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        layers.XCovPenalty(1.0)([y, h])


@pytest.mark.parametrize(
    "make",
    [
        lambda: regularizers.DeCov(features="pixels"),
        lambda: regularizers.CovarianceL1(features="pixels"),
        lambda: layers.XCovPenalty(features="pixels"),
        lambda: losses.LabelledKLMargin(unlabelled=0.5),
    ],
)
def test_bad_features_and_unlabelled_raise(make):
    with pytest.raises(ValueError, match="argument (features|unlabelled)"):
        make()


def test_decov_on_a_feature_map_says_what_to_pass():
    dense = keras.layers.Conv2D(64, 1, activity_regularizer=regularizers.DeCov())
    with pytest.raises(ValueError, match="features='channels'"):
        dense(np.zeros((2, 32, 32, 3), "float32"))
    conv = keras.layers.Conv2D(
        64, 1, activity_regularizer=regularizers.DeCov(features="channels")
    )
    conv(np.zeros((2, 32, 32, 3), "float32"))
    assert np.isfinite(float(ops.convert_to_numpy(conv.losses[0])))


def test_labelled_loss_bad_inputs_name_the_argument():
    h = RNG.normal(size=(4, 3)).astype("float32")
    loss = losses.LabelledKLMargin(0.5)
    with pytest.raises(ValueError, match="argument y_true.*whole-number"):
        loss(np.array([0.0, 1.0, 0.5, 1.0]), h)
    with pytest.raises(ValueError, match="argument y_true.*finite"):
        loss(np.array([0.0, 1.0, np.nan, 1.0]), h)
    with pytest.raises(ValueError, match="argument y_true.*one label per sample"):
        loss(np.array([0, 1, 1]), h)
    with pytest.raises(ValueError, match="argument y_pred.*units >= 2"):
        loss(np.array([0, 1, 1, 0]), h[:, :1])


def test_labelled_loss_leaves_out_unlabelled_and_zero_weight_samples():
    h = RNG.normal(size=(8, 4)).astype("float32")
    y = np.array([0, 0, 1, -1, 1, 2, 2, 0])
    weights = np.array([1, 1, 1, 1, 1, 0, 1, 1], "float32")
    keep = (y != -1) & (weights > 0)
    loss = losses.LabelledKLMargin(0.5)
    got = float(loss(y, h, sample_weight=weights))
    want = float(penalties.activity_kl_margin(h[keep], 0.5, labels=y[keep]))
    assert got == pytest.approx(want, rel=1e-6)


def test_labelled_loss_sample_weight_in_fit_leaves_samples_out():
    keras.utils.set_random_seed(0)
    x = RNG.normal(size=(16, 6)).astype("float32")
    labels = RNG.integers(0, 2, size=16)
    weights = np.ones(16, "float32")
    weights[::3] = 0.0
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    model.compile("sgd", loss=losses.LabelledKLMargin(0.5))
    got = model.evaluate(x, labels, sample_weight=weights, batch_size=16, verbose=0)
    keep = weights > 0
    h = model.predict(x, verbose=0)
    want = float(penalties.activity_kl_margin(h[keep], 0.5, labels=labels[keep]))
    assert got == pytest.approx(want, rel=1e-5)
