"""AET: arguments, the loss against its recipe, saving, tuning and the example."""

import importlib.util
import json
import math
import pathlib

import keras
import numpy as np
import pytest
from helpers import assert_reload_resumes, numpy, onednn_empty_slice_xfail

import keras_disentangle  # noqa: F401  (registers the classes)
from keras_disentangle import transforms
from keras_disentangle.models import AET

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tiny_encoder(shape=(8, 8, 1), seed=0, pool=True, regularizer=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    h = inputs if len(shape) == 3 else keras.layers.Reshape(shape + (1,))(inputs)
    h = keras.layers.Conv2D(
        4, 3, activation="relu", activity_regularizer=regularizer, name="conv"
    )(h)
    if pool:
        h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, h, name="encoder")


def images(n=32, shape=(8, 8, 1), seed=0):
    return np.random.default_rng(seed).uniform(size=(n,) + shape).astype("float32")


def load_example(name):
    spec = importlib.util.spec_from_file_location(
        name, ROOT / "examples" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bad_arguments_raise_value_errors_naming_them():
    encoder = tiny_encoder()
    cases = [
        ({"transform": "elastic"}, "argument transform.*Received: transform='elastic'"),
        ({"rotation": 200.0}, "argument rotation"),
        ({"translation": -0.1}, "argument translation"),
        ({"scale": (1.3, 0.7)}, "argument scale"),
        ({"scale": 1.0}, "argument scale"),
        ({"shear": 90.0}, "argument shear"),
        ({"corner": 0.5}, "argument corner"),
        ({"head_units": -1}, "argument head_units"),
        ({"seed": -1}, "argument seed"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            AET(encoder, **kwargs)
    with pytest.raises(ValueError, match="argument encoder"):
        AET(keras.layers.Dense(3))
    vectors = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="argument encoder.*images"):
        AET(vectors)


@pytest.mark.parametrize("transform", ["affine", "projective"])
@pytest.mark.parametrize("pool", [True, False])
def test_loss_is_the_mse_of_the_head_on_the_drawn_transforms(transform, pool):
    encoder = tiny_encoder(pool=pool)
    aet = AET(encoder, transform=transform, head_units=6, seed=5)
    x = images(5)
    state = numpy(aet.seed_generator.state).copy()
    loss = float(aet.compute_loss(x, y_pred=aet(x), training=False))
    # Replay the same random draw and recompute the loss by its recipe.
    aet.seed_generator.state.assign(state)
    matrices, targets = aet.sample_transforms(5)
    warped = transforms.apply_transform(x, matrices)
    f1, f2 = numpy(encoder(x)), numpy(encoder(warped))
    if not pool:
        f1, f2 = f1.mean(axis=(1, 2)), f2.mean(axis=(1, 2))
    predicted = numpy(aet.head(np.concatenate([f1, f2], axis=-1)))
    expected = np.mean((predicted - numpy(targets)) ** 2)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert numpy(targets).shape == (5, 6 if transform == "affine" else 8)
    # The warp differs between the two passes of a batch: the seed advances.
    after = float(aet.compute_loss(x, y_pred=aet(x), training=False))
    assert after != loss


def test_fit_evaluate_predict_on_channel_less_images_with_regularizers():
    shape = (8, 8)
    encoder = tiny_encoder(shape, regularizer=keras.regularizers.L2(0.1))
    aet = AET(encoder, head_units=0, seed=0)
    # The keras.ops warp compiles with XLA on every backend.
    aet.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
    x = images(64, shape)
    history = aet.fit(x, epochs=2, batch_size=32, verbose=0)
    assert {"loss", "transform_mse"} <= set(history.history)
    results = aet.evaluate(x, verbose=0, return_dict=True)
    assert results["loss"] > results["transform_mse"]  # the activity penalty
    np.testing.assert_allclose(
        aet.predict(x, verbose=0), encoder.predict(x, verbose=0), atol=1e-6
    )


def test_training_reduces_the_transform_error():
    # Rotations only, of an asymmetric pattern: the head can learn them.
    rng = np.random.default_rng(0)
    x = np.zeros((128, 12, 12, 1), "float32")
    x[:, 2:5, 3:9] = 1.0
    x[:, 5:10, 3:5] = 1.0
    x += rng.uniform(0, 0.05, size=x.shape).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    h = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(h))
    encoder = keras.Model(inputs, h)
    aet = AET(
        encoder,
        translation=0.0,
        shear=0.0,
        scale=(1.0, 1.0),
        head="mlp",
        head_units=32,
        crop_and_flip=False,
        seed=0,
    )
    aet.compile(optimizer=keras.optimizers.Adam(1e-2))
    before = aet.evaluate(x, verbose=0, return_dict=True)["transform_mse"]
    aet.fit(x, epochs=8, batch_size=32, verbose=0)
    after = aet.evaluate(x, verbose=0, return_dict=True)["transform_mse"]
    assert after < 0.1 * before


def test_config_round_trip():
    aet = AET(tiny_encoder(), transform="projective", head_units=7, corner=0.1, seed=2)
    config = aet.get_config()
    json.dumps(config)
    assert config["scale"] == [0.8, 1.2] and isinstance(config["corner"], float)
    clone = AET.from_config(config)
    assert clone.get_config() == config
    assert AET(tiny_encoder()).get_config()["scale"] == [0.7, 1.3]


def test_save_reload_in_a_fresh_process_gives_identical_predictions(tmp_path):
    aet = AET(tiny_encoder(pool=False), transform="projective", head_units=4, seed=1)
    aet.compile(optimizer="adam")
    x = images(32)
    aet.fit(x, epochs=1, batch_size=16, verbose=0)
    # The random stream survives the reload (it was reset to [0 0]).
    assert_reload_resumes(
        aet,
        x,
        tmp_path,
        """
assert type(model).__name__ == "AET", type(model)
assert model.transform == "projective" and model.head_units == 4
        """,
    )


@onednn_empty_slice_xfail()
def test_under_a_strategy_loss_is_scaled_per_replica(mirrored_strategy):
    # The logged loss was 2 x transform_mse with 2 replicas.
    with mirrored_strategy.scope():
        aet = AET(tiny_encoder(), head_units=4, seed=0)
        aet.compile(optimizer=keras.optimizers.SGD(0.1))
    history = aet.fit(images(33), epochs=1, batch_size=16, verbose=0).history
    assert history["loss"][0] == pytest.approx(history["transform_mse"][0], rel=1e-5)
    for v in aet.weights:
        assert np.all(np.isfinite(numpy(v)))


def test_keras_tuner_search_over_head_units(tmp_path):
    kt = pytest.importorskip("keras_tuner")

    def build(hp):
        aet = AET(tiny_encoder(), head_units=hp.Choice("head_units", [0, 8]), seed=0)
        aet.compile(optimizer="adam")
        return aet

    tuner = kt.GridSearch(
        build,
        objective=kt.Objective("val_transform_mse", "min"),
        max_trials=2,
        directory=tmp_path,
        project_name="aet",
        overwrite=True,
    )
    tuner.search(
        images(32),
        epochs=1,
        batch_size=16,
        validation_data=(images(16, seed=1),),
        verbose=0,
    )
    assert len(tuner.oracle.trials) == 2
    assert tuner.get_best_hyperparameters()[0].get("head_units") in (0, 8)


def test_example_quick_runs():
    result = load_example("aet_mnist").main(["--quick"])
    (row,) = result["rows"]
    for key in ("trained", "untrained"):
        assert 0.0 <= row[key] <= 1.0
    assert math.isfinite(row["final_loss"])


@pytest.mark.reproduction
def test_example_trained_features_beat_untrained():
    # The 0.2 form: with the reference's defaults (crop, flip) AET's features
    # did not beat the untrained encoder's on digits in the reduced runs of
    # docs/dim_aet.md (a flipped digit is another digit), so the claim is
    # made for the form that was measured to support it.
    result = load_example("aet_mnist").main(["--old-defaults"])
    assert result["trained_beats_untrained_every_seed"], result
    assert result["trained_mean"] > result["untrained_mean"] + 0.02, result


def test_defaults_follow_the_reference_and_old_behaviour_stays_available():
    aet = AET(tiny_encoder(), seed=0)
    assert (aet.shear_form, aet.integer_translation, aet.crop_and_flip) == (
        "sin",
        True,
        True,
    )
    (dense,) = aet.head.layers  # one linear layer with tanh (affine)
    assert dense.units == 6 and dense.activation is keras.activations.tanh
    projective = AET(tiny_encoder(), transform="projective", seed=0)
    (dense,) = projective.head.layers
    assert dense.units == 8 and dense.activation is keras.activations.linear
    old = AET(tiny_encoder(), head="mlp", seed=0)
    assert [layer.units for layer in old.head.layers] == [256, 6]
    # Whole-pixel translations, the reference's shear.
    matrices, _ = aet.sample_transforms(200)
    params = numpy(transforms.sample_affine(200, 0, size=(8, 8)))
    assert np.allclose(params[:, 1:3] * 8, np.round(params[:, 1:3] * 8), atol=1e-5)
    assert numpy(matrices).shape == (200, 3, 3)
    # Projective: the standardised inverse coefficients.
    state = numpy(projective.seed_generator.state).copy()
    _, targets = projective.sample_transforms(4)
    projective.seed_generator.state.assign(state)
    _, coefficients = transforms.sample_projective_pixels(
        4, projective.seed_generator, 8, 8
    )
    np.testing.assert_allclose(
        numpy(targets),
        numpy(transforms.projective_standardize(coefficients, 8, 8)),
        rtol=1e-6,
        atol=1e-6,
    )
    config = aet.get_config()
    assert {k: config[k] for k in ("shear_form", "target", "head")} == {
        "shear_form": "sin",
        "target": "inverse",
        "head": "linear",
    }
    clone = AET.from_config(
        {**config, "crop_and_flip": False, "target": "forward", "head": "mlp"}
    )
    assert clone.target == "forward" and clone.head_form == "mlp"
    for kwargs, name in [
        ({"shear_form": "cot"}, "shear_form"),
        ({"integer_translation": 1}, "integer_translation"),
        ({"crop_and_flip": "yes"}, "crop_and_flip"),
        ({"target": "backward"}, "target"),
        ({"head": "deep"}, "head"),
    ]:
        with pytest.raises(ValueError, match=f"argument {name}.*Received"):
            AET(tiny_encoder(), **kwargs)


def test_training_loss_crops_and_flips_before_the_warp():
    encoder = tiny_encoder()
    aet = AET(encoder, seed=3)
    x = images(5)
    state = numpy(aet.seed_generator.state).copy()
    loss = float(aet.compute_loss(x, y_pred=aet(x), training=True))
    aet.seed_generator.state.assign(state)
    crop = transforms.crop_and_flip_matrices(5, aet.seed_generator, 8, 8, padding=4)
    x1 = numpy(transforms.apply_transform(x, crop, interpolation="nearest"))
    matrices, targets = aet.sample_transforms(5)
    warped = transforms.apply_transform(x1, matrices)
    f1, f2 = numpy(encoder(x1)), numpy(encoder(warped))
    predicted = numpy(aet.head(np.concatenate([f1, f2], axis=-1)))
    assert loss == pytest.approx(np.mean((predicted - numpy(targets)) ** 2), rel=1e-5)
    assert not np.allclose(x1, x)  # the crop moved the images
    # Without training (evaluate) the images are used as given.
    aet.seed_generator.state.assign(state)
    plain = float(aet.compute_loss(x, y_pred=aet(x), training=False))
    assert plain != loss


@pytest.mark.backend_independent
def test_docs_table_averages_the_csv_rows(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "docs_tables", ROOT / "docs" / "_tools" / "tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probe = load_example("_linear_probe")
    rows = [
        {"seed": s, "trained": t, "untrained": 0.5, "trained_nonlinear": 0.9,
         "untrained_nonlinear": 0.6, "final_loss": 0.1, "train_seconds": 10.0}
        for s, t in [(0, 0.8), (1, 0.9)]
    ]  # fmt: skip
    (tmp_path / "run").mkdir()
    path = str(tmp_path / "run" / "probes.csv")
    probe.write_csv(path, rows, model="AET affine", dataset="mnist_5k", epochs=5)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    module.record("dim_aet", tmp_path / "run", "run.sh", "tensorflow", "abc")
    lines = module.dim_aet().splitlines()
    assert lines[2] == (
        "| AET affine | mnist_5k | 5 | 0, 1 | 0.850 | 0.500 | 0.900 | 0.600 |"
    )
