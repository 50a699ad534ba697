"""Several machines with TensorFlow: 2 local workers of
``MultiWorkerMirroredStrategy``.

``run_workers(kinds)`` starts two worker processes on localhost (free
ports, bounded in time, killed at the end), each with its ``TF_CONFIG``;
each builds every object of ``tests/distributed_models.py`` under the
strategy (the same seeds, so the same initial weights) and trains one step
of Keras's own ``train_step`` in ``strategy.run`` on the global batch
(sharded over the workers; Keras 3.15's ``fit`` does not run under this
strategy, keras-team/keras#20585). The one-device ``fit`` step on the whole
batch is the reference.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from distributed_models import KINDS, fit_step
from distributed_models import differences as found

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2

WORKER = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    import keras
    import distributed_models as dm

    out, *kinds = sys.argv[1:]
    keras.config.disable_traceback_filtering()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    saved = {}
    for kind in kinds:
        with strategy.scope():
            model = dm.build(kind)
        x, y = dm.batch(kind)
        data = x if y is None else (x, y)
        saved.update({f"{kind}/start/{i}": w for i, w in enumerate(
            dm.numbers(model.get_weights()))})
        # Keras 3.15's fit fails under MultiWorkerMirroredStrategy
        # (keras-team/keras#20585): run Keras's own train_step in
        # strategy.run, as fit would, its variables built first.
        with strategy.scope():
            dm.build_for_custom_step(model, data)
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(len(x))
        batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

        @tf.function
        def step(batch):
            return strategy.run(model.train_step, args=(batch,))

        step(batch)
        saved.update({f"{kind}/end/{i}": w for i, w in enumerate(
            dm.numbers(model.get_weights()))})
    np.savez(out, **saved)
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


def run_workers(kinds, tmp_path, timeout: float = 300.0):
    """Per worker, ``{kind: (start, end)}`` weights of one step."""
    ports = _free_ports(WORKERS)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, HERE, env.get("PYTHONPATH", "")])
    processes = []
    for index in range(WORKERS):
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
        out = tmp_path / f"worker{index}.npz"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(out), *kinds],
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
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for index, (p, (_, stderr)) in enumerate(zip(processes, results, strict=True)):
        (tmp_path / f"worker{index}.stderr").write_text(stderr)
        assert p.returncode == 0, (
            f"worker {index} failed (whole log: {tmp_path}/worker{index}.stderr):"
            f"\n{stderr[-4000:]}"
        )
    weights = []
    for index in range(WORKERS):
        with np.load(tmp_path / f"worker{index}.npz") as saved:
            weights.append(
                {
                    kind: tuple(
                        [
                            saved[f"{kind}/{part}/{i}"]
                            for i in range(
                                sum(f.startswith(f"{kind}/start/") for f in saved.files)
                            )
                        ]
                        for part in ("start", "end")
                    )
                    for kind in kinds
                }
            )
    return weights


@pytest.mark.backends("tensorflow", reason="MultiWorkerMirroredStrategy")
def test_two_workers_step_equals_one_device(tmp_path):
    """Every object, ``synchronized=True``: each worker's step equals one
    device's over the global batch; DeCov with ``synchronized=False`` (each
    worker's own slice) does not (the test can fail)."""
    kinds = [*KINDS, "decov-local"]
    results = run_workers(kinds, tmp_path)
    differences = found(
        "MultiWorkerMirroredStrategy, 2 workers", results, kinds, fit_step
    )
    for kind in KINDS:
        assert differences[kind] < 1e-5, (kind, differences)
    assert differences["decov-local"] > 1e-2, differences
