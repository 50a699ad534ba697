"""Peak memory of the pairwise hinge's step against the global batch size.

For N = 4,096 / 16,384 / 65,536 samples of k = 16 features it asks XLA (JAX
on the CPU) how much temporary memory one forward + gradient of
``penalties.activity_kl_margin`` needs (unlabelled, ``ActivityKLMargin``,
and with labels, ``LabelledKLMargin``), from the compiled program
(``jax.jit(jax.grad(f)).lower(h).compile().memory_analysis()``: nothing is
run, so sizes beyond the machine's memory are measured too), beside a bare
``sum(h @ h.T)`` forward + gradient and one float32 ``N x N`` block.

Two block sizes are compiled: the CPU's (2^19 pairs a block) and the one an
accelerator gets (2^24 pairs), by telling the penalty it computes on an
accelerator, so the bound on a GPU is measured here too. Up to 2^24 pairs
(N = 4,096) the penalty is one block differentiated as usual; beyond, the
bounded loop of ``keras_disentangle._blocks``.

``--time`` also runs one forward + gradient at each N up to
``--time-max`` (median of ``--repeats``) and gives the ratio to the bare
``h @ h.T`` step timed in the same run (the machine is shared: compare the
ratios, not the milliseconds).

``--dim`` also compiles Deep InfoMax's estimates from the critic's two
projections (``estimators.bilinear_mutual_information``, ``y`` of shape
``(N, 64)`` and ``m`` of ``(N, L, 64)``, gradient with respect to both) for
jsd / dv / nce at (N, L) = (16,384, 1), (65,536, 1), (4,096, 49) and
(65,536, 49), in DeepInfoMax's CPU and accelerator blocks and as one block
(left out above 2^28 scores: it does not compile in reasonable time).

Run: ``python benchmarks/memory.py [--sizes 4096 16384 65536] [--time]
[--dim] [--output DIR]``; ``--output`` writes ``memory.csv`` (and
``time.csv``, ``dim.csv``) for ``docs/_tools/tables.py record memory DIR``.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = (4096, 16384, 65536)
FEATURES = 16
CLASSES = 10


def _labels(n: int):
    import jax.numpy as jnp

    return jnp.arange(n, dtype=jnp.int32) % CLASSES


def _functions():
    import jax.numpy as jnp

    from keras_disentangle import penalties

    def unlabelled(h):
        return penalties.activity_kl_margin(h, 1.0)

    def labelled(h):
        return penalties.activity_kl_margin(h, 1.0, labels=_labels(h.shape[0]))

    def bare(h):
        return jnp.sum(h @ h.T)

    return {
        "activity_kl_margin": unlabelled,
        "labelled": labelled,
        "bare": bare,
    }


def _temp_mib(fn, n: int) -> float:
    import jax
    import jax.numpy as jnp

    h = jax.ShapeDtypeStruct((n, FEATURES), jnp.float32)
    compiled = jax.jit(jax.grad(fn)).lower(h).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _device_blocks(on: bool) -> None:
    """Makes the penalty size its blocks for an accelerator (``on``) or for
    the CPU it runs on."""
    from keras_disentangle import _backend, penalties

    penalties.computes_on_cpu = (
        (lambda x=None: False) if on else _backend.computes_on_cpu
    )


def memory_rows(sizes) -> list[dict]:
    functions = _functions()
    rows = []
    for n in sizes:
        row = {"n": n, "features": FEATURES, "nxn_block_mib": 4 * n * n / 2**20}
        row["bare_mib"] = _temp_mib(functions["bare"], n)
        for blocks in ("cpu", "accelerator"):
            _device_blocks(blocks == "accelerator")
            for name in ("activity_kl_margin", "labelled"):
                started = time.perf_counter()
                row[f"{name}_{blocks}_mib"] = _temp_mib(functions[name], n)
                print(
                    f"N={n} {name} ({blocks} blocks): "
                    f"{row[f'{name}_{blocks}_mib']:.1f} MiB "
                    f"(compiled in {time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
        _device_blocks(False)
        rows.append(row)
    return rows


def time_rows(sizes, repeats: int) -> list[dict]:
    import jax
    import numpy as np

    functions = _functions()
    rows = []
    for n in sizes:
        h = jax.numpy.asarray(
            np.random.default_rng(0).normal(size=(n, FEATURES)).astype("float32")
        )
        steps = {k: jax.jit(jax.grad(f)) for k, f in functions.items()}
        for step in steps.values():
            step(h).block_until_ready()  # compile
        times: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(repeats):  # interleaved, so load hits every one alike
            for name, step in steps.items():
                started = time.perf_counter()
                step(h).block_until_ready()
                times[name].append(time.perf_counter() - started)
        bare = statistics.median(times["bare"])
        for name in ("activity_kl_margin", "labelled"):
            ms = statistics.median(times[name])
            rows.append(
                {
                    "n": n,
                    "penalty": name,
                    "penalty_ms": round(1000 * ms, 1),
                    "bare_ms": round(1000 * bare, 1),
                    "ratio": round(ms / bare, 2),
                }
            )
            print(rows[-1], flush=True)
    return rows


DIM_SHAPES = ((16384, 1), (65536, 1), (4096, 49), (65536, 49))
DIM_WIDTH = 64


def dim_rows() -> list[dict]:
    import jax
    import jax.numpy as jnp

    from keras_disentangle import estimators
    from keras_disentangle.models import deep_info_max

    sizes = {
        "cpu": deep_info_max._CPU_BLOCK_ELEMENTS,
        "accelerator": deep_info_max._DEVICE_BLOCK_ELEMENTS,
        "one_block": None,
    }
    rows = []
    for n, positions in DIM_SHAPES:
        y = jax.ShapeDtypeStruct((n, DIM_WIDTH), jnp.float32)
        m = jax.ShapeDtypeStruct((n, positions, DIM_WIDTH), jnp.float32)
        for estimator in estimators.ESTIMATORS:
            row = {"n": n, "positions": positions, "estimator": estimator}
            for name, elements in sizes.items():
                if elements is None and n * n * positions > 2**28:
                    row[f"{name}_mib"] = ""
                    continue

                def f(y, m, estimator=estimator, elements=elements):
                    return estimators.bilinear_mutual_information(
                        y, m, estimator, block_elements=elements
                    )

                grad = jax.jit(jax.grad(f, argnums=(0, 1)))
                analysis = grad.lower(y, m).compile().memory_analysis()
                row[f"{name}_mib"] = round(analysis.temp_size_in_bytes / 2**20, 1)
            row["scores_mib"] = round(4 * n * n * positions / 2**20)
            print(row, flush=True)
            rows.append(row)
    return rows


def _write(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--time", action="store_true")
    parser.add_argument("--time-max", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dim", action="store_true")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()

    rows = memory_rows(args.sizes)
    print(
        "| N | activity_kl_margin, CPU blocks | labelled, CPU blocks "
        "| activity_kl_margin, accelerator blocks | labelled, accelerator blocks "
        "| bare h @ h.T | one N x N block |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['activity_kl_margin_cpu_mib']:.1f} "
            f"| {r['labelled_cpu_mib']:.1f} "
            f"| {r['activity_kl_margin_accelerator_mib']:.1f} "
            f"| {r['labelled_accelerator_mib']:.1f} | {r['bare_mib']:.1f} "
            f"| {r['nxn_block_mib']:.0f} |"
        )
    timed = []
    if args.time:
        timed = time_rows([n for n in args.sizes if n <= args.time_max], args.repeats)
    dim = dim_rows() if args.dim else []
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        if dim:
            _write(os.path.join(args.output, "dim.csv"), dim)
        for r in rows:
            for key in list(r):
                if key.endswith("_mib"):
                    r[key] = round(r[key], 1)
        _write(os.path.join(args.output, "memory.csv"), rows)
        if timed:
            _write(os.path.join(args.output, "time.csv"), timed)


if __name__ == "__main__":
    main()
