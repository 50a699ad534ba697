"""``keras-disentangle cifar10``: Romanov & Rumshisky (2017), Table 2.

The forced-to-learn protocol on CIFAR-10: a VGG-16-style CNN (the paper's
Figure 4: five blocks of 3x3 convolutions, 64-128-256-512-512 filters, with
max pooling) followed by FC_1 (15 units, ReLU) and FC_2 (1 unit, sigmoid) is
trained on a binary task over the 10 classes; FC_1 of the test split is
clustered with KMeans into 10 clusters and scored with AMI and NMI against
the 10 classes. Variants: baseline, DeCov, XCov, L_single and L_multi, with
the penalty weights of ``forced-to-learn`` (chosen on MNIST, not re-tuned
here) unless given.

Binary task: ``--groups first-last`` (default) is classes 0-4 against 5-9,
the grouping used for MNIST; ``--groups animals-vehicles`` is {airplane,
automobile, ship, truck} against the six animals. The paper's own grouping
for CIFAR-10 could not be checked offline.

CIFAR-10 is read through tensorflow-datasets (``datasets.cifar10``). Without
a local copy the command explains what it needs and exits with status 2;
``--download`` fetches it (needs internet, about 170 MB). The full run trains
a 15-million-parameter CNN and wants a GPU; ``--train-size`` subsamples.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from keras_disentangle.experiments import _common

NAME = "cifar10"
HELP = (
    "Romanov & Rumshisky (2017) Table 2: VGG-16-style CNN with a 15-unit "
    "FC_1 on a binary CIFAR-10 task; KMeans AMI/NMI (needs the data)"
)

VARIANTS = ("baseline", "decov", "xcov", "l_single", "l_multi")
GROUPS = {
    "first-last": _common.FIRST_LAST,
    "animals-vehicles": ((2, 3, 4, 5, 6, 7), (0, 1, 8, 9)),
}
COLUMNS = ["variant", "ami", "ami_std", "nmi", "nmi_std", "accuracy", "n"]
#: VGG-16's convolution blocks (filters, convolutions per block).
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))

NEEDS = (
    "The cifar10 experiment needs CIFAR-10 from tensorflow-datasets "
    "(pip install 'keras_disentangle[datasets]'), prepared once on a machine "
    "with internet: `keras-disentangle cifar10 --download` (about 170 MB, "
    "stored in ~/tensorflow_datasets or --data-dir). A GPU is advised for the "
    "full run. Offline, the same protocol runs on MNIST: "
    "`keras-disentangle forced-to-learn` (mnist_5k, bundled)."
)


#: The files ``cifar10`` writes into ``--output`` (glob patterns).
OUTPUTS = (
    "cifar10.csv",
    "cifar10_runs.csv",
    "cifar10_ami_by_clusters.png",
    "cifar10_active_units_*.png",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``keras-disentangle cifar10``."""
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets folder")
    parser.add_argument(
        "--download",
        action="store_true",
        help="download CIFAR-10 when there is no local copy (needs internet)",
    )
    parser.add_argument(
        "--variants",
        type=_common.subset_of(VARIANTS),
        default=",".join(VARIANTS),
        help="comma-separated subset of " + ",".join(VARIANTS),
    )
    parser.add_argument("--groups", choices=sorted(GROUPS), default="first-last")
    parser.add_argument(
        "--train-size",
        type=_common.positive_int,
        default=None,
        help="use this many training images (default: all 45,000; --quick 256)",
    )
    parser.add_argument(
        "--batch-size", type=_common.positive_int, default=128, help="mini-batch size"
    )
    parser.add_argument(
        "--learning-rate",
        type=_common.positive_float,
        default=1e-4,
        help="Adam's learning rate",
    )
    parser.add_argument(
        "--width",
        type=_common.positive_float,
        default=1.0,
        help="multiplies VGG-16's filter counts (--quick: 1/16)",
    )
    for name, value in (
        ("decov-weight", None),
        ("xcov-weight", None),
        ("single-margin", None),
        ("single-weight", None),
        ("multi-margin", None),
        ("multi-weight", None),
    ):
        parser.add_argument(
            f"--{name}",
            type=_common.non_negative_float,
            default=value,
            help="default: the forced-to-learn value (a weight of 0: none)",
        )
    parser.epilog = (
        "--seeds N: seeds 0..N-1 (default 3; --quick 1). --epochs: default 30 "
        "(--quick 1)."
    )


def build_model(variant: str, params: dict, width: float, learning_rate: float) -> Any:
    """VGG-16-style CNN -> FC_1 (15, ReLU, ``"fc1"``) -> FC_2 (1, sigmoid).

    The penalty of ``variant`` is attached to FC_1 as in ``forced-to-learn``;
    for ``l_multi`` the model has the outputs ``{"fc2", "fc1"}``.
    """
    import keras

    from keras_disentangle.experiments.forced_to_learn import penalised_head

    inputs = keras.Input((32, 32, 3), name="image")
    z = inputs
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        for k in range(convs):
            z = keras.layers.Conv2D(
                max(1, round(filters * width)),
                3,
                padding="same",
                activation="relu",
                name=f"block{block}_conv{k + 1}",
            )(z)
        z = keras.layers.MaxPooling2D(name=f"block{block}_pool")(z)
    z = keras.layers.Flatten()(z)
    return penalised_head(inputs, z, variant, params, learning_rate)


def _params(args) -> dict:
    from keras_disentangle.experiments.forced_to_learn import DEFAULTS

    return {
        key: float(getattr(args, key) if getattr(args, key) is not None else value)
        for key, value in DEFAULTS.items()
    }


def _check_options(args) -> None:
    """The penalty weights and sizes, checked before any data is read."""
    from keras_disentangle._validation import check_non_negative, check_positive
    from keras_disentangle.experiments.forced_to_learn import DEFAULTS

    for key in DEFAULTS:
        if getattr(args, key) is not None:
            check_non_negative(key, getattr(args, key))
    check_positive("width", args.width)


def main(args: argparse.Namespace) -> int:
    """Runs the experiment; returns 0, or 2 when CIFAR-10 is not available."""
    from keras_disentangle import datasets

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        return _common.fail(
            f"cifar10: unknown variants {unknown}; choose from {VARIANTS}", 2
        )
    try:
        _check_options(args)
    except ValueError as error:
        return _common.fail(f"cifar10: {error}", 2)
    try:
        splits = datasets.cifar10(data_dir=args.data_dir, download=args.download)
    except datasets.DatasetNotAvailableError as error:
        return _common.fail(f"cifar10: {error}\n\n{NEEDS}", 2)

    out = _common.output_dir(args, NAME)
    seeds = _common.seed_list(args, default=3, quick_default=1)
    epochs = _common.pick(args.epochs, 30, 1, args.quick)
    width = 1 / 16 if args.quick and args.width == 1.0 else args.width
    train_size = _common.pick(args.train_size, None, 256, args.quick)
    params = _params(args)
    groups = GROUPS[args.groups]

    (x_train, y_train), _, (x_test, y_test) = splits
    if train_size is not None:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    if args.quick:
        x_test, y_test = x_test[:256], y_test[:256]
    b_train = _common.binary_targets(y_train, groups)
    b_test = _common.binary_targets(y_test, groups)
    splits_used = (x_train, b_train, x_test, y_test, b_test)
    _common.progress(
        f"cifar10: {len(x_train)} training / {len(x_test)} test images, "
        f"{len(variants)} variants x {len(seeds)} seed(s), {epochs} epochs; "
        f"output in {out}"
    )
    bar = _common.RunProgress(
        len(variants) * len(seeds) * epochs, NAME, enabled=args.verbose == 1
    )
    try:
        rows, fc1_by_variant = _runs(
            args, variants, seeds, epochs, params, width, splits_used, bar
        )
    finally:
        bar.close()
    _report(args, rows, fc1_by_variant, y_test, out)
    return 0


def _runs(args, variants, seeds, epochs, params, width, data, bar) -> tuple:
    """Trains every variant with every seed; rows and FC_1 of the test split."""
    import keras

    from keras_disentangle.scores import cluster_scores

    x_train, b_train, x_test, y_test, b_test = data
    rows, fc1_by_variant = [], {}
    for variant in variants:
        for seed in seeds:
            t0 = time.perf_counter()
            _common.set_seed(seed)
            model = build_model(variant, params, width, args.learning_rate)
            target = (
                {"fc2": b_train, "fc1": b_train} if variant == "l_multi" else b_train
            )
            model.fit(
                x_train,
                target,
                batch_size=args.batch_size,
                epochs=epochs,
                verbose=_common.fit_verbose(args),
                callbacks=[bar.callback()],
            )
            view = keras.Model(
                model.inputs,
                [model.get_layer("fc1").output, model.get_layer("fc2").output],
            )
            h, p = view.predict(x_test, batch_size=256, verbose=0)
            scores = cluster_scores(h, y_test, n_clusters=10, seed=seed)
            row = {
                "variant": variant,
                "seed": seed,
                "ami": scores["ami"],
                "nmi": scores["nmi"],
                "accuracy": float(np.mean((p.reshape(-1) > 0.5) == (b_test > 0.5))),
                "seconds": time.perf_counter() - t0,
                **{k: v for k, v in params.items()},
            }
            rows.append(row)
            if seed == seeds[0]:
                fc1_by_variant[variant] = h
            _common.progress(
                f"  {variant:9s} seed {seed}: AMI {row['ami']:.3f} "
                f"NMI {row['nmi']:.3f} accuracy {row['accuracy']:.3f} "
                f"({row['seconds']:.0f}s)"
            )
    return rows, fc1_by_variant


def _report(args, rows, fc1_by_variant, y_test, out) -> None:
    """Prints the table, writes the CSV files and the plots."""
    from keras_disentangle import plots

    table = _common.mean_std(rows, ["variant"], ["ami", "nmi", "accuracy"])
    _common.print_table(
        table,
        COLUMNS,
        title="\nCIFAR-10, KMeans (10 clusters) on FC_1 of the test split",
    )
    _common.write_csv(rows, out / "cifar10_runs.csv")
    _common.write_csv(table, out / "cifar10.csv")
    fig = plots.scores_by_n_clusters(
        fc1_by_variant, y_test, n_clusters=range(2, 13 if args.quick else 21)
    )
    _common.save_figure(fig, out / "cifar10_ami_by_clusters.png")
    for variant, h in fc1_by_variant.items():
        fig = plots.most_active_units(h, labels=y_test)
        _common.save_figure(fig, out / f"cifar10_active_units_{variant}.png")
    _common.progress(f"wrote {out}/cifar10.csv, cifar10_runs.csv and PNGs")
