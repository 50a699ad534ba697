"""``keras-disentangle conv-autoencoder`` (Kågebäck & Mogren section 3.4)."""

import csv

import keras
import numpy as np
import pytest

from keras_disentangle import cli, datasets
from keras_disentangle.experiments import conv_autoencoder as cae
from keras_disentangle.regularizers import CovarianceL1


def _read(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ set-up


def test_lambda_grid_doubles_from_0_02_to_10_24_through_0_08():
    lambdas = np.array(cae.LAMBDAS)
    assert lambdas[0] == 0.0 and len(lambdas) == 11
    np.testing.assert_allclose(lambdas[2:] / lambdas[1:-1], 2.0)
    np.testing.assert_allclose([lambdas[1], lambdas[-1]], [0.02, 10.24])
    assert np.isclose(lambdas, cae.TABLE_LAMBDA).sum() == 1


def test_model_is_the_papers_outline_with_about_500k_parameters():
    model = cae.build_autoencoder()
    n = model.count_params()
    assert 450_000 <= n <= 550_000, n  # "roughly 500.000" (+-10%)
    encoder = model.layers[: [layer.name for layer in model.layers].index("code") + 1]
    kinds = [type(layer).__name__ for layer in encoder]
    assert kinds.count("Conv2D") == 2 and kinds.count("Dense") == 2
    assert model.get_layer("code").units == 84
    assert model.output_shape == (None, 32, 32, 3)
    assert model.get_layer("reconstruction").activation.__name__ == "sigmoid"
    lr = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
    assert float(lr) == pytest.approx(1e-3)


def test_make_regularizer():
    assert cae.make_regularizer("L_Sigma", 0.0) is None
    assert cae.make_regularizer("none", 1.0) is None
    lsigma = cae.make_regularizer("L_Sigma", 0.08)
    assert isinstance(lsigma, CovarianceL1) and lsigma.weight == pytest.approx(0.08)
    l1 = cae.make_regularizer("L1", 0.08)
    assert isinstance(l1, keras.regularizers.L1)
    assert l1.get_config()["l1"] == pytest.approx(0.08)
    with pytest.raises(ValueError, match="argument name"):
        cae.make_regularizer("L2", 1.0)


def test_table1_puts_the_papers_numbers_beside_the_means():
    summary = [
        {"regularizer": reg, "lambda": lam, "n": 2}
        | {m: v for m, v in zip(["cvr", "ud90", "mse"], vals, strict=True)}
        | {m + "_std": 0.0 for m in ["cvr", "ud90", "mse"]}
        for reg, lam, vals in [
            ("none", 0.0, (9.0, 40.0, 0.01)),
            ("L_Sigma", 0.04, (8.0, 30.0, 0.02)),
            ("L_Sigma", 0.08, (5.0, 20.0, 0.03)),
            ("L1", 0.08, (7.0, 35.0, 0.04)),
        ]
    ]
    rows = cae.table1(summary, 0.08)
    assert [r["regularizer"] for r in rows] == ["L_Sigma", "L1", "none"]
    assert (rows[0]["cvr"], rows[0]["paper_cvr"]) == (5.0, 6.56)
    assert (rows[1]["ud90"], rows[1]["paper_ud90"]) == (35.0, 20.59)
    assert (rows[2]["mse"], rows[2]["paper_mse"]) == (0.01, 0.0365)


def test_score_against_numpy():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(inputs)
    code = keras.layers.Dense(5, name="code")(flat)
    out = keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16)(code))
    model = keras.Model(inputs, out)
    x = np.random.default_rng(0).random((50, 4, 4, 1)).astype("float32")
    row = cae.score(model, x)
    w, b = model.get_layer("code").get_weights()
    h = x.reshape(50, 16).astype("float64") @ w + b
    c = np.cov(h, rowvar=False)
    assert row["cvr"] == pytest.approx(np.abs(c).sum() / np.trace(c), rel=1e-4)
    var = np.sort(np.diag(c))[::-1]
    assert row["ud90"] == 1 + int(np.sum(np.cumsum(var) / var.sum() < 0.9))
    x_hat = np.asarray(keras.ops.convert_to_numpy(model(x)), dtype="float64")
    assert row["mse"] == pytest.approx(np.mean((x_hat - x) ** 2), rel=1e-5)


def test_lsigma_lowers_cvr_and_ud_at_a_small_mse_cost():
    """The paper's direction, reduced: a small model on 8x8 patches.

    Same builder, training loop and scores as the command, with a 16-unit
    code, 2,000 training patches, 5 epochs, a higher learning rate and a
    large λ; L_Sigma must lower CVR and UD_90% clearly while the model still
    reconstructs (not the mean image, MSE ~0.11) about as well as without.
    """
    splits = datasets.sample_image_patches(size=8, cell=16, stride=8)
    (x, y), validation, test = splits
    splits = datasets.Splits((x[:2000], y[:2000]), validation, test)
    result = {}
    for name, weight in (("none", 0.0), ("L_Sigma", 2.56)):
        model, _ = cae.train(
            splits,
            cae.make_regularizer(name, weight),
            seed=1,
            epochs=5,
            patience=5,
            filters=(8, 8),
            hidden=32,
            code_units=16,
            learning_rate=0.01,
        )
        result[name] = cae.score(model, test[0])
    none, lsigma = result["none"], result["L_Sigma"]
    assert none["mse"] < 0.05, result  # it learned to reconstruct
    assert lsigma["cvr"] < 0.6 * none["cvr"], result
    assert lsigma["ud90"] < none["ud90"], result
    assert lsigma["mse"] < 1.5 * none["mse"], result


# ------------------------------------------------------------------ data


def test_sample_image_patches_default_splits():
    splits = datasets.sample_image_patches()
    assert [len(x) for x, _ in splits] == [2100, 450, 450]
    for x, y in splits:
        assert x.dtype == np.float32 and x.shape[1:] == (32, 32, 3)
        assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
        assert set(np.unique(y)) == {0, 1}
    again = datasets.sample_image_patches()
    np.testing.assert_array_equal(splits.test[0], again.test[0])
    other = datasets.sample_image_patches(seed=1)
    assert not np.array_equal(splits.test[0], other.test[0])


@pytest.mark.parametrize("size,cell,stride", [(8, 16, 4), (8, 8, 8), (6, 16, 5)])
def test_sample_image_patches_share_no_pixel_between_splits(size, cell, stride):
    from sklearn.datasets import load_sample_images

    images = [np.asarray(i, "float32") / 255.0 for i in load_sample_images().images]
    splits = datasets.sample_image_patches(size=size, cell=cell, stride=stride)
    per_cell = ((cell - size) // stride + 1) ** 2
    cells = (427 // cell) * (640 // cell)
    assert sum(len(x) for x, _ in splits) == 2 * cells * per_cell
    # Locate every patch in its photograph (any position whose offset in its
    # cell is on the stride grid) and paint its pixels with its split: no
    # pixel may get two splits. A patch found at several positions (flat
    # regions) cannot be located and is left out.
    owner = [np.full(img.shape[:2], -1) for img in images]
    located = 0
    for label, img in enumerate(images):
        lookup = {}
        for top in range(img.shape[0] - size + 1):
            for left in range(img.shape[1] - size + 1):
                if (top % cell) % stride or (left % cell) % stride:
                    continue
                patch = img[top : top + size, left : left + size]
                lookup.setdefault(patch.tobytes(), []).append((top, left))
        for split, (x, y) in enumerate(splits):
            for patch in x[y == label]:
                positions = lookup[patch.tobytes()]
                if len(positions) > 1:
                    continue
                (top, left), located = positions[0], located + 1
                region = owner[label][top : top + size, left : left + size]
                assert np.all((region == -1) | (region == split)), split
                region[...] = split
    assert located >= 0.9 * sum(len(x) for x, _ in splits)
    for mask in owner:
        assert {0, 1, 2} <= set(np.unique(mask))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"size": 0}, "size"),
        ({"stride": 1.5}, "stride"),
        ({"cell": 16}, "cell"),
        ({"test": 0.0}, "validation and test"),
        ({"validation": 0.6, "test": 0.5}, "validation and test"),
        ({"seed": -1}, "seed"),
    ],
)
def test_sample_image_patches_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument[s]? {name}"):
        datasets.sample_image_patches(**kwargs)


# ------------------------------------------------------------------ command


def test_quick_run_writes_table_csv_and_figure(tmp_path, capsys):
    out = tmp_path / "cae"
    assert cli.main(["conv-autoencoder", "--quick", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "500,183 parameters" in text and "direction only" in text
    header = [line for line in text.splitlines() if line.startswith("regularizer")]
    assert header[-1].split() == cae.TABLE1_COLUMNS
    assert cae.TABLE1_COLUMNS[1:3] == ["cvr", "paper_cvr"]
    table = _read(out / "conv_autoencoder_table1.csv")
    assert [r["regularizer"] for r in table] == ["L_Sigma", "L1", "none"]
    assert [float(r["paper_cvr"]) for r in table] == [6.56, 4.03, 20.00]
    runs = _read(out / "conv_autoencoder_runs.csv")
    assert [(r["regularizer"], float(r["lambda"])) for r in runs] == [
        ("none", 0.0),
        ("L_Sigma", 0.08),
        ("L1", 0.08),
    ]
    for r in runs:
        assert 1.0 <= float(r["cvr"]) <= 84 and 1 <= int(r["ud90"]) <= 84
        assert 0.0 < float(r["mse"]) < 0.25
        assert 1 <= int(r["best_epoch"]) <= int(r["epochs"]) <= 2
    png = out / "conv_autoencoder_figure6.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cifar10_offline_explains_and_exits_2(tmp_path, capsys):
    code = cli.main(
        [
            "conv-autoencoder",
            "--data",
            "cifar10",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "CIFAR-10" in err and "--download" in err and "--data patches" in err
    assert not (tmp_path / "out").exists()


def test_cifar10_quick_with_mock_data(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "cae"
    with tfds.testing.mock_data(num_examples=120):
        code = cli.main(
            [
                "conv-autoencoder",
                "--data",
                "cifar10",
                "--quick",
                "--lambdas",
                "0.08",
                "--epochs",
                "1",
                "--output",
                str(out),
            ]
        )
    assert code == 0
    assert "cifar10" in capsys.readouterr().out
    assert len(_read(out / "conv_autoencoder_runs.csv")) == 3


def test_bad_option_exits_2_before_reading_data(tmp_path, capsys):
    code = cli.main(
        ["conv-autoencoder", "--lambdas", "-1", "--output", str(tmp_path / "c")]
    )
    assert code == 2
    assert "lambdas" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
