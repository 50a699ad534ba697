"""keras_disentangle.plots: headless figures with the expected axes."""

import keras
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from keras_disentangle import plots, scores  # noqa: E402

pytestmark = pytest.mark.backend_independent


def _png_ok(fig, tmp_path, name):
    path = tmp_path / f"{name}.png"
    fig.savefig(path, format="png")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1000


def _data(n=90, p=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    h = rng.normal(size=(n, p)) * 0.3
    h[np.arange(n), labels] += 2.0
    return h, labels


def test_most_active_unit_counts_match_a_loop():
    h, labels = _data()
    classes, counts = plots.most_active_unit_counts(h, labels)
    expected = np.zeros((3, 6), dtype=int)
    for row, label in zip(h, labels, strict=True):
        best = max(range(6), key=lambda k, row=row: (row[k], -k))
        expected[list(classes).index(label), best] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(labels)


def test_most_active_units_from_embeddings_and_from_a_model(tmp_path):
    h, labels = _data()
    fig = plots.most_active_units(h, labels=labels, normalize=True)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # heatmap + colorbar
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("unit", "class")
    assert ax.get_title() == "Most active unit per sample"
    shown = ax.images[0].get_array()
    assert shown.shape == (3, 6)
    np.testing.assert_allclose(np.asarray(shown).sum(axis=1), 1.0)
    _png_ok(fig, tmp_path, "most_active")

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    fig = plots.most_active_units(model, h, labels, layer="hidden")
    embeddings = keras.Model(inputs, hidden).predict(h, verbose=0)
    _, expected = plots.most_active_unit_counts(embeddings, labels)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), expected)
    with pytest.raises(ValueError, match="argument x"):
        plots.most_active_units(model, None, labels)
    with pytest.raises(ValueError, match="argument layer"):
        plots.most_active_units(h, None, labels, layer="hidden")
    with pytest.raises(ValueError, match="argument labels"):
        plots.most_active_units(h)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_scatter(method, tmp_path):
    h, labels = _data(n=60)
    kwargs = {"max_iter": 250} if method == "tsne" else {}
    # One OpenMP thread: on a busy 2-core CI machine, t-SNE's threads wait on
    # each other for seconds; alone, 60 points take a fraction of a second.
    with threadpool_limits(1):
        fig = plots.embedding_scatter(
            h, labels, method=method, projection_kwargs=kwargs
        )
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.collections) == 3  # one scatter per class
    assert sum(len(c.get_offsets()) for c in ax.collections) == 60
    assert ax.get_legend() is not None
    assert ax.get_xlabel() == "component 1"
    assert "of the embeddings" in ax.get_title()
    _png_ok(fig, tmp_path, f"scatter_{method}")


def test_embedding_scatter_subsamples_and_validates():
    h, labels = _data(n=90)
    fig = plots.embedding_scatter(h, labels, max_points=40)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 40
    with pytest.raises(ValueError, match="argument method"):
        plots.embedding_scatter(h, labels, method="umap")
    with pytest.raises(ValueError, match="at least 2"):
        plots.embedding_scatter(h[:, :1], labels)
    with pytest.raises(ValueError, match="same number of samples"):
        plots.embedding_scatter(h, labels[:-1])


def test_write_projector_files(tmp_path):
    h, labels = _data(n=20, p=3)
    paths = plots.write_projector(h, labels, tmp_path / "proj", tensor_name="hid")
    tensors = np.loadtxt(paths["tensors"], delimiter="\t")
    np.testing.assert_allclose(tensors, h, rtol=1e-6)
    with open(paths["metadata"]) as f:
        assert f.read().splitlines() == [str(v) for v in labels]
    text = open(paths["config"]).read()
    assert 'tensor_path: "tensors.tsv"' in text
    assert 'metadata_path: "metadata.tsv"' in text
    # The config parses as TensorBoard's ProjectorConfig where it is installed.
    try:
        from google.protobuf import text_format
        from tensorboard.plugins.projector.projector_config_pb2 import (
            ProjectorConfig,
        )
    except ImportError:
        return
    config = text_format.Parse(text, ProjectorConfig())
    assert config.embeddings[0].tensor_name == "hid"
    assert config.embeddings[0].metadata_path == "metadata.tsv"


def test_scores_by_n_clusters_lines_hold_the_scores(tmp_path):
    h, labels = _data(n=60)
    noise = np.random.default_rng(1).normal(size=(60, 6))
    fig = plots.scores_by_n_clusters(
        {"penalised": h, "noise": noise}, labels, n_clusters=[2, 3, 5], n_init=2
    )
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["penalised", "noise"]
    assert list(ax.lines[0].get_xdata()) == [2, 3, 5]
    expected = [
        scores.cluster_scores(h, labels, n_clusters=k, n_init=2)["ami"]
        for k in (2, 3, 5)
    ]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected)
    assert max(ax.lines[0].get_ydata()) > max(ax.lines[1].get_ydata())
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("number of clusters", "AMI")
    _png_ok(fig, tmp_path, "scores")
    with pytest.raises(ValueError, match="embeddings_by_model"):
        plots.scores_by_n_clusters({}, labels)
    with pytest.raises(ValueError, match="argument score"):
        plots.scores_by_n_clusters({"a": h}, labels, score="f1")


def test_covariance_image(tmp_path):
    h, _ = _data(p=5)
    fig = plots.covariance_image(h, title="layer", log_spectrum=True)
    assert len(fig.axes) == 3  # covariance, spectrum, colorbar
    cov_ax, spec_ax = fig.axes[:2]
    assert cov_ax.get_title() == "Covariance"
    assert spec_ax.get_title() == "Variance spectrum"
    assert (spec_ax.get_xlabel(), spec_ax.get_ylabel()) == ("rank", "variance")
    np.testing.assert_allclose(cov_ax.images[0].get_array(), np.cov(h, rowvar=False))
    spectrum = spec_ax.lines[0].get_ydata()
    np.testing.assert_allclose(spectrum, np.sort(np.var(h, axis=0, ddof=1))[::-1])
    assert fig.get_suptitle() == "layer"
    _png_ok(fig, tmp_path, "covariance")
    # A constant layer draws (no division by a zero colour range).
    _png_ok(plots.covariance_image(np.ones((4, 3))), tmp_path, "constant")
    with pytest.raises(ValueError, match="at least 2 samples"):
        plots.covariance_image(np.ones((1, 3)))


def test_new_figure_is_a_constrained_figure_outside_pyplot():
    fig = plots.new_figure(figsize=(3.0, 2.0))
    assert isinstance(fig, Figure)
    assert tuple(fig.get_size_inches()) == (3.0, 2.0)
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda y: np.where(y == 0, np.nan, y), "argument labels.*NaN"),
        (lambda y: y + 0.5, "argument labels.*fractions"),
        (lambda y: None, "argument labels"),
    ],
)
def test_bad_labels_name_the_argument_in_every_plot(labels, message, tmp_path):
    h, y = _data(n=30)
    bad = labels(y.astype(float))
    for draw in (
        lambda: plots.most_active_units(h, labels=bad),
        lambda: plots.embedding_scatter(h, bad),
        lambda: plots.write_projector(h, bad, tmp_path),
        lambda: plots.scores_by_n_clusters({"a": h}, bad, n_clusters=[2]),
    ):
        with pytest.raises(ValueError, match=message):
            draw()


def test_one_hot_labels_count_like_integers_and_bad_seeds_raise():
    h, y = _data()
    _, counts = plots.most_active_unit_counts(h, y)
    _, from_one_hot = plots.most_active_unit_counts(h, np.eye(3)[y])
    np.testing.assert_array_equal(from_one_hot, counts)
    with pytest.raises(ValueError, match="argument seed"):
        plots.embedding_scatter(h, y, seed=-1)
    with pytest.raises(ValueError, match="argument seed"):
        plots.scores_by_n_clusters({"a": h}, y, n_clusters=[2], seed=1.5)
