"""Neighbour distances for IMSAT's radius: hand-written against scikit-learn.

``keras_disentangle.models.imsat.knn_distance(x, k)`` gives each sample's
distance to its ``k``-th nearest other sample with scikit-learn's
``NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x).kneighbors()``
(the sample itself excluded by scikit-learn). It replaced a hand-written
exact search, chunked float64 matrix products ``|a|^2 - 2 a.b + |b|^2`` and
``np.partition`` (kept here as the reference). This benchmark times both on
random float32 data ``(N, 784)`` (MNIST's shape) in the same process and
reports the ratio (scikit-learn time / hand-written time) and the largest
difference of the distances.

Run: ``python benchmarks/knn.py [--sizes 5000 60000] [--repeats 1]
[--output DIR]`` (``DIR/knn.csv``).
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

import numpy as np


def hand_written_knn(x, k, batch_size=512):
    """The former ``knn_distance``: exact, chunked float64 matrix products."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    sq = np.sum(x**2, axis=1)
    out = np.empty(len(x))
    for start in range(0, len(x), batch_size):
        stop = min(start + batch_size, len(x))
        d2 = sq[start:stop, None] - 2.0 * x[start:stop] @ x.T + sq[None, :]
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # self
        kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
        out[start:stop] = np.sqrt(np.maximum(kth, 0.0))
    return out.astype(np.float32)


def _time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None) -> dict:
    from keras_disentangle.experiments._common import output_folder, write_csv
    from keras_disentangle.models.imsat import knn_distance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 60000])
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--k", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--output", type=output_folder, help="also write OUTPUT/knn.csv"
    )
    args = parser.parse_args(argv)
    results = {}
    for n in args.sizes:
        x = np.random.default_rng(0).random((n, args.dim), dtype=np.float32)
        ours, d_ours = _time(lambda x=x: hand_written_knn(x, args.k), args.repeats)
        theirs, d_sk = _time(lambda x=x: knn_distance(x, args.k), args.repeats)
        diff = float(np.max(np.abs(d_ours - d_sk)))
        results[n] = {
            "hand_written_s": ours,
            "sklearn_s": theirs,
            "sklearn_over_hand_written": theirs / ours,
            "max_abs_difference": diff,
        }
        print(
            f"N={n:>6} d={args.dim}: hand-written {ours:8.2f} s, scikit-learn "
            f"{theirs:8.2f} s, ratio {theirs / ours:.2f}, max |diff| {diff:.2e}",
            flush=True,
        )
    print(json.dumps(results))
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        rows = [
            {"n": n, "dim": args.dim, "k": args.k}
            | {key: round(value, 2) for key, value in row.items() if key[-2:] == "_s"}
            | {
                "ratio": round(row["sklearn_over_hand_written"], 2),
                "max_abs_difference": f"{row['max_abs_difference']:.1e}",
            }
            for n, row in results.items()
        ]
        write_csv(rows, args.output / "knn.csv")
    return results


if __name__ == "__main__":
    main()
