"""The evaluation loop the self-supervised examples share (DIM and AET).

Each seed: build an encoder and an untrained copy with the same initial
weights, train the self-supervised model around the encoder, then fit a
linear probe (``scores.linear_probe_accuracy``) on the frozen features of the
train split and score it on the test split, for the trained and the untrained
encoder alike.
"""

from __future__ import annotations

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

    def probe(m):
        return linear_probe_accuracy(
            (m.predict(x_train, verbose=0), y_train),
            (m.predict(x_test, verbose=0), y_test),
        )

    return {
        "seed": seed,
        "trained": probe(model),
        "untrained": probe(untrained),
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
