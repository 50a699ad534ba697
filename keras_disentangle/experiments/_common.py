"""Small helpers shared by the experiment modules and the command line.

The protocol of an experiment. Each module in
``keras_disentangle.experiments`` listed in ``experiments.MODULES`` (one entry
registers it; the first is the default subcommand) defines:

- ``NAME: str``: the subcommand (``"forced-to-learn"``);
- ``HELP: str``: one line for ``keras-disentangle --help``;
- ``configure(parser: argparse.ArgumentParser) -> None``: adds the
  experiment's own options. Every value is checked here, when the command
  line is parsed, with an argparse ``type`` (:func:`positive_int`,
  :func:`non_negative_float`, :func:`non_negative_floats`, ...), so that a
  bad value ends the command with exit status 2 before anything runs. The
  command line has already added and checked the common options
  ``--output``, ``--overwrite``, ``--quick``, ``--seeds``, ``--epochs``,
  ``--verbose``;
- ``OUTPUTS: tuple[str, ...]`` (optional): glob patterns of the file names
  the experiment may write into ``--output`` (``"xor_seed*.png"``); the
  command line refuses, before anything runs, to start over a file of the
  user that matches one (see :func:`check_output`);
- ``main(args: argparse.Namespace) -> int``: runs it, returns the exit status.

The command line reads ``NAME``, ``HELP``, ``configure`` and ``OUTPUTS``
without importing Keras (``keras_disentangle_cli`` loads the module with the
package's ``__init__`` skipped), so a module imports only the standard
library, NumPy and this module at its top level, and Keras, TensorFlow and
the rest of the library inside ``main`` and the functions it calls.

``args.seeds`` and ``args.epochs`` are ``None`` unless the user gave them; an
experiment picks its own defaults with :func:`pick` and :func:`seed_list`.

Files: :func:`output_dir` opens the folder for a run. The folder's manifest,
``.keras-disentangle-manifest.json``, lists each file the previous run wrote
with its size and sha256. :func:`output_dir` deletes those of them that are
unchanged (a file whose size or hash differs is the user's now, and kept),
deletes the temporary files a killed run left (``.<name>.<8 characters>.part``
and ``.<name>.<8 characters>.part.<ext>``), and stops with
:class:`OutputConflict` when a file it did not write has the name of an
output (unless ``--overwrite``). :func:`write_csv` / :func:`save_figure`
write each file under a temporary name in the same folder and rename it into
place (``os.replace``), so an interrupted run never leaves a half-written
file.

Progress: :class:`RunProgress` is one bar over a whole run (models x epochs)
with an ETA, fed by a Keras callback from every ``fit``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import fnmatch
import hashlib
import json
import math
import os
import pathlib
import re
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
    "TIMING_COLUMNS",
    "OutputConflict",
    "check_output",
    "remove_temporary_files",
    "positive_int",
    "int_at_least",
    "positive_float",
    "non_negative_float",
    "non_negative_floats",
    "output_folder",
    "fraction",
    "positive_floats",
    "some_non_negative_floats",
    "subset_of",
]

#: Columns that :func:`write_csv` leaves out: wall-clock times, which differ
#: from run to run.
TIMING_COLUMNS = ("seconds",)

#: The file in an output folder that lists what the last run wrote there.
MANIFEST = ".keras-disentangle-manifest.json"

#: Romanov & Rumshisky's binary task: classes 0-4 against 5-9.
FIRST_LAST = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))


class OutputConflict(Exception):
    """An output folder holds a file, not written by the package, that a run
    would replace. The message is one line for the user."""


#: Temporary files of :func:`_atomic`: ``.<name>.<8 characters>.part[.<ext>]``
#: (``tempfile.mkstemp``'s random part is 8 characters of ``[a-z0-9_]``).
_PART = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.[A-Za-z0-9]+)?$")

#: Temporary files of this process not yet renamed into place.
_TEMPORARY: set[pathlib.Path] = set()

#: Output folders opened with ``--overwrite`` (resolved paths).
_OVERWRITE: set[pathlib.Path] = set()

#: The ``OUTPUTS`` patterns of the run that opened each output folder.
_PATTERNS: dict[pathlib.Path, tuple[str, ...]] = {}


def _sha256(path: pathlib.Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _unchanged(path: pathlib.Path, entry: dict) -> bool:
    """Whether ``path`` is a regular file with the recorded size and hash."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        if path.stat().st_size != entry.get("size"):
            return False
        return _sha256(path) == entry.get("sha256")
    except OSError:
        return False


def _owned(folder: pathlib.Path) -> dict[str, dict]:
    """Manifest entries of ``folder`` whose file is still as the package wrote it."""
    return {
        name: entry
        for name, entry in _read_manifest(folder / MANIFEST).items()
        if _unchanged(folder / name, entry)
    }


def check_output(
    folder: str | os.PathLike, patterns: Iterable[str], overwrite: bool = False
) -> None:
    """Raises :class:`OutputConflict` if a run could replace a user's file.

    A file directly in ``folder`` whose name matches one of the glob
    ``patterns`` (an experiment's ``OUTPUTS``) and that is not listed,
    unchanged, in the folder's manifest was not written by the package: the
    run stops before anything runs, unless ``overwrite``. Reads only.
    """
    folder = pathlib.Path(folder)
    patterns = tuple(patterns)
    if overwrite or not patterns or not folder.is_dir():
        return
    owned = _owned(folder)
    for path in sorted(folder.iterdir()):
        name = path.name
        if name == MANIFEST or name in owned:
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            raise OutputConflict(_conflict_message(path))


def _conflict_message(path: pathlib.Path) -> str:
    return (
        f"{str(path)!r} was not written by keras-disentangle (or was changed "
        "since): move it away or pass --overwrite to replace it"
    )


def output_dir(args: argparse.Namespace, name: str) -> pathlib.Path:
    """The folder for an experiment's files, created if needed.

    ``args.output`` when given, else ``./results/<name>``. The files that the
    previous run wrote there and that are unchanged (listed with their size
    and sha256 in its manifest, :data:`MANIFEST`) are deleted, so a rerun
    leaves no stale file, and so are the temporary files of a killed run.
    Other files are never deleted; one the run would replace stops it with
    :class:`OutputConflict` unless ``args.overwrite``.
    """
    path = getattr(args, "output", None) or pathlib.Path("results") / name
    path = pathlib.Path(path)
    overwrite = bool(getattr(args, "overwrite", False))
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.iterdir():
        if _PART.match(leftover.name) and leftover.is_file():
            leftover.unlink(missing_ok=True)
    owned = _owned(path)
    for old in owned:
        target = path / old
        # Only plain names of regular files directly in the folder.
        if pathlib.Path(old).name == old and target.is_file():
            target.unlink()
    if overwrite:
        _OVERWRITE.add(path.resolve())
    else:
        _OVERWRITE.discard(path.resolve())
    _PATTERNS[path.resolve()] = tuple(getattr(args, "_outputs", ()))
    _write_manifest(path / MANIFEST, {})
    return path


def _read_manifest(manifest: pathlib.Path) -> dict[str, dict]:
    """``{name: {"size": int, "sha256": str}}``; an old or damaged one: {}."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {
        name: entry
        for name, entry in files.items()
        if isinstance(name, str)
        and pathlib.Path(name).name == name
        and isinstance(entry, dict)
    }


def _write_manifest(manifest: pathlib.Path, files: dict[str, dict]) -> None:
    with _atomic(manifest) as temporary:
        temporary.write_text(
            json.dumps({"version": 2, "files": files}, indent=1, sort_keys=True) + "\n"
        )


def _claim(path: pathlib.Path) -> None:
    """Raises :class:`OutputConflict` if writing ``path`` would replace a file
    the package did not write, in a folder opened by :func:`output_dir` (it
    has a manifest) without overwrite.

    Raises ``ValueError`` if the command line opened the folder for an
    experiment whose ``OUTPUTS`` patterns do not match ``path``'s name (a
    bug of the experiment: every name it writes must be declared).
    """
    patterns = _PATTERNS.get(path.parent.resolve())
    if patterns and not any(fnmatch.fnmatchcase(path.name, p) for p in patterns):
        raise ValueError(
            f"{path.name!r} matches none of the experiment's OUTPUTS {patterns}"
        )
    if not path.exists() or path.parent.resolve() in _OVERWRITE:
        return
    if not (path.parent / MANIFEST).is_file():
        return
    entry = _read_manifest(path.parent / MANIFEST).get(path.name)
    if entry is None or not _unchanged(path, entry):
        raise OutputConflict(_conflict_message(path))


def _record(path: pathlib.Path) -> None:
    """Adds ``path`` (size, sha256) to the manifest of its folder, if it has one."""
    manifest = path.parent / MANIFEST
    if manifest.is_file():
        files = _read_manifest(manifest)
        files[path.name] = {"size": path.stat().st_size, "sha256": _sha256(path)}
        _write_manifest(manifest, files)


@contextlib.contextmanager
def _atomic(path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A temporary path in ``path``'s folder, renamed to ``path`` on success.

    On any exception (``KeyboardInterrupt`` included) the temporary file is
    removed and ``path`` is left as it was. The temporary file is also listed
    in ``_TEMPORARY`` until then, for :func:`remove_temporary_files`.
    """
    handle, name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".part{path.suffix}", dir=path.parent
    )
    temporary = pathlib.Path(name)
    _TEMPORARY.add(temporary)
    try:
        os.close(handle)
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    finally:
        _TEMPORARY.discard(temporary)


def remove_temporary_files() -> None:
    """Deletes the temporary files this process has not renamed into place
    (called by the command line when a signal cuts a write short)."""
    for temporary in list(_TEMPORARY):
        with contextlib.suppress(OSError):
            temporary.unlink()
        _TEMPORARY.discard(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------
# Option types: argparse ``type=`` callables that check a value when the
# command line is parsed. A bad value becomes argparse's one-line error
# ("argument --units: expected an integer >= 1, received 0") and exit 2.


def int_at_least(minimum: int):
    """An argparse ``type``: an integer >= ``minimum``.

    >>> int_at_least(2)("3")
    3
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, received {text!r}"
            )
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


#: argparse ``type``: an integer >= 1.
positive_int = int_at_least(1)


def _number(text: str, expected: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """argparse ``type``: a finite number >= 0 (a penalty weight; 0: none).

    >>> non_negative_float("0.5")
    0.5
    """
    value = _number(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a finite number >= 0, received {text!r}"
        )
    return value


def positive_float(text: str) -> float:
    """argparse ``type``: a finite number > 0 (a learning rate, a width).

    >>> positive_float("1e-3")
    0.001
    """
    value = _number(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a finite number > 0, received {text!r}"
        )
    return value


def fraction(text: str) -> float:
    """argparse ``type``: a number in [0, 1).

    >>> fraction("0.01")
    0.01
    """
    value = _number(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1), received {text!r}"
        )
    return value


def non_negative_floats(text: str) -> tuple:
    """argparse ``type``: comma-separated finite numbers >= 0 ("" gives ()).

    >>> non_negative_floats("0,0.5"), non_negative_floats("")
    ((0.0, 0.5), ())
    """
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = (math.nan,)
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated finite numbers >= 0, received {text!r}"
        )
    return values


def positive_floats(text: str) -> tuple:
    """argparse ``type``: one or more comma-separated finite numbers > 0.

    >>> positive_floats("4,2")
    (4.0, 2.0)
    """
    values = non_negative_floats(text)
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated finite numbers > 0, received {text!r}"
        )
    return values


def some_non_negative_floats(text: str) -> tuple:
    """argparse ``type``: one or more comma-separated finite numbers >= 0.

    >>> some_non_negative_floats("0,1")
    (0.0, 1.0)
    """
    values = non_negative_floats(text)
    if not values:
        raise argparse.ArgumentTypeError(
            f"expected one or more comma-separated numbers >= 0, received {text!r}"
        )
    return values


def subset_of(choices: Sequence[str]):
    """An argparse ``type``: a comma-separated subset of ``choices``; the
    text is returned as given.

    >>> subset_of(("a", "b"))("b,a")
    'b,a'
    """

    def parse(text: str) -> str:
        chosen = [v.strip() for v in text.split(",") if v.strip()]
        if not chosen or any(v not in choices for v in chosen):
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated subset of {','.join(choices)}, "
                f"received {text!r}"
            )
        return text

    parse.__name__ = "subset"
    return parse


def output_folder(text: str) -> pathlib.Path:
    """argparse ``type``: a folder that exists or can be created, and written.

    Nothing is created here: the nearest existing ancestor must be a folder
    in which a file can be created (probed with a temporary file that is
    removed at once), and ``text`` must not be an existing file.
    """
    path = pathlib.Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is an existing file; expected a folder"
        )
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot create the folder {text!r}: {str(ancestor)!r} is a file"
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".keras-disentangle-", dir=ancestor)
    except OSError as error:
        reason = os.strerror(error.errno or errno.EACCES)
        raise argparse.ArgumentTypeError(
            f"cannot write to {text!r} ({reason} in {str(ancestor)!r})"
        ) from None
    os.close(handle)
    os.unlink(probe)
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
        self._last_done = -1
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
        finished = self.done == self.total and self._last_done != self.done
        if now - self._last_line >= self.every or finished:
            self._last_line = now
            self._last_done = self.done
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

    ``columns`` defaults to every key, in order of first appearance. The
    wall-clock columns :data:`TIMING_COLUMNS` are never written: a CSV holds
    what a rerun reproduces byte for byte (the log lines print the times).
    The file is written under a temporary name and renamed into place.
    """
    path = pathlib.Path(path)
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    columns = [c for c in columns if c not in TIMING_COLUMNS]
    _claim(path)
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
        _claim(path)
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
