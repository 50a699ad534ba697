"""Several machines: 2 local workers of ``MultiWorkerMirroredStrategy``.

``run_workers(factory)`` starts two worker processes over localhost, each
with its ``TF_CONFIG``, builds ``factory()`` under the strategy, sets the
same initial weights, trains one step on the global batch (sharded over
the workers) and returns the weights. The one-device step on the whole
batch is the reference. A factory is ``"module:function"`` returning
``(compiled model, x, y or None)``; the module must be importable by the
workers (this directory and the repository root are on their path).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_disentangle import layers, regularizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2
GLOBAL_BATCH = 32

WORKER = textwrap.dedent(
    """
    import importlib, json, os, sys
    import numpy as np
    import tensorflow as tf
    import keras

    module, name, init, out = sys.argv[1:5]
    keras.config.disable_traceback_filtering()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with strategy.scope():
        model, x, y = getattr(importlib.import_module(module), name)()
    with np.load(init) as weights:
        model.set_weights([weights[f"arr_{i}"] for i in range(len(weights.files))])
    data = x if y is None else (x, y)
    # Keras 3.15's fit fails under MultiWorkerMirroredStrategy (its first
    # batch is averaged with strategy.reduce, "Attempt to convert a value
    # (PerReplica...)", and its logs are summed over a scalar axis): run
    # Keras's own train_step in strategy.run, as fit would.
    with strategy.scope():
        model._symbolic_build(data_batch=data)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(len(x))
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

    @tf.function
    def step(batch):
        return strategy.run(model.train_step, args=(batch,))

    step(batch)
    np.savez(out, *model.get_weights())
    """
)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _load(factory):
    module, name = factory.split(":")
    return getattr(__import__(module), name)


def run_workers(factory: str, tmp_path, timeout: float = 300.0):
    """``(start, one-device weights, per-worker weights)``."""
    model, x, y = _load(factory)()
    start = model.get_weights()
    np.savez(tmp_path / "init.npz", *start)
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    one_device = model.get_weights()

    ports = _free_ports(WORKERS)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, env.get("PYTHONPATH", "")])
    module, name = factory.split(":")
    processes = []
    for index in range(WORKERS):
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        out = tmp_path / f"worker{index}.npz"
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    module,
                    name,
                    str(tmp_path / "init.npz"),
                    str(out),
                ],
                env=dict(env),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    try:
        for p in processes:
            results.append(p.communicate(timeout=timeout))
    except subprocess.TimeoutExpired:
        for p in processes:
            p.kill()
        logs = [p.communicate()[1][-2000:] for p in processes]
        pytest.fail(f"workers timed out after {timeout}s; stderr: {logs}")
    for index, (p, (_, stderr)) in enumerate(zip(processes, results, strict=True)):
        (tmp_path / f"worker{index}.stderr").write_text(stderr)
        assert p.returncode == 0, (
            f"worker {index} failed (whole log: {tmp_path}/worker{index}.stderr):"
            f"\n{stderr[-4000:]}"
        )
    weights = []
    for index in range(WORKERS):
        with np.load(tmp_path / f"worker{index}.npz") as data:
            weights.append([data[f"arr_{i}"] for i in range(len(data.files))])
    return start, one_device, weights


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH, 6)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    return x, y


def decov_model():
    """Dense(5) with a synchronized DeCov, a sigmoid output: the factory."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(5)(inputs)
    h = layers.ActivityPenalty(regularizers.DeCov(1.0), synchronized=True)(h)
    out = keras.layers.Dense(1, activation="sigmoid")(h)
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    x, y = _data()
    return model, x, y


def imsat_model():
    """IMSAT on a linear encoder, random perturbation training (tiny eps)."""
    from keras_disentangle.models import IMSAT

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    kwargs = {"n_clusters": 3, "augmentation": "rpt", "epsilon": 1e-6, "seed": 0}
    try:
        model = IMSAT(encoder, synchronized=True, **kwargs)
    except TypeError:  # IMSAT without the synchronized argument yet
        model = IMSAT(encoder, **kwargs)
    model.compile(keras.optimizers.SGD(0.1))
    x, _ = _data()
    return model, x, None


def _check_step(factory, tmp_path):
    start, one_device, workers = run_workers(factory, tmp_path)
    want = [w - w0 for w, w0 in zip(one_device, start, strict=True)]
    scale = max(float(np.abs(w).max()) for w in want)
    assert scale > 0
    for weights in workers:  # every worker holds the same, one-device weights
        for got, w, w0 in zip(weights, want, start, strict=True):
            np.testing.assert_allclose(got - w0, w, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.backends("tensorflow", reason="MultiWorkerMirroredStrategy")
def test_two_workers_decov_step_equals_one_device(tmp_path):
    _check_step("test_multi_worker:decov_model", tmp_path)


@pytest.mark.backends("tensorflow", reason="MultiWorkerMirroredStrategy")
def test_two_workers_imsat_step_equals_one_device(tmp_path):
    _check_step("test_multi_worker:imsat_model", tmp_path)
