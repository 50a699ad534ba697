"""``keras-disentangle forced-to-learn``: Romanov & Rumshisky (2017), Table 1.

A recurrent classifier is trained on a coarse binary task (digits 0-4 against
5-9) and the 15-unit layer FC_1 before its sigmoid output is clustered with
KMeans into 10 clusters; the Adjusted and Normalized Mutual Information of
the clusters with the 10 digit classes measure how much of the fine structure
the representation kept without ever seeing the digit labels. Five variants
are compared: the baseline, DeCov and XCov on FC_1, and the paper's
L_single (KL-margin hinge between FC_1's weight vectors, on its kernel) and
L_multi (KL-margin hinge between same-label samples' FC_1 activations, eq. 4).

The model is the paper's Figure 1. By default (``--data strokes``) the
recurrent layer reads each digit as a pen-stroke sequence, as in the paper:
the 5,000 bundled MNIST digits thinned to a skeleton and walked into de
Jong's format by ``datasets.mnist_strokes`` (rows ``dx dy eos eod``, padding
masked with ``keras.layers.Masking``). ``--data mnist_5k`` (or ``digits``,
``mnist``) reads the images row by row instead (28 steps of 28 pixels).

L_multi uses the binary task labels as its labels: they are the only labels
available in training (eq. 4 pushes apart the FC_1 distributions of pairs that
share a label). It is a ``LabelledKLMargin`` loss on a named FC_1 output,
weighted with ``loss_weights``.

Hyperparameters are chosen on the validation split only (``--tune``); the
test split is used once, for the reported scores.
"""

from __future__ import annotations

import argparse
import itertools
import time
from typing import Any

import numpy as np

from keras_disentangle.experiments import _common, _stats

NAME = "forced-to-learn"
HELP = (
    "Romanov & Rumshisky (2017) Table 1: KMeans AMI/NMI of FC_1 of a binary "
    "(0-4 vs 5-9) recurrent classifier, baseline vs DeCov, XCov, L_single, "
    "L_multi"
)

VARIANTS = ("baseline", "decov", "xcov", "l_single", "l_multi")

#: The hyperparameters (option names) of each variant.
PARAMS = {
    "baseline": (),
    "decov": ("decov_weight",),
    "xcov": ("xcov_weight",),
    "l_single": ("single_margin", "single_weight"),
    "l_multi": ("multi_margin", "multi_weight"),
}

#: Defaults for the row-reading variants (``--data mnist_5k``, ``digits``,
#: ``mnist``), chosen once by the ``--tune`` search below on the validation
#: split of mnist_5k (40 epochs, seeds 1000-1001, best mean validation AMI);
#: ``docs/forced_to_learn.md`` lists the grid and the validation scores.
DEFAULTS = {
    "decov_weight": 0.001,
    "xcov_weight": 1.0,
    "single_margin": 5.0,
    "single_weight": 1.0,
    "multi_margin": 0.1,
    "multi_weight": 1.0,
}

#: Defaults for ``--data strokes``, chosen by ``--tune-only`` on the
#: validation split of ``mnist_strokes`` with ``STROKES_GRID`` (see
#: ``docs/forced_to_learn.md``).
STROKE_DEFAULTS = {**DEFAULTS, "xcov_weight": 0.1, "single_weight": 0.1}

#: Training settings per ``--data`` (``--epochs``, ``--batch-size``,
#: ``--learning-rate`` override them). The stroke sequences are up to 69 rows
#: long (against 28 image rows), so the stroke run uses larger batches and
#: fewer epochs to stay a few minutes on 2 CPU cores.
TRAINING = {
    "strokes": {"epochs": 15, "batch_size": 256, "learning_rate": 2e-3},
    "mnist_5k": {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3},
    "digits": {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3},
    "mnist": {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3},
}

#: Romanov & Rumshisky (2017), Table 1 (MNIST pen-stroke sequences, the mean
#: of three runs): (AMI, NMI) of KMeans on FC_1.
PAPER = {
    "baseline": (0.467, 0.477),
    "decov": (0.287, 0.313),
    "xcov": (0.525, 0.547),
    "l_single": (0.544, 0.553),
    "l_multi": (0.502, 0.523),
}

#: The validation grid of ``--tune`` (the paper: margin 5-10 for L_single,
#: 0.1-1 for L_multi).
GRID = {
    "decov_weight": (0.0001, 0.001, 0.01, 0.1),
    "xcov_weight": (0.1, 1.0, 10.0),
    "single_margin": (5.0, 10.0),
    "single_weight": (0.001, 0.01, 0.1, 1.0, 10.0),
    "multi_margin": (0.1, 0.5, 1.0),
    "multi_weight": (0.1, 1.0, 10.0),
}
QUICK_GRID = {
    "decov_weight": (0.001,),
    "xcov_weight": (0.1, 1.0),
    "single_margin": (5.0,),
    "single_weight": (1.0,),
    "multi_margin": (0.1,),
    "multi_weight": (0.1, 1.0),
}

#: The smaller grid searched for ``--data strokes`` (one seed per point).
STROKES_GRID = {
    "decov_weight": (0.001, 0.01),
    "xcov_weight": (0.1, 1.0),
    "single_margin": (5.0,),
    "single_weight": (0.1, 1.0),
    "multi_margin": (0.1,),
    "multi_weight": (0.1, 1.0),
}

TABLE_COLUMNS = [
    "variant",
    "hyperparameters",
    "ami",
    "ami_std",
    "paper_ami",
    "nmi",
    "nmi_std",
    "paper_nmi",
    "binary_acc",
    "binary_acc_std",
    "kernel_kl_max",
]

_FLAGS = {
    "decov_weight": "--decov-weight",
    "xcov_weight": "--xcov-weight",
    "single_margin": "--single-margin",
    "single_weight": "--single-weight",
    "multi_margin": "--multi-margin",
    "multi_weight": "--multi-weight",
}
_HELPS = {
    "decov_weight": "DeCov weight on FC_1's activity",
    "xcov_weight": "XCov weight between FC_2's output and FC_1",
    "single_margin": "L_single margin (KL between FC_1's weight vectors)",
    "single_weight": "L_single weight (kernel regularizer of FC_1)",
    "multi_margin": "L_multi margin (KL between same-label FC_1 outputs)",
    "multi_weight": "L_multi weight (loss weight of FC_1's output)",
}


#: The files ``forced-to-learn`` writes into ``--output`` (glob patterns).
OUTPUTS = (
    "forced_to_learn.csv",
    "summary.csv",
    "differences.csv",
    "tune.csv",
    "stroke_digits.png",
    "figure5_pca.png",
    "ami_by_n_clusters.png",
    "most_active_units_*.png",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``forced-to-learn`` to ``parser``."""
    parser.add_argument(
        "--data",
        choices=tuple(TRAINING),
        default="strokes",
        help="strokes: the 5,000 bundled MNIST digits as pen-stroke "
        "sequences (the paper's setting, offline); mnist_5k: the same digits "
        "read row by row; digits: scikit-learn's 8x8 digits, row by row; "
        "mnist: the full set row by row, from a local tensorflow-datasets "
        "copy (get it once with keras_disentangle.datasets.mnist(download=True))",
    )
    parser.add_argument(
        "--variants",
        type=_common.subset_of(VARIANTS),
        default=",".join(VARIANTS),
        help="comma-separated subset of " + ", ".join(VARIANTS),
    )
    for key, flag in _FLAGS.items():
        parser.add_argument(
            flag,
            dest=key,
            type=_common.non_negative_float,
            default=None,
            help=f"{_HELPS[key]} (default {STROKE_DEFAULTS[key]:g} for strokes, "
            f"{DEFAULTS[key]:g} otherwise; chosen on validation)",
        )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="redo the validation search of the penalties' hyperparameters "
        "(grid below, validation AMI) before the test run; a value given on "
        "the command line is kept fixed",
    )
    parser.add_argument(
        "--tune-only",
        action="store_true",
        help="run the validation search of --tune, write tune.csv and stop",
    )
    parser.add_argument(
        "--tune-seeds",
        type=_common.positive_int,
        default=None,
        help="seeds per grid point in --tune (default 2; 1 with --quick); "
        "they differ from the test run's seeds",
    )
    parser.add_argument(
        "--rnn", choices=("lstm", "gru"), default="lstm", help="recurrent layer"
    )
    parser.add_argument(
        "--rnn-units",
        type=_common.positive_int,
        default=64,
        help="units of the recurrent layer",
    )
    parser.add_argument(
        "--batch-size",
        type=_common.positive_int,
        default=None,
        help="mini-batch size (default 256 for strokes, 128 otherwise)",
    )
    parser.add_argument(
        "--learning-rate",
        type=_common.positive_float,
        default=None,
        help="Adam's learning rate (default 0.002 for strokes, 0.001 otherwise)",
    )
    parser.add_argument(
        "--n-clusters",
        type=_common.int_at_least(2),
        default=10,
        help="KMeans clusters (10 digits)",
    )


# ---------------------------------------------------------------------------
# Data and model


def load_data(name: str, quick: bool = False) -> Any:
    """Splits of ``(x, digit labels)``; ``x`` is ``(N, steps, features)``.

    With ``quick``, the train split is cut to its first 600 samples (the
    split is already shuffled).
    """
    from keras_disentangle import datasets

    if name == "strokes":
        splits = datasets.mnist_strokes()
    elif name == "mnist_5k":
        splits = datasets.mnist_5k()
    elif name == "digits":
        splits = datasets.digits()
    else:
        splits = datasets.mnist()
    if quick:
        (x, y), validation, test = splits
        splits = datasets.Splits((x[:600], y[:600]), validation, test)
    return splits


def build_model(
    variant: str,
    params: dict,
    input_shape: tuple,
    rnn: str = "lstm",
    rnn_units: int = 64,
    learning_rate: float = 1e-3,
    mask_value: float | None = None,
) -> Any:
    """The model of the paper's Figure 1 with the penalty of ``variant``.

    ``recurrent layer over the sequence -> FC_1 (15, ReLU) -> FC_2 (1,
    sigmoid)``. FC_1 is the layer named ``"fc1"``. For ``l_multi`` the model
    has two outputs, ``{"fc2": prediction, "fc1": FC_1}``; otherwise one.
    With ``mask_value`` (``datasets.STROKE_PAD`` for stroke sequences), a
    ``keras.layers.Masking`` layer makes the recurrent layer skip the
    padding rows.

    Returns:
        A compiled ``keras.Model``.
    """
    import keras

    recurrent = keras.layers.LSTM if rnn == "lstm" else keras.layers.GRU
    inputs = keras.Input(input_shape, name="sequence")
    z = inputs
    if mask_value is not None:
        z = keras.layers.Masking(mask_value=mask_value, name="padding")(z)
    features = recurrent(rnn_units, name=rnn)(z)
    return penalised_head(inputs, features, variant, params, learning_rate)


def penalised_head(
    inputs: Any, features: Any, variant: str, params: dict, learning_rate: float
) -> Any:
    """FC_1 (15, ReLU) -> FC_2 (1, sigmoid) on ``features``, with ``variant``'s
    penalty on FC_1, compiled with Adam: the part of the paper's models that
    every experiment of Romanov & Rumshisky shares.

    Args:
        inputs: the model's ``keras.Input``.
        features: the tensor FC_1 reads (a recurrent or convolutional trunk).
        variant: one of ``VARIANTS``.
        params: the penalties' hyperparameters (keys of ``DEFAULTS``).
        learning_rate: Adam's learning rate.

    Returns:
        A compiled ``keras.Model``; for ``l_multi`` with the outputs
        ``{"fc2": prediction, "fc1": FC_1}``.
    """
    import keras

    from keras_disentangle import layers, losses, regularizers

    if variant not in VARIANTS:
        raise ValueError(
            f"Invalid value for argument variant: expected one of {VARIANTS}. "
            f"Received: variant={variant!r}"
        )
    fc1_options = {}
    if variant == "decov":
        fc1_options["activity_regularizer"] = regularizers.DeCov(
            weight=params["decov_weight"]
        )
    elif variant == "l_single":
        fc1_options["kernel_regularizer"] = regularizers.KernelKLMargin(
            margin=params["single_margin"], weight=params["single_weight"]
        )
    h = keras.layers.Dense(15, activation="relu", name="fc1", **fc1_options)(features)
    y = keras.layers.Dense(1, activation="sigmoid", name="fc2")(h)
    optimizer = keras.optimizers.Adam(learning_rate)
    if variant == "xcov":
        y = layers.XCovPenalty(weight=params["xcov_weight"], name="xcov")([y, h])
    if variant == "l_multi":
        model = keras.Model(inputs, {"fc2": y, "fc1": h})
        model.compile(
            optimizer,
            loss={
                "fc2": "binary_crossentropy",
                "fc1": losses.LabelledKLMargin(margin=params["multi_margin"]),
            },
            loss_weights={"fc2": 1.0, "fc1": params["multi_weight"]},
        )
    else:
        model = keras.Model(inputs, y)
        model.compile(optimizer, loss="binary_crossentropy")
    return model


def fc1_and_prediction(model: Any, x: np.ndarray, batch_size: int = 512) -> tuple:
    """FC_1's output ``(N, 15)`` and the sigmoid output FC_2 ``(N,)`` for ``x``.

    A two-output view of the trained model, called on batches of
    ``batch_size`` (direct calls: ``predict`` would trace a new function for
    every model of a run).
    """
    import keras

    view = keras.Model(
        model.input, [model.get_layer("fc1").output, model.get_layer("fc2").output]
    )
    hs, ps = [], []
    for start in range(0, len(x), batch_size):
        h, p = view(x[start : start + batch_size], training=False)
        hs.append(keras.ops.convert_to_numpy(h))
        ps.append(keras.ops.convert_to_numpy(p))
    return np.concatenate(hs), np.concatenate(ps).reshape(-1)


def kernel_kl_max(model: Any) -> float:
    """The largest KL divergence between two of FC_1's weight distributions.

    ``d_k = softmax(W[:, k])`` over the fan-in, as in L_single; the hinge of
    L_single switches off for a pair once this exceeds the margin.
    """
    from keras_disentangle import penalties

    kernel = model.get_layer("fc1").kernel
    kl = np.array(penalties.pairwise_kl(np.asarray(kernel).T))
    np.fill_diagonal(kl, -np.inf)
    return float(kl.max())


def train_and_score(
    variant: str,
    params: dict,
    splits: Any,
    seed: int,
    epochs: int,
    options: Any,
    evaluate_on: tuple = ("validation", "test"),
    callbacks: list | None = None,
) -> tuple:
    """Trains one model and scores FC_1 on the requested splits.

    Returns:
        ``(row, model, features)``: ``row`` holds ``<split>_ami``,
        ``<split>_nmi``, ``<split>_acc`` (binary accuracy) for each split in
        ``evaluate_on``, ``kernel_kl_max`` and ``seconds`` (training and
        scoring); ``features`` maps each split to FC_1's output on it.
    """
    from keras_disentangle import datasets
    from keras_disentangle.scores import cluster_scores

    _common.set_seed(seed)
    x_train, y_train = splits.train
    b_train = _common.binary_targets(y_train)
    strokes = getattr(options, "data", None) == "strokes"
    model = build_model(
        variant,
        params,
        x_train.shape[1:],
        rnn=options.rnn,
        rnn_units=options.rnn_units,
        learning_rate=options.learning_rate,
        mask_value=datasets.STROKE_PAD if strokes else None,
    )
    targets = {"fc2": b_train, "fc1": b_train} if variant == "l_multi" else b_train
    start = time.perf_counter()
    model.fit(
        x_train,
        targets,
        batch_size=options.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=_common.fit_verbose(options),
        callbacks=callbacks,
    )
    xs = [getattr(splits, split)[0] for split in evaluate_on]
    h_all, p_all = fc1_and_prediction(model, np.concatenate(xs))
    row, features, offset = {}, {}, 0
    for split, x in zip(evaluate_on, xs, strict=True):
        y = getattr(splits, split)[1]
        h = h_all[offset : offset + len(x)]
        p = p_all[offset : offset + len(x)]
        offset += len(x)
        scores = cluster_scores(h, y, n_clusters=options.n_clusters, seed=seed)
        row[f"{split}_ami"] = scores["ami"]
        row[f"{split}_nmi"] = scores["nmi"]
        b = _common.binary_targets(y)
        row[f"{split}_acc"] = float(np.mean((p >= 0.5) == (b >= 0.5)))
        features[split] = h
    row["kernel_kl_max"] = kernel_kl_max(model)
    row["seconds"] = time.perf_counter() - start
    return row, model, features


# ---------------------------------------------------------------------------
# The command


def _describe(variant: str, params: dict) -> str:
    names = {"weight": "w", "margin": "m"}
    parts = []
    for key in PARAMS[variant]:
        short = names[key.rsplit("_", 1)[1]]
        parts.append(f"{short}={params[key]:g}")
    return ", ".join(parts) or "-"


def _parse_variants(text: str) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        raise ValueError(
            f"Invalid value for argument --variants: expected a comma-separated "
            f"subset of {', '.join(VARIANTS)}. Received: --variants={text!r}"
        )
    return chosen


def _check_options(args: argparse.Namespace) -> None:
    from keras_disentangle._validation import (
        check_non_negative,
        check_positive,
        check_positive_int,
    )

    for key in DEFAULTS:
        if getattr(args, key) is not None:
            check_non_negative(key, getattr(args, key))
    if args.learning_rate is not None:
        check_positive("learning_rate", args.learning_rate)
    if args.batch_size is not None:
        check_positive_int("batch_size", args.batch_size)
    check_positive_int("rnn_units", args.rnn_units)
    check_positive_int("n_clusters", args.n_clusters, minimum=2)
    if args.tune_seeds is not None:
        check_positive_int("tune_seeds", args.tune_seeds)


def _training_options(args: argparse.Namespace) -> None:
    """Fills ``--batch-size`` and ``--learning-rate`` with ``--data``'s defaults."""
    settings = TRAINING[args.data]
    if args.batch_size is None:
        args.batch_size = settings["batch_size"]
    if args.learning_rate is None:
        args.learning_rate = settings["learning_rate"]


def defaults_for(data: str) -> dict:
    """The penalties' default hyperparameters for ``--data``."""
    return dict(STROKE_DEFAULTS if data == "strokes" else DEFAULTS)


def tune(
    args: argparse.Namespace,
    splits: Any,
    variants: list[str],
    epochs: int,
    out: Any,
    bar: _common.RunProgress | None = None,
) -> dict:
    """Grid search of each penalty's hyperparameters on validation AMI.

    Each grid point is trained with seeds ``1000, 1001, ...`` (never the test
    run's seeds) and scored on the validation split only; the point with the
    highest mean validation AMI wins. The baseline, when among ``variants``,
    is trained with the same seeds for reference. Writes ``tune.csv``.

    Returns:
        dict of the chosen values.
    """
    grid = _grid(args)
    n_seeds = _common.pick(args.tune_seeds, 2, 1, args.quick)
    seeds = [1000 + i for i in range(n_seeds)]
    callbacks = [bar.callback()] if bar is not None else None
    chosen: dict = {}
    rows: list = []
    for variant in variants:
        keys = PARAMS[variant]
        axes = [
            (getattr(args, k),) if getattr(args, k) is not None else grid[k]
            for k in keys
        ]
        best = None
        for values in itertools.product(*axes):
            params = dict(zip(keys, values, strict=True))
            scores = []
            for seed in seeds:
                row, _, _ = train_and_score(
                    variant,
                    params,
                    splits,
                    seed,
                    epochs,
                    args,
                    ("validation",),
                    callbacks=callbacks,
                )
                scores.append(row)
            summary = {
                "variant": variant,
                "hyperparameters": _describe(variant, params),
                **params,
                "val_ami": sum(s["validation_ami"] for s in scores) / len(scores),
                "val_acc": sum(s["validation_acc"] for s in scores) / len(scores),
                "seeds": len(seeds),
            }
            rows.append(summary)
            _common.progress(
                f"[tune] {variant:8s} {summary['hyperparameters']:16s} "
                f"val AMI {summary['val_ami']:.3f}  val acc {summary['val_acc']:.3f}"
            )
            if best is None or summary["val_ami"] > best[0]:
                best = (summary["val_ami"], params)
        if best is not None:
            chosen.update(best[1])  # the baseline has nothing to choose
    _common.print_table(
        rows,
        ["variant", "hyperparameters", "val_ami", "val_acc"],
        title=f"Validation search ({len(seeds)} seed(s), {epochs} epochs)",
    )
    columns = ["variant", "hyperparameters", *DEFAULTS, "val_ami", "val_acc"]
    _common.write_csv(rows, out / "tune.csv", columns + ["seeds"])
    return chosen


def _grid(args: argparse.Namespace) -> dict:
    if args.quick:
        return QUICK_GRID
    return STROKES_GRID if getattr(args, "data", None) == "strokes" else GRID


def _tune_count(args: argparse.Namespace, variants: list[str]) -> int:
    """Trainings that :func:`tune` runs (for the progress bar)."""
    grid = _grid(args)
    n_seeds = _common.pick(args.tune_seeds, 2, 1, args.quick)
    count = 0
    for variant in variants:
        points = 1
        for key in PARAMS[variant]:
            points *= 1 if getattr(args, key) is not None else len(grid[key])
        count += points
    return count * n_seeds


def draw_strokes(x: np.ndarray, labels: np.ndarray, n: int = 10) -> Any:
    """Digits drawn from their pen-stroke sequences (``mnist_strokes`` rows).

    The first sample of each of the first ``n`` classes (in label order), one
    panel each; every stroke in its own colour, its start marked with a dot.

    Args:
        x: ``(N, T, 4)`` padded stroke sequences.
        labels: ``(N,)`` digit labels.
        n: panels (classes) to draw.

    Returns:
        A matplotlib ``Figure``.
    """
    from keras_disentangle import datasets

    labels = np.asarray(labels)
    classes = np.unique(labels)[:n]
    fig = _common.new_figure(figsize=(1.6 * len(classes), 2.0))
    axes = np.atleast_1d(fig.subplots(1, len(classes)))
    for ax, label in zip(axes, classes, strict=True):
        index = int(np.flatnonzero(labels == label)[0])
        strokes = datasets.strokes_to_points(x[index])
        for stroke in strokes:
            line = ax.plot(stroke[:, 0], stroke[:, 1], linewidth=2)[0]
            ax.plot(stroke[0, 0], stroke[0, 1], "o", color=line.get_color(), ms=3)
        ax.set_xlim(0, 27)
        ax.set_ylim(27, 0)  # y points down, as in the image
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{label}: {len(strokes)} stroke(s)", fontsize=8)
    fig.suptitle("Digits drawn from their stroke sequences (one colour a stroke)")
    return fig


def figure5(features: dict, labels: np.ndarray) -> Any:
    """The paper's Figure 5: PCA of FC_1, baseline against L_multi.

    Four panels: for the baseline (top) and L_multi (bottom), the first two
    principal components of FC_1 on the test split, coloured by the binary
    task label (left) and by the digit class (right).

    Args:
        features: FC_1 outputs by variant; needs ``"baseline"`` and
            ``"l_multi"``.
        labels: the digit labels of the samples.

    Returns:
        A matplotlib ``Figure``.
    """
    from sklearn.decomposition import PCA

    labels = np.asarray(labels)
    binary = _common.binary_targets(labels).astype("int64")
    fig = _common.new_figure(figsize=(10.0, 9.0))
    axes = fig.subplots(2, 2)
    for row, variant in enumerate(("baseline", "l_multi")):
        h = np.asarray(features[variant], dtype="float64")
        points = PCA(n_components=2, random_state=0).fit_transform(h)
        for col, (colour, legend) in enumerate(
            ((binary, ("0-4", "5-9")), (labels, None))
        ):
            ax = axes[row, col]
            cmap = "coolwarm" if legend else "tab10"
            for value in np.unique(colour):
                mask = colour == value
                name = legend[value] if legend else str(value)
                ax.scatter(
                    points[mask, 0],
                    points[mask, 1],
                    s=5,
                    label=name,
                    color=_colour(cmap, value, 2 if legend else 10),
                )
            kind = "binary label" if legend else "digit class"
            ax.set_title(f"{'abcd'[2 * row + col]}) {variant}, by {kind}")
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.legend(markerscale=3, fontsize="small", ncol=1 if legend else 2)
    fig.suptitle("PCA of FC_1 on the test split, first seed (the paper's Figure 5)")
    return fig


def _colour(cmap: str, value: int, count: int) -> Any:
    from matplotlib import colormaps

    colours = colormaps[cmap]
    return colours(value / max(1, count - 1)) if cmap == "coolwarm" else colours(value)


def _plots(features: dict, labels: np.ndarray, out: Any, quick: bool) -> list:
    """The paper's Figures 2/3 (most active units), 5 (PCA) and 6 (AMI vs
    clusters).

    ``features`` maps each variant to FC_1's output on the test split (first
    seed); ``labels`` are the test split's digits.
    """
    from keras_disentangle import plots

    paths = []
    for variant in ("baseline", "l_multi"):
        if variant in features:
            fig = plots.most_active_units(features[variant], labels=labels)
            fig.suptitle(f"FC_1 most active units, {variant} (test split)")
            paths.append(
                _common.save_figure(fig, out / f"most_active_units_{variant}.png")
            )
    if "baseline" in features and "l_multi" in features:
        paths.append(
            _common.save_figure(figure5(features, labels), out / "figure5_pca.png")
        )
    n_clusters = range(2, 13) if quick else range(2, 21)
    fig = plots.scores_by_n_clusters(features, labels, n_clusters=n_clusters)
    fig.suptitle("FC_1 on the test split, first seed (AMI against k)")
    paths.append(_common.save_figure(fig, out / "ami_by_n_clusters.png"))
    return paths


def ranking(table: list[dict], key: str = "ami") -> str:
    """The variants ordered by ``key``, best first: ``"a .5 > b .4"``.

    >>> ranking([{"variant": "a", "ami": 0.4}, {"variant": "b", "ami": 0.5}])
    'b .500 > a .400'
    """
    ordered = sorted(table, key=lambda row: -row[key])
    return " > ".join(
        f"{row['variant']} {row[key]:.3f}".replace(" 0.", " .") for row in ordered
    )


def main(args: argparse.Namespace) -> int:
    """Runs the experiment; returns 0, or 1 with a message when data is missing."""
    try:
        _check_options(args)
        variants = _parse_variants(args.variants)
    except ValueError as error:
        return _common.fail(str(error), 2)
    _training_options(args)
    out = _common.output_dir(args, NAME)
    epochs = _common.pick(args.epochs, TRAINING[args.data]["epochs"], 2, args.quick)
    seeds = _common.seed_list(args, 3, 1)
    started = time.perf_counter()

    _common.progress(f"[{NAME}] loading {args.data} ...")
    try:
        splits = load_data(args.data, args.quick)
    except (ImportError, OSError, RuntimeError) as error:
        return _common.fail(f"[{NAME}] cannot load --data {args.data}: {error}")
    reading = (
        f"pen-stroke sequences of up to {splits.train[0].shape[1]} rows "
        "(dx dy eos eod), as in the paper"
        if args.data == "strokes"
        else f"images read as sequences of {splits.train[0].shape[1]} rows "
        "(the paper: pen strokes)"
    )
    _common.progress(
        f"[{NAME}] train/validation/test = {len(splits.train[1])}/"
        f"{len(splits.validation[1])}/{len(splits.test[1])}; {reading}"
    )
    if args.data == "strokes":
        path = _common.save_figure(
            draw_strokes(*splits.test), out / "stroke_digits.png"
        )
        _common.progress(f"[{NAME}] wrote {path.name}")

    tuning = args.tune or args.tune_only
    models = (_tune_count(args, variants) if tuning else 0) + (
        0 if args.tune_only else len(variants) * len(seeds)
    )
    bar = _common.RunProgress(models * epochs, NAME, enabled=args.verbose == 1)
    try:
        params = {k: getattr(args, k) for k in DEFAULTS}
        if tuning:
            params.update(tune(args, splits, variants, epochs, out, bar))
            if args.tune_only:
                _common.progress(
                    f"[{NAME}] wrote {out / 'tune.csv'} in "
                    f"{time.perf_counter() - started:.0f} s"
                )
                return 0
        defaults = defaults_for(args.data)
        params = {k: defaults[k] if v is None else float(v) for k, v in params.items()}
        rows, test_features = _test_runs(
            args, variants, params, splits, seeds, epochs, bar
        )
    finally:
        bar.close()

    summary = _common.mean_std(
        rows,
        ["variant", "hyperparameters"],
        ["ami", "nmi", "binary_acc", "val_ami", "kernel_kl_max"],
    )
    for row in summary:
        row["paper_ami"], row["paper_nmi"] = PAPER[row["variant"]]
    _common.print_table(
        summary,
        TABLE_COLUMNS,
        title=(
            f"Forced to Learn, Table 1 ({args.data}, test split, KMeans "
            f"k={args.n_clusters} on FC_1, mean ± std over {len(seeds)} seed(s), "
            f"{epochs} epochs; paper_*: the paper's Table 1, pen strokes of all "
            "70,000 MNIST digits)"
        ),
    )
    paper = [{"variant": v, "ami": a} for v, (a, _) in PAPER.items() if v in variants]
    _common.progress(f"ranking by test AMI, measured: {ranking(summary)}")
    _common.progress(f"ranking by AMI, the paper:      {ranking(paper)}")
    differences = (
        _stats.difference_rows(rows, "variant", ["ami", "nmi"], "baseline")
        if "baseline" in variants
        else []
    )
    if differences:
        _common.print_table(
            differences,
            list(differences[0]),
            title=(
                f"\nPaired differences to the baseline over {len(seeds)} seed(s) "
                "(mean, 95% Student-t interval; significant: it excludes 0)"
            ),
        )
    _common.write_csv(rows, out / "forced_to_learn.csv")
    _common.write_csv(summary, out / "summary.csv")
    if differences:
        _common.write_csv(differences, out / "differences.csv")
    _common.progress(f"[{NAME}] plotting ...")
    paths = _plots(test_features, splits.test[1], out, args.quick)
    _common.progress(
        f"[{NAME}] wrote {out / 'forced_to_learn.csv'}, {out / 'summary.csv'}, "
        + ", ".join(p.name for p in paths)
        + f" in {time.perf_counter() - started:.0f} s"
    )
    return 0


def _test_runs(
    args: argparse.Namespace,
    variants: list[str],
    params: dict,
    splits: Any,
    seeds: list[int],
    epochs: int,
    bar: _common.RunProgress,
) -> tuple:
    """Trains every variant with every seed; per-seed rows and FC_1 features."""
    rows, test_features = [], {}
    for variant in variants:
        for seed in seeds:
            row, _, features = train_and_score(
                variant, params, splits, seed, epochs, args, callbacks=[bar.callback()]
            )
            record = {
                "data": args.data,
                "variant": variant,
                "seed": seed,
                "epochs": epochs,
                "hyperparameters": _describe(variant, params),
                **{k: (params[k] if k in PARAMS[variant] else "") for k in DEFAULTS},
                "ami": row["test_ami"],
                "nmi": row["test_nmi"],
                "binary_acc": row["test_acc"],
                "val_ami": row["validation_ami"],
                "val_acc": row["validation_acc"],
                "kernel_kl_max": row["kernel_kl_max"],
                "seconds": row["seconds"],
            }
            rows.append(record)
            if seed == seeds[0]:
                test_features[variant] = features["test"]
            _common.progress(
                f"[{NAME}] {variant:8s} seed {seed}: test AMI {record['ami']:.3f} "
                f"NMI {record['nmi']:.3f} binary acc {record['binary_acc']:.3f} "
                f"({record['seconds']:.0f} s)"
            )
    return rows, test_features
