"""IMSAT on mnist_5k: clustering (VAT, RPT) against KMeans, hashing against PCA.

Offline (the bundled ``mnist_5k``, 5000 images), seeds fixed; labels are used
only to score.

- Clustering, as IMSAT is evaluated (unsupervised: fit and score on the same
  images): every method clusters all 5000 images and is scored by clustering
  accuracy (Hungarian matching) on them; IMSAT with VAT and with random
  perturbations (RPT) against KMeans on the raw pixels, with the same seeds;
  mean and standard deviation over the seeds. ``--split`` instead fits on the
  train split (3500) and scores the test split (750), never seen in fitting.
- Hashing with 16 bits: IMSAT and sign-of-PCA codes are fit on the train and
  validation splits (4250 images, the database); the test split (750 images,
  unseen) queries the database by Hamming ranking: mAP and precision@500.

Architectures and optimiser follow the authors' code (github.com/weihua916/
imsat): pixels scaled to [-1, 1]; MLP d-1200-1200-10 (clustering) and
d-400-400-16 (hashing) with BatchNormalization and ReLU, weights drawn with
std ``0.1 / sqrt(fan_in)`` (last layer ``1e-4 / sqrt(fan_in)``); Adam with
learning rate 0.002; batches of 250; 50 epochs; lam = 0.1, mu = 4, xi = 10,
per-sample eps = 0.25 x the distance to the 10th neighbour.

Run::

    python examples/imsat_mnist.py            # 3 seeds, 50 epochs
    python examples/imsat_mnist.py --quick    # a smoke run of the same code
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from keras_disentangle import datasets  # noqa: E402
from keras_disentangle.models import IMSAT  # noqa: E402
from keras_disentangle.scores import (
    clustering_accuracy,
    hamming_ranking_map,
    precision_at_k,
)


def mlp_encoder(n_inputs: int, hidden, n_outputs: int) -> keras.Model:
    """The authors' MLP: Dense-BN-ReLU blocks and a near-zero linear head."""
    layers = [keras.Input((n_inputs,))]
    fan_in = n_inputs
    for units in hidden:
        layers += [
            keras.layers.Dense(
                units,
                kernel_initializer=keras.initializers.RandomNormal(
                    stddev=0.1 / np.sqrt(fan_in)
                ),
            ),
            keras.layers.BatchNormalization(momentum=0.9, epsilon=2e-5),
            keras.layers.ReLU(),
        ]
        fan_in = units
    layers.append(
        keras.layers.Dense(
            n_outputs,
            kernel_initializer=keras.initializers.RandomNormal(
                stddev=1e-4 / np.sqrt(fan_in)
            ),
        )
    )
    return keras.Sequential(layers)


def _prep(x):
    return (2.0 * x.reshape(len(x), -1) - 1.0).astype("float32")


def load(n: int | None = None):
    """mnist_5k flattened and scaled to [-1, 1] as the authors' loader.

    Returns ``(x_tr, y_tr, x_va, y_va, x_te, y_te)``, the first ``n`` of each
    split when ``n`` is given.
    """
    out = []
    for x, y in datasets.mnist_5k():
        out += [_prep(x[:n]), y[:n]]
    return tuple(out)


def fit_imsat(x_train, seed, epochs, *, hidden, **imsat_kwargs):
    """Builds and trains one IMSAT model; returns it."""
    keras.utils.set_random_seed(seed)
    n_outputs = imsat_kwargs.get("n_clusters") or imsat_kwargs["n_bits"]
    model = IMSAT(
        mlp_encoder(x_train.shape[1], hidden, n_outputs), seed=seed, **imsat_kwargs
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.002))
    model.fit(model.knn_inputs(x_train), batch_size=250, epochs=epochs, verbose=0)
    return model


def clustering(x_fit, x_score, y_score, seeds, epochs, hidden, n_init):
    """Clustering accuracy per method on ``x_score``, a list over the seeds."""
    scores = {"KMeans (raw pixels)": [], "IMSAT (VAT)": [], "IMSAT (RPT)": []}
    for seed in seeds:
        km = KMeans(10, n_init=n_init, random_state=seed).fit(x_fit)
        scores["KMeans (raw pixels)"].append(
            clustering_accuracy(y_score, km.predict(x_score))
        )
        for aug in ("vat", "rpt"):
            model = fit_imsat(
                x_fit, seed, epochs, hidden=hidden, n_clusters=10, augmentation=aug
            )
            pred = model.predict(x_score, batch_size=1000, verbose=0)
            scores[f"IMSAT ({aug.upper()})"].append(clustering_accuracy(y_score, pred))
    return scores


def hashing(x_db, y_db, x_q, y_q, seeds, epochs, hidden, n_bits=16):
    """mAP and precision@500 of the queries against the database (fit on)."""

    def score(query, db):
        return (
            hamming_ranking_map(query, y_q, db, y_db),
            precision_at_k(query, y_q, db, y_db, k=500),
        )

    pca = PCA(n_bits).fit(x_db)  # deterministic: the same for every seed
    scores = {
        f"sign of PCA ({n_bits} bits)": [
            score(pca.transform(x_q) > 0, pca.transform(x_db) > 0)
        ]
        * len(seeds),
        f"IMSAT ({n_bits} bits, VAT)": [],
    }
    for seed in seeds:
        model = fit_imsat(x_db, seed, epochs, hidden=hidden, n_bits=n_bits)
        query = model.predict(x_q, batch_size=1000, verbose=0)
        db = model.predict(x_db, batch_size=1000, verbose=0)
        scores[f"IMSAT ({n_bits} bits, VAT)"].append(score(query, db))
    return scores


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0), values.std(axis=0)


def main(argv=None) -> dict:
    """Runs everything, prints the tables and returns the per-seed scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--hash-epochs", type=int, default=50)
    parser.add_argument(
        "--split",
        action="store_true",
        help="cluster: fit on the train split, score the test split",
    )
    parser.add_argument(
        "--part", choices=("all", "clustering", "hashing"), default="all"
    )
    args = parser.parse_args(argv)
    if args.quick:
        x_tr, y_tr, x_va, y_va, x_te, y_te = load(n=300)
        seeds, epochs, hash_epochs, n_init = [0], 2, 2, 1
        hidden_c, hidden_h = (64, 64), (64, 64)
    else:
        x_tr, y_tr, x_va, y_va, x_te, y_te = load()
        seeds, epochs, hash_epochs, n_init = (
            list(range(args.first_seed, args.first_seed + args.seeds)),
            args.epochs,
            args.hash_epochs,
            10,
        )
        hidden_c, hidden_h = (1200, 1200), (400, 400)
    x_all = np.concatenate([x_tr, x_va, x_te])
    y_all = np.concatenate([y_tr, y_va, y_te])
    start = time.time()
    results = {}
    if args.part in ("all", "clustering"):
        results["clustering"] = _clustering_table(
            args.split,
            x_tr,
            y_tr,
            x_te,
            y_te,
            x_all,
            y_all,
            seeds,
            epochs,
            hidden_c,
            n_init,
        )
    if args.part in ("all", "hashing"):
        x_db = np.concatenate([x_tr, x_va])
        y_db = np.concatenate([y_tr, y_va])
        results["hashing"] = _hashing_table(
            x_db, y_db, x_te, y_te, seeds, hash_epochs, hidden_h
        )
    print(f"\n({time.time() - start:.0f} s)")
    sys.stdout.flush()
    return results


def _clustering_table(
    split, x_tr, y_tr, x_te, y_te, x_all, y_all, seeds, epochs, hidden_c, n_init
):
    if split:
        clus = clustering(x_tr, x_te, y_te, seeds, epochs, hidden_c, n_init)
        what = f"fit on train ({len(x_tr)}), scored on test ({len(x_te)})"
    else:
        clus = clustering(x_all, x_all, y_all, seeds, epochs, hidden_c, n_init)
        what = f"fit and scored on all {len(x_all)} images"
    print(
        f"Clustering accuracy on mnist_5k, {what}; "
        f"{len(seeds)} seed(s), {epochs} epochs"
    )
    print(f"{'method':<24} {'accuracy':>16}   per seed")
    for name, values in clus.items():
        mean, std = _mean_std(values)
        seeds_ = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:<24} {mean:>9.3f} ± {std:.3f}   {seeds_}")
    return clus


def _hashing_table(x_db, y_db, x_te, y_te, seeds, hash_epochs, hidden_h):
    hashes = hashing(x_db, y_db, x_te, y_te, seeds, hash_epochs, hidden_h)
    print(
        f"\nHashing: {len(x_te)} test queries, database of {len(x_db)} train + "
        f"validation images (fit on); {hash_epochs} epochs"
    )
    print(f"{'method':<24} {'mAP':>16} {'precision@500':>18}   per seed (mAP)")
    for name, values in hashes.items():
        mean, std = _mean_std(values)
        seeds_ = " ".join(f"{v[0]:.3f}" for v in values)
        print(
            f"{name:<24} {mean[0]:>9.3f} ± {std[0]:.3f} {mean[1]:>11.3f} ± {std[1]:.3f}"
            f"   {seeds_}"
        )
    sys.stdout.flush()
    return hashes


if __name__ == "__main__":
    main()
