"""``keras-disentangle conv-autoencoder``: Kågebäck & Mogren (2018), section 3.4.

A convolutional autoencoder with an 84-unit code reconstructs 32x32 colour
images; L_Sigma (``regularizers.CovarianceL1``) on the code is compared with
L1 activity regularisation (``keras.regularizers.L1``) and with none. The
paper's Table 1 (CVR, UD_90% and MSE at λ = 0.08) and Figure 6 (CVR against
MSE and UD_90% against MSE while λ doubles) are reproduced.

Model (the paper gives only its outline: two convolutional and two fully
connected layers in the encoder, an 84-unit coding layer, about 500,000
parameters in the whole model): ``Conv2D(32, 3x3, stride 2, ReLU) ->
Conv2D(32, 3x3, stride 2, ReLU) -> Dense(112, ReLU) -> Dense(84, linear,
"code")``, and the mirrored decoder ``Dense(112, ReLU) -> Dense(8*8*32, ReLU)
-> Conv2DTranspose(32, 3x3, stride 2, ReLU) -> Conv2DTranspose(3, 3x3, stride
2, sigmoid)``: 500,183 parameters for 32x32x3 inputs (the 112 units make the
count about 500,000). Loss: MSE on pixels in [0, 1] plus ``λ * L_Sigma`` or
``λ * sum_units |h|`` on the code (Keras averages both over the batch); Adam
with learning rate 0.001, mini-batches of 100, early stopping on the
validation MSE (the weights of the best epoch are restored).

Default run (sized for about 15 minutes on two busy CPU cores): one seed, at
most 10 epochs, patience 2, all 2,100 training patches; the paper trains to
convergence and averages five initialisations (``--seeds 5 --epochs 200
--patience 5``).

λ grid: the paper's Figure 6 caption prints "λ ∈ [0.0, 0.2, ..., 10.24]" with
each point doubling the previous one, which cannot reach 10.24 from 0.2
(0.2 · 2^k is never 10.24). λ = 0 and 0.02 · 2^k for k = 0..9 (0.02, 0.04,
0.08, ..., 10.24) fits both the doubling and the λ = 0.08 of Table 1, and is
used here.

Scores, on the codes of the test split: CVR (``scores.cvr``), UD_90%
(``scores.utilized_dimensions(h, 0.9)``) and the reconstruction MSE.

Data: ``--data patches`` (default, offline) is ``datasets.sample_image_patches``:
32x32 colour patches from scikit-learn's two sample photographs (china.jpg,
flower.jpg), 64x64 cells assigned whole to one split (2,100 training, 450
validation and 450 test patches). ``--data cifar10`` is CIFAR-10 through
``datasets.cifar10`` (45,000 / 5,000 / 10,000, the paper's split; needs a
local copy or ``--download``). On the patches the numbers can be compared
with the paper's only in direction (which regularizer lowers CVR and UD, at
what MSE cost), not in absolute terms.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from keras_disentangle.experiments import _common, _stats

NAME = "conv-autoencoder"
HELP = (
    "Kågebäck & Mogren (2018) section 3.4: convolutional autoencoder with an "
    "84-unit code, L_Sigma vs L1 vs none; Table 1 (CVR, UD_90%, MSE at "
    "λ = 0.08) and Figure 6 (offline: sample-image patches)"
)

#: λ = 0 and 0.02 · 2^k, k = 0..9 (0.02 ... 10.24): doubling, through 0.08.
LAMBDAS = (0.0,) + tuple(0.02 * 2**k for k in range(10))
QUICK_LAMBDAS = (0.0, 0.08)
#: The λ of the paper's Table 1.
TABLE_LAMBDA = 0.08
#: Table 1 of the paper (CIFAR-10, λ = 0.08, mean of five initialisations).
PAPER_TABLE1 = {
    "L_Sigma": {"cvr": 6.56, "ud90": 35.18, "mse": 0.0398},
    "L1": {"cvr": 4.03, "ud90": 20.59, "mse": 0.0569},
    "none": {"cvr": 20.00, "ud90": 41.69, "mse": 0.0365},
}
METRICS = ["cvr", "ud90", "mse"]
#: The columns of the printed Table 1.
TABLE1_COLUMNS = [
    "regularizer",
    "cvr",
    "paper_cvr",
    "ud90",
    "paper_ud90",
    "mse",
    "paper_mse",
    "n",
]
CODE_UNITS = 84
REGULARIZERS = ("L_Sigma", "L1")

NEEDS = (
    "--data cifar10 needs CIFAR-10 from tensorflow-datasets (pip install "
    "'keras_disentangle[datasets]'), prepared once on a machine with "
    "internet: `keras-disentangle conv-autoencoder --data cifar10 --download` "
    "(about 170 MB, stored in ~/tensorflow_datasets or --data-dir). Offline, "
    "the default --data patches runs on images bundled with scikit-learn."
)


#: The files ``conv-autoencoder`` writes into ``--output`` (glob patterns).
OUTPUTS = (
    "conv_autoencoder.csv",
    "conv_autoencoder_runs.csv",
    "conv_autoencoder_table1.csv",
    "conv_autoencoder_differences.csv",
    "conv_autoencoder_figure6.png",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``keras-disentangle conv-autoencoder``."""
    parser.add_argument(
        "--data",
        choices=("patches", "cifar10"),
        default="patches",
        help="patches: 32x32 colour patches of scikit-learn's two sample "
        "photographs (china.jpg, flower.jpg; bundled, offline; comparable with "
        "the paper in direction only); cifar10: the paper's data (needs a "
        "local copy or --download)",
    )
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets folder")
    parser.add_argument(
        "--download",
        action="store_true",
        help="with --data cifar10: download it when there is no local copy",
    )
    parser.add_argument(
        "--lambdas",
        type=_common.non_negative_floats,
        default=None,
        help="comma-separated weights λ, run for both L_Sigma and L1 (0 means "
        "no regularisation). Default: 0 and 0.02*2^k for k=0..9 (0.02, 0.04, "
        "0.08, ..., 10.24; the paper's caption prints [0.0, 0.2, ..., 10.24] "
        "with each point doubling, which cannot reach 10.24 from 0.2); "
        "--quick: 0,0.08",
    )
    parser.add_argument(
        "--table-lambda",
        type=_common.positive_float,
        default=TABLE_LAMBDA,
        help="the λ of the Table 1 comparison (added to --lambdas if missing)",
    )
    parser.add_argument(
        "--patience",
        type=_common.positive_int,
        default=None,
        help="early stopping: epochs without a better validation MSE "
        "(default 2; --quick 1)",
    )
    parser.add_argument(
        "--train-size",
        type=_common.positive_int,
        default=None,
        help="use the first N training images (default: all; --quick 200)",
    )
    parser.add_argument(
        "--batch-size", type=_common.positive_int, default=100, help="mini-batch size"
    )
    parser.add_argument(
        "--learning-rate",
        type=_common.positive_float,
        default=1e-3,
        help="Adam's learning rate",
    )
    parser.epilog = (
        "--seeds N: initialisations 0..N-1 (default 1; --quick 1; the paper "
        "averages 5). --epochs: most epochs per run, early stopping may end a "
        "run before (default 10; --quick 2). The default run trains 21 models "
        "(none, and L_Sigma and L1 at 10 values of λ) on 2,100 patches. "
        "Paper's Table 1 (CIFAR-10, λ = 0.08): CVR / UD_90% / MSE = 6.56 / "
        "35.18 / 0.0398 (L_Sigma), 4.03 / 20.59 / 0.0569 (L1), 20.00 / 41.69 "
        "/ 0.0365 (none)."
    )


def build_autoencoder(
    regularizer=None,
    *,
    input_shape: tuple = (32, 32, 3),
    filters: tuple = (32, 32),
    hidden: int = 112,
    code_units: int = CODE_UNITS,
    kernel_size: int = 3,
    learning_rate: float = 1e-3,
):
    """The convolutional autoencoder, compiled; its code layer is ``"code"``.

    Encoder: two ``Conv2D`` (``filters``, ``kernel_size``, stride 2, ReLU),
    ``Dense(hidden, ReLU)``, ``Dense(code_units)`` (linear) with
    ``regularizer`` as its activity regularizer. The decoder mirrors it and
    ends in a sigmoid. Loss MSE, metric ``"mse"`` (the reconstruction error
    alone, for early stopping), Adam. ``input_shape``'s height and width must
    be divisible by 4.
    """
    import keras

    height, width, channels = input_shape
    inputs = keras.Input(input_shape, name="image")
    z = inputs
    for k, n in enumerate(filters, start=1):
        z = keras.layers.Conv2D(
            n,
            kernel_size,
            strides=2,
            padding="same",
            activation="relu",
            name=f"conv{k}",
        )(z)
    z = keras.layers.Flatten()(z)
    z = keras.layers.Dense(hidden, activation="relu", name="fc1")(z)
    code = keras.layers.Dense(
        code_units, activity_regularizer=regularizer, name="code"
    )(z)
    small = (height // 4, width // 4, filters[-1])
    z = keras.layers.Dense(hidden, activation="relu", name="dec_fc1")(code)
    z = keras.layers.Dense(int(np.prod(small)), activation="relu", name="dec_fc2")(z)
    z = keras.layers.Reshape(small)(z)
    z = keras.layers.Conv2DTranspose(
        filters[0],
        kernel_size,
        strides=2,
        padding="same",
        activation="relu",
        name="dec_conv1",
    )(z)
    outputs = keras.layers.Conv2DTranspose(
        channels,
        kernel_size,
        strides=2,
        padding="same",
        activation="sigmoid",
        name="reconstruction",
    )(z)
    model = keras.Model(inputs, outputs, name="conv_autoencoder")
    model.compile(keras.optimizers.Adam(learning_rate), "mse", metrics=["mse"])
    return model


def make_regularizer(name: str, weight: float):
    """``None`` for λ = 0, else ``CovarianceL1(λ)`` or ``keras...L1(λ)``."""
    import keras

    from keras_disentangle.regularizers import CovarianceL1

    if weight == 0 or name == "none":
        return None
    if name == "L_Sigma":
        return CovarianceL1(weight)
    if name == "L1":
        return keras.regularizers.L1(weight)
    raise ValueError(
        "Invalid value for argument name: expected one of "
        f"{['L_Sigma', 'L1', 'none']}. Received: name={name!r}"
    )


def train(
    splits,
    regularizer,
    *,
    seed: int,
    epochs: int,
    patience: int,
    batch_size: int = 100,
    verbose: int = 0,
    **model_kwargs,
):
    """Fits one autoencoder with early stopping on the validation MSE.

    Returns ``(model, history)``; the model holds the weights of the epoch
    with the best validation MSE.
    """
    import keras

    (x_train, _), (x_val, _), _ = splits
    _common.set_seed(seed)
    model = build_autoencoder(
        regularizer, input_shape=tuple(x_train.shape[1:]), **model_kwargs
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_mse", patience=patience, restore_best_weights=True
    )
    history = model.fit(
        x_train,
        x_train,
        validation_data=(x_val, x_val),
        batch_size=batch_size,
        epochs=epochs,
        callbacks=[stop],
        verbose=2 if verbose else 0,
    )
    return model, history


def score(model, x) -> dict:
    """CVR, UD_90% and MSE of ``model`` on images ``x`` (codes of ``"code"``)."""
    import keras

    from keras_disentangle import scores
    from keras_disentangle._submodel import layer_model

    encoder = layer_model(model, "code", NAME)
    both = keras.Model(model.inputs, [encoder.outputs[0], model.outputs[0]])
    h, x_hat = both.predict(x, batch_size=500, verbose=0)
    return {
        "cvr": scores.cvr(h),
        "ud90": scores.utilized_dimensions(h, 0.9),
        "mse": float(np.mean((np.asarray(x_hat, "float64") - x) ** 2)),
    }


def run_list(lambdas, table_lambda: float) -> list[tuple[str, float]]:
    """``("none", 0.0)`` once, then every λ > 0 for L_Sigma and for L1.

    >>> run_list((0.0, 0.02), 0.08)
    [('none', 0.0), ('L_Sigma', 0.02), ('L_Sigma', 0.08), ('L1', 0.02), ('L1', 0.08)]
    """
    positive = sorted({float(v) for v in tuple(lambdas) + (table_lambda,) if v > 0})
    return [("none", 0.0)] + [(reg, lam) for reg in REGULARIZERS for lam in positive]


def table1(summary, table_lambda: float) -> list[dict]:
    """The rows of Table 1 (at ``table_lambda``) beside the paper's numbers."""
    rows = []
    for reg in ("L_Sigma", "L1", "none"):
        lam = 0.0 if reg == "none" else table_lambda
        match = [
            r
            for r in summary
            if r["regularizer"] == reg and np.isclose(r["lambda"], lam)
        ]
        if not match:
            continue
        row = {"regularizer": reg, "lambda": lam}
        for metric in METRICS:
            row[metric] = match[0][metric]
            row[metric + "_std"] = match[0][metric + "_std"]
            row["paper_" + metric] = PAPER_TABLE1[reg][metric]
        row["n"] = match[0]["n"]
        rows.append(row)
    return rows


def plot_figure6(summary, path, title: str):
    """CVR against MSE and UD_90% against MSE, one curve per regularizer.

    Each curve starts at the unregularised point (λ = 0) and follows λ in
    increasing order; the λ of each point is written beside it.
    """
    fig = _common.new_figure(figsize=(11.0, 4.5))
    axes = fig.subplots(1, 2)
    none = [r for r in summary if r["regularizer"] == "none"]
    for ax, metric, label in zip(axes, ("cvr", "ud90"), ("CVR", "UD_90%"), strict=True):
        for reg, marker in (("L_Sigma", "o"), ("L1", "s")):
            rows = none + sorted(
                (r for r in summary if r["regularizer"] == reg),
                key=lambda r: r["lambda"],
            )
            if len(rows) <= len(none):
                continue
            ax.plot(
                [r["mse"] for r in rows],
                [r[metric] for r in rows],
                marker=marker,
                label="L_Sigma" if reg == "L_Sigma" else "L1 (activity)",
            )
            for r in rows[len(none) :]:
                ax.annotate(
                    f"{r['lambda']:g}",
                    (r["mse"], r[metric]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, 3),
                )
        ax.set_xscale("log")
        ax.set_xlabel("test MSE")
        ax.set_ylabel(label)
        ax.set_title(f"{label} against MSE (first point: λ = 0)")
        ax.legend()
    fig.suptitle(title)
    return _common.save_figure(fig, path)


def _load(args, quick: bool):
    """The splits of ``--data``; ``None`` (after a message) when unavailable."""
    from keras_disentangle import datasets

    if args.data == "cifar10":
        try:
            splits = datasets.cifar10(data_dir=args.data_dir, download=args.download)
        except datasets.DatasetNotAvailableError as error:
            _common.fail(f"{NAME}: {error}\n\n{NEEDS}")
            return None
    else:
        splits = datasets.sample_image_patches()
    train_size = _common.pick(args.train_size, None, 200, quick)
    (x_train, y_train), validation, test = splits
    if train_size is not None:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    if quick:
        validation = tuple(a[:100] for a in validation)
        test = tuple(a[:200] for a in test)
    return datasets.Splits((x_train, y_train), validation, test)


def _check_options(args) -> None:
    from keras_disentangle._validation import (
        check_non_negative,
        check_positive,
        check_positive_int,
    )

    for value in args.lambdas or ():
        check_non_negative("lambdas", value)
    check_positive("table_lambda", args.table_lambda)
    check_positive("learning_rate", args.learning_rate)
    check_positive_int("batch_size", args.batch_size)
    for name in ("patience", "train_size", "epochs", "seeds"):
        if getattr(args, name, None) is not None:
            check_positive_int(name, getattr(args, name))


def main(args: argparse.Namespace) -> int:
    """Runs the experiment; returns 0, or 2 when the data is not available."""
    try:
        _check_options(args)
    except ValueError as error:
        return _common.fail(f"{NAME}: {error}", 2)
    splits = _load(args, args.quick)
    if splits is None:
        return 2
    out = _common.output_dir(args, NAME)
    seeds = _common.seed_list(args, default=1, quick_default=1)
    epochs = _common.pick(args.epochs, 10, 2, args.quick)
    patience = _common.pick(args.patience, 2, 1, args.quick)
    lambdas = _common.pick(args.lambdas, LAMBDAS, QUICK_LAMBDAS, args.quick)
    runs = run_list(lambdas, args.table_lambda)
    (x_train, _), (x_val, _), (x_test, _) = splits
    n_params = build_autoencoder(input_shape=tuple(x_train.shape[1:])).count_params()
    _common.progress(
        f"{NAME}: {args.data}, {len(x_train)} training / {len(x_val)} "
        f"validation / {len(x_test)} test images; model with {n_params:,} "
        f"parameters, {CODE_UNITS}-unit code; {len(runs)} runs x {len(seeds)} "
        f"seed(s), at most {epochs} epochs (patience {patience}); output in {out}"
    )
    rows: list[dict] = []
    start = time.perf_counter()
    for seed in seeds:
        for reg, lam in runs:
            t0 = time.perf_counter()
            model, history = train(
                splits,
                make_regularizer(reg, lam),
                seed=seed,
                epochs=epochs,
                patience=patience,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                verbose=args.verbose,
            )
            val = history.history["val_mse"]
            row = {"regularizer": reg, "lambda": lam, "seed": seed}
            row.update(score(model, x_test))
            row["epochs"] = len(val)
            row["best_epoch"] = int(np.argmin(val)) + 1
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            _common.progress(
                f"  seed {seed} {reg:7s} λ={lam:<6g} cvr={row['cvr']:.2f} "
                f"ud90={row['ud90']} mse={row['mse']:.4f} "
                f"(best epoch {row['best_epoch']}/{row['epochs']}, "
                f"{row['seconds']:.0f}s)"
            )
    summary = _common.mean_std(rows, ["regularizer", "lambda"], METRICS)
    elapsed = time.perf_counter() - start
    _common.print_table(
        [{**r, "lambda": f"{r['lambda']:g}"} for r in summary],
        [
            "regularizer",
            "lambda",
            "cvr",
            "cvr_std",
            "ud90",
            "ud90_std",
            "mse",
            "mse_std",
            "n",
        ],
        title=f"\nAll runs, test split, mean over {len(seeds)} seed(s)",
        precision=4,
    )
    table = table1(summary, args.table_lambda)
    _common.print_table(
        table,
        TABLE1_COLUMNS,
        title=(
            f"\nTable 1 at λ = {args.table_lambda:g} ({args.data}; paper: "
            f"CIFAR-10, mean of 5), mean over {len(seeds)} seed(s), "
            f"{elapsed:.0f}s in all"
        ),
        precision=4,
    )
    if args.data != "cifar10":
        _common.progress(
            "(sample-image patches, not CIFAR-10: compare with the paper in "
            "direction only, not in absolute terms)"
        )
    at_table = [
        r
        for r in rows
        if r["regularizer"] == "none" or np.isclose(r["lambda"], args.table_lambda)
    ]
    differences = (
        _stats.difference_rows(at_table, "regularizer", list(METRICS), "none")
        if any(r["regularizer"] == "none" for r in at_table)
        else []
    )
    if differences:
        _common.print_table(
            differences,
            list(differences[0]),
            title=(
                f"\nAt λ = {args.table_lambda:g}, paired differences to none over "
                f"{len(seeds)} seed(s) (mean, 95% Student-t interval)"
            ),
            precision=4,
        )
    _common.write_csv(rows, out / "conv_autoencoder_runs.csv")
    _common.write_csv(summary, out / "conv_autoencoder.csv")
    _common.write_csv(table, out / "conv_autoencoder_table1.csv")
    if differences:
        _common.write_csv(differences, out / "conv_autoencoder_differences.csv")
    plot_figure6(
        summary,
        out / "conv_autoencoder_figure6.png",
        f"Convolutional autoencoder, {CODE_UNITS}-unit code ({args.data}, "
        f"test split, mean over {len(seeds)} seed(s))",
    )
    _common.progress(
        f"wrote {out}/conv_autoencoder.csv, conv_autoencoder_runs.csv, "
        "conv_autoencoder_table1.csv and conv_autoencoder_figure6.png"
    )
    return 0
