"""Step time of IMSAT against a plain training step of the same encoder.

The encoder is the paper's MLP 784-1200-1200-10 with BatchNormalization,
batch 250 of mnist_5k images. The plain step trains the same encoder with a
softmax head on labels (sparse categorical cross-entropy): one forward and
one backward pass. IMSAT steps add the information terms and the perturbed
passes: ``"rpt"`` one more forward and backward pass, ``"vat"`` also the
power iteration (a forward pass and an input gradient). Each is timed with
``train_on_batch`` after warm-up; the median of ``--repeats`` blocks of
``--steps`` steps is reported, and its ratio to the plain step.

Run: ``python benchmarks/imsat_step.py [--repeats 5] [--steps 20] [--jit]
[--output DIR]``, on any backend (``KERAS_BACKEND=jax``...).
Timings on a shared machine are noisy: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

# Measure this checkout, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_disentangle import datasets  # noqa: E402
from keras_disentangle.experiments._common import (  # noqa: E402
    output_folder,
    write_csv,
)
from keras_disentangle.models import IMSAT, imsat_mlp  # noqa: E402


def encoder() -> keras.Model:
    return imsat_mlp(784, 10)  # the authors' 784-1200-1200-10 MLP


def _time(step, steps: int, repeats: int) -> float:
    for _ in range(3):  # trace and warm up
        step()
    blocks = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        blocks.append((time.perf_counter() - start) / steps)
    return statistics.median(blocks)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--jit", action="store_true", help="jit_compile=True")
    parser.add_argument(
        "--output", type=output_folder, help="also write OUTPUT/imsat_step.csv"
    )
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    x, y = datasets.mnist_5k().train
    x = (2.0 * x[: args.batch_size].reshape(-1, 784) - 1.0).astype("float32")
    y = y[: args.batch_size]
    knn = np.full((len(x),), 8.0, dtype="float32")  # any radius: same cost

    plain = keras.Sequential([encoder(), keras.layers.Softmax()])
    plain.compile("adam", "sparse_categorical_crossentropy", jit_compile=args.jit)
    times = {
        "plain": _time(lambda: plain.train_on_batch(x, y), args.steps, args.repeats)
    }
    for aug in ("rpt", "vat"):
        model = IMSAT(encoder(), n_clusters=10, augmentation=aug, seed=0)
        model.compile("adam", jit_compile=args.jit)
        inputs = {"x": x, "knn_distance": knn}
        times[f"IMSAT ({aug})"] = _time(
            lambda m=model, i=inputs: m.train_on_batch(i), args.steps, args.repeats
        )
    print(f"batch {args.batch_size}, jit_compile={args.jit}")
    print(f"{'step':<14} {'ms':>8} {'ratio':>7}")
    for name, seconds in times.items():
        print(f"{name:<14} {1000 * seconds:>8.1f} {seconds / times['plain']:>7.2f}")
    result = {k: v / times["plain"] for k, v in times.items()}
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        rows = [
            {
                "step": name,
                "batch": args.batch_size,
                "jit_compile": args.jit,
                "ms": round(1000 * seconds, 1),
                "ratio": round(seconds / times["plain"], 2),
            }
            for name, seconds in times.items()
        ]
        write_csv(rows, args.output / "imsat_step.csv")
    print(json.dumps({"ratios": result}))
    return result


if __name__ == "__main__":
    main()
