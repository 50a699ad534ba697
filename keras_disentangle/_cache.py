"""Arrays computed once and kept in a checked ``.npz`` file.

:func:`cached_arrays` is the one cache of the package (the pen strokes of
``datasets.mnist_strokes``, the generated data sets): it loads a file only
when every array in it matches the checksum written beside it, and rebuilds
anything else with one warning naming the path, so a truncated, empty,
bit-flipped, foreign or outdated file never reaches the caller and never
raises.

File layout: an ``.npz`` (``numpy.savez_compressed``) holding the caller's
arrays and one more entry, :data:`META_KEY`, a JSON string::

    {"format": "keras_disentangle.cache", "version": <version>,
     "arrays": {<name>: {"dtype": ..., "shape": [...], "sha256": ...}}}

The
``sha256`` is the digest of the array's C-order bytes, its dtype string and
its shape. Files are written under a temporary name in the same folder and
renamed into place (``os.replace``), with the mode a new file gets from the
user's umask (``0o666 & ~umask``), so two processes never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["cached_arrays", "cache_dir", "META_KEY"]

#: The entry of a cache file that holds its JSON description.
META_KEY = "__keras_disentangle_cache__"

_FORMAT = "keras_disentangle.cache"


def cache_dir() -> pathlib.Path:
    """The package's cache folder (not created here).

    ``$KERAS_DISENTANGLE_CACHE`` when set, else
    ``$XDG_CACHE_HOME/keras_disentangle`` (``~/.cache/keras_disentangle``).

    >>> env = "KERAS_DISENTANGLE_CACHE"
    >>> cache_dir().name == "keras_disentangle" or env in os.environ
    True
    """
    folder = os.environ.get("KERAS_DISENTANGLE_CACHE")
    if folder:
        return pathlib.Path(folder)
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "keras_disentangle"


def _digest(array: np.ndarray) -> str:
    """sha256 of an array's C-order bytes, dtype string and shape."""
    hasher = hashlib.sha256()
    hasher.update(array.dtype.str.encode())
    hasher.update(repr(tuple(int(n) for n in array.shape)).encode())
    hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()


def _describe(arrays: dict[str, np.ndarray], version: str) -> str:
    return json.dumps(
        {
            "format": _FORMAT,
            "version": version,
            "arrays": {
                name: {
                    "dtype": array.dtype.str,
                    "shape": [int(n) for n in array.shape],
                    "sha256": _digest(array),
                }
                for name, array in sorted(arrays.items())
            },
        },
        sort_keys=True,
    )


class _Invalid(Exception):
    """A cache file that must be rebuilt; the message says why."""


def _load(path: pathlib.Path, version: str) -> dict[str, np.ndarray]:
    """The arrays of a valid cache file; raises ``_Invalid`` otherwise."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as stored:
            if META_KEY not in stored.files:
                raise _Invalid("it was not written by keras_disentangle")
            meta = json.loads(str(stored[META_KEY][()]))
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise _Invalid("it was not written by keras_disentangle")
            if meta.get("version") != version:
                raise _Invalid(
                    f"it holds version {meta.get('version')!r}, not {version!r}"
                )
            described = meta.get("arrays")
            names = set(stored.files) - {META_KEY}
            if not isinstance(described, dict) or set(described) != names:
                raise _Invalid("its list of arrays does not match its contents")
            arrays = {name: stored[name] for name in sorted(names)}
    except _Invalid:
        raise
    except Exception as error:  # BadZipFile, EOFError, zlib.error, ValueError...
        raise _Invalid(f"it cannot be read ({type(error).__name__}: {error})") from None
    for name, array in arrays.items():
        entry = described[name]
        if not isinstance(entry, dict) or entry.get("sha256") != _digest(array):
            raise _Invalid(f"array {name!r} does not match its checksum")
    return arrays


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(path: pathlib.Path, arrays: dict[str, np.ndarray], version: str) -> None:
    """Writes ``arrays`` to ``path`` atomically; an unwritable folder is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".part", dir=path.parent
        )
    except OSError:  # a read-only home: the caller still gets its arrays
        return
    temporary = pathlib.Path(name)
    entries: dict[str, Any] = {**arrays, META_KEY: np.array(_describe(arrays, version))}
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **entries)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
    except BaseException:  # Ctrl-C, SIGTERM turned into an exception
        temporary.unlink(missing_ok=True)
        raise


def cached_arrays(
    path: os.PathLike | str,
    build: Callable[[], dict[str, np.ndarray]],
    *,
    version: str = "1",
) -> dict[str, np.ndarray]:
    """Loads the arrays cached at ``path``, or builds and caches them.

    A valid file (written by this function, with the same ``version``, every
    array matching its stored sha256 of bytes, dtype and shape) is loaded. A
    missing file is built with ``build()`` and written. A file that exists
    but is unreadable, truncated, empty, damaged, foreign (no description)
    or of another ``version`` is rebuilt and replaced, with one
    ``warnings.warn`` that names ``path`` and says why. Writing is atomic
    (temporary file in the same folder, then ``os.replace``) and the file
    gets the mode the user's umask gives a new file; a folder that cannot be
    written only loses the file (the arrays are still returned).

    Args:
        path: the ``.npz`` file.
        build: returns the arrays, a dict from names (valid Python
            identifiers other than ``META_KEY``) to NumPy arrays (no object
            dtype).
        version: bump it when ``build`` changes what it returns.

    Returns:
        A dict from names to NumPy arrays: the built ones, or the stored ones
        (equal to what ``build`` returned when they were written).

    Example:

        >>> import tempfile, numpy as np
        >>> folder = tempfile.mkdtemp()
        >>> calls = []
        >>> def build():
        ...     calls.append(1)
        ...     return {"x": np.arange(3.0)}
        >>> cached_arrays(f"{folder}/a.npz", build)["x"].tolist()
        [0.0, 1.0, 2.0]
        >>> cached_arrays(f"{folder}/a.npz", build)["x"].tolist(), len(calls)
        ([0.0, 1.0, 2.0], 1)
    """
    path = pathlib.Path(path)
    version = str(version)
    if path.exists():
        try:
            return _load(path, version)
        except _Invalid as reason:
            warnings.warn(
                f"keras_disentangle: rebuilding the cache file {str(path)!r}: {reason}",
                RuntimeWarning,
                stacklevel=2,
            )
    arrays = build()
    if not isinstance(arrays, dict) or not all(
        isinstance(k, str) and k.isidentifier() and k != META_KEY for k in arrays
    ):
        raise ValueError(
            "Invalid value for argument build: expected a function returning a "
            "dict from identifiers to NumPy arrays. "
            f"Received: {arrays if not isinstance(arrays, dict) else list(arrays)!r}"
        )
    arrays = {name: np.asarray(array) for name, array in arrays.items()}
    if any(array.dtype == object for array in arrays.values()):
        raise ValueError(
            "Invalid value for argument build: expected NumPy arrays of numbers, "
            "strings or booleans. Received: an array of dtype object"
        )
    _write(path, arrays, version)
    return arrays
