"""Semi-supervised MNIST with latent centroids (Karakulak et al.).

10 labels per class of ``mnist_5k``'s training split are kept; every other
training image is unlabelled. One ``fit`` sees all of them:

- the classification loss gets Keras's own ``sample_weight``: 1 for labelled
  images, 0 for unlabelled ones (so unlabelled images add nothing to it);
- the ``LatentCentroids`` penalty on the penultimate layer sees every image of
  the batch, labelled or not.

The labelled images are repeated so that about half of each batch is labelled
(the reference code draws one labelled and one unlabelled batch per step).
``CentroidReinit`` sets the centroids from the labelled latents (class-balanced)
during the first epochs and ``CentroidWeightRamp`` keeps the penalty at zero,
then ramps it up, as the paper's warm-up.

The baseline is the same network (MLP 784-256-128-10, Adam 1e-3, 30 epochs)
without the layer, trained on the same stream with the same labelled images
for each seed. ``n_clusters`` and the penalty weight are chosen on the
validation split (mean over the seeds); test accuracy is computed only for the
chosen pair and the baseline. ``--validation-only`` explores without touching
the test split.

    python examples/semi_supervised_centroids.py            # 3 seeds, ~10 min
    python examples/semi_supervised_centroids.py --quick    # ~10 s smoke run
    python examples/semi_supervised_centroids.py --output results/  # and CSVs
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_disentangle.callbacks import CentroidReinit, CentroidWeightRamp  # noqa: E402
from keras_disentangle.datasets import mnist_5k  # noqa: E402
from keras_disentangle.experiments._common import (  # noqa: E402
    output_folder,
    write_csv,
)
from keras_disentangle.layers import LatentCentroids  # noqa: E402


def labelled_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` random samples of each class."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(y == c), per_class, replace=False)
            for c in np.unique(y)
        ]
    )


def semi_supervised_stream(x, y, labelled, repeat):
    """All images once (unlabelled: weight 0), labelled ones ``repeat`` times."""
    unlabelled = np.setdiff1d(np.arange(len(y)), labelled)
    index = np.concatenate([unlabelled, np.tile(labelled, repeat)])
    weight = np.concatenate(
        [np.zeros(len(unlabelled)), np.ones(len(labelled) * repeat)]
    ).astype("float32")
    # y of an unlabelled image is never used (its weight is 0); 0 is a placeholder.
    y_fit = np.where(weight > 0, y[index], 0)
    return x[index], y_fit, weight


def build_model(seed: int, centroids: dict | None, hidden=(256, 128)):
    """MLP 784-256-128-10; with ``centroids``, a LatentCentroids layer on the
    128-unit layer."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28))
    h = keras.layers.Flatten()(inputs)
    for units in hidden:
        h = keras.layers.Dense(units, activation="relu")(h)
    if centroids is not None:
        h = LatentCentroids(seed=seed, name="centroids", **centroids)(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        weighted_metrics=["accuracy"],
    )
    return model


def train(splits, seed, args, config=None):
    """Trains one model; returns it. ``config=(n_clusters, weight)``; None is
    the baseline."""
    x, y = splits.train
    labelled = labelled_subset(y, args.labels_per_class, seed)
    if args.unlabelled is not None:  # quick runs: fewer unlabelled images
        rng = np.random.default_rng(seed)
        rest = np.setdiff1d(np.arange(len(y)), labelled)
        keep = np.concatenate(
            [labelled, rng.choice(rest, args.unlabelled, replace=False)]
        )
        x, y = x[keep], y[keep]
        labelled = np.arange(len(labelled))
    repeat = max(1, (len(y) - len(labelled)) // len(labelled))
    x_fit, y_fit, sample_weight = semi_supervised_stream(x, y, labelled, repeat)
    callbacks = []
    centroids = None
    if config is not None:
        centroids = {"n_clusters": config[0], "weight": config[1]}
        callbacks = [
            CentroidReinit(
                (x[labelled], y[labelled]),
                epochs=args.reinit_epochs,
                method=args.reinit_method,
                seed=seed,
            ),
            CentroidWeightRamp(delay=args.delay, epochs=args.ramp_epochs, start=0.0),
        ]
    model = build_model(seed, centroids)
    model.fit(
        x_fit,
        y_fit,
        sample_weight=sample_weight,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    return model


def accuracy(model, data) -> float:
    x, y = data
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~15 s smoke run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--weights", type=float, nargs="+", default=[0.003, 0.01, 0.1, 1.0]
    )
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--n-clusters", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--reinit-method", choices=["sample", "mean"], default="sample")
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="explore hyperparameters: print validation accuracies, no test",
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--reinit-epochs", type=int, default=10)
    parser.add_argument("--delay", type=int, default=5)
    parser.add_argument("--ramp-epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--unlabelled", type=int, default=None)
    parser.add_argument(
        "--output",
        type=output_folder,
        help="also write OUTPUT/validation.csv and OUTPUT/test.csv (per seed)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.weights = args.weights[:1]
        args.n_clusters = args.n_clusters[-1:]
        args.epochs, args.reinit_epochs, args.delay, args.ramp_epochs = 4, 2, 1, 2
        args.unlabelled = args.unlabelled or 900
    return args


def main(argv=None) -> dict:
    """Runs the comparison; returns the numbers it prints."""
    args = parse_args(argv)
    splits = mnist_5k()
    start = time.time()
    configs = [(k, w) for k in args.n_clusters for w in args.weights]
    val = {config: [] for config in configs}
    base_val, baseline_models, models = [], {}, {}
    for seed in args.seeds:
        baseline_models[seed] = train(splits, seed, args)
        base_val.append(accuracy(baseline_models[seed], splits.validation))
        print(f"seed {seed} baseline: validation accuracy {base_val[-1]:.4f}")
        for config in configs:
            models[seed, config] = train(splits, seed, args, config)
            val[config].append(accuracy(models[seed, config], splits.validation))
            print(
                f"seed {seed} n_clusters {config[0]} weight {config[1]:g}: "
                f"validation accuracy {val[config][-1]:.4f}"
            )
    for config in configs:
        print(
            f"n_clusters {config[0]:>3} weight {config[1]:<6g} mean validation "
            f"accuracy {np.mean(val[config]):.4f} (baseline {np.mean(base_val):.4f})"
        )
    # Chosen on the validation split only.
    best = max(configs, key=lambda config: np.mean(val[config]))
    results = {
        "n_clusters": best[0],
        "weight": best[1],
        "baseline_validation": base_val,
        "centroids_validation": val[best],
    }
    print(f"chosen on validation: n_clusters {best[0]}, weight {best[1]:g}")
    if not args.validation_only:
        base_test = [accuracy(baseline_models[s], splits.test) for s in args.seeds]
        cent_test = [accuracy(models[s, best], splits.test) for s in args.seeds]
        results.update(baseline_test=base_test, centroids_test=cent_test)
        for name, test in (("baseline ", base_test), ("centroids", cent_test)):
            print(
                f"{name}: test accuracy {np.mean(test):.4f} "
                f"({', '.join(f'{a:.4f}' for a in test)})"
            )
    results["seconds"] = time.time() - start
    print(f"{results['seconds']:.0f} s")
    if args.output is not None:
        _write(args, configs, base_val, val, results)
    return results


def _write(args, configs, base_val, val, results) -> None:
    """Per-seed accuracies: every configuration's validation accuracy, and
    the test accuracy of the baseline and of the configuration chosen."""
    args.output.mkdir(parents=True, exist_ok=True)
    rows = [
        {"model": "baseline", "n_clusters": "", "weight": "", "seed": s}
        | {"accuracy": round(a, 4)}
        for s, a in zip(args.seeds, base_val, strict=True)
    ]
    for n_clusters, weight in configs:
        rows += [
            {"model": "centroids", "n_clusters": n_clusters, "weight": weight}
            | {"seed": s, "accuracy": round(a, 4)}
            for s, a in zip(args.seeds, val[n_clusters, weight], strict=True)
        ]
    write_csv(rows, args.output / "validation.csv")
    if "baseline_test" in results:
        chosen = {"n_clusters": results["n_clusters"], "weight": results["weight"]}
        rows = [
            {"model": "baseline", "n_clusters": "", "weight": "", "seed": s}
            | {"accuracy": round(a, 4)}
            for s, a in zip(args.seeds, results["baseline_test"], strict=True)
        ] + [
            {"model": "centroids", **chosen, "seed": s, "accuracy": round(a, 4)}
            for s, a in zip(args.seeds, results["centroids_test"], strict=True)
        ]
        write_csv(rows, args.output / "test.csv")


if __name__ == "__main__":
    main()
