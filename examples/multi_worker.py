"""Train a model with a package penalty on several machines.

Each machine runs this script with its own ``TF_CONFIG`` (the same cluster,
its own index), e.g. on the first of two machines::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multi_worker.py

and ``"index": 1`` on the second. ``tf.distribute.MultiWorkerMirroredStrategy``
reads ``TF_CONFIG``; the model and its optimizer are created under its
scope; ``ActivityPenalty(DeCov(0.1), synchronized=True)`` computes the
covariance on the global batch of all machines (its sums all-reduced,
never the activations), so a step equals the one-device step on the same global batch.

To try it on one machine: ``python examples/multi_worker.py --local 2``
starts 2 workers on free localhost ports (when the chief exits first, the
other worker may log a gRPC heartbeat error on its way out; it is harmless).

Keras 3.15's ``fit`` does not run under ``MultiWorkerMirroredStrategy`` (it
averages a first distributed batch with ``strategy.reduce`` and fails with
"Attempt to convert a value (PerReplica...)"), so the loop below calls
Keras's own ``train_step`` in ``strategy.run``, which is what ``fit`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"


def train(epochs: int, global_batch: int, out: str) -> None:
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    from keras_disentangle.layers import ActivityPenalty
    from keras_disentangle.regularizers import DeCov

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    with strategy.scope():
        inputs = keras.Input((64,))
        h = keras.layers.Dense(64, activation="relu")(inputs)
        h = keras.layers.Dense(32, activation="relu")(h)
        h = ActivityPenalty(DeCov(0.1), synchronized=True)(h)
        outputs = keras.layers.Dense(10, activation="softmax")(h)
        model = keras.Model(inputs, outputs)
        model.compile("adam", loss="sparse_categorical_crossentropy")
        # Every variable a step needs, created now as fit would (a call, one
        # evaluation of the loss and metrics, the optimizer's slots).
        model.compute_loss(x=x[:1], y=y[:1], y_pred=model(x[:1]), training=False)
        model.optimizer.build(model.trainable_variables)

    # Every worker reads the same data; the strategy shards each global
    # batch over the workers.
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch)
    batches = strategy.experimental_distribute_dataset(dataset)

    @tf.function
    def step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return strategy.reduce("MEAN", logs["loss"], axis=None)

    for epoch in range(epochs):
        losses = [float(step(batch)) for batch in batches]
        print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}", flush=True)
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if task.get("index", 0) == 0:  # the chief saves
        model.save(out)
        print(f"saved {out}")


def _local(workers: int, argv: list[str]) -> int:
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("localhost", 0))
    cluster = {"worker": [f"localhost:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        processes.append(subprocess.Popen([sys.executable, __file__, *argv], env=env))
    return max(p.wait() for p in processes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=128)
    parser.add_argument("--out", default="multi_worker.keras")
    parser.add_argument("--local", type=int, default=0, help="start N local workers")
    args = parser.parse_args(argv)
    if args.local:
        rest = ["--epochs", str(args.epochs), "--global-batch", str(args.global_batch)]
        sys.exit(_local(args.local, [*rest, "--out", args.out]))
    train(args.epochs, args.global_batch, args.out)


if __name__ == "__main__":
    main()
