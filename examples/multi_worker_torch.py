"""Train a model with a synchronized penalty on several machines (PyTorch DDP).

Each machine runs this script with the same coordinator address (the first
machine's) and its own rank, e.g. on the first of two machines::

    python examples/multi_worker_torch.py --coordinator host0:29500 \\
        --num-processes 2 --process-id 0

and ``--process-id 1`` on the second. To try it on one machine:
``python examples/multi_worker_torch.py --local 2`` starts 2 processes on
127.0.0.1 with a free port.

The loop is the one of Keras's guide "Multi-GPU distributed training with
PyTorch": ``torch.distributed.init_process_group`` (gloo on CPUs, nccl on
GPUs), the Keras model wrapped in ``DistributedDataParallel``, the loss
``model.compute_loss`` (the compiled loss plus ``sum(model.losses)``), a
``torch.optim`` step; each process trains on its own shard of the data.
``ActivityPenalty(DeCov(0.1), synchronized=True)`` computes the covariance
on the global batch of all processes (its sums all-reduced through
``torch.distributed.nn.functional.all_reduce``), so a step equals the
one-device step on the global batch (``tests/test_torch_ddp.py``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

os.environ["KERAS_BACKEND"] = "torch"


def train(coordinator: str, processes: int, rank: int, epochs: int, batch: int):
    import keras
    import numpy as np
    import torch
    import torch.distributed as dist
    from sklearn.datasets import load_digits

    from keras_disentangle.layers import ActivityPenalty
    from keras_disentangle.regularizers import DeCov

    dist.init_process_group(
        "gloo", init_method=f"tcp://{coordinator}", rank=rank, world_size=processes
    )
    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype("float32")[rank::processes], y[rank::processes]
    keras.utils.set_random_seed(0)  # the same initial weights everywhere
    inputs = keras.Input((64,))
    h = keras.layers.Dense(32, activation="relu")(inputs)
    h = ActivityPenalty(DeCov(0.1), synchronized=True)(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(h))
    model.compile(loss="sparse_categorical_crossentropy")
    model(x[:1])  # builds every weight before DDP sees them
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = len(x) // batch  # the same number of steps on every process
    for epoch in range(epochs):
        losses = []
        for i in range(steps):
            xb = keras.ops.convert_to_tensor(x[i * batch : (i + 1) * batch])
            yb = keras.ops.convert_to_tensor(y[i * batch : (i + 1) * batch])
            loss = model.compute_loss(x=xb, y=yb, y_pred=ddp(xb), training=True)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}", flush=True)
    dist.destroy_process_group()


def _local(processes: int, argv: list[str]) -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        coordinator = f"127.0.0.1:{s.getsockname()[1]}"
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
            ]
        )
        for rank in range(processes)
    ]
    return max(p.wait() for p in children)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default="127.0.0.1:29500")
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
