"""Train a small model with and without a penalty; print the clustering AMI.

The task is Romanov & Rumshisky's coarse one: tell digits 0-4 from 5-9. The
15-unit layer FC_1 is then clustered with KMeans (10 clusters) and scored
against the 10 digit classes, which the model never saw. A penalty that
spreads the samples apart in FC_1 should raise that AMI.

Run: ``python examples/penalty_ami.py [--penalty decov] [--data digits] [--quick]``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from keras_disentangle import datasets, layers, regularizers  # noqa: E402
from keras_disentangle._submodel import layer_model
from keras_disentangle.scores import cluster_scores

PENALTIES = {
    "none": lambda: {},
    "decov": lambda: {"activity_regularizer": regularizers.DeCov(weight=0.01)},
    "covariance_l1": lambda: {
        "activity_regularizer": regularizers.CovarianceL1(weight=0.01)
    },
    "activity_kl": lambda: {
        "activity_regularizer": regularizers.ActivityKLMargin(margin=1.0, weight=0.1)
    },
    "kernel_kl": lambda: {
        "kernel_regularizer": regularizers.KernelKLMargin(margin=5.0, weight=1e-3)
    },
    "xcov": lambda: {},
}


def build(penalty: str, input_shape) -> keras.Model:
    inputs = keras.Input(input_shape)
    r = keras.layers.GRU(64)(inputs)  # the image rows as a sequence
    h = keras.layers.Dense(15, activation="relu", name="fc1", **PENALTIES[penalty]())(r)
    out = keras.layers.Dense(1, activation="sigmoid", name="fc2")(h)
    if penalty == "xcov":
        out = layers.XCovPenalty(weight=1.0)([out, h])
    model = keras.Model(inputs, out)
    model.compile(
        keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


def run(penalty: str, data, epochs: int, seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    (x, y), _, (x_test, y_test) = data
    model = build(penalty, x.shape[1:])
    model.fit(x, (y >= 5).astype("float32"), batch_size=128, epochs=epochs, verbose=0)
    accuracy = model.evaluate(
        x_test, (y_test >= 5).astype("float32"), verbose=0, return_dict=True
    )["accuracy"]
    fc1 = layer_model(model, "fc1")
    embeddings = fc1.predict(x_test, verbose=0)
    scores = cluster_scores(embeddings, y_test, n_clusters=10, seed=seed)
    return {"penalty": penalty, "binary_acc": accuracy, **scores}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--penalty", choices=sorted(PENALTIES), default="activity_kl")
    parser.add_argument("--data", choices=["digits", "mnist_5k"], default="digits")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2 epochs, a smoke run")
    args = parser.parse_args(argv)
    data = getattr(datasets, args.data)()
    epochs = 2 if args.quick else args.epochs
    rows = [run(p, data, epochs, args.seed) for p in ("none", args.penalty)]
    print(f"{'penalty':>14} {'binary_acc':>10} {'AMI':>6} {'NMI':>6}")
    for row in rows:
        print(
            f"{row['penalty']:>14} {row['binary_acc']:>10.3f} "
            f"{row['ami']:>6.3f} {row['nmi']:>6.3f}"
        )
    return rows


if __name__ == "__main__":
    main()
