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
