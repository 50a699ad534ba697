"""Speed and memory of the penalties, as ratios to references in the same run.

1. ``activity_kl_margin`` (one matmul) against the all-pairs formulation that
   builds an ``N x N x k`` tensor (as the paper's code does): forward +
   gradient time, and the peak resident memory of a fresh process running
   each (``--memory``; Linux ``ru_maxrss``, minus the same process's peak
   before the penalty runs).
2. The overhead of each penalty on a full training step of a small model
   (LSTM(64) over 28 rows of 28 pixels -> Dense(15) -> Dense(1, sigmoid),
   batch 512), as a ratio to the same step without a penalty.

3. ``--backend {tensorflow,jax,torch}``: forward + gradient of
   ``activity_kl_margin`` at (N=2048, k=128) against a bare ``sum(h @ h.T)``
   forward + gradient of the same shapes, both compiled (``tf.function``,
   ``jax.jit``, ``torch.compile`` where it works, else eager, and it says
   which), interleaved, as the ratio of the medians (this section only);
   ``one_block_ratio`` is the same for the penalty computed as one ``N x N``
   block (on the CPU it is cut into column slices that fit the cache). On
   PyTorch both eager (what Keras runs there by default) and
   ``torch.compile`` are measured.

Run: ``python benchmarks/penalties.py [--memory] [--repeats 5]`` or
``python benchmarks/penalties.py --backend jax [--repeats 30]``; with
``--output DIR`` each table also goes to ``DIR/<table>.csv`` (``speed``,
``memory``, ``steps``, or ``matmul_ratio_<backend>``).
Timings on a shared machine are noisy: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

# Measure this checkout, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SIZES = [(128, 15), (512, 15), (512, 128), (2048, 128)]
MARGIN = 1.0


def all_pairs_activity_kl_margin(h, margin):
    """The ``N x N x k`` formulation: every pair's KL from broadcast tensors."""
    from keras import ops

    log_s = ops.log_softmax(h, axis=-1)
    s = ops.exp(log_s)
    kl = ops.sum(
        ops.expand_dims(s, 1) * (ops.expand_dims(log_s, 1) - ops.expand_dims(log_s, 0)),
        axis=-1,
    )
    hinge = ops.relu(margin - kl)
    n = ops.cast(ops.shape(h)[0], h.dtype)
    return ops.sum(hinge + ops.transpose(hinge)) / (n * n)


def _forward_backward(fn):
    import tensorflow as tf

    @tf.function
    def step(h):
        with tf.GradientTape() as tape:
            tape.watch(h)
            value = fn(h, MARGIN)
        return value, tape.gradient(value, h)

    return step


def _time(step, h, repeats):
    step(h)[1].numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(h)[1].numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def penalty_speed(repeats):
    import tensorflow as tf

    from keras_disentangle.penalties import activity_kl_margin

    rows = []
    for n, k in SIZES:
        h = tf.constant(np.random.default_rng(0).normal(size=(n, k)), tf.float32)
        fast_step = _forward_backward(activity_kl_margin)
        slow_step = _forward_backward(all_pairs_activity_kl_margin)
        # Same values, so the comparison is fair.
        np.testing.assert_allclose(
            fast_step(h)[0].numpy(), slow_step(h)[0].numpy(), rtol=1e-4
        )
        slow_repeats = max(2, repeats // 2) if n * n * k > 1e8 else repeats
        fast = _time(fast_step, h, repeats)
        slow = _time(slow_step, h, slow_repeats)
        rows.append(
            {
                "N": n,
                "k": k,
                "matmul_ms": 1e3 * fast,
                "all_pairs_ms": 1e3 * slow,
                "speedup": slow / fast,
            }
        )
    return rows


def _memory_child(variant, n, k):
    """Runs in a fresh process: peak RSS growth of one forward+gradient."""
    import tensorflow as tf

    from keras_disentangle.penalties import activity_kl_margin

    fn = activity_kl_margin if variant == "matmul" else all_pairs_activity_kl_margin
    h = tf.constant(np.random.default_rng(0).normal(size=(n, k)), tf.float32)
    tf.reduce_sum(h * h).numpy()  # load the runtime before the baseline
    before = _peak_rss_kib()
    _forward_backward(fn)(h)[1].numpy()
    print(json.dumps({"peak_mib": (_peak_rss_kib() - before) / 1024.0}))


def _peak_rss_kib():
    # VmHWM belongs to this process image alone; ru_maxrss would carry over the
    # peak of the parent that forked it.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def penalty_memory():
    rows = []
    for n, k in SIZES:
        row = {"N": n, "k": k}
        for variant in ("matmul", "all_pairs"):
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", variant, str(n), str(k)],
                capture_output=True,
                text=True,
                check=True,
            )
            row[f"{variant}_peak_mib"] = json.loads(
                out.stdout.strip().splitlines()[-1]
            )["peak_mib"]
        rows.append(row)
    return rows


def _small_model(variant):
    import keras

    from keras_disentangle import layers, losses, regularizers

    inputs = keras.Input((28, 28))
    r = keras.layers.LSTM(64)(inputs)
    kwargs = {}
    if variant == "DeCov":
        kwargs["activity_regularizer"] = regularizers.DeCov(0.1)
    elif variant == "CovarianceL1":
        kwargs["activity_regularizer"] = regularizers.CovarianceL1(0.1)
    elif variant == "ActivityKLMargin":
        kwargs["activity_regularizer"] = regularizers.ActivityKLMargin(1.0, 0.1)
    elif variant == "KernelKLMargin":
        kwargs["kernel_regularizer"] = regularizers.KernelKLMargin(5.0, 1e-3)
    h = keras.layers.Dense(15, activation="relu", name="fc1", **kwargs)(r)
    out = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
    if variant == "XCovPenalty":
        out = layers.XCovPenalty(1.0)([out, h])
    if variant == "LabelledKLMargin":
        model = keras.Model(inputs, {"out": out, "fc1": h})
        model.compile(
            "adam",
            loss={"out": "binary_crossentropy", "fc1": losses.LabelledKLMargin(0.5)},
            loss_weights={"out": 1.0, "fc1": 0.1},
        )
    else:
        model = keras.Model(inputs, out)
        model.compile("adam", loss="binary_crossentropy")
    return model


VARIANTS = [
    "none",
    "DeCov",
    "CovarianceL1",
    "ActivityKLMargin",
    "KernelKLMargin",
    "XCovPenalty",
    "LabelledKLMargin",
]


def step_overhead(repeats, steps=5, batch=512):
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((steps * batch, 28, 28), dtype=np.float32)
    digits = rng.integers(0, 10, size=steps * batch)
    y = (digits >= 5).astype("float32")[:, None]
    models = {v: _small_model(v) for v in VARIANTS}
    targets = {
        v: {"out": y, "fc1": digits} if v == "LabelledKLMargin" else y for v in VARIANTS
    }

    def batches(v):
        t = targets[v]
        for i in range(steps):
            part = slice(i * batch, (i + 1) * batch)
            yield (
                x[part],
                (
                    {k: a[part] for k, a in t.items()}
                    if isinstance(t, dict)
                    else t[part]
                ),
            )

    for v, model in models.items():  # compile the train functions
        for xb, yb in batches(v):
            model.train_on_batch(xb, yb)
    times = {v: [] for v in VARIANTS}
    for _ in range(repeats):  # interleaved, so that noise hits all alike
        for v, model in models.items():
            data = list(batches(v))
            start = time.perf_counter()
            for xb, yb in data:
                model.train_on_batch(xb, yb)
            times[v].append((time.perf_counter() - start) / steps)
    # The minimum over repeats: other processes only ever add time.
    base = min(times["none"])
    return [
        {"penalty": v, "step_ms": 1e3 * min(times[v]), "ratio": min(times[v]) / base}
        for v in VARIANTS
    ]


def _compiled_step(fn, backend, h, mode="compiled"):
    """``h -> (fn(h), d fn / d h)`` compiled for ``backend``, and how.

    On PyTorch ``mode="eager"`` is what Keras runs by default
    (``jit_compile="auto"`` is eager there); ``"compiled"`` is
    ``torch.compile``.
    """
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(h):
            with tf.GradientTape() as tape:
                tape.watch(h)
                value = fn(h)
            return value, tape.gradient(value, h)

        return step, "tf.function"
    if backend == "jax":
        import jax

        return jax.jit(jax.value_and_grad(fn)), "jax.jit"
    import torch

    def step(h):
        h = h.detach().requires_grad_(True)
        value = fn(h)
        (grad,) = torch.autograd.grad(value, h)
        return value, grad

    if mode == "eager":
        return step, "eager"
    try:
        compiled = torch.compile(step)
        compiled(h)
        return compiled, "torch.compile"
    except Exception as error:  # no compiler toolchain, unsupported op, ...
        print(f"torch.compile failed ({type(error).__name__}: {error}); eager")
        return step, "eager"


def _block(result, backend):
    value, grad = result
    if backend == "jax":
        grad.block_until_ready()
    elif backend == "tensorflow":
        grad.numpy()
    return value


def matmul_ratio(backend, repeats, n=2048, k=128, mode="compiled"):
    """Median time of the penalty's forward+gradient over that of h @ h.T.

    ``one_block_ratio`` is the same penalty computed as one ``N x N`` block
    (what it does on an accelerator, and did on the CPU before the column
    slices).
    """
    import keras
    from keras import ops

    from keras_disentangle import penalties
    from keras_disentangle.penalties import activity_kl_margin

    h = ops.convert_to_tensor(
        np.random.default_rng(0).normal(size=(n, k)).astype("float32")
    )

    def one_block(x):
        saved = penalties._CPU_BLOCK_ELEMENTS
        penalties._CPU_BLOCK_ELEMENTS = n * n
        try:
            return activity_kl_margin(x, MARGIN)
        finally:
            penalties._CPU_BLOCK_ELEMENTS = saved

    steps = {}
    for name, fn in (
        ("activity_kl_margin", lambda x: activity_kl_margin(x, MARGIN)),
        ("one block", one_block),
        ("h @ h.T", lambda x: ops.sum(ops.matmul(x, ops.transpose(x)))),
    ):
        steps[name], how = _compiled_step(fn, backend, h, mode)
        for _ in range(2):  # compile, warm up
            _block(steps[name](h), backend)
    np.testing.assert_allclose(  # the same value both ways
        float(ops.convert_to_numpy(_block(steps["activity_kl_margin"](h), backend))),
        float(ops.convert_to_numpy(_block(steps["one block"](h), backend))),
        rtol=1e-5,
    )
    times = {name: [] for name in steps}
    for _ in range(repeats):  # interleaved: noise hits both alike
        for name, step in steps.items():
            start = time.perf_counter()
            _block(step(h), backend)
            times[name].append(time.perf_counter() - start)
    kl = statistics.median(times["activity_kl_margin"])
    whole = statistics.median(times["one block"])
    mm = statistics.median(times["h @ h.T"])
    return [
        {
            "backend": keras.backend.backend(),
            "compiled": how,
            "N": n,
            "k": k,
            "penalty_ms": 1e3 * kl,
            "matmul_ms": 1e3 * mm,
            "ratio": kl / mm,
            "one_block_ratio": whole / mm,
        }
    ]


def _print(rows, title):
    print(f"\n{title}")
    columns = list(rows[0])
    print(" | ".join(f"{c:>16}" for c in columns))
    for row in rows:
        print(
            " | ".join(
                f"{row[c]:>16.3f}" if isinstance(row[c], float) else f"{row[c]:>16}"
                for c in columns
            )
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--step-repeats",
        type=int,
        default=15,
        help="interleaved rounds of 5 training steps per penalty (minimum kept)",
    )
    parser.add_argument("--memory", action="store_true", help="also peak memory")
    parser.add_argument("--skip-steps", action="store_true")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument(
        "--output",
        help="also write each table to OUTPUT/<table>.csv (speed, memory, steps)",
    )
    parser.add_argument(
        "--backend",
        choices=["tensorflow", "jax", "torch"],
        help="only the ratio to a bare h @ h.T forward+gradient, on this backend",
    )
    args = parser.parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
        modes = ["eager", "compiled"] if args.backend == "torch" else ["compiled"]
        rows = [
            row
            for mode in modes
            for row in matmul_ratio(args.backend, max(args.repeats, 10), mode=mode)
        ]
        _print(
            rows,
            "activity_kl_margin against h @ h.T: forward + gradient (N=2048, k=128)",
        )
        _write(args.output, {f"matmul_ratio_{args.backend}": rows})
        return
    if args.memory_child:
        variant, n, k = args.memory_child
        _memory_child(variant, int(n), int(k))
        return
    tables = {"speed": penalty_speed(args.repeats)}
    _print(tables["speed"], "activity_kl_margin: forward + gradient")
    if args.memory:
        tables["memory"] = penalty_memory()
        _print(tables["memory"], "peak resident memory growth (MiB)")
    if not args.skip_steps:
        tables["steps"] = step_overhead(args.step_repeats)
        _print(tables["steps"], "training step, batch 512 (ratio to none)")
    _write(args.output, tables)


def _write(folder, tables):
    """Each printed table as ``folder/<name>.csv`` (the numbers printed)."""
    if folder is None:
        return
    import pathlib

    from keras_disentangle.experiments._common import write_csv

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        print(f"wrote {write_csv(rows, folder / f'{name}.csv')}")


if __name__ == "__main__":
    main()
