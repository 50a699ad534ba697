"""``keras-disentangle xor``: Kågebäck & Mogren (2018), section 3.3.

A network with two hidden layers of 4 logistic (sigmoid) units and one
sigmoid output learns XOR from its four examples, with and without L_Sigma
(``regularizers.CovarianceL1``, λ = 0.2) on both hidden layers. The paper
reports that with L_Sigma only 2 units of layer 1 and 1 unit of layer 2 stay
active.

Active unit: a unit whose variance over the four examples is at least 1% of
its layer's total variance (``--active-fraction``). A saturated unit that
gives (almost) the same output for every input carries no information and is
not active. UD_90% (the fewest units holding 90% of the layer's variance) is
reported beside the count.

Training: full batch (the four examples), binary cross-entropy, Adam with
learning rate 0.01, 30,000 steps (``--epochs`` counts steps of the full
batch), each seed from its own initialisation; both variants start from the
same initial weights for a seed. Convergence matters: after 10,000 steps the
second layer still had 2 units above the 1% line in 2 of 5 seeds (the
second one fading, at 8-10% of the variance); after 30,000 steps all 5 seeds
had 2 and 1.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from keras_disentangle.experiments import _common

NAME = "xor"
HELP = (
    "Kågebäck & Mogren (2018) section 3.3: XOR with two hidden layers of 4 "
    "logistic units, with and without L_Sigma; covariances, spectra and "
    "active units"
)

COLUMNS = [
    "variant",
    "seed",
    "accuracy",
    "loss",
    "active_1",
    "active_2",
    "ud90_1",
    "ud90_2",
    "cvr_1",
    "cvr_2",
]
SUMMARY_COLUMNS = [
    "variant",
    "accuracy",
    "active_1",
    "active_1_std",
    "active_2",
    "active_2_std",
    "ud90_1",
    "ud90_2",
    "cvr_1",
    "cvr_2",
    "n",
]


#: The files ``xor`` writes into ``--output`` (glob patterns).
OUTPUTS = ("xor.csv", "xor_runs.csv", "xor_seed*.png")


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``keras-disentangle xor``."""
    parser.add_argument(
        "--weight",
        type=_common.non_negative_float,
        default=0.2,
        help="L_Sigma weight λ on both layers (0: no penalty, the L_Sigma row "
        "is then the baseline)",
    )
    parser.add_argument(
        "--units", type=_common.positive_int, default=4, help="units per layer"
    )
    parser.add_argument(
        "--learning-rate",
        type=_common.positive_float,
        default=0.01,
        help="Adam's learning rate",
    )
    parser.add_argument(
        "--active-fraction",
        type=_common.fraction,
        default=0.01,
        help="a unit is active when its variance is at least this share of "
        "its layer's total variance",
    )
    parser.epilog = (
        "--seeds N: initialisations 0..N-1 (default 5; --quick 1). --epochs: "
        "full-batch steps (default 30000; --quick 2000)."
    )


def build_model(units: int, weight: float, seed: int) -> tuple:
    """Two sigmoid hidden layers (``hidden_1``, ``hidden_2``) and an output."""
    import keras

    from keras_disentangle.regularizers import CovarianceL1

    _common.set_seed(seed)

    def regularizer():
        return CovarianceL1(weight) if weight > 0 else None

    inputs = keras.Input((2,))
    h1 = keras.layers.Dense(
        units, "sigmoid", activity_regularizer=regularizer(), name="hidden_1"
    )(inputs)
    h2 = keras.layers.Dense(
        units, "sigmoid", activity_regularizer=regularizer(), name="hidden_2"
    )(h1)
    outputs = keras.layers.Dense(1, "sigmoid", name="output")(h2)
    return keras.Model(inputs, outputs), keras.Model(inputs, [h1, h2])


def train(
    x: np.ndarray,
    y: np.ndarray,
    *,
    units: int,
    weight: float,
    steps: int,
    learning_rate: float,
    seed: int,
    verbose: int = 0,
    callbacks: list | None = None,
) -> tuple:
    """Full-batch training; returns ``(model, hidden_model)``.

    The ``steps`` full-batch steps run as ``chunk_count(steps)`` Keras epochs
    over the four examples tiled in order (NumPy arrays, no shuffle: every
    batch is the full batch), so it runs on every Keras backend.
    """
    import keras

    model, hidden = build_model(units, weight, seed)
    chunks = _common.chunk_count(steps)
    per_chunk = steps // chunks
    model.compile(
        keras.optimizers.Adam(learning_rate),
        "binary_crossentropy",
        jit_compile=True,
        steps_per_execution=_common.steps_per_execution(min(per_chunk, 500)),
    )
    model.fit(
        np.tile(x, (per_chunk, 1)),
        np.tile(y[:, None], (per_chunk, 1)),
        batch_size=len(x),
        epochs=chunks,
        verbose=verbose,
        shuffle=False,
        callbacks=callbacks,
    )
    return model, hidden


def _plot_layers(hidden_by_variant, path, title):
    """Covariance matrices (top) and variance spectra (bottom) per layer."""
    variants = list(hidden_by_variant)
    fig = _common.new_figure(figsize=(4.0 * 2 * len(variants), 7.0))
    axes = fig.subplots(2, 2 * len(variants), squeeze=False)
    for v, variant in enumerate(variants):
        for layer, h in enumerate(hidden_by_variant[variant]):
            col = 2 * v + layer
            c = np.cov(np.asarray(h, dtype="float64"), rowvar=False)
            limit = float(np.abs(c).max()) or 1.0
            image = axes[0, col].imshow(c, cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes[0, col].set_title(f"{variant}: layer {layer + 1} covariance")
            axes[0, col].set_xlabel("unit")
            axes[0, col].set_xticks(range(len(c)))
            axes[0, col].set_yticks(range(len(c)))
            fig.colorbar(image, ax=axes[0, col], shrink=0.8)
            spectrum = np.sort(np.diag(c))[::-1]
            axes[1, col].bar(np.arange(1, len(spectrum) + 1), spectrum)
            axes[1, col].set_title(f"{variant}: layer {layer + 1} variances")
            axes[1, col].set_xlabel("unit (sorted)")
    fig.suptitle(title)
    return _common.save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    """Runs the experiment; returns 0."""
    from keras_disentangle import datasets

    out = _common.output_dir(args, NAME)
    seeds = _common.seed_list(args, default=5, quick_default=1)
    steps = _common.pick(args.epochs, 30000, 2000, args.quick)
    x, y = datasets.xor()
    variants = (("baseline", 0.0), ("L_Sigma", args.weight))
    _common.progress(
        f"xor: {len(seeds)} seed(s) x 2 variants, {steps} full-batch steps; "
        f"output in {out}"
    )
    start = time.perf_counter()
    bar = _common.RunProgress(
        len(seeds) * len(variants) * _common.chunk_count(steps),
        NAME,
        enabled=args.verbose == 1,
    )
    try:
        rows = _runs(args, seeds, variants, steps, x, y, out, bar)
    finally:
        bar.close()
    _report(args, rows, seeds, start, out)
    return 0


def _runs(args, seeds, variants, steps, x, y, out, bar) -> list:
    """Trains both variants for every seed; one row per run."""
    from keras_disentangle import scores

    rows = []
    for seed in seeds:
        hidden_by_variant = {}
        for variant, weight in variants:
            model, hidden = train(
                x,
                y,
                units=args.units,
                weight=weight,
                steps=steps,
                learning_rate=args.learning_rate,
                seed=seed,
                verbose=_common.fit_verbose(args),
                callbacks=[bar.callback()],
            )
            p = model.predict(x, verbose=0)[:, 0]
            h1, h2 = (np.asarray(h) for h in hidden.predict(x, verbose=0))
            hidden_by_variant[variant] = (h1, h2)
            q = np.clip(p.astype("float64"), 1e-7, 1 - 1e-7)
            loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
            row = {
                "variant": variant,
                "weight": weight,
                "seed": seed,
                "accuracy": float(np.mean((p > 0.5) == (y > 0.5))),
                "loss": float(loss),
            }
            for layer, h in ((1, h1), (2, h2)):
                row[f"active_{layer}"] = scores.active_units(h, args.active_fraction)
                row[f"ud90_{layer}"] = scores.utilized_dimensions(h)
                row[f"cvr_{layer}"] = scores.cvr(h)
                row[f"variances_{layer}"] = " ".join(
                    f"{v:.2e}" for v in np.var(h, axis=0, ddof=1)
                )
            rows.append(row)
            _common.progress(
                f"  seed {seed} {variant:8s} accuracy={row['accuracy']:.2f} "
                f"loss={row['loss']:.3f} active units {row['active_1']} / "
                f"{row['active_2']}"
            )
            if seed == seeds[0]:
                for layer, h in ((1, h1), (2, h2)):
                    c = np.cov(np.asarray(h, dtype="float64"), rowvar=False)
                    _common.progress(
                        f"    layer {layer} covariance:\n"
                        + np.array2string(c, precision=4, suppress_small=True)
                    )
        _plot_layers(
            hidden_by_variant,
            out / f"xor_seed{seed}.png",
            f"XOR, seed {seed}: hidden layers without and with L_Sigma "
            f"(λ = {args.weight:g})",
        )
    return rows


def _report(args, rows, seeds, start, out) -> None:
    """Prints the tables and writes the CSV files."""
    _common.print_table(rows, COLUMNS, title="\nXOR, per seed")
    summary = _common.mean_std(
        rows,
        ["variant"],
        ["accuracy", "active_1", "active_2", "ud90_1", "ud90_2", "cvr_1", "cvr_2"],
    )
    _common.print_table(
        summary,
        SUMMARY_COLUMNS,
        title=(
            f"\nXOR, mean over {len(seeds)} seed(s) "
            f"({time.perf_counter() - start:.0f}s); the paper: 2 active units "
            "in layer 1 and 1 in layer 2 with L_Sigma"
        ),
    )
    _common.write_csv(rows, out / "xor_runs.csv")
    _common.write_csv(summary, out / "xor.csv")
    _common.progress(f"wrote {out}/xor.csv, xor_runs.csv and xor_seed*.png")
