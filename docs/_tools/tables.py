"""Measured tables in README.md and docs/, written from the result CSVs.

Every measured table of the documentation is a block between two markers::

    <!-- table: forced_to_learn -->
    ... (written by this script; do not edit by hand) ...
    <!-- /table -->

and its content is rendered from the CSV files of one run, kept in the
repository under ``docs/results/<run>/`` together with ``meta.json`` (the
command, the package version and commit, the library versions and the
machine it ran on). So the documented numbers are what the code printed,
and a test (``tests/test_docs_tables.py``) fails when a block differs from
what its CSV gives.

    python docs/_tools/tables.py record forced_to_learn /tmp/ftl10 \\
        --command "keras-disentangle forced-to-learn --seeds 10"
    python docs/_tools/tables.py write    # rewrite every block
    python docs/_tools/tables.py check    # exit 1 and a diff if one is stale

``record`` copies the run's CSV files into ``docs/results/<run>/`` and
writes ``meta.json`` from this machine and checkout (run it on the machine
and checkout that produced the files).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import difflib
import importlib.metadata
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the experiments import Keras
ROOT = pathlib.Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
if str(ROOT) not in sys.path:  # the checkout's experiments (statistics, papers)
    sys.path.insert(0, str(ROOT))

BLOCK = re.compile(
    r"(?P<open>^(?P<indent>[ ]*)<!-- table: (?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)"
    r"(?P<close>^[ ]*<!-- /table -->)",
    re.S | re.M,
)

# ---------------------------------------------------------------- recording


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _cpu() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """``"2-core x86_64 (AMD EPYC), Linux"``: what the numbers ran on."""
    return f"{os.cpu_count()}-core {platform.machine()} ({_cpu()}), {platform.system()}"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "-"


#: Columns left out of recorded CSVs: wall-clock times, which no rerun repeats.
DROPPED = ("seconds",)


def record(
    run: str, source: pathlib.Path, command: str, backend: str, commit: str | None
) -> None:
    """Copies ``source``'s CSV files to ``docs/results/<run>/`` with meta.json
    (without the :data:`DROPPED` columns)."""
    target = RESULTS / run
    target.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in source.glob("*.csv"))
    if not names:
        raise SystemExit(f"no CSV file in {source}")
    for name in names:
        with open(source / name, newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = [c for c in (rows[0] if rows else {}) if c not in DROPPED]
        with open(target / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    meta = {
        "command": command,
        "keras_disentangle": _version("keras_disentangle"),
        "commit": commit or _commit(),
        "backend": backend,
        "keras": _version("keras"),
        "tensorflow": _version("tensorflow"),
        "jax": _version("jax"),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "python": platform.python_version(),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "files": names,
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"recorded {', '.join(names)} in {target}")


# ---------------------------------------------------------------- reading


def read_csv(run: str, name: str) -> list[dict]:
    with open(RESULTS / run / name, newline="") as handle:
        return list(csv.DictReader(handle))


def read_meta(run: str) -> dict:
    return json.loads((RESULTS / run / "meta.json").read_text())


def provenance(run: str) -> str:
    """One line: the command, versions and machine of a recorded run."""
    meta = read_meta(run)
    libraries = f"Keras {meta['keras']}"
    backend = meta.get("backend", "tensorflow")
    if backend in ("tensorflow", "jax", "torch"):
        libraries += f", {backend} {meta.get(backend, '-')}"
    return (
        f"Measured with `{meta['command']}` on keras_disentangle "
        f"{meta['keras_disentangle']} (commit {meta['commit']}), {libraries}, "
        f"Python {meta['python']}, {meta['machine']}, {meta['date']}; "
        f"CSVs in `docs/results/{run}/`."
    )


def f3(value: float | str) -> str:
    """``0.123`` for a float (three decimals)."""
    return f"{float(value):.3f}"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- tables


def _forced_to_learn_runs() -> tuple[list[dict], list[str]]:
    from keras_disentangle.experiments import forced_to_learn as ftl

    rows = read_csv("forced_to_learn", "forced_to_learn.csv")
    variants = [v for v in ftl.VARIANTS if any(r["variant"] == v for r in rows)]
    return rows, variants


def forced_to_learn() -> str:
    """Table 1: mean, 95% interval, per-seed values and the paper's numbers."""
    from keras_disentangle.experiments import _stats
    from keras_disentangle.experiments import forced_to_learn as ftl

    rows, variants = _forced_to_learn_runs()
    body = []
    for variant in variants:
        runs = [r for r in rows if r["variant"] == variant]
        ami = _stats.t_interval([float(r["ami"]) for r in runs])
        nmi = _stats.t_interval([float(r["nmi"]) for r in runs])
        acc = _stats.t_interval([float(r["binary_acc"]) for r in runs])
        paper_ami, paper_nmi = ftl.PAPER[variant]
        body.append(
            [
                variant,
                runs[0]["hyperparameters"] or "-",
                f"{f3(ami['mean'])} [{f3(ami['low'])}, {f3(ami['high'])}]",
                f3(paper_ami),
                f"{f3(nmi['mean'])} [{f3(nmi['low'])}, {f3(nmi['high'])}]",
                f3(paper_nmi),
                f"{f3(acc['mean'])} ± {f3(acc['std'])}",
            ]
        )
    seeds = sorted({int(r["seed"]) for r in rows})
    table = markdown(
        [
            "variant",
            "hyperparameters",
            "test AMI [95% CI]",
            "paper AMI",
            "test NMI [95% CI]",
            "paper NMI",
            "binary acc ± std",
        ],
        body,
    )
    return (
        f"{table}\n\nMean over {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}) with "
        "the Student-t 95% interval of the mean; the paper's Table 1 beside it.\n"
        f"{provenance('forced_to_learn')}\n"
    )


def forced_to_learn_seeds() -> str:
    """Per-seed test AMI of every variant."""
    rows, variants = _forced_to_learn_runs()
    seeds = sorted({int(r["seed"]) for r in rows})
    value = {(r["variant"], int(r["seed"])): float(r["ami"]) for r in rows}
    body = [
        [str(s)] + [f3(value[(v, s)]) if (v, s) in value else "-" for v in variants]
        for s in seeds
    ]
    best = [
        max(variants, key=lambda v: value.get((v, s), float("-inf"))) for s in seeds
    ]
    counts = ", ".join(f"{v} {best.count(v)}" for v in variants if best.count(v))
    return (
        markdown(["seed"] + variants, body)
        + f"\n\nBest variant per seed (test AMI): {counts} of {len(seeds)}.\n"
    )


def forced_to_learn_differences() -> str:
    """Paired differences to the baseline over seeds."""
    from keras_disentangle.experiments import _stats

    rows, _ = _forced_to_learn_runs()
    diffs = _stats.paired_differences(rows, "variant", "ami", "baseline")
    body = [
        [
            d["variant"],
            f"{d['mean']:+.3f}",
            f"[{d['low']:+.3f}, {d['high']:+.3f}]",
            f"{d['wins']} / {d['n']}",
            "yes" if d["significant"] else "no",
        ]
        for d in diffs
    ]
    best = max(diffs, key=lambda d: d["mean"])["variant"] if diffs else None
    against = (
        [
            d
            for d in _stats.paired_differences(rows, "variant", "ami", best or "")
            if d["variant"] != "baseline"
        ]
        if best
        else []
    )
    versus = (
        "\n\n"
        + markdown(
            [
                "variant",
                f"AMI − {best} (mean over seeds)",
                "95% CI",
                f"seeds above {best}",
                "significant",
            ],
            [
                [
                    d["variant"],
                    f"{d['mean']:+.3f}",
                    f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                    f"{d['wins']} / {d['n']}",
                    "yes" if d["significant"] else "no",
                ]
                for d in against
            ],
        )
        if against
        else ""
    )
    return (
        markdown(
            [
                "variant",
                "AMI − baseline (mean over seeds)",
                "95% CI",
                "seeds won",
                "significant",
            ],
            body,
        )
        + versus
        + "\n\nSignificant: the paired Student-t interval excludes 0 (a paired "
        "t-test at the 5% level).\n"
    )


def forced_to_learn_summary() -> str:
    """README's one paragraph on Table 1."""
    from keras_disentangle.experiments import _stats

    rows, _ = _forced_to_learn_runs()
    seeds = len({r["seed"] for r in rows})
    diffs = _stats.paired_differences(rows, "variant", "ami", "baseline")
    base = _stats.t_interval(
        [float(r["ami"]) for r in rows if r["variant"] == "baseline"]
    )
    significant = [d for d in diffs if d["significant"] and d["mean"] > 0]
    parts = ", ".join(
        f"{d['variant']} {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        for d in diffs
    )
    verdict = (
        "significant for " + ", ".join(d["variant"] for d in significant)
        if significant
        else "significant for none of them"
    )
    return (
        textwrap.fill(
            f"Over {seeds} seeds the baseline's test AMI is {f3(base['mean'])} "
            f"[{f3(base['low'])}, {f3(base['high'])}]; the paired gains over it are "
            f"{parts} (95% intervals): {verdict}.",
            width=76,
        )
        + "\n"
    )


def _numbers(rows: list[dict]) -> list[dict]:
    """CSV strings back to numbers, so that tables format them as printed."""
    out = []
    for row in rows:
        new = {}
        for key, value in row.items():
            try:
                new[key] = int(value) if value.isdigit() else float(value)
            except ValueError:
                new[key] = value
        out.append(new)
    return out


def _printed(run: str, name: str, columns: list[str], **kwargs) -> str:
    """A CSV as the command prints it (``_common.print_table``), in a code
    block, with its provenance."""
    from keras_disentangle.experiments import _common

    rows = _numbers(read_csv(run, name))
    text = _common.print_table(rows, columns, quiet=True, **kwargs)
    return f"```\n{text}\n```\n\n{provenance(run)}\n"


def covariance() -> str:
    """§3.2: the linear autoencoder's table (mean over projections)."""
    from keras_disentangle.experiments import _common
    from keras_disentangle.experiments import covariance as cov

    rows = _numbers(read_csv("covariance", "covariance.csv"))
    for row in rows:
        row["lambda"] = f"{row['lambda']:.3g}"
    text = _common.print_table(rows, cov.COLUMNS + ["ud90_std"], quiet=True)
    return f"```\n{text}\n```\n\n{provenance('covariance')}\n"


def xor() -> str:
    """§3.3: XOR, mean over seeds."""
    from keras_disentangle.experiments import xor as x

    return _printed("xor", "xor.csv", x.SUMMARY_COLUMNS)


def conv_autoencoder_table1() -> str:
    """§3.4 Table 1 at the paper's λ over seeds, with the paper's numbers."""
    from keras_disentangle.experiments import conv_autoencoder as cae

    return _printed(
        "conv_autoencoder_table1",
        "conv_autoencoder_table1.csv",
        cae.TABLE1_COLUMNS,
        precision=4,
    )


def conv_autoencoder_differences() -> str:
    """§3.4: paired differences to no regularizer at the paper's λ."""
    rows = read_csv("conv_autoencoder_table1", "conv_autoencoder_differences.csv")
    body = [
        [
            r["variant"],
            r["score"],
            f"{float(r['difference']):+.4f}",
            f"[{float(r['low']):+.4f}, {float(r['high']):+.4f}]",
            f"{r['wins']} / {r['n']}",
            r["significant"],
        ]
        for r in rows
    ]
    return (
        markdown(
            [
                "regularizer",
                "score",
                "− none (mean over seeds)",
                "95% CI",
                "seeds above none",
                "significant",
            ],
            body,
        )
        + "\n"
    )


FACTOR_SCORES = [
    ("mig", "MIG ↑"),
    ("sap", "SAP ↑"),
    ("dci_disentanglement", "DCI-D ↑"),
    ("dci_completeness", "DCI-C ↑"),
    ("modularity", "Mod ↑"),
    ("explicitness", "Expl ↑"),
    ("mapc", "MAPC ↓"),
    ("cvr", "CVR ↓"),
    ("ud90", "UD90"),
    ("mse", "MSE"),
]


def _factor_cell(row: dict, key: str) -> str:
    mean = float(row[key])
    digits = 4 if key == "mse" else 2 if key in ("cvr", "ud90") else 3
    ci = row.get(key + "_ci", "nan")
    if ci in ("", "nan") or float(ci) != float(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(ci):.{digits}f}"


def factors() -> str:
    """docs/factors.md: the field's and the papers' scores by penalty and λ."""
    from keras_disentangle.experiments.factors import FIELD

    summary = read_csv("factors", "summary.csv")
    lines = [
        "| penalty | λ | " + " | ".join(title for _, title in FACTOR_SCORES) + " |",
        "|---|---|" + "---|" * len(FACTOR_SCORES),
    ]
    for row in summary:
        cells = [row["penalty"], f"{float(row['lambda']):g}"]
        cells += [_factor_cell(row, key) for key, _ in FACTOR_SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Spearman's ρ over all models between each paper score (rows) and "
        "each field score (columns):",
        "",
        "| | " + " | ".join(FIELD) + " |",
        "|---|" + "---|" * len(FIELD),
    ]
    for row in read_csv("factors", "correlations.csv"):
        cells = [row["paper_score"]] + [f"{float(row[k]):+.2f}" for k in FIELD]
        lines.append("| " + " | ".join(cells) + " |")
    live = [r for r in read_csv("factors", "runs.csv") if float(r["ud90"]) > 0]
    lines += [
        "",
        f"The same over the {len(live)} models whose code did not collapse "
        "(UD90 > 0; computed here from `runs.csv`):",
        "",
        "| | " + " | ".join(FIELD) + " |",
        "|---|" + "---|" * len(FIELD),
    ]
    for paper in ("mapc", "cvr", "ud90"):
        cells = [paper] + [f"{_spearman(live, paper, k):+.2f}" for k in FIELD]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{provenance('factors')}\n"


def _spearman(rows: list[dict], a: str, b: str) -> float:
    from scipy.stats import spearmanr

    return float(
        spearmanr([float(r[a]) for r in rows], [float(r[b]) for r in rows]).statistic
    )


def dim_aet() -> str:
    """docs/dim_aet.md: linear and non-linear probes of the reduced runs."""
    rows = read_csv("dim_aet", "probes.csv")
    columns = ("trained", "untrained", "trained_nonlinear", "untrained_nonlinear")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["dataset"], row["epochs"]), []).append(row)
    body = []
    for (model, dataset, epochs), members in groups.items():
        means = [sum(float(r[c]) for r in members) / len(members) for c in columns]
        seeds = ", ".join(r["seed"] for r in members)
        body.append([model, dataset, epochs, seeds] + [f3(m) for m in means])
    header = ["model", "data", "epochs", "seeds", "linear: trained"]
    header += ["linear: untrained", "non-linear: trained", "non-linear: untrained"]
    return markdown(header, body) + f"\n\n{provenance('dim_aet')}\n"


def memory() -> str:
    """docs/distributed.md: XLA's temporaries of one pairwise step by N."""
    body = []
    for r in read_csv("memory", "memory.csv"):
        body.append(
            [f"{int(r['n']):,}"]
            + [
                f"{float(r[k]):,.1f}"
                for k in (
                    "activity_kl_margin_cpu_mib",
                    "labelled_cpu_mib",
                    "activity_kl_margin_accelerator_mib",
                    "labelled_accelerator_mib",
                    "bare_mib",
                )
            ]
            + [f"{float(r['nxn_block_mib']):,.0f}"]
        )
    header = ["N", "unlabelled, CPU blocks (MiB)", "labelled, CPU blocks (MiB)"]
    header += ["unlabelled, accelerator blocks (MiB)"]
    header += ["labelled, accelerator blocks (MiB)", "bare `h @ h.T` step (MiB)"]
    header += ["one `N x N` float32 block (MiB)"]
    return markdown(header, body) + f"\n\n{provenance('memory')}\n"


def memory_time() -> str:
    """docs/distributed.md: time of one pairwise step over a bare one, by N."""
    body = [
        [
            f"{int(r['n']):,}",
            r["penalty"],
            r["penalty_ms"],
            r["bare_ms"],
            r["ratio"] + "x",
        ]
        for r in read_csv("memory", "time.csv")
    ]
    header = ["N", "penalty", "penalty step (ms)", "bare `h @ h.T` step (ms)", "ratio"]
    return markdown(header, body) + f"\n\n{provenance('memory')}\n"


def _interval(values: list[float], digits: int = 3) -> str:
    """``mean [low, high]``: the mean and its Student-t 95% interval."""
    from keras_disentangle.experiments import _stats

    ci = _stats.t_interval(values)
    return f"{ci['mean']:.{digits}f} [{ci['low']:.{digits}f}, {ci['high']:.{digits}f}]"


def _seeds(seeds: list[int]) -> str:
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _imsat_runs(run: str) -> list[dict]:
    """The clustering rows of one ``examples/imsat_mnist.py --csv`` run."""
    return [
        r
        for r in read_csv(run, read_meta(run)["files"][0])
        if r["part"] == "clustering"
    ]


def _imsat_label(row: dict) -> str:
    if row["method"].startswith("KMeans"):
        return "KMeans on raw inputs"
    restarts = int(row["restarts"])
    if restarts == 1:
        return "IMSAT (VAT), one run per seed"
    return f"IMSAT (VAT), `fit_imsat` ({restarts} restarts, lowest objective kept)"


def _imsat_clustering(runs: tuple[str, ...]) -> str:
    """Accuracy per method (mean, 95% interval, per seed) and the paired
    difference IMSAT − KMeans over the seeds of each run."""
    from keras_disentangle.experiments import _stats

    body, diffs, seen = [], [], set()
    for run in runs:
        rows = [r for r in _imsat_runs(run) if r["score"] == "accuracy"]
        for row in rows:
            row["label"] = _imsat_label(row)
        for label in dict.fromkeys(r["label"] for r in rows):
            members = sorted(
                (r for r in rows if r["label"] == label), key=lambda r: int(r["seed"])
            )
            seeds = [int(r["seed"]) for r in members]
            values = {(label, r["seed"], r["value"]) for r in members}
            if values <= seen:  # KMeans's same seeds in an earlier run: once
                continue
            seen |= values
            body.append(
                [
                    label,
                    members[0]["epochs"] if "IMSAT" in label else "",
                    _seeds(seeds),
                    _interval([float(r["value"]) for r in members]),
                    " / ".join(f3(r["value"]) for r in members),
                ]
            )
        for d in _stats.paired_differences(rows, "label", "value", KMEANS_LABEL):
            diffs.append(
                [
                    d["variant"],
                    _seeds(
                        sorted(
                            int(r["seed"]) for r in rows if r["label"] == d["variant"]
                        )
                    ),
                    f"{d['mean']:+.3f}",
                    f"[{d['low']:+.3f}, {d['high']:+.3f}]",
                    f"{d['wins']} / {d['n']}",
                    "yes" if d["significant"] else "no",
                ]
            )
    table = markdown(
        ["method", "epochs", "seeds", "accuracy, mean [95% CI]", "per seed"], body
    )
    differences = markdown(
        [
            "IMSAT",
            "seeds",
            "IMSAT − KMeans (mean over seeds)",
            "95% CI",
            "seeds above KMeans",
            "significant",
        ],
        diffs,
    )
    sources = "\n\n".join(provenance(run) for run in runs)
    return (
        f"{table}\n\nPaired by seed (KMeans and IMSAT with the same seed):\n\n"
        f"{differences}\n\nMean with the Student-t 95% interval of the mean; "
        "significant: the paired interval excludes 0 (a paired t-test at the 5% "
        f"level).\n\n{sources}\n"
    )


KMEANS_LABEL = "KMeans on raw inputs"


def imsat_digits() -> str:
    """docs/imsat.md: IMSAT against KMeans on the 8x8 digits."""
    return _imsat_clustering(("imsat_digits_single", "imsat_digits"))


def imsat_mnist_5k() -> str:
    """docs/imsat.md: IMSAT against KMeans on 5,000 MNIST digits."""
    return _imsat_clustering(("imsat_mnist_5k",))


def imsat_mnist_5k_hashing() -> str:
    """docs/imsat.md: 16-bit hash codes on 5,000 MNIST digits, per method
    and score (mean, 95% interval, per seed)."""
    run = "imsat_mnist_5k_hashing"
    rows = [
        r for r in read_csv(run, read_meta(run)["files"][0]) if r["part"] == "hashing"
    ]
    scores = list(dict.fromkeys(r["score"] for r in rows))
    body = []
    for method in dict.fromkeys(r["method"] for r in rows):
        cells = [method]
        for score in scores:
            members = sorted(
                (r for r in rows if r["method"] == method and r["score"] == score),
                key=lambda r: int(r["seed"]),
            )
            values = [float(r["value"]) for r in members]
            per_seed = " / ".join(f3(v) for v in values)
            cells.append(f"{_interval(values)} ({per_seed})")
        body.append(cells)
    seeds = _seeds(sorted({int(r["seed"]) for r in rows}))
    header = ["codes"] + [f"{s}, mean [95% CI] (seeds {seeds})" for s in scores]
    return markdown(header, body) + f"\n\n{provenance(run)}\n"


def imsat_digits_restarts() -> str:
    """docs/imsat.md: does the objective rank single runs as their accuracy?"""
    import itertools

    import numpy as np

    rows = _imsat_runs("imsat_digits_single")
    accuracy = {
        r["seed"]: float(r["value"])
        for r in rows
        if r["score"] == "accuracy" and r["method"].startswith("IMSAT")
    }
    objective = {
        r["seed"]: float(r["value"]) for r in rows if r["score"] == "objective"
    }
    seeds = sorted(accuracy, key=int)
    pairs = [{"a": accuracy[s], "o": objective[s]} for s in seeds]
    rho = _spearman(pairs, "o", "a")
    kept = [
        min(triple, key=lambda p: p["o"])["a"]
        for triple in itertools.combinations(pairs, 3)
    ]
    every = [p["a"] for p in pairs]
    return (
        textwrap.fill(
            f"Over these {len(seeds)} single runs the accuracy ranges from "
            f"{f3(min(every))} to {f3(max(every))}, and Spearman's rank "
            f"correlation of the objective with the accuracy is {rho:+.2f} "
            "(negative: a lower objective, a better clustering). Keeping the "
            "lowest objective of three runs, over all "
            f"{len(kept)} triples of these runs, gives a mean accuracy of "
            f"{f3(np.mean(kept))} (one run: {f3(np.mean(every))}) and a 10th "
            f"percentile of {f3(np.percentile(kept, 10))} (one run: "
            f"{f3(np.percentile(every, 10))}).",
            width=76,
        )
        + "\n"
    )


def _ms(value: float | str) -> str:
    """Milliseconds as the benchmarks' tables write them: 0.23, 53.3, 934."""
    value = float(value)
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _by(rows: list[dict], *keys: str) -> dict[tuple, dict]:
    return {tuple(r[k] for k in keys): r for r in rows}


def penalties_speed() -> str:
    """docs/benchmarks.md: the matmul against the all-pairs formulation."""
    speed = read_csv("penalties", "speed.csv")
    memory = _by(read_csv("penalties", "memory.csv"), "N", "k")
    body = []
    for row in speed:
        peak = memory.get((row["N"], row["k"]), {})
        body.append(
            [
                f"{int(row['N']):,}",
                row["k"],
                _ms(row["matmul_ms"]),
                _ms(row["all_pairs_ms"]),
                f"{float(row['speedup']):.1f}x",
                f"{float(peak['matmul_peak_mib']):,.0f}" if peak else "-",
                f"{float(peak['all_pairs_peak_mib']):,.0f}" if peak else "-",
            ]
        )
    header = ["N", "k", "matmul (ms)", "all pairs (ms)", "speed-up"]
    header += ["matmul peak (MiB)", "all pairs peak (MiB)"]
    return markdown(header, body) + f"\n\n{provenance('penalties')}\n"


def penalties_steps() -> str:
    """docs/benchmarks.md: one training step with each penalty."""
    body = [
        [r["penalty"], _ms(r["step_ms"]), f"{float(r['ratio']):.2f}"]
        for r in read_csv("penalties", "steps.csv")
    ]
    return markdown(["penalty", "step (ms)", "ratio"], body) + "\n"


def _callback_rows() -> tuple[dict, list[dict]]:
    epoch = read_csv("clustering_callback", "epoch.csv")[0]
    rows = read_csv("clustering_callback", "callback.csv")
    for row in rows:
        default = row["n_init"] == "3"
        kind = row["embeddings"]
        if kind == "noise" and default:
            kind = "noise (KMeans's slowest case)"
        row["label"] = kind
        row["n_init_label"] = "3 (default)" if default else row["n_init"]
    return epoch, rows


def clustering_callback_short() -> str:
    """docs/benchmarks.md: ClusteringScores against an epoch, one thread."""
    epoch, rows = _callback_rows()
    body = [
        [
            r["label"],
            r["n_init_label"],
            f3(r["callback_wall_s"]),
            f"{float(r['wall_per_epoch']):.2f}",
            f"{float(r['cpu_per_epoch']):.2f}",
        ]
        for r in rows
        if r["threads"] == "1"
    ]
    header = ["embeddings", "KMeans n_init", "callback (s)", "callback / epoch"]
    header += ["callback CPU / epoch CPU"]
    return (
        f"One epoch took {epoch['epoch_wall_s']} s wall (median of "
        f"{epoch['epoch_walls'].replace(' ', ', ')}) and {epoch['epoch_cpu_s']} "
        f"CPU-s.\n\n{markdown(header, body)}\n\n"
        f"{provenance('clustering_callback')}\n"
    )


def clustering_callback() -> str:
    """docs/scores.md: every measured setting of the callback."""
    epoch, rows = _callback_rows()
    body = [
        [
            r["label"],
            r["n_init_label"],
            r["threads"],
            f3(r["callback_wall_s"]),
            f"{float(r['wall_per_epoch']):.2f}",
            f3(r["callback_cpu_s"]),
            f"{float(r['cpu_per_epoch']):.2f}",
            f3(r["val_cluster_ami"]),
        ]
        for r in rows
    ]
    header = ["embeddings", "KMeans n_init", "threads", "callback wall (s)"]
    header += ["wall / epoch", "callback CPU-s", "CPU / epoch", "val_cluster_ami"]
    return (
        f"One epoch took {epoch['epoch_wall_s']} s wall (median of "
        f"{epoch['epoch_walls'].replace(' ', ', ')}) and {epoch['epoch_cpu_s']} "
        f"CPU-s.\n\n{markdown(header, body)}\n\n"
        f"{provenance('clustering_callback')}\n"
    )


def imsat_step() -> str:
    """docs/benchmarks.md: an IMSAT step against a plain step."""
    names = {
        "plain": "plain (cross-entropy, same encoder)",
        "IMSAT (rpt)": "IMSAT, RPT",
        "IMSAT (vat)": "IMSAT, VAT",
    }
    body = [
        [names.get(r["step"], r["step"]), _ms(r["ms"]), f"{float(r['ratio']):.2f}"]
        for r in read_csv("imsat_step", "imsat_step.csv")
    ]
    return (
        markdown(["step", "ms", "ratio to plain"], body)
        + f"\n\n{provenance('imsat_step')}\n"
    )


def tune_margin() -> str:
    """docs/scores.md: the keras-tuner trials and the best model's test scores."""
    trials = read_csv("tune_margin", "trials.csv")
    test = read_csv("tune_margin", "test.csv")[0]
    best = max(trials, key=lambda r: float(r["best_val_cluster_ami"]))
    body = [
        [
            r["trial"],
            f"{float(r['margin']):.3f}",
            f"{float(r['weight']):.4f}",
            (
                f"**{f3(r['best_val_cluster_ami'])}**"
                if r is best
                else f3(r["best_val_cluster_ami"])
            ),
        ]
        for r in trials
    ]
    scores = ", ".join(
        f"{k.upper()} {f3(test[k])}" for k in ("ami", "nmi", "ari", "acc") if k in test
    )
    return (
        markdown(["trial", "margin", "weight", "best val_cluster_ami"], body)
        + f"\n\nThe best trial ({test['trial']}: margin "
        f"{float(best['margin']):.3f}, weight {float(best['weight']):.4f}), "
        "scored once on the test split (KMeans with 10 "
        f"clusters on its embedding, `cluster_scores` defaults): {scores}.\n\n"
        f"{provenance('tune_margin')}\n"
    )


def score_speed() -> str:
    """docs/factors.md: the time of each ground-truth score."""
    labels = {
        "mig": ("`mig`", "{n}"),
        "sap": ("`sap`", "{n} + {n}"),
        "modularity_explicitness": ("`modularity_explicitness`", "{n} + {n}"),
        "beta_vae": ("`beta_vae_score` (64 pairs x 15,000 points)", "-"),
        "factor_vae": (
            "`factor_vae_score` (64 x 15,000 points, 10,000 for the variances)",
            "-",
        ),
        "dci": ("`dci`", "{n} + {n}"),
    }
    body, runs = [], []
    for run in ("scores", "scores_dci_1000", "scores_dci"):
        if not (RESULTS / run).is_dir():
            continue
        runs.append(run)
        for r in read_csv(run, "scores.csv"):
            name, size = labels[r["score"]]
            body.append(
                [
                    name,
                    size.format(n=f"{int(r['n']):,}"),
                    f"{float(r['wall_s']):.2f}",
                    f"{float(r['cpu_s']):.2f}",
                ]
            )
    return (
        markdown(["score", "N", "wall s", "CPU s"], body)
        + "\n\n"
        + "\n\n".join(provenance(run) for run in runs)
        + "\n"
    )


def distributed_steps() -> str:
    """docs/distributed.md: synchronized against per-replica steps."""
    targets = {"DeCov": 1.10, "ActivityKLMargin": 1.30}
    body = [
        [
            r["penalty"],
            r["global_batch"],
            _ms(r["sync_ms"]),
            _ms(r["local_ms"]),
            f"{float(r['ratio']):.2f}x",
            f"<= {targets[r['penalty']]:.2f}x",
        ]
        for r in read_csv("distributed", "steps.csv")
    ]
    header = ["penalty", "global batch", "synchronized step (ms)"]
    header += ["per-replica step (ms)", "ratio", "target"]
    return markdown(header, body) + f"\n\n{provenance('distributed')}\n"


def distributed_memory() -> str:
    """docs/distributed.md: peak memory of one step against the batch."""
    body = [
        [
            r["global_batch"],
            f"{float(r['sync_peak_mib']):.1f}",
            f"{float(r['local_peak_mib']):.1f}",
            f"{float(r['sync_block_mib']):g}",
        ]
        for r in read_csv("distributed", "memory.csv")
    ]
    header = ["global batch N", "synchronized (MiB)", "per-replica (MiB)"]
    header += ["one `N/2 x N` float32 block (MiB)"]
    return markdown(header, body) + "\n"


def latent_centroids() -> str:
    """docs/latent_centroids.md: the chosen configuration against the baseline."""
    from keras_disentangle.experiments import _stats

    test = read_csv("latent_centroids", "test.csv")
    validation = read_csv("latent_centroids", "validation.csv")
    chosen = next(r for r in test if r["model"] == "centroids")
    key = (chosen["n_clusters"], chosen["weight"])

    def members(rows, model, config=("", "")):
        return sorted(
            (
                r
                for r in rows
                if r["model"] == model and (r["n_clusters"], r["weight"]) == config
            ),
            key=lambda r: int(r["seed"]),
        )

    body = []
    for label, model, config in (
        ("baseline (no centroids)", "baseline", ("", "")),
        (
            f"LatentCentroids, n_clusters={key[0]}, weight={float(key[1]):g} "
            "(chosen on validation)",
            "centroids",
            key,
        ),
    ):
        val = members(validation, model, config)
        runs = members(test, model, config)
        body.append(
            [
                label,
                f"{sum(float(r['accuracy']) for r in val) / len(val):.4f}",
                " / ".join(f"{float(r['accuracy']):.4f}" for r in runs),
                _interval([float(r["accuracy"]) for r in runs], digits=4),
            ]
        )
    seeds = _seeds(sorted(int(r["seed"]) for r in members(test, "baseline")))
    (d,) = _stats.paired_differences(
        [dict(r, variant=r["model"]) for r in test], "variant", "accuracy", "baseline"
    )
    grid = {}
    for r in validation:
        if r["model"] == "centroids":
            grid.setdefault((r["n_clusters"], r["weight"]), []).append(
                float(r["accuracy"])
            )
    base = [float(r["accuracy"]) for r in members(validation, "baseline")]
    grid_rows = [["baseline", "-", f"{sum(base) / len(base):.4f}"]] + [
        [n, f"{float(w):g}", f"{sum(v) / len(v):.4f}"] for (n, w), v in grid.items()
    ]
    header = ["model", "validation accuracy (mean over seeds)"]
    header += [f"test accuracy, seeds {seeds.replace(', ', ' / ')}"]
    header += ["test mean [95% CI]"]
    return (
        markdown(header, body)
        + f"\n\nTest accuracy, centroids − baseline paired by seed: "
        f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] (95% CI), "
        f"{d['wins']} of {d['n']} seeds improved, "
        f"{'significant' if d['significant'] else 'not significant'} at the 5% "
        "level.\n\nThe validation grid (mean over seeds):\n\n"
        + markdown(["n_clusters", "weight", "validation accuracy"], grid_rows)
        + f"\n\n{provenance('latent_centroids')}\n"
    )


#: docs/distributed.md's contract: (run, CSV) of each multi-process engine.
CONTRACT_ENGINES = [
    (
        "TF `MultiWorkerMirroredStrategy` (2 workers)",
        "contract_multi_worker",
        "multiworkermirroredstrategy__2_workers.csv",
    ),
    (
        "JAX 2 processes, `DataParallel` + `fit`",
        "contract_jax",
        "jax__2_processes.csv",
    ),
    ("PyTorch 2 processes, DDP", "contract_torch", "torch_ddp__2_processes.csv"),
]
CONTRACT_OBJECTS = [
    ("decov", "`ActivityPenalty(DeCov)`"),
    ("l1", "`ActivityPenalty(CovarianceL1)`"),
    ("activity", "`ActivityPenalty(ActivityKLMargin)`"),
    ("xcov", "`XCovPenalty`"),
    ("labelled", "`LabelledKLMargin`"),
    ("imsat", "`IMSAT`"),
    ("dim", "`DeepInfoMax`"),
    ("decov-local", "control: DeCov, `synchronized=False`"),
]


def distributed_contract() -> str:
    """docs/distributed.md: one step on several processes against one device."""
    columns = []
    for _, run, name in CONTRACT_ENGINES:
        columns.append({r["kind"]: r["difference"] for r in read_csv(run, name)})
    body = []
    for kind, label in CONTRACT_OBJECTS:
        local = kind == "decov-local"
        cells = [label, "differs" if local else "exact (1e-5)"]
        for (engine, _, _), values in zip(CONTRACT_ENGINES, columns, strict=True):
            value = float(values[kind])
            cell = (
                "0"
                if value == 0
                else f"{value:.1e}"
                if value < 0.01
                else f"{value:.2f}"
            )
            if local and engine.startswith("JAX"):
                cell += " (global either way)"
            cells.append(cell)
        body.append(cells)
    body.append(
        [
            "test",
            "`tests/test_distributed.py::test_synchronized_step_equals_one_device`, "
            "`tests/test_imsat.py`, `tests/test_deep_info_max.py`",
            "`tests/test_multi_worker.py`",
            "`tests/test_jax_multi_process.py` (JAX run)",
            "`tests/test_torch_ddp.py` (PyTorch run)",
        ]
    )
    header = ["object", "`MirroredStrategy` (2 replicas)"]
    header += [engine for engine, _, _ in CONTRACT_ENGINES]
    sources = "\n\n".join(provenance(run) for _, run, _ in CONTRACT_ENGINES)
    return markdown(header, body) + f"\n\n{sources}\n"


def knn() -> str:
    """docs/imsat.md: knn_distance (scikit-learn) against the hand-written search."""
    body = [
        [
            f"{int(r['n']):,}",
            f"{float(r['hand_written_s']):.2f} s",
            f"{float(r['sklearn_s']):.2f} s",
            f"{float(r['ratio']):.2f}",
            r["max_abs_difference"],
        ]
        for r in read_csv("knn", "knn.csv")
    ]
    header = ["N x 784 (random float32)", "hand-written", "scikit-learn", "ratio"]
    header += ["largest difference"]
    return markdown(header, body) + f"\n\n{provenance('knn')}\n"


def memory_dim() -> str:
    """docs/dim_aet.md: XLA's temporaries of DIM's estimates by (N, L)."""
    body = []
    for r in read_csv("memory", "dim.csv"):
        cells = []
        for key in ("cpu_mib", "accelerator_mib", "one_block_mib"):
            cells.append(f"{float(r[key]):,.1f}" if r[key] else "left out")
        body.append(
            [f"{int(r['n']):,}", r["positions"], r["estimator"]]
            + cells
            + [f"{float(r['scores_mib']):,.0f}"]
        )
    header = ["N", "L", "estimator", "CPU blocks (MiB)", "accelerator blocks (MiB)"]
    header += ["one block (MiB)", "the `N x N x L` float32 scores (MiB)"]
    return markdown(header, body) + f"\n\n{provenance('memory')}\n"


def penalties_matmul() -> str:
    """docs/distributed.md: the penalty's step over a bare ``h @ h.T`` step,
    one run per backend (``benchmarks/penalties.py --backend B``)."""
    run_as = {"tensorflow": "`tf.function`", "jax": "`jax.jit`"}
    names = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
    body = []
    for backend in ("tensorflow", "jax", "torch"):
        for r in read_csv("penalties_matmul", f"matmul_ratio_{backend}.csv"):
            how = r["compiled"]
            if backend == "torch":
                how = (
                    "`torch.compile`"
                    if how == "torch.compile"
                    else ("eager (Keras's default there)")
                )
            body.append(
                [
                    names[backend],
                    run_as.get(backend, how),
                    f"{float(r['penalty_ms']):.1f}",
                    f"{float(r['matmul_ms']):.1f}",
                    f"{float(r['ratio']):.2f}x",
                    f"{float(r['one_block_ratio']):.2f}x",
                ]
            )
    header = ["backend", "run as", "penalty (ms)", "`h @ h.T` (ms)", "ratio"]
    header += ["one `N x N` block, same run"]
    return markdown(header, body) + f"\n\n{provenance('penalties_matmul')}\n"


#: Block name -> function returning its markdown (ending with a newline).
TABLES: dict[str, Callable[[], str]] = {
    "forced_to_learn": forced_to_learn,
    "forced_to_learn_seeds": forced_to_learn_seeds,
    "forced_to_learn_differences": forced_to_learn_differences,
    "forced_to_learn_summary": forced_to_learn_summary,
    "covariance": covariance,
    "xor": xor,
    "conv_autoencoder_table1": conv_autoencoder_table1,
    "conv_autoencoder_differences": conv_autoencoder_differences,
    "factors": factors,
    "dim_aet": dim_aet,
    "memory": memory,
    "memory_time": memory_time,
    "memory_dim": memory_dim,
    "penalties_matmul": penalties_matmul,
    "imsat_mnist_5k_hashing": imsat_mnist_5k_hashing,
    "imsat_digits": imsat_digits,
    "imsat_digits_restarts": imsat_digits_restarts,
    "imsat_mnist_5k": imsat_mnist_5k,
    "penalties_speed": penalties_speed,
    "penalties_steps": penalties_steps,
    "clustering_callback_short": clustering_callback_short,
    "clustering_callback": clustering_callback,
    "imsat_step": imsat_step,
    "tune_margin": tune_margin,
    "score_speed": score_speed,
    "distributed_steps": distributed_steps,
    "distributed_memory": distributed_memory,
    "latent_centroids": latent_centroids,
    "distributed_contract": distributed_contract,
    "knn": knn,
}


# ---------------------------------------------------------------- documents


def documents() -> list[pathlib.Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))


def render(text: str, tables: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every table block rewritten from its CSVs."""
    tables = TABLES if tables is None else tables

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in tables:
            raise KeyError(f"unknown table block {name!r}: add it to TABLES")
        body = tables[name]()
        if match["indent"]:  # a block inside a list item: indent it as the item
            body = textwrap.indent(body, match["indent"])
        return match["open"] + body + match["close"]

    return BLOCK.sub(replace, text)


def blocks(text: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(text)]


def stale() -> dict[pathlib.Path, str]:
    """``{document: unified diff}`` of every document whose blocks are stale."""
    out = {}
    for path in documents():
        text = path.read_text()
        if not blocks(text):
            continue
        new = render(text)
        if new != text:
            out[path] = "".join(
                difflib.unified_diff(
                    text.splitlines(True),
                    new.splitlines(True),
                    str(path.relative_to(ROOT)),
                    "from the CSVs",
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("write", help="rewrite every table block from its CSVs")
    sub.add_parser("check", help="exit 1 with a diff if a block is stale")
    rec = sub.add_parser("record", help="copy a run's CSVs into docs/results/RUN")
    rec.add_argument("run")
    rec.add_argument("source", type=pathlib.Path)
    rec.add_argument("--command", required=True)
    rec.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"))
    rec.add_argument("--commit", help="the commit the run ran on (default: HEAD)")
    args = parser.parse_args(argv)
    if args.action == "record":
        record(args.run, args.source, args.command, args.backend, args.commit)
        return 0
    if args.action == "check":
        diffs = stale()
        for diff in diffs.values():
            print(diff)
        return 1 if diffs else 0
    status = 0
    for path in documents():
        text = path.read_text()
        if blocks(text):
            try:
                new = render(text)
            except FileNotFoundError as error:  # a run not recorded yet
                print(f"left {path.relative_to(ROOT)} as it was: {error}")
                status = 1
                continue
            if new != text:
                path.write_text(new)
                print(f"wrote {path.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
