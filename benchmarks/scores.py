"""Time of each ground-truth disentanglement score on N = 10,000 codes of d = 10.

Codes: a random linear mix of five shapes2d-sized factors (3, 6, 40, 32, 32
values, dSprites' grid) plus Gaussian noise, N samples for the scores that
take one set and N + N (train, test) for the ones that fit classifiers, as
disentanglement_lib's configurations use 10,000 training points. BetaVAE and
FactorVAE take an encoder and a sampler: here the sampler returns the factors
and the encoder is the same linear mix (so the time is the score's own, not a
network's), with disentanglement_lib's sizes (batch 64, 10,000 training and
5,000 evaluation points, 10,000 samples for FactorVAE's variances).

Wall-clock and CPU seconds (``time.process_time``) of one call each; on a
shared machine the CPU seconds move less than the wall clock. MIG and
modularity are vectorised over samples (``np.searchsorted`` per code column,
``np.bincount`` per code-factor pair).

    python benchmarks/scores.py
    python benchmarks/scores.py --n 2000 --only mig,sap
    python benchmarks/scores.py --output results/   # also results/scores.csv
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

# Measure this checkout, not an installed copy of the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from keras_disentangle.experiments._common import (  # noqa: E402
    output_folder,
    write_csv,
)
from keras_disentangle.scores import factors as F  # noqa: E402

SIZES = (3, 6, 40, 32, 32)
NAMES = ("mig", "sap", "dci", "modularity_explicitness", "beta_vae", "factor_vae")


def make(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(k, size=n) for k in SIZES], axis=1)
    mixing = np.random.default_rng(0).normal(size=(len(SIZES), d))
    return f @ mixing + rng.normal(size=(n, d)), f, mixing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--only", default=",".join(NAMES))
    parser.add_argument(
        "--output", type=output_folder, help="also write OUTPUT/scores.csv"
    )
    args = parser.parse_args()
    codes, f, mixing = make(args.n, args.d, 1)
    test_codes, test_f, _ = make(args.n, args.d, 2)

    def sample(n, seed, fixed_factor=None):
        rng = np.random.default_rng(seed)
        g = rng.integers(SIZES, size=(n, len(SIZES)))
        if fixed_factor is not None:
            g[:, fixed_factor] = g[0, fixed_factor]
        return g.astype(float), g

    def encode(x):
        return x @ mixing

    split = (codes, f, test_codes, test_f)
    calls = {
        "mig": lambda: F.mig(codes, f),
        "sap": lambda: F.sap(*split),
        "dci": lambda: F.dci(*split),
        "modularity_explicitness": lambda: F.modularity_explicitness(*split),
        "beta_vae": lambda: F.beta_vae_score(encode, sample),
        "factor_vae": lambda: F.factor_vae_score(encode, sample),
    }
    print(
        f"N={args.n} d={args.d} factors={SIZES}; {platform.processor() or '?'}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{'score':26s} {'wall s':>8s} {'CPU s':>8s}")
    rows = []
    for name in args.only.split(","):
        wall, cpu = time.perf_counter(), time.process_time()
        calls[name]()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"{name:26s} {wall:8.2f} {cpu:8.2f}", flush=True)
        rows.append(
            {"score": name, "n": args.n, "d": args.d, "wall_s": round(wall, 2)}
            | {"cpu_s": round(cpu, 2)}
        )
        if args.output is not None:  # after each score: a stopped run keeps some
            args.output.mkdir(parents=True, exist_ok=True)
            write_csv(rows, args.output / "scores.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
