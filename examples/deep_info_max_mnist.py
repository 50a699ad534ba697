"""Deep InfoMax on mnist_5k: a linear probe on trained against untrained features.

Offline (the bundled ``mnist_5k``), seeds fixed. For each seed a small conv
encoder (conv 3x3/2 x 32 -> conv 3x3/2 x 64 named "local", a 7 x 7 x 64 map
-> dense 64, the global vector) is built; an exact copy of it is kept
untrained (same architecture, same initial weights). DeepInfoMax trains the
first on the train split (3500 images) without labels. Then a logistic
regression (scikit-learn, standardised features, fixed C = 1) is fitted on
the 64-d global vectors of the train split and scored on the test split (750
images) -- for the trained and for the untrained encoder, in the same run.

Run::

    python examples/deep_info_max_mnist.py                # 3 seeds, 20 epochs
    python examples/deep_info_max_mnist.py --estimator nce
    python examples/deep_info_max_mnist.py --gamma 0.1    # prior matching
    python examples/deep_info_max_mnist.py --quick        # a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from keras_disentangle.models import DeepInfoMax  # noqa: E402

# The evaluation loop shared with the other self-supervised example.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _linear_probe import (  # noqa: E402
    probe_seed,
    splits_for,
    summarise,
    write_csv,
)


def conv_encoder(
    input_shape=(28, 28, 1), features: int = 64, sigmoid: bool = False
) -> keras.Model:
    """Two strided convolutions (the second is the local map) and a dense layer.

    With ``sigmoid=True`` the global vector lies in [0, 1]^64, the support of
    the uniform prior of prior matching.
    """
    inputs = keras.Input(input_shape)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(
        64, 3, strides=2, padding="same", activation="relu", name="local"
    )(h)
    y = keras.layers.Dense(
        features, activation="sigmoid" if sigmoid else None, name="global"
    )(keras.layers.Flatten()(h))
    return keras.Model(inputs, y, name="encoder")


def run_seed(
    seed: int,
    splits,
    *,
    epochs: int,
    estimator: str = "jsd",
    gamma: float = 0.0,
    batch_size: int = 64,
    verbose: int = 0,
) -> dict:
    """Trains one seed; returns trained and untrained probe accuracies."""
    return probe_seed(
        seed,
        splits,
        lambda shape: conv_encoder(shape, sigmoid=gamma > 0),
        lambda encoder: DeepInfoMax(
            encoder, "local", estimator=estimator, gamma=gamma, seed=seed
        ),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )


def run(
    seeds=(0, 1, 2),
    epochs: int = 20,
    estimator: str = "jsd",
    gamma: float = 0.0,
    n_train: int | None = None,
    n_test: int | None = None,
    verbose: int = 0,
    dataset: str = "mnist_5k",
) -> dict:
    """All seeds on mnist_5k (train split: training and probe; test: score),
    or CIFAR-10 when asked for and on disk."""
    splits, used = splits_for(dataset, n_train, n_test)
    result = summarise(
        [
            run_seed(
                s,
                splits,
                epochs=epochs,
                estimator=estimator,
                gamma=gamma,
                verbose=verbose,
            )
            for s in seeds
        ]
    )
    result["dataset"] = used
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--estimator", default="jsd", choices=["jsd", "dv", "nce"])
    parser.add_argument(
        "--gamma", type=float, default=0.0, help="prior matching weight (any backend)"
    )
    parser.add_argument(
        "--dataset", default="mnist_5k", choices=["mnist_5k", "cifar10"]
    )
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--csv", default=None, help="append the rows to this CSV")
    args = parser.parse_args(argv)
    options = {"estimator": args.estimator, "gamma": args.gamma}
    if args.quick:
        result = run(seeds=args.seeds[:1], epochs=1, n_train=512, n_test=200, **options)
    else:
        result = run(
            seeds=args.seeds,
            epochs=args.epochs,
            n_train=args.n_train,
            n_test=args.n_test,
            dataset=args.dataset,
            **options,
        )
    for r in result["rows"]:
        print(
            f"seed {r['seed']}: probe test accuracy, linear: trained "
            f"{r['trained']:.4f} untrained {r['untrained']:.4f}; non-linear: "
            f"trained {r['trained_nonlinear']:.4f} untrained "
            f"{r['untrained_nonlinear']:.4f} (final loss {r['final_loss']:.4f}, "
            f"{r['train_seconds']:.0f} s)"
        )
    print(
        f"mean over {len(result['rows'])} seed(s): trained "
        f"{result['trained_mean']:.4f} untrained {result['untrained_mean']:.4f}"
    )
    if args.csv:
        name = f"DIM {args.estimator}" + (f", prior {args.gamma}" if args.gamma else "")
        write_csv(
            args.csv,
            result["rows"],
            model=name,
            dataset=result["dataset"],
            epochs=1 if args.quick else args.epochs,
            n_train=args.n_train or "all",
        )
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
