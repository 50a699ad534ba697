"""Cost of ``synchronized=True`` under a 2-replica ``MirroredStrategy``.

1. Step time of a small classifier (784 -> Dense(256, relu) -> Dense(64)
   with the penalty as activity regularizer -> Dense(10, softmax)) under a
   ``tf.distribute.MirroredStrategy`` over 2 logical CPUs, with
   ``synchronized=True`` against ``False``, as a ratio measured in the same
   run (interleaved rounds, medians), for a covariance penalty (``DeCov``)
   and the pairwise KL hinge (``ActivityKLMargin``), global batch 512 and
   2048.
2. ``--memory``: the peak resident memory growth of one such training step
   with ``ActivityKLMargin`` against the global batch size (512 to 65,536),
   synchronized (each replica ``N/2 x N`` pairs) and not (``N/2 x N/2``),
   each in a fresh process. A replica's batch size is known only at run
   time there: beyond 2^24 pairs the pairs are taken in bounded row blocks
   chosen at run time (``keras_disentangle._blocks.one_or_row_blocks``).
   N = 65,536 takes about 6 minutes on 2 cores.

Run: ``python benchmarks/distributed.py [--repeats 15] [--memory]
[--output DIR]`` (``DIR/steps.csv``, ``DIR/memory.csv``).
On a shared machine the seconds are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Measure this checkout, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
from penalties import _peak_rss_kib, _print, _write  # noqa: E402  (benchmarks/)

BATCHES = (512, 2048)
PENALTIES = ("DeCov", "ActivityKLMargin")


def _strategy():
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0],
        [
            tf.config.LogicalDeviceConfiguration(),
            tf.config.LogicalDeviceConfiguration(),
        ],
    )
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _model(strategy, penalty, synchronized):
    import keras

    from keras_disentangle import layers, regularizers

    regularizer = {
        "DeCov": lambda: regularizers.DeCov(0.1),
        "ActivityKLMargin": lambda: regularizers.ActivityKLMargin(1.0, 0.1),
    }[penalty]()
    with strategy.scope():
        inputs = keras.Input((784,))
        h = keras.layers.Dense(256, activation="relu")(inputs)
        if synchronized:  # the layer that owns a global-batch loss
            h = keras.layers.Dense(64)(h)
            h = layers.ActivityPenalty(regularizer, synchronized=True)(h)
        else:
            h = keras.layers.Dense(64, activity_regularizer=regularizer)(h)
        out = keras.layers.Dense(10, activation="softmax")(h)
        model = keras.Model(inputs, out)
        model.compile("adam", loss="sparse_categorical_crossentropy")
    return model


def _data(batch):
    rng = np.random.default_rng(0)
    return (
        rng.random((batch, 784), dtype=np.float32),
        rng.integers(0, 10, size=batch),
    )


def step_ratios(repeats, steps=3):
    strategy = _strategy()
    rows = []
    for penalty in PENALTIES:
        for batch in BATCHES:
            x, y = _data(batch)
            models = {s: _model(strategy, penalty, s) for s in (True, False)}
            for model in models.values():  # trace and warm up
                for _ in range(2):
                    model.train_on_batch(x, y)
            times = {s: [] for s in models}
            for _ in range(repeats):  # interleaved: noise hits both alike
                for s, model in models.items():
                    start = time.perf_counter()
                    for _ in range(steps):
                        model.train_on_batch(x, y)
                    times[s].append((time.perf_counter() - start) / steps)
            sync, local = (
                statistics.median(times[True]),
                statistics.median(times[False]),
            )
            rows.append(
                {
                    "penalty": penalty,
                    "global_batch": batch,
                    "sync_ms": 1e3 * sync,
                    "local_ms": 1e3 * local,
                    "ratio": sync / local,
                }
            )
    return rows


def _memory_child(batch, synchronized):
    strategy = _strategy()
    model = _model(strategy, "ActivityKLMargin", synchronized)
    x, y = _data(batch)
    small_x, small_y = _data(8)
    model.train_on_batch(small_x, small_y)  # runtime and traces loaded
    before = _peak_rss_kib()
    model.train_on_batch(x, y)
    print(json.dumps({"peak_mib": (_peak_rss_kib() - before) / 1024.0}))


def memory(batches=(512, 1024, 2048, 4096, 16384, 65536)):
    rows = []
    for batch in batches:
        row = {"global_batch": batch}
        for synchronized in (True, False):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-child",
                    str(batch),
                    str(synchronized),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            key = "sync_peak_mib" if synchronized else "local_peak_mib"
            row[key] = json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]
        # float32 hinge block per replica: (N/2 x N) synchronized, (N/2)^2 not
        row["sync_block_mib"] = 4.0 * (batch / 2) * batch / 2**20
        rows.append(row)
    return rows


def main(argv=None):
    from keras_disentangle.experiments._common import output_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        type=output_folder,
        help="also write OUTPUT/steps.csv and OUTPUT/memory.csv",
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        batch, synchronized = args.memory_child
        _memory_child(int(batch), synchronized == "True")
        return
    tables = {}
    if not args.skip_steps:
        tables["steps"] = step_ratios(args.repeats)
        _print(tables["steps"], "step time under 2 replicas, synchronized=True / False")
    if args.memory:
        tables["memory"] = memory()
        _print(tables["memory"], "peak resident memory growth of one step (MiB)")
    _write(args.output, tables)


if __name__ == "__main__":
    main()
