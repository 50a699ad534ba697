"""Small helpers shared by the experiment modules and the command line.

Every experiment module in ``keras_disentangle.experiments`` defines:

- ``NAME: str``: the subcommand (``"forced-to-learn"``);
- ``HELP: str``: one line for ``keras-disentangle --help``;
- ``configure(parser: argparse.ArgumentParser) -> None``: adds the
  experiment's own options (the command line has already added the common
  options ``--output``, ``--quick``, ``--seeds``, ``--epochs``, ``--verbose``);
- ``main(args: argparse.Namespace) -> int``: runs it, returns the exit status.

``args.seeds`` and ``args.epochs`` are ``None`` unless the user gave them; an
experiment picks its own defaults with :func:`pick` and :func:`seed_list`.
Modules import Keras / TensorFlow inside ``main`` so that ``--help`` stays
fast.
"""

from __future__ import annotations

import csv
import math
import pathlib
import sys
from collections.abc import Iterable, Sequence

__all__ = [
    "output_dir",
    "pick",
    "seed_list",
    "set_seed",
    "progress",
    "print_table",
    "write_csv",
    "save_figure",
    "new_figure",
    "mean_std",
    "fail",
]


def output_dir(args, name: str) -> pathlib.Path:
    """The folder for an experiment's files, created if needed.

    ``args.output`` when given, else ``./results/<name>``.
    """
    path = getattr(args, "output", None) or pathlib.Path("results") / name
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pick(value, default, quick_default=None, quick: bool = False):
    """``value`` if the user gave one, else the (quick) default.

    >>> pick(None, 40, 2, quick=True), pick(7, 40, 2, quick=True), pick(None, 40)
    (2, 7, 40)
    """
    if value is not None:
        return value
    if quick and quick_default is not None:
        return quick_default
    return default


def seed_list(args, default: int, quick_default: int = 1) -> list[int]:
    """Seeds ``0 .. n-1``, with ``n = args.seeds`` or the (quick) default."""
    n = pick(getattr(args, "seeds", None), default, quick_default, args.quick)
    return list(range(int(n)))


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the Keras backend."""
    import keras

    keras.utils.set_random_seed(int(seed))


def progress(msg: str, quiet: bool = False) -> None:
    """Prints ``msg`` at once (flushed), unless ``quiet``."""
    if not quiet:
        print(msg, flush=True)


def _fmt(value, precision: int) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 10**-precision or abs(value) >= 1e6):
            return f"{value:.{precision - 1}e}"
        return f"{value:.{precision}f}"
    try:  # NumPy scalars
        return _fmt(value.item(), precision)
    except AttributeError:
        return str(value)


def print_table(
    rows: Sequence[dict],
    columns: Sequence[str],
    title: str | None = None,
    precision: int = 3,
    quiet: bool = False,
) -> str:
    """Prints ``rows`` as an aligned text table and returns the text.

    Floats are written with ``precision`` decimals (scientific notation when
    smaller than ``10**-precision``); a missing key prints as empty.

    >>> text = print_table([{"a": 1, "b": 0.5}], ["a", "b"], quiet=True)
    >>> print(text)
    a  b
    -  -----
    1  0.500
    """
    cells = [
        [_fmt(row[c], precision) if c in row else "" for c in columns] for row in rows
    ]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = []
    if title:
        lines.append(title)
    lines.append(
        "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()
    )
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append(
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        )
    text = "\n".join(lines)
    progress(text, quiet)
    return text


def write_csv(rows: Sequence[dict], path, columns: Sequence[str] | None = None):
    """Writes ``rows`` (dicts) to ``path`` as CSV; returns the path.

    ``columns`` defaults to every key, in order of first appearance.
    """
    path = pathlib.Path(path)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _plain(v) for k, v in row.items()})
    return path


def _plain(value):
    try:
        return value.item()
    except AttributeError:
        return value


def save_figure(fig, path):
    """Saves a matplotlib figure as PNG (150 dpi), closes it, returns the path."""
    path = pathlib.Path(path)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def new_figure(**kwargs):
    """A matplotlib ``Figure`` outside pyplot (no GUI backend needed)."""
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def mean_std(
    rows: Iterable[dict], by: Sequence[str], columns: Sequence[str]
) -> list[dict]:
    """Groups ``rows`` by the keys ``by``; mean and std of each column.

    Each output row holds the ``by`` keys, ``<column>`` (the mean),
    ``<column>_std`` (population std, 0 for one row) and ``n`` (rows in the
    group). Groups keep the order of their first row.

    >>> rows = [{"m": "a", "x": 1.0}, {"m": "a", "x": 3.0}, {"m": "b", "x": 2.0}]
    >>> for row in mean_std(rows, ["m"], ["x"]):
    ...     print(row)
    {'m': 'a', 'x': 2.0, 'x_std': 1.0, 'n': 2}
    {'m': 'b', 'x': 2.0, 'x_std': 0.0, 'n': 1}
    """
    groups: dict = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, members in groups.items():
        agg = dict(zip(by, key, strict=True))
        for c in columns:
            values = [float(m[c]) for m in members]
            mean = sum(values) / len(values)
            agg[c] = mean
            agg[c + "_std"] = math.sqrt(
                sum((v - mean) ** 2 for v in values) / len(values)
            )
        agg["n"] = len(members)
        out.append(agg)
    return out


def fail(msg: str, status: int = 1) -> int:
    """Prints ``msg`` to stderr and returns ``status`` (for ``return fail(...)``)."""
    print(msg, file=sys.stderr, flush=True)
    return status


def chunk_count(total: int, most: int = 10) -> int:
    """The largest divisor of ``total`` that is at most ``most``.

    Training loops split ``total`` steps into that many Keras "epochs" of
    equal length, so that no step is dropped by an integer division.
    """
    return max(c for c in range(1, min(most, total) + 1) if total % c == 0)
