"""Neighbour distances for IMSAT's radius: the package against scikit-learn.

``keras_disentangle.models.imsat.knn_distance(x, k)`` gives each sample's
distance to its ``k``-th nearest other sample. This benchmark times it
against ``sklearn.neighbors.NearestNeighbors(n_neighbors=k).fit(x)
.kneighbors()`` (brute force, the sample itself excluded by scikit-learn),
on random float32 data ``(N, 784)`` (MNIST's shape), in the same process,
and reports the ratio (scikit-learn time / package time) and the largest
difference of the distances.

Run: ``python benchmarks/knn.py [--sizes 5000 60000] [--repeats 1]``.
Timings on a shared machine are noisy: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def _sklearn_knn(x, k):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(x.reshape(len(x), -1))
    distances, _ = nn.kneighbors()  # without X: a sample is not its own neighbour
    return distances[:, k - 1].astype(np.float32)


def _time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main(argv=None) -> dict:
    from keras_disentangle.models.imsat import knn_distance

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 60000])
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--k", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    results = {}
    for n in args.sizes:
        x = np.random.default_rng(0).random((n, args.dim), dtype=np.float32)
        ours, d_ours = _time(lambda x=x: knn_distance(x, args.k), args.repeats)
        theirs, d_sk = _time(lambda x=x: _sklearn_knn(x, args.k), args.repeats)
        diff = float(np.max(np.abs(d_ours - d_sk)))
        results[n] = {
            "package_s": ours,
            "sklearn_s": theirs,
            "sklearn_over_package": theirs / ours,
            "max_abs_difference": diff,
        }
        print(
            f"N={n:>6} d={args.dim}: package {ours:8.2f} s, scikit-learn "
            f"{theirs:8.2f} s, ratio {theirs / ours:.2f}, max |diff| {diff:.2e}",
            flush=True,
        )
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
