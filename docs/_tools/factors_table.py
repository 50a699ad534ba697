"""Render the tables of docs/factors.md from the CSVs of a ``factors`` run.

The CSVs (``summary.csv``, ``correlations.csv`` of ``keras-disentangle
factors``) are kept in ``docs/results/factors/``; the tables sit in
``docs/factors.md`` between ``<!-- factors-table:begin -->`` and
``<!-- factors-table:end -->``.

    python docs/_tools/factors_table.py           # print the tables
    python docs/_tools/factors_table.py --write   # rewrite docs/factors.md
    python docs/_tools/factors_table.py --check   # fail if the page is stale
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's package

from keras_disentangle.experiments.factors import FIELD  # noqa: E402

RESULTS = ROOT / "docs" / "results" / "factors"
PAGE = ROOT / "docs" / "factors.md"
BEGIN, END = "<!-- factors-table:begin -->", "<!-- factors-table:end -->"

SCORES = [
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


def _read(name: str) -> list[dict]:
    with (RESULTS / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _cell(row: dict, key: str) -> str:
    mean = float(row[key])
    digits = 4 if key == "mse" else 2 if key in ("cvr", "ud90") else 3
    ci = row.get(key + "_ci", "nan")
    if ci in ("", "nan") or float(ci) != float(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {float(ci):.{digits}f}"


def render() -> str:
    summary = _read("summary.csv")
    lines = [
        "| penalty | λ | " + " | ".join(title for _, title in SCORES) + " |",
        "|---|---|" + "---|" * len(SCORES),
    ]
    for row in summary:
        cells = [row["penalty"], f"{float(row['lambda']):g}"]
        cells += [_cell(row, key) for key, _ in SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Spearman's ρ over all models between each paper score (rows) and "
        "each field score (columns):",
        "",
        "| | " + " | ".join(FIELD) + " |",
        "|---|" + "---|" * len(FIELD),
    ]
    for row in _read("correlations.csv"):
        cells = [row["paper_score"]] + [f"{float(row[k]):+.2f}" for k in FIELD]
        lines.append("| " + " | ".join(cells) + " |")
    live = [r for r in _read("runs.csv") if float(r["ud90"]) > 0]
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
    return "\n".join(lines) + "\n"


def _spearman(rows: list[dict], a: str, b: str) -> float:
    from scipy.stats import spearmanr

    return float(
        spearmanr([float(r[a]) for r in rows], [float(r[b]) for r in rows]).statistic
    )


def _page_with(tables: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{tables}{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args()
    tables = render()
    if args.write:
        PAGE.write_text(_page_with(tables), encoding="utf-8")
    elif args.check:
        if PAGE.read_text(encoding="utf-8") != _page_with(tables):
            print(f"{PAGE} is stale: run {__file__} --write", file=sys.stderr)
            return 1
    else:
        print(tables, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
