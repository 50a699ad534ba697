"""Train a model with a synchronized penalty on several machines (JAX).

Each machine runs this script with the same coordinator address (the first
machine's) and its own process id, e.g. on the first of two machines::

    python examples/multi_worker_jax.py --coordinator host0:12345 \\
        --num-processes 2 --process-id 0

and ``--process-id 1`` on the second. To try it on one machine:
``python examples/multi_worker_jax.py --local 2`` starts 2 processes on
127.0.0.1 with a free port.

``keras.distribution.initialize`` starts ``jax.distributed`` (gloo CPU
collectives here; on GPUs and TPUs JAX picks its own), and
``keras.distribution.DataParallel`` makes each batch one global array over
every process's devices; ``model.fit`` is unchanged, each process feeding
its own shard of the data (``auto_shard_dataset=False``: the arrays are
already this process's part). Every statistic is then computed on the
global batch, ``synchronized`` or not (``tests/test_jax_multi_process.py``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "jax"


def train(coordinator: str, processes: int, rank: int, epochs: int, batch: int):
    import jax
    import keras
    from sklearn.datasets import load_digits

    from keras_disentangle.layers import ActivityPenalty
    from keras_disentangle.regularizers import DeCov

    # CPU collectives (ignored on GPUs and TPUs); before anything touches
    # the devices, as jax.distributed.initialize requires.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(coordinator, processes, rank)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    x, y = load_digits(return_X_y=True)
    n = len(x) // (processes * batch) * batch  # equal shards, whole batches
    x, y = (x / 16.0).astype("float32")[rank::processes][:n], y[rank::processes][:n]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, activation="relu")(inputs)
    h = ActivityPenalty(DeCov(0.1), synchronized=True)(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    model.compile("adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=2 if rank == 0 else 0)


def _local(processes: int, argv: list[str]) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        coordinator = f"127.0.0.1:{s.getsockname()[1]}"
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                *argv,
                "--coordinator",
                coordinator,
                "--num-processes",
                str(processes),
                "--process-id",
                str(rank),
            ],
            env=env,
        )
        for rank in range(processes)
    ]
    return max(p.wait() for p in children)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default="127.0.0.1:12345")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64, help="per process")
    parser.add_argument("--local", type=int, default=0, help="start N processes")
    args = parser.parse_args(argv)
    if args.local:
        rest = ["--epochs", str(args.epochs), "--batch", str(args.batch)]
        sys.exit(_local(args.local, rest))
    train(
        args.coordinator, args.num_processes, args.process_id, args.epochs, args.batch
    )


if __name__ == "__main__":
    main()
