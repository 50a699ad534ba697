"""datasets.shapes2d: the grid of factors, its images, the sampler, the cache."""

import numpy as np
import pytest

from keras_disentangle import datasets

pytestmark = pytest.mark.backend_independent

SMALL = {"size": 16, "n_scale": 2, "n_orientation": 4, "n_x": 3, "n_y": 3}


def test_every_combination_once_in_c_order():
    data = datasets.shapes2d(cache=False, **SMALL)
    assert data.factor_sizes == (3, 2, 4, 3, 3)
    assert data.images.shape == (216, 16, 16, 1) and data.images.dtype == np.float32
    assert set(np.unique(data.images)) == {0.0, 1.0}
    expected = np.array(list(np.ndindex(*data.factor_sizes)))
    np.testing.assert_array_equal(data.factors, expected)
    np.testing.assert_array_equal(data.index_of(data.factors), np.arange(216))


def test_images_follow_their_factors():
    data = datasets.shapes2d(cache=False, **SMALL)
    images = data.images[..., 0]
    area = images.sum(axis=(1, 2))
    assert np.all(area > 0)
    f = data.factors
    # A larger scale covers more pixels (same shape, orientation, position).
    small, large = area[f[:, 1] == 0], area[f[:, 1] == 1]
    assert np.all(large > small)
    # The centre of mass moves with x (columns) and y (rows).
    cols = (images * np.arange(16)[None, None, :]).sum(axis=(1, 2)) / area
    rows = (images * np.arange(16)[None, :, None]).sum(axis=(1, 2)) / area
    for k in range(2):
        assert np.all(cols[f[:, 3] == k + 1] > cols[f[:, 3] == k] - 0.5)
        assert cols[f[:, 3] == k + 1].mean() > cols[f[:, 3] == k].mean() + 1
        assert rows[f[:, 4] == k + 1].mean() > rows[f[:, 4] == k].mean() + 1
    # The three shapes differ at the same scale, orientation and position.
    same = data.index_of([[s, 1, 1, 1, 1] for s in range(3)])
    assert len({images[i].tobytes() for i in same}) == 3


def test_sampler_is_deterministic_and_fixes_a_factor():
    data = datasets.shapes2d(cache=False, **SMALL)
    x1, f1 = data.sample(50, seed=3)
    x2, f2 = data.sample(50, seed=3)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(x1, data.images[data.index_of(f1)])
    assert all(len(np.unique(f1[:, j])) > 1 for j in range(5))
    for k in range(5):
        _, fk = data.sample(40, seed=k, fixed_factor=k)
        assert len(np.unique(fk[:, k])) == 1
        assert all(len(np.unique(fk[:, j])) > 1 for j in range(5) if j != k)
    with pytest.raises(ValueError, match="argument fixed_factor"):
        data.sample(4, 0, fixed_factor=5)
    with pytest.raises(ValueError, match="argument seed"):
        data.sample(4, -1)


def test_cache_file_gives_the_same_images(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DISENTANGLE_CACHE", str(tmp_path))
    monkeypatch.setattr(datasets, "_SHAPES2D_MEMORY", {})
    drawn = datasets.shapes2d(**SMALL)
    assert len(list(tmp_path.glob("shapes2d-*.npz"))) == 1
    monkeypatch.setattr(datasets, "_SHAPES2D_MEMORY", {})
    loaded = datasets.shapes2d(**SMALL)
    assert loaded is not drawn
    np.testing.assert_array_equal(loaded.images, drawn.images)
    assert datasets.shapes2d(**SMALL) is loaded  # the memory cache


def test_invalid_grid_raises():
    with pytest.raises(ValueError, match="argument size"):
        datasets.shapes2d(size=4)
    with pytest.raises(ValueError, match="argument n_x"):
        datasets.shapes2d(n_x=0)


def test_shapes2d_scores_a_ground_truth_encoder_perfectly():
    from keras_disentangle import scores

    data = datasets.shapes2d(cache=False, **SMALL)
    f = data.factors.astype(float)
    assert scores.mig(f, data.factors) == pytest.approx(1.0)
