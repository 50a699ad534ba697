"""The objects of the several-machine tests, and their two-process runs.

Every engine test trains ONE step with ``synchronized=True`` on a global
batch of ``GLOBAL_BATCH`` samples split over ``WORKERS`` processes on
127.0.0.1, and compares the weights with one step on one device over the
whole batch. The models are small and built from fixed seeds, so every
process (and the one-device reference) starts from the same weights.

- ``torch``: ``torch.distributed.init_process_group("gloo")`` and the loop
  of Keras's guide "Multi-GPU distributed training with PyTorch": the
  model wrapped in ``DistributedDataParallel``, the loss
  ``model.compute_loss`` (the compiled loss plus ``sum(model.losses)``), a
  ``torch.optim.SGD`` step; DDP averages the gradients.
- ``jax``: ``keras.distribution.initialize`` (``jax.distributed``, gloo
  CPU collectives), ``keras.distribution.DataParallel`` over the two
  processes' devices and ``model.fit`` unchanged, each process feeding its
  own half of the batch.

``python distributed_models.py ENGINE RANK WORLD PORT OUT`` runs one
process; ``run_processes`` starts them and returns their weights.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys

import keras
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2
GLOBAL_BATCH = 16
KINDS = ["decov", "l1", "activity", "xcov", "labelled", "imsat", "dim"]


def data(n=GLOBAL_BATCH, seed=0):
    """``(x, y, labels, images)`` of ``n`` samples."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    labels = rng.integers(0, 3, size=n).astype("int32")
    images = rng.uniform(size=(n, 8, 8, 1)).astype("float32")
    return x, y, labels, images


def halve(x):
    """IMSAT's augmentation: deterministic, so every process draws alike."""
    return x * 0.5


def build(kind, synchronized=True):
    """A compiled model (SGD) with the object ``kind``, from fixed seeds;
    ``"<kind>-local"`` is ``kind`` with ``synchronized=False``."""
    if kind.endswith("-local"):
        kind, synchronized = kind[: -len("-local")], False
    from keras_disentangle import layers, losses, regularizers
    from keras_disentangle.models import IMSAT, DeepInfoMax

    keras.utils.set_random_seed(1)
    if kind == "imsat":
        encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        model = IMSAT(
            encoder,
            n_clusters=3,
            augmentation=halve,
            mu=2.0,
            seed=0,
            synchronized=synchronized,
        )
        model.compile(keras.optimizers.SGD(0.1))
        return model
    if kind == "dim":
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="local")(
            inputs
        )
        out = keras.layers.Dense(3, name="global")(keras.layers.Flatten()(h))
        encoder = keras.Model(inputs, out)
        model = DeepInfoMax(
            encoder, "local", units=4, gamma=0.0, synchronized=synchronized
        )
        model.compile(keras.optimizers.SGD(0.5))
        return model
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5, name="fc1")(inputs)
    penalty = {
        "decov": lambda: regularizers.DeCov(1.0),
        "l1": lambda: regularizers.CovarianceL1(1.0),
        "activity": lambda: regularizers.ActivityKLMargin(2.0, 1.0),
    }
    if kind in penalty:
        h = layers.ActivityPenalty(penalty[kind](), synchronized=synchronized)(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    if kind == "xcov":
        out = layers.XCovPenalty(5.0, synchronized=synchronized)([out, h])
    if kind == "labelled":
        model = keras.Model(inputs, {"out": out, "fc1": h})
        loss = {
            "out": "binary_crossentropy",
            "fc1": losses.LabelledKLMargin(2.0, synchronized=synchronized),
        }
        model.compile(keras.optimizers.SGD(0.1), loss=loss)
        return model
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    return model


def batch(kind, rows=slice(None)):
    """``(x, y)`` for ``kind``, rows ``rows`` of the global batch."""
    kind = kind.removesuffix("-local")
    x, y, labels, images = data()
    if kind == "imsat":
        return x[rows], None
    if kind == "dim":
        return images[rows], None
    if kind == "labelled":
        return x[rows], {"out": y[rows], "fc1": labels[rows]}
    return x[rows], y[rows]


def build_for_custom_step(model, data):
    """Creates every variable a train step needs, in the strategy's scope,
    with public Keras API only: the model's (a call), the compiled loss's
    and metrics' (one evaluation, then reset) and the optimizer's.

    ``fit`` does this itself; under ``MultiWorkerMirroredStrategy`` Keras
    3's ``fit`` fails (keras-team/keras#20585), so the tests run Keras's own
    ``train_step`` in ``strategy.run``, and a variable created inside that
    replica function would be an error.
    """
    x, y = (data, None) if not isinstance(data, tuple) else data
    y_pred = model(x, training=False)
    model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
    if y is not None:
        model.compute_metrics(x, y, y_pred)
    for metric in model.metrics:
        metric.reset_state()
    model.optimizer.build(model.trainable_variables)


def numbers(weights):
    """The weights that hold numbers (a synchronized penalty layer's loss
    owner is an empty ``(0,)`` weight)."""
    return [np.asarray(w) for w in weights if np.asarray(w).size]


def torch_step(kind, rows=slice(None), synchronized=True):
    """One step of the Keras guide's PyTorch loop (in DDP when a process
    group is initialised); returns (initial, final) weights."""
    import torch

    model = build(kind, synchronized)
    x, y = batch(kind, rows)
    x = keras.ops.convert_to_tensor(x)
    if y is not None:
        y = keras.tree.map_structure(keras.ops.convert_to_tensor, y)
    model(x)  # builds every weight before DDP and the optimizer see them
    start = numbers(model.get_weights())
    module = model
    if torch.distributed.is_initialized():
        module = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=model.optimizer.learning_rate)
    y_pred = module(x)
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return start, numbers(model.get_weights())


def fit_step(kind, rows=slice(None), batch_size=GLOBAL_BATCH, synchronized=True):
    """One ``model.fit`` step; returns (initial, final) weights."""
    model = build(kind, synchronized)
    x, y = batch(kind, rows)
    start = numbers(model.get_weights())
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return start, numbers(model.get_weights())


def worker(engine, rank, world, port, out, kinds):
    """One process of a two-process run: saves its weights per kind."""
    rows = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    if engine == "torch":
        import torch.distributed as dist

        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
        step = torch_step
    elif engine == "jax":
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(f"127.0.0.1:{port}", world, rank)
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(auto_shard_dataset=False)
        )

        def step(kind, rows):  # each process feeds its rows (a local batch)
            return fit_step(kind, rows, batch_size=GLOBAL_BATCH // world)
    else:
        raise ValueError(f"unknown engine {engine!r}")
    arrays = {}
    for kind in kinds:
        start, end = step(kind, rows)
        for i, (w0, w1) in enumerate(zip(start, end, strict=True)):
            arrays[f"{kind}/start/{i}"] = w0
            arrays[f"{kind}/end/{i}"] = w1
    np.savez(out, **arrays)
    if engine == "torch":
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(engine, kinds, tmp_path, timeout=240.0):
    """Starts ``WORKERS`` processes of ``engine`` on 127.0.0.1; returns
    ``[{kind: (start, end)}]`` per process. Children are killed at the end."""
    port = free_port()
    env = dict(os.environ, KERAS_BACKEND=engine, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, env.get("PYTHONPATH", "")])
    processes = []
    try:
        for rank in range(WORKERS):
            out = tmp_path / f"{engine}{rank}.npz"
            args = [engine, str(rank), str(WORKERS), str(port), str(out), *kinds]
            processes.append(
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), *args],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=open(tmp_path / f"{engine}{rank}.log", "w"),
                )
            )
        for p in processes:
            p.wait(timeout=timeout)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for rank, p in enumerate(processes):
        log = (tmp_path / f"{engine}{rank}.log").read_text()
        if p.returncode != 0:
            raise AssertionError(f"{engine} process {rank} failed:\n{log[-4000:]}")
        with np.load(tmp_path / f"{engine}{rank}.npz") as saved:
            result = {}
            for kind in kinds:
                count = sum(1 for k in saved.files if k.startswith(f"{kind}/start/"))
                result[kind] = (
                    [saved[f"{kind}/start/{i}"] for i in range(count)],
                    [saved[f"{kind}/end/{i}"] for i in range(count)],
                )
            results.append(result)
    return results


def max_difference(got, want):
    """``max |Δgot − Δwant| / max |Δwant|`` over the weights (Δ: the step)."""
    (g0, g1), (w0, w1) = got, want
    for a, b in zip(g0, w0, strict=True):
        np.testing.assert_array_equal(a, b)  # the same initial weights
    steps = [b - a for a, b in zip(w0, w1, strict=True)]
    scale = max(float(np.abs(s).max()) for s in steps)
    assert scale > 1e-4, "the step did not move the weights"
    return max(
        float(np.abs((b - a) - s).max()) / scale
        for a, b, s in zip(g0, g1, steps, strict=True)
    )


def differences(title, results, kinds, reference):
    """``{kind: max over processes of max_difference}``, printed, and with
    ``KERAS_DISENTANGLE_DIFFERENCES=DIR`` also written to ``DIR/<title>.csv``
    (the numbers of docs/distributed.md's contract table)."""
    found = {
        kind: max(max_difference(r[kind], reference(kind)) for r in results)
        for kind in kinds
    }
    print(f"{title}: max |step - one-device step| / max |one-device step|")
    for kind, difference in found.items():
        print(f"  {kind}: {difference:.2e}")
    folder = os.environ.get("KERAS_DISENTANGLE_DIFFERENCES")
    if folder:
        name = "".join(c if c.isalnum() else "_" for c in title.lower())
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["engine", "kind", "difference"])
            writer.writerows([title, k, f"{d:.2e}"] for k, d in found.items())
    return found


if __name__ == "__main__":
    engine, rank, world, port, out, *kinds = sys.argv[1:]
    worker(engine, int(rank), int(world), int(port), out, kinds)
