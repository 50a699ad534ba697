"""The evaluation loop the self-supervised examples share (DIM and AET).

Each seed: build an encoder and an untrained copy with the same initial
weights, train the self-supervised model around the encoder, then fit a
linear probe (``scores.linear_probe_accuracy``) and a non-linear probe (one
hidden layer of 200 ReLU units, the DIM paper's non-linear classifier size;
scikit-learn's ``MLPClassifier``, standardised features) on the frozen
features of the train split and score them on the test split, for the
trained and the untrained encoder alike.

Data: ``mnist_5k`` (bundled, offline) or CIFAR-10 through
tensorflow-datasets when it is installed and its files are on disk
(``cifar10_splits`` returns None with a message otherwise; nothing is
downloaded).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence

import keras
import numpy as np

from keras_disentangle import datasets
from keras_disentangle.scores import linear_probe_accuracy


def mnist_splits(n_train: int | None = None, n_test: int | None = None):
    """mnist_5k's train split (training and probe) and test split (score)."""
    data = datasets.mnist_5k()
    (x_train, y_train), (x_test, y_test) = data.train, data.test
    return (
        (x_train[:n_train], y_train[:n_train]),
        (x_test[:n_test], y_test[:n_test]),
    )


def cifar10_splits(n_train: int | None = None, n_test: int | None = None):
    """CIFAR-10 from tensorflow-datasets, already on disk; None if not."""
    try:
        import tensorflow_datasets as tfds

        train, test = tfds.as_numpy(
            tfds.load(
                "cifar10",
                split=["train", "test"],
                batch_size=-1,
                as_supervised=True,
                download=False,
            )
        )
    except Exception as error:  # not installed, or no files offline
        print(f"CIFAR-10 skipped: not available offline ({type(error).__name__})")
        return None
    (x_train, y_train), (x_test, y_test) = train, test
    x_train = x_train[:n_train].astype("float32") / 255.0
    x_test = x_test[:n_test].astype("float32") / 255.0
    return (x_train, y_train[:n_train]), (x_test, y_test[:n_test])


def splits_for(dataset: str, n_train: int | None = None, n_test: int | None = None):
    """``(splits, name)``: CIFAR-10 when asked for and on disk, else mnist_5k."""
    if dataset == "cifar10":
        splits = cifar10_splits(n_train, n_test)
        if splits is not None:
            return splits, "cifar10"
        print("falling back to the offline default, mnist_5k")
    return mnist_splits(n_train, n_test), "mnist_5k"


def nonlinear_probe_accuracy(train, test, seed: int = 0) -> float:
    """Test accuracy of a one-hidden-layer (200 ReLU units) MLP probe."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(200,), max_iter=300, early_stopping=False,
            random_state=seed,
        ),
    )  # fmt: skip
    probe.fit(*train)
    return float(probe.score(*test))


def probe_seed(
    seed: int,
    splits,
    make_encoder: Callable[[tuple], keras.Model],
    make_model: Callable[[keras.Model], keras.Model],
    *,
    epochs: int,
    batch_size: int = 64,
    verbose: int = 0,
) -> dict:
    """Trains one seed; returns trained and untrained probe accuracies."""
    (x_train, y_train), (x_test, y_test) = splits
    if x_train.ndim == 3:  # grey images: a channel axis
        x_train, x_test = x_train[..., None], x_test[..., None]
    keras.utils.set_random_seed(seed)
    encoder = make_encoder(x_train.shape[1:])
    untrained = make_encoder(x_train.shape[1:])
    untrained.set_weights(encoder.get_weights())

    model = make_model(encoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.time()
    history = model.fit(
        x_train, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose
    )
    seconds = time.time() - start

    def features(m):
        return (
            (m.predict(x_train, verbose=0), y_train),
            (m.predict(x_test, verbose=0), y_test),
        )

    trained, baseline = features(model), features(untrained)
    return {
        "seed": seed,
        "trained": linear_probe_accuracy(*trained),
        "untrained": linear_probe_accuracy(*baseline),
        "trained_nonlinear": nonlinear_probe_accuracy(*trained, seed=seed),
        "untrained_nonlinear": nonlinear_probe_accuracy(*baseline, seed=seed),
        "final_loss": float(history.history["loss"][-1]),
        "train_seconds": seconds,
    }


def summarise(rows: Sequence[dict]) -> dict:
    """The rows and their means; whether training helped on every seed."""
    trained = np.array([r["trained"] for r in rows])
    untrained = np.array([r["untrained"] for r in rows])
    return {
        "rows": list(rows),
        "trained_mean": float(trained.mean()),
        "untrained_mean": float(untrained.mean()),
        "trained_beats_untrained_every_seed": bool(np.all(trained > untrained)),
    }


def write_csv(path: str, rows: Sequence[dict], **columns) -> None:
    """Appends ``rows`` (with the extra ``columns``) to a CSV file."""
    import os

    fields = list(columns) + list(rows[0])
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({**columns, **row})
