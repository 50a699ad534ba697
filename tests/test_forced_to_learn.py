"""Tests of ``keras-disentangle forced-to-learn`` (Romanov & Rumshisky, Table 1)."""

import csv
import types

import numpy as np
import pytest

from keras_disentangle import datasets
from keras_disentangle.cli import main as cli_main
from keras_disentangle.experiments import forced_to_learn as ftl

TABLE = ftl.TABLE_COLUMNS
PER_SEED = [
    "data",
    "variant",
    "seed",
    "epochs",
    "hyperparameters",
    *ftl.DEFAULTS,
    "ami",
    "nmi",
    "binary_acc",
    "val_ami",
    "val_acc",
    "kernel_kl_max",
]
PNGS = [
    "stroke_digits.png",
    "most_active_units_baseline.png",
    "most_active_units_l_multi.png",
    "figure5_pca.png",
    "ami_by_n_clusters.png",
]


def _read(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _options(**overrides):
    options = dict(
        rnn="lstm",
        rnn_units=8,
        learning_rate=1e-3,
        batch_size=64,
        verbose=False,
        n_clusters=10,
    )
    options.update(overrides)
    return types.SimpleNamespace(**options)


# ----------------------------------------------------------------- the command


def test_quick_run_writes_table_csv_and_plots(tmp_path, capsys):
    status = cli_main(["forced-to-learn", "--quick", "--output", str(tmp_path)])
    assert status == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("variant"))
    assert header.split() == TABLE
    for variant in ftl.VARIANTS:
        line = next(x for x in printed.splitlines() if x.startswith(variant + " "))
        paper_ami, paper_nmi = ftl.PAPER[variant]
        cells = line.split()
        assert f"{paper_ami:.3f}" in cells and f"{paper_nmi:.3f}" in cells
    assert "ranking by AMI, the paper:      l_single .544 > xcov .525" in printed
    assert "pen-stroke sequences" in printed

    rows = _read(tmp_path / "forced_to_learn.csv")
    assert list(rows[0]) == PER_SEED
    assert [r["variant"] for r in rows] == list(ftl.VARIANTS)  # 1 seed in --quick
    assert {r["data"] for r in rows} == {"strokes"}  # the default, as the paper
    defaults = ftl.defaults_for("strokes")
    for row in rows:
        assert 0.0 <= float(row["binary_acc"]) <= 1.0
        assert -0.1 <= float(row["ami"]) <= 1.0
        assert float(row["nmi"]) >= 0.0
        assert float(row["kernel_kl_max"]) >= 0.0
        # The hyperparameters used are recorded, and only for their variant.
        for key in ftl.DEFAULTS:
            if key in ftl.PARAMS[row["variant"]]:
                assert float(row[key]) == defaults[key]
            else:
                assert row[key] == ""
    summary = _read(tmp_path / "summary.csv")
    assert [r["variant"] for r in summary] == list(ftl.VARIANTS)
    assert {"ami", "ami_std", "nmi_std", "binary_acc_std"} <= set(summary[0])
    assert [float(r["paper_ami"]) for r in summary] == [
        ftl.PAPER[v][0] for v in ftl.VARIANTS
    ]
    for name in PNGS:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_hyperparameter_options_reach_the_csv(tmp_path):
    status = cli_main(
        [
            "forced-to-learn",
            "--quick",
            "--epochs",
            "1",
            "--data",
            "digits",
            "--variants",
            "l_single,l_multi",
            "--single-margin",
            "7",
            "--multi-weight",
            "0.3",
            "--output",
            str(tmp_path),
        ]
    )
    assert status == 0
    rows = {r["variant"]: r for r in _read(tmp_path / "forced_to_learn.csv")}
    assert set(rows) == {"l_single", "l_multi"}
    assert float(rows["l_single"]["single_margin"]) == 7.0
    assert float(rows["l_multi"]["multi_weight"]) == 0.3
    assert rows["l_multi"]["data"] == "digits"
    assert rows["l_multi"]["epochs"] == "1"
    # Without the baseline there is no baseline heatmap and no Figure 5, and
    # no stroke figure for row-read images; the others are there.
    assert not (tmp_path / "most_active_units_baseline.png").exists()
    assert not (tmp_path / "figure5_pca.png").exists()
    assert not (tmp_path / "stroke_digits.png").exists()
    assert (tmp_path / "most_active_units_l_multi.png").exists()
    assert (tmp_path / "ami_by_n_clusters.png").exists()


def test_a_rerun_leaves_no_stale_plot(tmp_path):
    argv = ["forced-to-learn", "--quick", "--epochs", "1", "--data", "digits"]
    argv += ["--output", str(tmp_path)]
    assert cli_main([*argv, "--variants", "baseline"]) == 0
    assert (tmp_path / "most_active_units_baseline.png").exists()
    (tmp_path / "notes.txt").write_text("a user's file")
    assert cli_main([*argv, "--variants", "xcov"]) == 0
    assert not (tmp_path / "most_active_units_baseline.png").exists()
    assert (tmp_path / "notes.txt").read_text() == "a user's file"
    assert [r["variant"] for r in _read(tmp_path / "summary.csv")] == ["xcov"]


def test_stroke_model_masks_the_padding():
    import keras

    from keras_disentangle.datasets import STROKE_PAD

    rng = np.random.default_rng(0)
    x = rng.integers(-1, 2, size=(3, 6, 4)).astype("float32")
    x[:, :, 2:] = 0
    x[:, 4:] = STROKE_PAD  # two padding rows
    keras.utils.set_random_seed(0)
    model = ftl.build_model(
        "baseline", {}, (None, 4), rnn_units=4, mask_value=STROKE_PAD
    )
    masked = ftl.fc1_and_prediction(model, x)
    shorter = ftl.fc1_and_prediction(model, x[:, :4])
    np.testing.assert_allclose(masked[0], shorter[0], rtol=1e-5, atol=1e-6)
    keras.utils.set_random_seed(0)
    unmasked = ftl.build_model("baseline", {}, (None, 4), rnn_units=4)
    assert not np.allclose(ftl.fc1_and_prediction(unmasked, x)[0], masked[0])


def test_figures_of_strokes_and_figure5():
    rng = np.random.default_rng(0)
    x = np.full((4, 5, 4), -1.0, "float32")
    x[:, :4] = [[3, 3, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]]
    fig = ftl.draw_strokes(x, np.array([0, 1, 1, 2]))
    assert len(fig.axes) == 3 and fig.axes[1].get_title() == "1: 1 stroke(s)"
    labels = np.arange(60) % 10
    features = {v: rng.random((60, 15)) for v in ("baseline", "l_multi")}
    fig = ftl.figure5(features, labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "a) baseline, by binary label",
        "b) baseline, by digit class",
        "c) l_multi, by binary label",
        "d) l_multi, by digit class",
    ]
    assert len(fig.axes[1].collections) == 10 and len(fig.axes[0].collections) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--variants", "baseline,nope"], "--variants"),
        (["--decov-weight", "-1"], "argument --decov-weight"),
        (["--n-clusters", "1"], "argument --n-clusters"),
    ],
)
def test_bad_options_fail_with_a_message(tmp_path, capsys, argv, message):
    status = cli_main(["forced-to-learn", "--output", str(tmp_path), *argv])
    assert status == 2
    assert message in capsys.readouterr().err


def test_full_mnist_offline_fails_with_the_alternatives(tmp_path, capsys, monkeypatch):
    def unavailable(**kwargs):
        raise datasets.DatasetNotAvailableError(
            "no local copy; offline: mnist_5k(), digits()"
        )

    monkeypatch.setattr(datasets, "mnist", unavailable)
    status = cli_main(["forced-to-learn", "--data", "mnist", "--output", str(tmp_path)])
    assert status == 1
    err = capsys.readouterr().err
    assert "--data mnist" in err and "mnist_5k" in err


# ------------------------------------------------------------------ the parts


def test_tune_uses_the_validation_split_only(tmp_path):
    (x, y), validation, _ = datasets.digits()
    # The test split is poison: any use of it raises.
    splits = datasets.Splits((x[:400], y[:400]), validation, (None, None))
    args = types.SimpleNamespace(
        quick=True, tune_seeds=1, **vars(_options()), **dict.fromkeys(ftl.DEFAULTS)
    )
    args.multi_margin = 0.25  # a value given on the command line stays fixed
    chosen = ftl.tune(args, splits, ["baseline", "l_multi"], 1, tmp_path)
    assert chosen["multi_margin"] == 0.25
    assert chosen["multi_weight"] in ftl.QUICK_GRID["multi_weight"]
    rows = _read(tmp_path / "tune.csv")
    assert [r["variant"] for r in rows] == ["baseline"] + ["l_multi"] * len(
        ftl.QUICK_GRID["multi_weight"]
    )
    best = max(
        (r for r in rows if r["variant"] == "l_multi"), key=lambda r: r["val_ami"]
    )
    assert float(best["multi_weight"]) == chosen["multi_weight"]


def test_tune_only_writes_tune_csv_and_stops(tmp_path):
    argv = ["forced-to-learn", "--quick", "--tune-only", "--epochs", "1"]
    argv += ["--data", "digits", "--variants", "xcov", "--output", str(tmp_path)]
    assert cli_main(argv) == 0
    rows = _read(tmp_path / "tune.csv")
    assert [float(r["xcov_weight"]) for r in rows] == list(
        ftl.QUICK_GRID["xcov_weight"]
    )
    assert list(rows[0]) == [
        "variant",
        "hyperparameters",
        *ftl.DEFAULTS,
        "val_ami",
        "val_acc",
        "seeds",
    ]
    assert not (tmp_path / "forced_to_learn.csv").exists()


@pytest.mark.parametrize("variant", ftl.VARIANTS)
def test_each_variant_adds_its_penalty(variant):
    params = dict(ftl.DEFAULTS)
    model = ftl.build_model(variant, params, (8, 8), rnn="gru", rnn_units=4)
    x = np.random.default_rng(0).random((16, 8, 8), dtype="float32")
    model(x, training=True)
    n_losses = len(model.losses)
    assert n_losses == (1 if variant in ("decov", "xcov", "l_single") else 0)
    assert model.get_layer("fc1").units == 15
    assert model.get_layer("fc2").units == 1
    outputs = model.output
    if variant == "l_multi":
        assert set(outputs) == {"fc1", "fc2"}
    else:
        assert tuple(outputs.shape) == (None, 1)


def test_build_model_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        ftl.build_model("nope", {}, (8, 8))


def test_kernel_kl_max_matches_a_numpy_loop():
    model = ftl.build_model("baseline", {}, (8, 8), rnn="gru", rnn_units=6)
    kernel = np.random.default_rng(1).normal(size=(6, 15)).astype("float32")
    model.get_layer("fc1").kernel.assign(kernel)
    d = np.exp(kernel.T.astype("float64"))
    d /= d.sum(axis=1, keepdims=True)
    largest = max(
        float(np.sum(d[i] * np.log(d[i] / d[j])))
        for i in range(15)
        for j in range(15)
        if i != j
    )
    assert ftl.kernel_kl_max(model) == pytest.approx(largest, rel=1e-4)


def test_train_and_score_is_deterministic_and_scores_both_splits():
    (x, y), validation, test = datasets.digits()
    splits = datasets.Splits((x[:300], y[:300]), validation, test)
    first, _, _ = ftl.train_and_score("xcov", ftl.DEFAULTS, splits, 3, 1, _options())
    again, _, _ = ftl.train_and_score("xcov", ftl.DEFAULTS, splits, 3, 1, _options())
    for key in ("validation_ami", "test_ami", "test_nmi", "test_acc"):
        assert first[key] == pytest.approx(again[key], abs=1e-6)
    assert 0.0 <= first["test_acc"] <= 1.0


# ------------------------------------------------------------------ slow


@pytest.mark.reproduction
def test_default_run_on_strokes_learns_the_task_and_the_digits(tmp_path):
    status = cli_main(["forced-to-learn", "--output", str(tmp_path)])
    assert status == 0
    summary = {r["variant"]: r for r in _read(tmp_path / "summary.csv")}
    assert list(summary) == list(ftl.VARIANTS)
    assert all(int(r["n"]) == 3 for r in summary.values())
    assert {r["data"] for r in _read(tmp_path / "forced_to_learn.csv")} == {"strokes"}
    for variant, row in summary.items():
        assert float(row["binary_acc"]) >= 0.9, variant
        assert float(row["ami"]) >= 0.3, variant  # far above chance (0)
    for name in PNGS:
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.reproduction
def test_row_reading_run_reproduces_its_direction(tmp_path):
    argv = ["forced-to-learn", "--data", "mnist_5k", "--output", str(tmp_path)]
    assert cli_main(argv) == 0
    summary = {r["variant"]: r for r in _read(tmp_path / "summary.csv")}
    ami = {v: float(r["ami"]) for v, r in summary.items()}
    assert all(int(r["n"]) == 3 for r in summary.values())
    assert ami["baseline"] >= 0.30
    for variant, row in summary.items():
        assert float(row["binary_acc"]) >= 0.93, variant
    for variant in ("l_single", "l_multi", "xcov"):
        assert ami[variant] > ami["baseline"], variant
