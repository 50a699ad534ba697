"""``keras-disentangle factors``: the papers' penalties under the field's scores.

A convolutional autoencoder (``conv_autoencoder.build_autoencoder``: two
stride-2 ``Conv2D`` (16, 32 filters), ``Dense(64)``, a 10-unit linear code,
the mirrored decoder) reconstructs ``datasets.shapes2d`` images (binary
cross-entropy, Adam 1e-3, batch 64), with no
penalty on the code or with L1 (``keras.regularizers.L1``), DeCov
(``regularizers.DeCov``), L_Sigma (``regularizers.CovarianceL1``) or the
unlabelled KL margin (``regularizers.ActivityKLMargin``, margin 1), each at
two values of λ (a weak and a strong one), over three seeds. Each model's
codes are scored against the known factors (shape, scale, orientation, x,
y) by MIG, SAP, DCI and modularity / explicitness (``scores.factors``,
after disentanglement_lib), and by the papers' own MAPC, CVR and UD_90%.

Data: ``shapes2d(size=32, n_scale=3, n_orientation=6, n_x=6, n_y=6)``,
1,944 binary 32x32 images, all used for training (no labels are used).
Scores: the codes of ``--score-samples`` images drawn with the seed, split
in halves for the classifiers of SAP, DCI and explicitness.

Outputs (``--output``, default ``results/factors``): ``runs.csv`` (one row
per model), ``summary.csv`` (mean, std and a 95% t-interval per penalty and
λ), ``correlations.csv`` (Spearman's rank correlation, over all models, of
each paper score with each field score), ``scores_vs_lambda.png`` and
``traversals.png`` (the best model by MIG: each code unit swept from its 5th
to its 95th percentile around one image).

Default run: 9 settings x 3 seeds, 8 epochs each (about 15-20
minutes on two shared CPU cores; the models are far from converged, so the
table compares penalties after a short training). ``--quick``: a 16x16
grid of 48 images, none and L_Sigma, one seed, one epoch.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

from keras_disentangle.experiments import _common

NAME = "factors"
HELP = (
    "L1, DeCov, L_Sigma and the KL margin on a conv autoencoder of shapes2d, "
    "scored by the field's MIG, SAP, DCI, modularity and the papers' MAPC, "
    "CVR, UD"
)

PENALTIES = ("L1", "DeCov", "L_Sigma", "ActivityKLMargin")
#: λ grids per penalty (each spans the weak to the dominant penalty).
LAMBDAS = {
    "L1": (1e-4, 1e-2),
    "DeCov": (1e-3, 1e-1),
    "L_Sigma": (1e-3, 1e-1),
    "ActivityKLMargin": (1e-3, 1e-1),
}
FIELD = [
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
    "modularity",
    "explicitness",
]
PAPER = ["mapc", "cvr", "ud90"]
METRICS = FIELD + PAPER + ["mse"]
DATA: dict[str, Any] = {
    "size": 32,
    "n_scale": 3,
    "n_orientation": 6,
    "n_x": 6,
    "n_y": 6,
}
QUICK_DATA: dict[str, Any] = {
    "size": 16,
    "n_scale": 2,
    "n_orientation": 2,
    "n_x": 2,
    "n_y": 2,
}


#: The files ``factors`` writes into ``--output`` (glob patterns).
OUTPUTS = (
    "runs.csv",
    "summary.csv",
    "correlations.csv",
    "scores_vs_lambda.png",
    "traversals.png",
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Adds the options of ``keras-disentangle factors``."""
    parser.add_argument(
        "--lambdas",
        type=_common.some_non_negative_floats,
        default=None,
        help="comma-separated λ values for every penalty (default: a grid "
        "per penalty, see the module docstring)",
    )
    parser.add_argument(
        "--penalties",
        type=_common.subset_of(PENALTIES),
        default=",".join(PENALTIES),
        help=f"comma-separated penalties among {', '.join(PENALTIES)}",
    )
    parser.add_argument(
        "--code-units", type=_common.positive_int, default=10, help="code size d"
    )
    parser.add_argument(
        "--score-samples",
        type=_common.int_at_least(20),
        default=800,
        help="codes scored per model (half fit the classifiers)",
    )
    parser.epilog = (
        "--seeds N: seeds 0..N-1 (default 3; --quick 1). --epochs: epochs "
        "per model (default 8; --quick 1)."
    )


def settings(args: argparse.Namespace) -> list[tuple[str, float]]:
    """``("none", 0.0)`` then every (penalty, λ) of the run."""
    names = [p.strip() for p in args.penalties.split(",") if p.strip()]
    for name in names:
        if name not in PENALTIES:
            raise ValueError(
                f"Invalid value for argument --penalties: expected names from "
                f"{list(PENALTIES)}. Received: {name!r}"
            )
    if args.quick and args.penalties == ",".join(PENALTIES):
        names = ["L_Sigma"]
    out = [("none", 0.0)]
    for name in names:
        if args.lambdas:
            grid = tuple(args.lambdas)
        elif args.quick:
            grid = (0.1,)
        else:
            grid = LAMBDAS[name]
        out += [(name, float(v)) for v in grid]
    return out


def make_regularizer(name: str, weight: float):
    """The activity regularizer of the code (None for no penalty)."""
    import keras

    from keras_disentangle import regularizers

    if name == "none" or weight == 0:
        return None
    if name == "L1":
        return keras.regularizers.L1(weight)
    if name == "DeCov":
        return regularizers.DeCov(weight)
    if name == "L_Sigma":
        return regularizers.CovarianceL1(weight)
    return regularizers.ActivityKLMargin(margin=1.0, weight=weight)


def decoder_of(model):
    """The layers after ``"code"`` as a model from codes to images."""
    import keras

    code = model.get_layer("code")
    inputs = keras.Input((code.units,))
    z = inputs
    layers = model.layers[model.layers.index(code) + 1 :]
    for layer in layers:
        z = layer(z)
    decoder = keras.Model(inputs, z)
    decoder.run_eagerly = model.run_eagerly
    return decoder


def codes_and_reconstructions(model, images) -> tuple[np.ndarray, np.ndarray]:
    """The codes and reconstructions of ``images`` in one ``predict``."""
    import keras

    from keras_disentangle._submodel import layer_model

    encoder = layer_model(model, "code", NAME)
    both = keras.Model(model.inputs, [encoder.outputs[0], model.outputs[0]])
    both.run_eagerly = model.run_eagerly
    h, x_hat = both.predict(images, batch_size=512, verbose=0)
    return np.asarray(h, "float64"), np.asarray(x_hat, "float64")


def score_codes(h, x_hat, data, seed: int, n_samples: int) -> dict:
    """The field's and the papers' scores of codes ``h`` of all images."""
    from keras_disentangle import scores

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data), size=min(n_samples, len(data)), replace=False)
    h, f = h[pick], data.factors[pick]
    half = len(pick) // 2
    split = (h[:half], f[:half], h[half:], f[half:])
    d = scores.dci(*split, random_state=seed)
    m = scores.modularity_explicitness(*split)
    return {
        "mig": scores.mig(h, f),
        "sap": scores.sap(*split),
        "dci_disentanglement": d["disentanglement"],
        "dci_completeness": d["completeness"],
        "dci_informativeness": d["informativeness_test"],
        "modularity": m["modularity"],
        "explicitness": m["explicitness_test"],
        "mapc": scores.mapc(h),
        "cvr": scores.cvr(h),
        "ud90": float(scores.utilized_dimensions(h, 0.9)),
        "mse": float(np.mean((x_hat - data.images) ** 2)),
    }


def _t_interval(std: float, n: int) -> float:
    """Half-width of the 95% t-interval of a mean (population ``std``)."""
    if n < 2:
        return float("nan")
    from scipy.stats import t

    sample_std = std * math.sqrt(n / (n - 1))
    return float(t.ppf(0.975, n - 1) * sample_std / math.sqrt(n))


def summarise(rows: list[dict]) -> list[dict]:
    """Mean, std and 95% interval half-width (``<m>_ci``) per setting."""
    out = _common.mean_std(rows, ["penalty", "lambda"], METRICS)
    for row in out:
        for m in METRICS:
            row[m + "_ci"] = _t_interval(row[m + "_std"], row["n"])
    return out


def correlations(rows: list[dict]) -> list[dict]:
    """Spearman's rho over all models of each paper score with each field one."""
    from scipy.stats import spearmanr

    out = []
    for p in PAPER:
        row: dict = {"paper_score": p}
        for f in FIELD:
            a = [r[p] for r in rows]
            b = [r[f] for r in rows]
            rho = spearmanr(a, b).statistic if len(set(a)) > 1 < len(set(b)) else 0
            row[f] = float(rho) if np.isfinite(rho) else float("nan")
        out.append(row)
    return out


def plot_scores(summary: list[dict], path) -> None:
    """Each score against λ (log scale), one line per penalty."""
    fig = _common.new_figure(figsize=(14, 7))
    axes = fig.subplots(2, 5).ravel()
    shown = ["mig", "sap", "dci_disentanglement", "dci_completeness", "modularity"]
    shown += ["explicitness", "mapc", "cvr", "ud90", "mse"]
    none = [r for r in summary if r["penalty"] == "none"]
    for ax, metric in zip(axes, shown, strict=True):
        for penalty in dict.fromkeys(r["penalty"] for r in summary):
            if penalty == "none":
                continue
            rows = [r for r in summary if r["penalty"] == penalty]
            lam = [r["lambda"] for r in rows]
            mean = np.array([r[metric] for r in rows])
            ci = np.nan_to_num(np.array([r[metric + "_ci"] for r in rows]))
            ax.errorbar(lam, mean, yerr=ci, marker="o", capsize=3, label=penalty)
        if none:
            ax.axhline(none[0][metric], color="k", ls="--", label="none")
        ax.set_xscale("log")
        ax.set_title(metric)
        ax.set_xlabel("λ")
    axes[0].legend(fontsize=7)
    fig.set_layout_engine("tight")
    _common.save_figure(fig, path)


def plot_traversals(model, h, path, title: str, steps: int = 7) -> None:
    """Each code unit swept from its 5th to 95th percentile around one image."""
    decoder = decoder_of(model)
    base = h[len(h) // 2]
    lo, hi = np.percentile(h, 5, axis=0), np.percentile(h, 95, axis=0)
    d = h.shape[1]
    codes = np.repeat(base[None, None, :], d * steps, axis=0).reshape(d, steps, d)
    for i in range(d):
        codes[i, :, i] = np.linspace(lo[i], hi[i], steps)
    images = decoder.predict(codes.reshape(-1, d), verbose=0)
    images = np.asarray(images).reshape(d, steps, *images.shape[1:3])
    # One mosaic (rows: code units, columns: steps), one pixel of grey between.
    height, width = images.shape[2:]
    mosaic = np.full((d * (height + 1), steps * (width + 1)), 0.5)
    for i in range(d):
        for j in range(steps):
            top, left = i * (height + 1), j * (width + 1)
            mosaic[top : top + height, left : left + width] = images[i, j]
    fig = _common.new_figure(figsize=(steps * 0.9, d * 0.9))
    ax = fig.add_subplot()
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([(height + 1) * i + height / 2 for i in range(d)])
    ax.set_yticklabels([f"z{i}" for i in range(d)], fontsize=7)
    ax.set_title(title, fontsize=8)
    _common.save_figure(fig, path)


def main(args: argparse.Namespace) -> int:
    """Trains, scores, prints the table and writes the files."""
    import keras

    from keras_disentangle.datasets import shapes2d
    from keras_disentangle.experiments.conv_autoencoder import build_autoencoder

    try:
        runs = settings(args)
    except ValueError as error:
        return _common.fail(str(error), 2)
    quiet = getattr(args, "verbose", 1) == 0
    epochs = int(_common.pick(args.epochs, 8, 1, args.quick))
    seeds = _common.seed_list(args, 3, 1)
    data = shapes2d(**(QUICK_DATA if args.quick else DATA))
    out = _common.output_dir(args, NAME)
    bar = _common.RunProgress(len(runs) * len(seeds) * epochs, NAME, enabled=not quiet)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    best: tuple[dict[str, Any], Any, np.ndarray] | None = None
    for seed in seeds:
        for penalty, weight in runs:
            _common.set_seed(seed)
            model = build_autoencoder(
                make_regularizer(penalty, weight),
                input_shape=data.images.shape[1:],
                filters=(16, 32),
                hidden=64,
                code_units=args.code_units,
            )
            # Binary sprites on black: with MSE the decoder settles on the
            # black image within an epoch; the Bernoulli likelihood (binary
            # cross-entropy, as disentanglement_lib trains on dSprites) does not.
            # --quick: 3 batches per model, less than tracing the functions.
            model.compile(
                keras.optimizers.Adam(1e-3),
                "binary_crossentropy",
                metrics=["mse"],
                run_eagerly=bool(args.quick),
            )
            order = np.random.default_rng(seed).permutation(len(data))
            model.fit(
                data.images[order],
                data.images[order],
                batch_size=64,
                epochs=epochs,
                verbose=_common.fit_verbose(args),
                callbacks=[bar.callback()],
            )
            row = {"penalty": penalty, "lambda": weight, "seed": seed}
            h, x_hat = codes_and_reconstructions(model, data.images)
            row.update(score_codes(h, x_hat, data, seed, args.score_samples))
            rows.append(row)
            if best is None or row["mig"] > best[0]["mig"]:
                best = (row, model, h)
            _common.progress(
                f"{penalty} λ={weight:g} seed {seed}: MIG {row['mig']:.3f}, "
                f"DCI-D {row['dci_disentanglement']:.3f}, MAPC {row['mapc']:.3f}",
                quiet,
            )
    bar.close()
    summary = summarise(rows)
    columns = ["penalty", "lambda"]
    for m in ["mig", "sap", "dci_disentanglement", "modularity", "mapc", "cvr"]:
        columns += [m, m + "_ci"]
    columns += ["ud90", "mse", "n"]
    _common.print_table(summary, columns, title="Scores (mean, 95% CI)", quiet=quiet)
    corr = correlations(rows)
    _common.print_table(
        corr,
        ["paper_score"] + FIELD,
        title="Spearman rho over all models (paper score vs field score)",
        quiet=quiet,
    )
    _common.write_csv(rows, out / "runs.csv", ["penalty", "lambda", "seed"] + METRICS)
    _common.write_csv(summary, out / "summary.csv")
    _common.write_csv(corr, out / "correlations.csv")
    plot_scores(summary, out / "scores_vs_lambda.png")
    if best is not None:  # runs and seeds are never empty
        row, model, h = best
        plot_traversals(
            model,
            h,
            out / "traversals.png",
            f"{row['penalty']} λ={row['lambda']:g} seed {row['seed']}: "
            f"MIG {row['mig']:.3f}",
        )
    _common.progress(
        f"{len(rows)} models in {time.perf_counter() - start:.0f}s; files in {out}",
        quiet,
    )
    return 0
