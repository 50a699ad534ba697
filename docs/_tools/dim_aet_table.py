"""Print docs/dim_aet.md's probe table from the CSV of the reduced runs.

    python docs/_tools/dim_aet_table.py [docs/results/dim_aet/probes.csv]

The CSV is written by ``docs/results/dim_aet/run.sh`` (the examples'
``--csv``); one row per model and seed. The table gives, per model, the
linear and the non-linear probe's test accuracy on the trained and on the
untrained encoder (same initial weights), averaged over the seeds present.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict

DEFAULT = "docs/results/dim_aet/probes.csv"
COLUMNS = ("trained", "untrained", "trained_nonlinear", "untrained_nonlinear")


def table(path: str = DEFAULT) -> str:
    """The markdown table of the CSV at ``path``."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            groups[(row["model"], row["dataset"], row["epochs"])].append(row)
    lines = [
        "| model | data | epochs | seeds | linear: trained | linear: untrained "
        "| non-linear: trained | non-linear: untrained | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, dataset, epochs), rows in groups.items():
        means = [sum(float(r[c]) for r in rows) / len(rows) for c in COLUMNS]
        seconds = sum(float(r["train_seconds"]) for r in rows)
        seeds = ", ".join(r["seed"] for r in rows)
        cells = " | ".join(f"{m:.3f}" for m in means)
        lines.append(
            f"| {model} | {dataset} | {epochs} | {seeds} | {cells} | {seconds:.0f} s |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
