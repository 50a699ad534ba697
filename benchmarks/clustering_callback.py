"""Cost of ClusteringScores against one training epoch, measured in one run.

The callback's work at the end of an epoch on 10,000 x 16 embeddings with 10
clusters (KMeans + AMI/NMI/ARI/accuracy; the embeddings come from a model
whose output is its 16-d input, so the embedding pass costs next to nothing)
is timed against one epoch of the penalties benchmark's small model (an LSTM
over 28 rows of 28 pixels -> Dense(15) -> Dense(1, sigmoid), batch 512) on
10,000 samples. Target: the callback costs less than one epoch (ratio < 1).

Wall-clock and CPU seconds (``time.process_time``, all threads of the
process) are both reported: on a shared machine the wall clock of either side
depends on the other jobs, the CPU seconds much less.

Two kinds of embeddings bracket KMeans's cost: ``clustered`` (10 overlapping
Gaussian classes, what a trained layer looks like) and ``noise`` (no
structure: KMeans needs the most iterations, the worst case).

    python benchmarks/clustering_callback.py
    python benchmarks/clustering_callback.py --data mnist_5k --all-threads
    python benchmarks/clustering_callback.py --output results/  # and CSVs
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

# Measure this checkout, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_disentangle.callbacks import ClusteringScores  # noqa: E402
from keras_disentangle.experiments._common import (  # noqa: E402
    output_folder,
    write_csv,
)

N_SAMPLES = 10_000
DIM = 16
N_CLUSTERS = 10


def small_model(units: int) -> keras.Model:
    inputs = keras.Input((28, 28))
    h = keras.layers.LSTM(units)(inputs)
    h = keras.layers.Dense(15, activation="relu")(h)
    outputs = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, outputs)
    model.compile("adam", "binary_crossentropy")
    return model


def training_data(source: str, seed: int):
    rng = np.random.default_rng(seed)
    if source == "synthetic":
        x = rng.random((N_SAMPLES, 28, 28), dtype=np.float32)
        y = (x[:, :14].mean(axis=(1, 2)) > x[:, 14:].mean(axis=(1, 2))).astype(
            "float32"
        )
        return x, y
    from keras_disentangle.datasets import mnist_5k

    x, y = mnist_5k().train
    index = rng.choice(len(x), N_SAMPLES, replace=True)
    return x[index], (y[index] >= 5).astype("float32")


def embeddings(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLUSTERS, N_SAMPLES)
    if kind == "noise":
        return rng.normal(size=(N_SAMPLES, DIM)).astype("float32"), labels
    centres = rng.normal(size=(N_CLUSTERS, DIM))
    x = centres[labels] + rng.normal(size=(N_SAMPLES, DIM))
    return x.astype("float32"), labels


def _timed(fn):
    """Wall-clock and process CPU seconds (all threads) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def time_epoch(model, x, y, repeats: int):
    model.fit(x, y, batch_size=512, epochs=1, verbose=0)  # compile, warm up
    runs = [
        _timed(lambda: model.fit(x, y, batch_size=512, epochs=1, verbose=0))
        for _ in range(repeats)
    ]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        [round(r[0], 2) for r in runs],
    )


def time_callback(x, labels, repeats: int, **settings):
    identity = keras.Sequential([keras.Input((DIM,)), keras.layers.Identity()])
    callback = ClusteringScores(
        (x, labels), n_clusters=N_CLUSTERS, batch_size=2048, **settings
    )
    callback.set_model(identity)
    callback.on_epoch_end(0, {})  # builds the predict function
    logs = [{} for _ in range(repeats)]  # a fresh dict per epoch, as in fit
    runs = [
        _timed(lambda i=i: callback.on_epoch_end(0, logs[i])) for i in range(repeats)
    ]
    return (
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        logs[-1],
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", choices=["synthetic", "mnist_5k"], default="synthetic"
    )
    parser.add_argument("--lstm-units", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="also time KMeans on all cores (threads=None): slow on a busy CPU",
    )
    parser.add_argument(
        "--output",
        type=output_folder,
        help="also write the tables to OUTPUT/epoch.csv and OUTPUT/callback.csv",
    )
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    print(
        f"keras {keras.__version__} ({keras.backend.backend()}), "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    x, y = training_data(args.data, args.seed)
    epoch, epoch_cpu, walls = time_epoch(
        small_model(args.lstm_units), x, y, args.repeats
    )
    print(
        f"one epoch: LSTM({args.lstm_units}) -> Dense(15) -> Dense(1), batch 512, "
        f"{N_SAMPLES} {args.data} samples: {epoch:.2f}s wall (median of {walls}), "
        f"{epoch_cpu:.2f} CPU-s"
    )
    print()
    # (n_init, threads): the callback's default first, then cluster_scores'
    # n_init=10, then scikit-learn's own threading.
    settings = [(3, 1), (10, 1), (1, 1)]
    if args.all_threads:
        settings += [(3, None), (10, None)]
    print(
        "| embeddings | n_init | threads | callback wall (s) | wall / epoch "
        "| callback CPU-s | CPU / epoch | val_cluster_ami |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for kind in ("clustered", "noise"):
        emb, labels = embeddings(kind, args.seed)
        for n_init, threads in settings:
            cost, cpu, logs = time_callback(
                emb,
                labels,
                args.repeats,
                kmeans_kwargs={"n_init": n_init},
                threads=threads,
            )
            print(
                f"| {kind} | {n_init} | {threads or 'all'} | {cost:.3f} | "
                f"{cost / epoch:.2f} | {cpu:.3f} | {cpu / epoch_cpu:.2f} | "
                f"{logs['val_cluster_ami']:.3f} |",
                flush=True,
            )
            rows.append(
                {
                    "embeddings": kind,
                    "n_init": n_init,
                    "threads": threads or "all",
                    "callback_wall_s": round(cost, 3),
                    "wall_per_epoch": round(cost / epoch, 2),
                    "callback_cpu_s": round(cpu, 3),
                    "cpu_per_epoch": round(cpu / epoch_cpu, 2),
                    "val_cluster_ami": round(logs["val_cluster_ami"], 3),
                }
            )
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        epoch_row = {
            "model": f"LSTM({args.lstm_units}) -> Dense(15) -> Dense(1)",
            "samples": N_SAMPLES,
            "data": args.data,
            "epoch_wall_s": round(epoch, 2),
            "epoch_walls": " ".join(f"{w:.2f}" for w in walls),
            "epoch_cpu_s": round(epoch_cpu, 2),
        }
        write_csv([epoch_row], args.output / "epoch.csv")
        write_csv(rows, args.output / "callback.csv")


if __name__ == "__main__":
    main()
