"""IMSAT, the authors' recipe, against KMeans (clustering) and PCA (hashing).

Offline, on a bundled dataset (``--dataset digits``: scikit-learn's 1,797
8x8 digits; ``--dataset mnist_5k``: 5,000 MNIST digits, not MNIST's 70,000),
seeds fixed; labels are used only to score.

The recipe (what the documentation's snippet does): inputs flattened and
scaled to [-1, 1]; ``keras_disentangle.models.imsat_mlp`` (the authors'
encoder: d-1200-1200-10 for clustering, d-400-400-16 for hashing, Chainer's
initialisation and BatchNorm settings); ``IMSAT`` with its defaults (VAT,
lam = 0.1, mu = 4, xi = 10, eps = 0.25 x the distance to the 11th-nearest
other sample, as the authors' ``calculate_distance.py``); Adam, learning
rate 0.002; batches of 250; ``--epochs`` epochs (the authors' code: 50 on
70,000 images; here 100); ``--imsat-n-init`` restarts (default 3), keeping
the one of lowest IMSAT objective, as KMeans keeps its run of lowest inertia
(``keras_disentangle.models.fit_imsat``).

- Clustering, as IMSAT is evaluated (unsupervised: fit and score on the same
  samples): clustering accuracy (Hungarian matching) of IMSAT (VAT) against
  KMeans on the raw inputs (``n_init=10``), with the same seeds; mean and
  standard deviation over the seeds.
- Hashing with 16 bits: IMSAT and sign-of-PCA codes are fit on the train and
  validation splits (the database); the test split (unseen) queries it by
  Hamming distance: mAP, precision@500 and precision within Hamming radius 2
  (the authors' three scores).

Every row (dataset, part, method, restarts, seed, epochs, score, value)
goes to ``--csv`` (``restarts`` is ``--imsat-n-init``; the score
``objective`` is the IMSAT loss on the data of the clustering model kept).
Runs on every Keras backend, e.g. ``KERAS_BACKEND=jax``.

Run::

    python examples/imsat_mnist.py --dataset digits --part clustering --seeds 3
    python examples/imsat_mnist.py --dataset mnist_5k --hash-epochs 50 --seeds 3
    python examples/imsat_mnist.py --quick    # a smoke run of the same code
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from keras_disentangle import datasets  # noqa: E402
from keras_disentangle.models import fit_imsat  # noqa: E402
from keras_disentangle.scores import (  # noqa: E402
    clustering_accuracy,
    hamming_ranking_map,
    precision_at_k,
    precision_within_radius,
)

KMEANS = "KMeans (raw inputs)"
IMSAT_VAT = "IMSAT (VAT)"
PCA_CODES = "sign of PCA"
IMSAT_CODES = "IMSAT (VAT)"
OBJECTIVE = "IMSAT objective"  # the kept restart's loss on x (no labels)
HASH_SCORES = ("mAP", "precision@500", "precision@r=2")


def load(name: str, n: int | None = None):
    """The dataset's splits, flattened and scaled from [0, 1] to [-1, 1].

    Returns ``(x_tr, y_tr, x_va, y_va, x_te, y_te)``, the first ``n`` of each
    split when ``n`` is given.
    """
    splits = {"digits": datasets.digits, "mnist_5k": datasets.mnist_5k}[name]()
    out = []
    for x, y in splits:
        x = (2.0 * x.reshape(len(x), -1) - 1.0).astype("float32")
        out += [x[:n], y[:n]]
    return tuple(out)


def clustering(x, y, seeds, epochs, hidden, n_init, imsat_n_init, verbose=0):
    """Clustering accuracy per method on all of ``x``, a list over the seeds,
    and under :data:`OBJECTIVE` the IMSAT objective of the model kept."""
    scores = {KMEANS: [], IMSAT_VAT: [], OBJECTIVE: []}
    for seed in seeds:
        km = KMeans(10, n_init=n_init, random_state=seed).fit(x)
        scores[KMEANS].append(clustering_accuracy(y, km.labels_))
        model = fit_imsat(
            x,
            n_clusters=10,
            epochs=epochs,
            n_init=imsat_n_init,
            hidden=hidden,
            seed=seed,
            verbose=verbose,
        )
        pred = model.predict_clusters(x, batch_size=1000)
        scores[IMSAT_VAT].append(clustering_accuracy(y, pred))
        scores[OBJECTIVE].append(min(model.restart_objectives))
        print(
            f"  seed {seed}: KMeans {scores[KMEANS][-1]:.3f}, "
            f"IMSAT {scores[IMSAT_VAT][-1]:.3f}",
            flush=True,
        )
    return scores


def _retrieval(query, y_q, db, y_db):
    return (
        hamming_ranking_map(query, y_q, db, y_db),
        precision_at_k(query, y_q, db, y_db, k=500),
        precision_within_radius(query, y_q, db, y_db, radius=2),
    )


def hashing(
    x_db, y_db, x_q, y_q, seeds, epochs, hidden, imsat_n_init, n_bits=16, verbose=0
):
    """(mAP, precision@500, precision@r=2) of the queries against the database."""
    pca = PCA(n_bits).fit(x_db)  # deterministic: the same for every seed
    pca_scores = _retrieval(pca.transform(x_q) > 0, y_q, pca.transform(x_db) > 0, y_db)
    scores = {PCA_CODES: [pca_scores] * len(seeds), IMSAT_CODES: []}
    for seed in seeds:
        model = fit_imsat(
            x_db,
            n_bits=n_bits,
            epochs=epochs,
            n_init=imsat_n_init,
            hidden=hidden,
            seed=seed,
            verbose=verbose,
        )
        query = model.predict_codes(x_q, batch_size=1000)
        db = model.predict_codes(x_db, batch_size=1000)
        scores[IMSAT_CODES].append(_retrieval(query, y_q, db, y_db))
    return scores


def _mean_std(values):
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0), values.std(axis=0)


def _write_csv(path, rows, restarts):
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["dataset", "part", "method", "restarts", "seed", "epochs", "score"]
            + ["value"]
        )
        writer.writerows(row[:3] + [restarts] + row[3:] for row in rows)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    """Runs everything, prints the tables, writes the CSV, returns the scores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("digits", "mnist_5k"), default="mnist_5k")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100, help="clustering epochs")
    parser.add_argument("--hash-epochs", type=int, default=50)
    parser.add_argument(
        "--part", choices=("all", "clustering", "hashing"), default="all"
    )
    parser.add_argument("--csv", default="imsat_results.csv", help="output CSV")
    parser.add_argument(
        "--imsat-n-init",
        type=int,
        default=3,
        help="IMSAT restarts per seed, the lowest objective kept (fit_imsat)",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=1,
        choices=(0, 1, 2),
        help="0 silent, 1 a line per restart, 2 also Keras's progress bars",
    )
    args = parser.parse_args(argv)
    if min(args.seeds, args.epochs, args.hash_epochs, args.imsat_n_init) < 1:
        parser.error("--seeds, --epochs, --hash-epochs and --imsat-n-init must be >= 1")
    if args.quick:
        x_tr, y_tr, x_va, y_va, x_te, y_te = load(args.dataset, n=300)
        seeds, epochs, hash_epochs, n_init = [args.first_seed], 2, 2, 1
        imsat_n_init = 1
        hidden_c, hidden_h = (64, 64), (64, 64)
    else:
        x_tr, y_tr, x_va, y_va, x_te, y_te = load(args.dataset)
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        epochs, hash_epochs, n_init = args.epochs, args.hash_epochs, 10
        imsat_n_init = args.imsat_n_init
        hidden_c, hidden_h = (1200, 1200), (400, 400)
    start = time.time()
    results, rows = {}, []
    if args.part in ("all", "clustering"):
        x_all = np.concatenate([x_tr, x_va, x_te])
        y_all = np.concatenate([y_tr, y_va, y_te])
        clus = clustering(
            x_all,
            y_all,
            seeds,
            epochs,
            hidden_c,
            n_init,
            imsat_n_init,
            verbose=args.verbose,
        )
        results["clustering"] = clus
        print(
            f"Clustering accuracy on {args.dataset}, fit and scored on all "
            f"{len(x_all)} samples; {len(seeds)} seed(s), IMSAT {epochs} epochs"
        )
        print(f"{'method':<24} {'accuracy':>16}   per seed")
        objectives = clus.pop(OBJECTIVE)
        rows += [
            [args.dataset, "clustering", IMSAT_VAT, s, epochs, "objective", f"{v:.6f}"]
            for s, v in zip(seeds, objectives, strict=True)
        ]
        for name, values in clus.items():
            mean, std = _mean_std(values)
            per_seed = " ".join(f"{v:.3f}" for v in values)
            print(f"{name:<24} {mean:>9.3f} ± {std:.3f}   {per_seed}")
            rows += [
                [args.dataset, "clustering", name, s, epochs, "accuracy", f"{v:.6f}"]
                for s, v in zip(seeds, values, strict=True)
            ]
    if args.part in ("all", "hashing"):
        x_db = np.concatenate([x_tr, x_va])
        y_db = np.concatenate([y_tr, y_va])
        hashes = hashing(
            x_db,
            y_db,
            x_te,
            y_te,
            seeds,
            hash_epochs,
            hidden_h,
            imsat_n_init,
            verbose=args.verbose,
        )
        results["hashing"] = hashes
        print(
            f"\nHashing, 16 bits, {args.dataset}: {len(x_te)} test queries, "
            f"database of {len(x_db)} train + validation samples (fit on); "
            f"IMSAT {hash_epochs} epochs"
        )
        print(f"{'method':<24}" + "".join(f"{s:>20}" for s in HASH_SCORES))
        for name, values in hashes.items():
            mean, std = _mean_std(values)
            cells = "".join(
                f"{m:>12.3f} ± {s:.3f}" for m, s in zip(mean, std, strict=True)
            )
            print(f"{name:<24}{cells}")
            for seed, triple in zip(seeds, values, strict=True):
                rows += [
                    [
                        args.dataset,
                        "hashing",
                        name,
                        seed,
                        hash_epochs,
                        score,
                        f"{v:.6f}",
                    ]
                    for score, v in zip(HASH_SCORES, triple, strict=True)
                ]
    _write_csv(args.csv, rows, imsat_n_init)
    print(f"\n({time.time() - start:.0f} s; {args.csv})")
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
