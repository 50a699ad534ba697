"""``keras-disentangle covariance``: Kågebäck & Mogren (2018), section 3.2.

A linear autoencoder (``dim -> 10 linear units -> dim``) reconstructs data of
intrinsic dimension 4: independent Gaussian factors with variances 4, 2, 1,
0.5 pushed through a random linear map to 20 dimensions
(``datasets.random_projection``). L_Sigma (``regularizers.CovarianceL1``) on
the 10-unit code should make its covariance diagonal and concentrate the
variance in as many units as there are factors, at a small cost in
reconstruction. L1 activity regularisation (``keras.regularizers.L1``, λ in
0.001, 0.01, 0.1, 1) is run for comparison, as in the paper.

For each projection (seed) and each λ (0 and 8 values log-spaced from 0.001
to 1) the code of held-out samples is scored: relative MSE (MSE over the mean
per-feature variance of the data), MAPC over all units and over the live ones
(units holding at least 1% of the code's variance), CVR, TdV (d = 4) and
UD_90% (``keras_disentangle.metrics``).

Training: full data standardised by one scalar (the geometry is kept), 8,000
samples for training and 2,000 held out, Adam with learning rate 0.01 (divided
by 3 after 70% and by 10 after 90% of the steps), mini-batches of 1,000
reshuffled every epoch, 2,000 epochs (16,000 steps). L_Sigma is slow to act at
small λ: fewer steps leave the code only partly diagonal.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from keras_disentangle.experiments import _common

NAME = "covariance"
HELP = (
    "Kågebäck & Mogren (2018) section 3.2: linear autoencoder with L_Sigma "
    "(vs L1) on a 10-unit code of a random projection; MSE, MAPC, CVR, TdV, "
    "UD_90% against λ"
)

#: λ = 0 and 8 values log-spaced from 0.001 to 1.
LAMBDAS = (0.0,) + tuple(float(v) for v in np.logspace(-3, 0, 8))
#: L1 activity weights of the comparison (fewer, to keep the run short).
L1_LAMBDAS = (0.001, 0.01, 0.1, 1.0)
QUICK_LAMBDAS = (0.0, 1.0)
QUICK_L1_LAMBDAS = (1.0,)

COLUMNS = [
    "regularizer",
    "lambda",
    "mse",
    "mapc",
    "mapc_live",
    "cvr",
    "tdv",
    "ud90",
]
METRICS = ["mse", "mapc", "mapc_live", "cvr", "tdv", "ud90"]

#: A unit is live when it holds at least this share of the code's variance.
LIVE_FRACTION = 0.01


#: The files ``covariance`` writes into ``--output`` (glob patterns).
OUTPUTS = (
    "covariance.csv",
    "covariance_runs.csv",
    "covariance_metrics.png",
    "covariance_code_*.png",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``keras-disentangle covariance``."""
    parser.add_argument(
        "--lambdas",
        type=_common.some_non_negative_floats,
        default=None,
        help="comma-separated L_Sigma weights (default: 0 and 8 values "
        "log-spaced from 0.001 to 1; --quick: 0,1)",
    )
    parser.add_argument(
        "--l1-lambdas",
        type=_common.non_negative_floats,
        default=None,
        help="comma-separated L1 activity weights for the comparison "
        "(default: 0.001,0.01,0.1,1; --quick: 1; empty string: no L1 runs)",
    )
    parser.add_argument(
        "--n", type=_common.int_at_least(10), default=10000, help="samples"
    )
    parser.add_argument(
        "--dim", type=_common.positive_int, default=20, help="data dimension"
    )
    parser.add_argument(
        "--variances",
        type=_common.positive_floats,
        default=(4.0, 2.0, 1.0, 0.5),
        help="factor variances (their number is d)",
    )
    parser.add_argument(
        "--units", type=_common.positive_int, default=10, help="code units"
    )
    parser.add_argument(
        "--batch-size",
        type=_common.positive_int,
        default=1000,
        help="mini-batch size",
    )
    parser.add_argument(
        "--learning-rate",
        type=_common.positive_float,
        default=0.01,
        help="Adam's learning rate",
    )
    parser.epilog = (
        "--seeds N: number of random projections (default 3; --quick 1). "
        "--epochs: default 2000 (--quick 100)."
    )


def _dataset(x: np.ndarray, batch_size: int, epochs: int, seed: int) -> tuple:
    """``(x, x)`` mini-batches, reshuffled every epoch, as a Keras PyDataset.

    Batch ``i`` of the whole run (``epochs x n_batches`` of them) is batch
    ``i % n_batches`` of the permutation ``default_rng([seed, epoch])`` of
    the samples (the last ``len(x) % batch_size`` samples of the array are
    left out). Plain NumPy, so the same batches reach every Keras backend.

    Returns:
        ``(dataset, n_batches)``: a ``keras.utils.PyDataset`` of
        ``epochs * n_batches`` batches, and the batches per epoch.
    """
    import keras

    n_batches = len(x) // batch_size
    x = np.asarray(x[: n_batches * batch_size])

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self._epoch, self._order = -1, np.arange(len(x))

        def __len__(self):
            return epochs * n_batches

        def __getitem__(self, index):
            epoch, batch = divmod(int(index), n_batches)
            if epoch != self._epoch:
                rng = np.random.default_rng([seed, epoch])
                self._epoch, self._order = epoch, rng.permutation(len(x))
            rows = x[self._order[batch * batch_size : (batch + 1) * batch_size]]
            return rows, rows

    return Batches(), n_batches


def train_autoencoder(
    x_train: np.ndarray,
    regularizer: Any,
    *,
    units: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    verbose: int = 0,
    callbacks: list | None = None,
) -> tuple:
    """Fits the linear autoencoder; returns ``(autoencoder, encoder)``."""
    import keras

    _common.set_seed(seed)
    dim = x_train.shape[1]
    inputs = keras.Input((dim,))
    code = keras.layers.Dense(units, activity_regularizer=regularizer, name="code")(
        inputs
    )
    outputs = keras.layers.Dense(dim, name="reconstruction")(code)
    model = keras.Model(inputs, outputs)
    ds, steps_per_epoch = _dataset(x_train, batch_size, epochs, seed)
    total = steps_per_epoch * epochs
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [int(0.7 * total), int(0.9 * total)],
        [learning_rate, learning_rate / 3, learning_rate / 10],
    )
    model.compile(
        keras.optimizers.Adam(schedule),
        "mse",
        jit_compile=True,
        steps_per_execution=_common.steps_per_execution(min(total, 200)),
    )
    # One Keras "epoch" per 10% of the steps keeps the loop overhead small.
    chunks = _common.chunk_count(total)
    model.fit(
        ds,
        steps_per_epoch=total // chunks,
        epochs=chunks,
        verbose=verbose,
        shuffle=False,  # the dataset reshuffles every epoch
        callbacks=callbacks,
    )
    return model, keras.Model(inputs, code)


def score(h: np.ndarray, x: np.ndarray, x_hat: np.ndarray, d: int = 4) -> dict:
    """The row of scores of one code ``h`` of held-out data ``x``.

    ``d`` is the number of factors (TdV's ``d``, capped at the code units).
    """
    from keras_disentangle import scores

    variance = float(np.mean(np.var(x, axis=0)))
    return {
        "mse": float(np.mean((x_hat - x) ** 2)) / variance,
        "mapc": scores.mapc(h),
        "mapc_live": scores.mapc(h, min_variance_fraction=LIVE_FRACTION),
        "cvr": scores.cvr(h),
        "tdv": scores.tdv(h, min(d, h.shape[1])),
        "ud90": scores.utilized_dimensions(h, fraction=0.9),
    }


def _plot_metrics(table, path):
    fig = _common.new_figure(figsize=(13.0, 6.5))
    axes = fig.subplots(2, 3).ravel()
    names = {
        "mse": "relative MSE",
        "mapc": "MAPC (all units)",
        "mapc_live": f"MAPC (units >= {LIVE_FRACTION:.0%} of variance)",
        "cvr": "CVR",
        "tdv": "TdV (d = number of factors)",
        "ud90": "UD_90%",
    }
    nonzero = [r["lambda"] for r in table if r["lambda"] > 0]
    zero_at = min(nonzero) / 3 if nonzero else 1e-4
    for ax, metric in zip(axes, METRICS, strict=True):
        for reg, marker in (("L_Sigma", "o"), ("L1", "s")):
            rows = [r for r in table if r["regularizer"] in (reg, "none")]
            if reg == "L1" and not any(r["regularizer"] == "L1" for r in rows):
                continue
            rows = sorted(rows, key=lambda r: r["lambda"])
            lam = [r["lambda"] if r["lambda"] > 0 else zero_at for r in rows]
            ax.errorbar(
                lam,
                [r[metric] for r in rows],
                yerr=[r[metric + "_std"] for r in rows],
                marker=marker,
                capsize=3,
                label=reg,
            )
        ax.set_xscale("log")
        if metric == "mse":
            ax.set_yscale("log")
        ax.set_title(names[metric])
        ax.set_xlabel(f"λ (λ = 0 drawn at {zero_at:.1e})")
        ax.legend()
    fig.suptitle("Linear autoencoder, 10-unit code: scores against λ")
    return _common.save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    """Runs the experiment; returns 0 (2 for a bad ``--lambdas``)."""
    seeds = _common.seed_list(args, default=3, quick_default=1)
    epochs = _common.pick(args.epochs, 2000, 100, args.quick)
    lambdas = _common.pick(args.lambdas, LAMBDAS, QUICK_LAMBDAS, args.quick)
    l1_lambdas = _common.pick(args.l1_lambdas, L1_LAMBDAS, QUICK_L1_LAMBDAS, args.quick)
    if not lambdas or min(lambdas + tuple(l1_lambdas)) < 0:
        return _common.fail(
            "covariance: argument --lambdas: expected one or more numbers >= 0 "
            f"(and --l1-lambdas >= 0). Received: --lambdas={lambdas}, "
            f"--l1-lambdas={l1_lambdas}",
            2,
        )
    out = _common.output_dir(args, NAME)
    runs = [("L_Sigma", lam) for lam in lambdas]
    runs += [("L1", lam) for lam in l1_lambdas if lam > 0]
    _common.progress(
        f"covariance: {len(seeds)} projection(s) x {len(runs)} runs, "
        f"{epochs} epochs each; output in {out}"
    )
    n_train = int(0.8 * args.n)
    batch_size = min(args.batch_size, n_train)
    chunks = _common.chunk_count(n_train // batch_size * epochs)
    bar = _common.RunProgress(
        len(seeds) * len(runs) * chunks, NAME, enabled=args.verbose == 1
    )
    start = time.perf_counter()
    try:
        rows, codes = _runs(args, seeds, runs, epochs, batch_size, bar)
    finally:
        bar.close()
    _report(args, rows, codes, lambdas, start, out)
    return 0


def _runs(args, seeds, runs, epochs, batch_size, bar) -> tuple:
    """Trains every run on every projection; per-run rows and codes."""
    import keras

    from keras_disentangle import datasets
    from keras_disentangle.regularizers import CovarianceL1

    rows = []
    codes = {}
    for seed in seeds:
        data = datasets.random_projection(
            n=args.n,
            d=len(args.variances),
            dim=args.dim,
            variances=args.variances,
            seed=seed,
        )
        x = data.x / data.x.std()
        n_train = int(0.8 * len(x))
        x_train, x_test = x[:n_train], x[n_train:]
        for reg_name, lam in runs:
            if lam == 0:
                regularizer, reg_name = None, "none"
            elif reg_name == "L_Sigma":
                regularizer = CovarianceL1(lam)
            else:
                regularizer = keras.regularizers.L1(lam)
            t0 = time.perf_counter()
            model, encoder = train_autoencoder(
                x_train,
                regularizer,
                units=args.units,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=args.learning_rate,
                seed=seed,
                verbose=_common.fit_verbose(args),
                callbacks=[bar.callback()],
            )
            h = encoder.predict(x_test, verbose=0)
            x_hat = model.predict(x_test, verbose=0)
            row = {"regularizer": reg_name, "lambda": lam, "seed": seed}
            row.update(score(h, x_test, x_hat, d=len(args.variances)))
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if seed == seeds[0]:
                codes[(reg_name, lam)] = h
            _common.progress(
                f"  projection {seed} {reg_name:7s} λ={lam:<8.4g} "
                f"mse={row['mse']:.2e} cvr={row['cvr']:.3f} "
                f"tdv={row['tdv']:.3f} ud90={row['ud90']} "
                f"({row['seconds']:.1f}s)"
            )
    return rows, codes


def _report(args, rows, codes, lambdas, start, out) -> None:
    """Prints the table, writes the CSV files and the plots."""
    from keras_disentangle import plots

    table = _common.mean_std(rows, ["regularizer", "lambda"], METRICS)
    _common.print_table(
        [{**r, "lambda": f"{r['lambda']:.3g}"} for r in table],
        COLUMNS + ["ud90_std"],
        title=(
            f"\nLinear autoencoder, {args.units}-unit code, mean over "
            f"{len({r['seed'] for r in rows})} projection(s) "
            f"({time.perf_counter() - start:.0f}s)"
        ),
    )
    _common.write_csv(rows, out / "covariance_runs.csv")
    _common.write_csv(table, out / "covariance.csv")
    _plot_metrics(table, out / "covariance_metrics.png")
    largest = max(lambdas)
    for key, name in ((("none", 0.0), "lambda0"), (("L_Sigma", largest), "lsigma")):
        if key in codes:
            fig = plots.covariance_image(
                codes[key], title=f"code covariance, {key[0]} λ = {key[1]:g}"
            )
            _common.save_figure(fig, out / f"covariance_code_{name}.png")
    _common.progress(f"wrote {out}/covariance.csv, covariance_runs.csv and PNGs")
