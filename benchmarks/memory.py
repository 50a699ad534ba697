"""Peak memory of the pairwise hinge's step against the global batch size.

For N = 4,096 / 16,384 / 65,536 samples of k = 16 features it asks XLA (JAX
on the CPU) how much temporary memory one forward + gradient of
``penalties.activity_kl_margin`` needs, from the compiled program
(``jax.jit(f).lower(h).compile().memory_analysis()``: nothing is run, so
sizes beyond the machine's memory are measured too), beside a bare
``sum(h @ h.T)`` forward + gradient and one float32 ``N x N`` block.

Run: ``python benchmarks/memory.py [--sizes 4096 16384]``. Measured on the
shared 2-core CPU (docs/distributed.md): 66 / 1030 MiB at N = 4,096 /
16,384, i.e. about one ``N x N`` float32 block: the memory is NOT bounded
today. At N = 65,536 the program did not finish compiling in 8 minutes:
on the CPU the column slices of the block (about 2^19 pairs each) are a
Python loop, 8,192 slices unrolled into the program at that size.
"""

from __future__ import annotations

import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = (4096, 16384, 65536)
FEATURES = 16


def _temp_mib(fn, n: int) -> float:
    import jax
    import jax.numpy as jnp

    h = jax.ShapeDtypeStruct((n, FEATURES), jnp.float32)
    compiled = jax.jit(jax.grad(fn)).lower(h).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def main() -> None:
    import argparse

    import jax.numpy as jnp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    sizes = parser.parse_args().sizes

    from keras_disentangle import penalties

    def hinge(h):
        return penalties.activity_kl_margin(h, 1.0)

    def bare(h):
        return jnp.sum(h @ h.T)

    print(
        "| N | activity_kl_margin step (MiB) | bare h @ h.T step (MiB) "
        "| one N x N float32 block (MiB) |"
    )
    print("|---|---|---|---|")
    for n in sizes:
        print(
            f"| {n} | {_temp_mib(hinge, n):.0f} | {_temp_mib(bare, n):.0f} "
            f"| {4 * n * n / 2**20:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
