"""Small helpers shared by the experiment modules and the command line.

Every experiment module in ``keras_disentangle.experiments`` defines:

- ``NAME: str``: the subcommand (``"forced-to-learn"``);
- ``HELP: str``: one line for ``keras-disentangle --help``;
- ``configure(parser: argparse.ArgumentParser) -> None``: adds the
  experiment's own options (the command line has already added the common
  options ``--output``, ``--quick``, ``--seeds``, ``--epochs``, ``--verbose``,
  and checked them: ``--seeds`` and ``--epochs`` are integers >= 1,
  ``--output`` is a folder that can be written);
- ``main(args: argparse.Namespace) -> int``: runs it, returns the exit status.

``args.seeds`` and ``args.epochs`` are ``None`` unless the user gave them; an
experiment picks its own defaults with :func:`pick` and :func:`seed_list`.
Modules import Keras / TensorFlow inside ``main`` so that ``--help`` stays
fast.

Files: :func:`output_dir` opens the folder for a run. It deletes the files
that the previous run of an experiment wrote there (listed in the folder's
manifest, ``.keras-disentangle-manifest.json``; no other file is touched),
and :func:`write_csv` / :func:`save_figure` write each file under a temporary
name in the same folder and rename it into place (``os.replace``), so an
interrupted run never leaves a half-written file.

Progress: :class:`RunProgress` is one bar over a whole run (models x epochs)
with an ETA, fed by a Keras callback from every ``fit``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import numpy as np

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
    "steps_per_execution",
    "mean_std",
    "fail",
    "chunk_count",
    "binary_targets",
    "FIRST_LAST",
    "RunProgress",
    "fit_verbose",
    "MANIFEST",
]

#: The file in an output folder that lists what the last run wrote there.
MANIFEST = ".keras-disentangle-manifest.json"

#: Romanov & Rumshisky's binary task: classes 0-4 against 5-9.
FIRST_LAST = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


def output_dir(args: argparse.Namespace, name: str) -> pathlib.Path:
    """The folder for an experiment's files, created if needed.

    ``args.output`` when given, else ``./results/<name>``. The files that the
    previous run wrote there (listed in its manifest, :data:`MANIFEST`) are
    deleted, so a rerun leaves no stale file; files the package did not write
    are never touched.
    """
    path = getattr(args, "output", None) or pathlib.Path("results") / name
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    manifest = path / MANIFEST
    for old in _read_manifest(manifest):
        target = path / old
        # Only plain names of regular files directly in the folder.
        if pathlib.Path(old).name == old and target.is_file():
            target.unlink()
    _write_manifest(manifest, [])
    return path


def _read_manifest(manifest: pathlib.Path) -> list[str]:
    try:
        names = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str)]


def _write_manifest(manifest: pathlib.Path, names: list[str]) -> None:
    with _atomic(manifest) as temporary:
        temporary.write_text(json.dumps(sorted(set(names)), indent=0) + "\n")


def _record(path: pathlib.Path) -> None:
    """Adds ``path`` to the manifest of its folder, if the folder has one."""
    manifest = path.parent / MANIFEST
    if manifest.is_file():
        _write_manifest(manifest, _read_manifest(manifest) + [path.name])


@contextlib.contextmanager
def _atomic(path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A temporary path in ``path``'s folder, renamed to ``path`` on success.

    On any exception (``KeyboardInterrupt`` included) the temporary file is
    removed and ``path`` is left as it was.
    """
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent
    )
    os.close(handle)
    temporary = pathlib.Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def seed_list(
    args: argparse.Namespace, default: int, quick_default: int = 1
) -> list[int]:
    """Seeds ``0 .. n-1``, with ``n = args.seeds`` or the (quick) default."""
    n = pick(getattr(args, "seeds", None), default, quick_default, args.quick)
    return list(range(int(n)))


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the Keras backend."""
    import keras

    from keras_disentangle._validation import check_seed

    keras.utils.set_random_seed(check_seed("seed", seed))


def progress(msg: str, quiet: bool = False) -> None:
    """Prints ``msg`` at once (flushed), unless ``quiet``.

    A progress bar drawn on the terminal is cleared first and drawn again
    after the line, so log lines and the bar do not overwrite each other.
    """
    if quiet:
        return
    bar = RunProgress.active
    if bar is not None:
        bar.clear()
    print(msg, flush=True)
    if bar is not None:
        bar.draw()


def fit_verbose(args: argparse.Namespace) -> int:
    """Keras ``fit``'s ``verbose`` for ``--verbose``: 2 (epoch lines) at 2."""
    return 2 if getattr(args, "verbose", 1) >= 2 else 0


def _duration(seconds: float) -> str:
    """``"1h02m"``, ``"3m05s"`` or ``"42s"``.

    >>> _duration(42.4), _duration(185), _duration(3720)
    ('42s', '3m05s', '1h02m')
    """
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class RunProgress:
    """One progress bar over a whole run: every epoch of every model.

    ``total`` is the number of epochs the run trains in all (models x
    epochs). Each ``fit`` gets ``callbacks=[bar.callback()]``; the bar
    advances by one at every epoch end and shows the share done, the elapsed
    time and an ETA (elapsed / done x remaining). On a terminal (``stream``
    is a TTY) it redraws one line with ``\\r``; otherwise it writes a line
    at most every ``every`` seconds (and at the end), which suits logs and CI.

    Args:
        total: epochs in the whole run, >= 1.
        label: the text before the bar (the experiment's name).
        enabled: ``False`` (``--verbose 0``) draws nothing.
        stream: where to draw; default ``sys.stderr``.
        every: seconds between lines when ``stream`` is not a terminal.

    Example:

        >>> import io
        >>> stream = io.StringIO()
        >>> bar = RunProgress(4, label="demo", stream=stream, every=0)
        >>> bar.advance(2)
        >>> bar.close()
        >>> print(stream.getvalue().splitlines()[0].split(" ETA")[0])
        [demo] 2/4 epochs (50%)
    """

    #: The bar on screen, if any (:func:`progress` clears and redraws it).
    active: RunProgress | None = None

    def __init__(
        self,
        total: int,
        label: str = "run",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every: float = 30.0,
    ) -> None:
        self.total = max(1, int(total))
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.every = every
        self.done = 0
        self.start = time.perf_counter()
        self._last_line = -math.inf
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if enabled:
            RunProgress.active = self

    def _text(self) -> str:
        elapsed = time.perf_counter() - self.start
        share = self.done / self.total
        text = (
            f"[{self.label}] {self.done}/{self.total} epochs ({share:.0%}), "
            f"{_duration(elapsed)} elapsed"
        )
        if 0 < self.done < self.total:
            eta = elapsed / self.done * (self.total - self.done)
            text = text.replace(
                f"({share:.0%}),", f"({share:.0%}) ETA {_duration(eta)},"
            )
        return text

    def draw(self) -> None:
        """Draws the bar (terminal) or a line (at most every ``every`` s)."""
        if not self.enabled:
            return
        if self._tty:
            width = 24
            filled = int(width * self.done / self.total)
            bar = "=" * filled + ">" * (filled < width) + " " * (width - filled - 1)
            self.stream.write(f"\r\033[K[{bar[:width]}] {self._text()}")
            self.stream.flush()
            return
        now = time.perf_counter()
        if now - self._last_line >= self.every or self.done == self.total:
            self._last_line = now
            self.stream.write(self._text() + "\n")
            self.stream.flush()

    def clear(self) -> None:
        """Erases the bar's line on a terminal (before a log line)."""
        if self.enabled and self._tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def advance(self, n: int = 1) -> None:
        """Counts ``n`` more epochs done and redraws."""
        self.done = min(self.total, self.done + n)
        self.draw()

    def close(self) -> None:
        """Ends the bar (a final newline on a terminal)."""
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
        if RunProgress.active is self:
            RunProgress.active = None

    def callback(self) -> Any:
        """A ``keras.callbacks.Callback`` that advances this bar per epoch."""
        import keras

        bar = self

        class _Advance(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                bar.advance(1)

        return _Advance()


def binary_targets(labels: Any, groups: Sequence = FIRST_LAST) -> np.ndarray:
    """Coarse binary ``float32`` targets for a sigmoid output.

    The index of the group of each label (``datasets.binary_groups``): with
    the default groups, 0 for classes 0-4 and 1 for 5-9, Romanov &
    Rumshisky's binary task.

    >>> binary_targets([0, 4, 5, 9]).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    from keras_disentangle.datasets import binary_groups

    return binary_groups(labels, tuple(groups)).astype("float32")


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


def write_csv(
    rows: Sequence[dict],
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
) -> pathlib.Path:
    """Writes ``rows`` (dicts) to ``path`` as CSV; returns the path.

    ``columns`` defaults to every key, in order of first appearance. The file
    is written under a temporary name and renamed into place.
    """
    path = pathlib.Path(path)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    with _atomic(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _plain(v) for k, v in row.items()})
    _record(path)
    return path


def _plain(value):
    try:
        return value.item()
    except AttributeError:
        return value


def save_figure(fig: Any, path: str | os.PathLike) -> pathlib.Path:
    """Saves a matplotlib figure as PNG (150 dpi), closes it, returns the path.

    The file is written under a temporary name and renamed into place.
    """
    path = pathlib.Path(path)
    try:
        with _atomic(path) as temporary:
            fig.savefig(temporary, format="png", dpi=150, bbox_inches="tight")
    finally:
        if getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure
            import matplotlib.pyplot as plt

            plt.close(fig)
    _record(path)
    return path


def steps_per_execution(steps: int) -> int:
    """``steps`` for ``compile(steps_per_execution=...)``, or 1 on the
    PyTorch backend, whose trainer runs one step per call."""
    import keras

    return 1 if keras.backend.backend() == "torch" else max(1, int(steps))


def new_figure(**kwargs: Any) -> Any:
    """A matplotlib ``Figure`` outside pyplot: ``plots.new_figure``, imported
    on first use so that ``--help`` does not import matplotlib."""
    from keras_disentangle.plots import new_figure as _plots_new_figure

    return _plots_new_figure(**kwargs)


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
