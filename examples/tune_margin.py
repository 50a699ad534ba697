"""Tune the margin and weight of ActivityKLMargin for clustering with keras-tuner.

Romanov & Rumshisky's setting: a network learns a coarse task (here: is the
digit >= 5?) while the KL-margin penalty spreads the samples' activations of
an embedding layer, so that KMeans on that layer recovers the fine classes
(the ten digits) that no label named. keras-tuner searches the penalty's
``margin`` and ``weight`` for the best ``val_cluster_ami``, which
``ClusteringScores`` writes into the logs every epoch on the validation
split; the best model is then scored once on the test split.

Runs offline on scikit-learn's bundled digits::

    python examples/tune_margin.py --quick     # 2 trials x 2 epochs, seconds
    python examples/tune_margin.py             # 8 trials x 10 epochs, ~1-2 min
    python examples/tune_margin.py --output results/   # and trials.csv, test.csv

Needs ``pip install 'keras_disentangle[tuner]'`` (keras-tuner and tensorboard).
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import numpy as np

from keras_disentangle._submodel import layer_model
from keras_disentangle.callbacks import ClusteringScores
from keras_disentangle.datasets import digits
from keras_disentangle.experiments._common import output_folder, write_csv
from keras_disentangle.regularizers import ActivityKLMargin
from keras_disentangle.scores import cluster_scores


def _import_keras_tuner():
    try:
        import keras_tuner
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "This example needs keras-tuner (and tensorboard, which keras-tuner "
            "imports at every trial): pip install 'keras_disentangle[tuner]'"
        ) from error
    return keras_tuner


def build_model(hp, input_shape=(8, 8), units=32, embedding_units=16):
    """An MLP for the coarse task with the penalty on its embedding layer."""
    margin = hp.Float("margin", 0.05, 2.0, sampling="log")
    weight = hp.Float("weight", 1e-3, 1.0, sampling="log")
    inputs = keras.Input(input_shape)
    h = keras.layers.Flatten()(inputs)
    h = keras.layers.Dense(units, activation="relu")(h)
    embedding = keras.layers.Dense(
        embedding_units,
        name="embedding",
        activity_regularizer=ActivityKLMargin(margin=margin, weight=weight),
    )(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(embedding)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="binary_crossentropy",
        metrics=["binary_accuracy"],
    )
    return model


def coarse(labels):
    """The coarse task the network is trained on: digit >= 5."""
    return (np.asarray(labels) >= 5).astype("float32")


def search(
    splits,
    *,
    trials: int,
    epochs: int,
    directory: str,
    seed: int = 0,
    batch_size: int = 64,
    verbose: int = 0,
    extra_callbacks=(),
):
    """Runs the RandomSearch and returns the tuner.

    The objective is ``val_cluster_ami``: the AMI of KMeans (10 clusters) on the
    embedding layer against the ten digit labels of the validation split.
    """
    keras_tuner = _import_keras_tuner()
    (x_train, y_train), (x_val, y_val), _ = splits
    keras.utils.set_random_seed(seed)
    tuner = keras_tuner.RandomSearch(
        build_model,
        objective=keras_tuner.Objective("val_cluster_ami", direction="max"),
        max_trials=trials,
        seed=seed,
        directory=directory,
        project_name="tune_margin",
        overwrite=True,
    )
    tuner.search(
        x_train,
        coarse(y_train),
        validation_data=(x_val, coarse(y_val)),
        epochs=epochs,
        batch_size=batch_size,
        # ClusteringScores first: later callbacks read the scores it writes.
        callbacks=[ClusteringScores((x_val, y_val), layer="embedding", seed=seed)]
        + list(extra_callbacks),
        verbose=verbose,
    )
    return tuner


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 trials x 2 epochs")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--directory", default=None, help="tuner directory")
    parser.add_argument(
        "--output",
        type=output_folder,
        help="also write OUTPUT/trials.csv and OUTPUT/test.csv",
    )
    args = parser.parse_args(argv)
    trials, epochs = (2, 2) if args.quick else (args.trials, args.epochs)

    splits = digits(seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.directory or os.path.join(tmp, "tuner")
        tuner = search(
            splits, trials=trials, epochs=epochs, directory=directory, seed=args.seed
        )
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best_hp = best_trial.hyperparameters.values
        print(f"{trials} trials x {epochs} epochs on digits")
        rows = []
        for trial in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id):
            hp = trial.hyperparameters.values
            print(
                f"  trial {trial.trial_id}: margin={hp['margin']:.3f} "
                f"weight={hp['weight']:.4f} best val_cluster_ami={trial.score:.3f}"
            )
            rows.append(
                {
                    "trial": int(trial.trial_id),
                    "margin": round(hp["margin"], 3),
                    "weight": round(hp["weight"], 4),
                    "best_val_cluster_ami": round(trial.score, 3),
                    "epochs": epochs,
                }
            )
        print(
            f"best: margin={best_hp['margin']:.3f} weight={best_hp['weight']:.4f} "
            f"val_cluster_ami={best_trial.score:.3f}"
        )
        # The test split is used once, for the chosen model only.
        model = tuner.get_best_models(1)[0]
        x_test, y_test = splits.test
        embedder = layer_model(model, "embedding")
        test = cluster_scores(embedder.predict(x_test, verbose=0), y_test, seed=0)
        print(
            "test scores of the best model: "
            + ", ".join(f"{k}={v:.3f}" for k, v in test.items())
        )
        if args.output is not None:
            args.output.mkdir(parents=True, exist_ok=True)
            write_csv(rows, args.output / "trials.csv")
            best = {"trial": int(best_trial.trial_id)}
            best |= {k: round(float(v), 3) for k, v in test.items()}
            write_csv([best], args.output / "test.csv")
    return tuner


if __name__ == "__main__":
    main()
