"""The papers' figures, drawn with matplotlib's object-oriented API.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot,
so nothing touches a global figure state or needs a display: save it with
``fig.savefig("figure.png")`` on a headless machine, or show it in a notebook
by leaving it as the cell's value. matplotlib is an optional dependency
(``pip install 'keras_disentangle[plots]'``), imported on first use.

- ``new_figure``: the package's matplotlib figure factory (no pyplot).
- ``most_active_units``: per class, how many samples have each unit as their
  most active one (Romanov & Rumshisky, Figures 2 and 3).
- ``embedding_scatter``: a 2-D projection coloured by label (their Figure 5);
  ``write_projector`` writes the files of the TensorBoard projector, which is
  how they drew it.
- ``scores_by_n_clusters``: AMI against the number of KMeans clusters, one
  line per model (their Figure 6).
- ``covariance_image``: a layer's covariance matrix and sorted variance
  spectrum (Kågebäck & Mogren, Figures 4 and 5).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from keras_disentangle import scores
from keras_disentangle._validation import (
    check_choice,
    check_no_reserved_keys,
    check_seed,
    label_vector,
)
from keras_disentangle.scores._inputs import _matrix, _same_length

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "new_figure",
    "most_active_unit_counts",
    "most_active_units",
    "embedding_scatter",
    "write_projector",
    "scores_by_n_clusters",
    "covariance_image",
]


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` with the constrained layout, outside pyplot.

    No global figure state and no display needed: save it with
    ``fig.savefig(path)``. The one figure factory of the package (the plots
    here and the experiments' figures).

    Args:
        **kwargs: arguments of ``matplotlib.figure.Figure`` (``figsize``, ...).

    Returns:
        A ``matplotlib.figure.Figure``.

    Raises:
        ImportError: matplotlib is not installed (the ``plots`` extra).

    Example:

        >>> fig = new_figure(figsize=(2.0, 1.0))
        >>> fig.get_layout_engine().__class__.__name__
        'ConstrainedLayoutEngine'
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError(
            "keras_disentangle.plots needs matplotlib: "
            "pip install 'keras_disentangle[plots]'"
        ) from error
    return Figure(layout="constrained", **kwargs)


def _embeddings_and_labels(embeddings, labels, min_samples=1):
    h = _matrix("embeddings", embeddings, min_samples=min_samples)
    y = label_vector("labels", labels)
    _same_length("embeddings", h, "labels", y)
    return h, y


def _embed(model_or_embeddings, x, layer, batch_size):
    """Embeddings from an array, or from a Keras model (at ``layer``) on x."""
    import keras

    if not isinstance(model_or_embeddings, keras.Model):
        if layer is not None:
            raise ValueError(
                "Invalid value for argument layer: it selects a layer of a "
                "model, but model_or_embeddings is an array. Received: "
                f"layer={layer!r}"
            )
        return np.asarray(model_or_embeddings)
    if x is None:
        raise ValueError(
            "Invalid value for argument x: expected the inputs to embed with "
            "the model. Received: x=None"
        )
    from keras_disentangle._submodel import layer_model
    from keras_disentangle.callbacks.scores import _to_numpy

    embedder = layer_model(model_or_embeddings, layer, "most_active_units")
    out = _to_numpy(
        embedder.predict(x, batch_size=batch_size, verbose=0), embedder.name
    )
    return out.reshape(out.shape[0], -1)


def most_active_unit_counts(
    embeddings: ArrayLike, labels: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the number of samples whose most active unit is each unit.

    ``counts[c, k] = #{n : labels_n = classes[c], argmax_j h_nj = k}`` (ties
    go to the first unit, as ``np.argmax``).

    Args:
        embeddings: activations ``(N, p)`` (further axes are flattened).
        labels: ``(N,)`` class labels.

    Returns:
        ``(classes, counts)``: the sorted distinct labels and an int array
        ``(n_classes, p)``.

    Example:

        >>> classes, counts = most_active_unit_counts(
        ...     [[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]], [0, 1, 0])
        >>> counts.tolist()
        [[2, 0], [0, 1]]
    """
    from sklearn.metrics.cluster import contingency_matrix

    h, y = _embeddings_and_labels(embeddings, labels)
    classes = np.unique(y)
    winners = np.argmax(h, axis=1)
    table = contingency_matrix(y, winners)  # (classes, units that win)
    counts = np.zeros((classes.shape[0], h.shape[1]), dtype=np.int64)
    counts[:, np.unique(winners)] = table
    return classes, counts


def most_active_units(
    model_or_embeddings: Any,
    x: Any = None,
    labels: ArrayLike | None = None,
    layer: Any = None,
    *,
    normalize: bool = False,
    batch_size: int = 256,
) -> Figure:
    """Heatmap: per class, how often each unit is a sample's most active one.

    Romanov & Rumshisky's Figures 2 and 3: a penalty that disentangles the
    layer makes each class light up its own few units.

    Args:
        model_or_embeddings: a Keras model (the embeddings are its output,
            or the output of ``layer``, on ``x``), or precomputed embeddings
            ``(N, p)``.
        x: the model inputs; unused with precomputed embeddings.
        labels: ``(N,)`` class labels.
        layer: with a model, the layer (name or object) to read.
        normalize: show each class's row as fractions of its samples.
        batch_size: batch size of the embedding pass.

    Returns:
        A ``matplotlib.figure.Figure`` with the heatmap and its colorbar.

    Example:

        >>> import numpy as np
        >>> fig = most_active_units(np.eye(3)[[0, 1, 2, 2]], labels=[0, 1, 2, 2])
        >>> fig.axes[0].get_xlabel()
        'unit'

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, Figures 2-3.
    """
    y = label_vector("labels", labels)  # before the embedding pass
    embeddings = _embed(model_or_embeddings, x, layer, batch_size)
    classes, counts = most_active_unit_counts(embeddings, y)
    values = counts.astype(np.float64)
    if normalize:
        values /= np.maximum(values.sum(axis=1, keepdims=True), 1)
    fig = new_figure(figsize=(max(4.0, 0.35 * counts.shape[1] + 2), 4.0))
    ax = fig.subplots()
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("unit")
    ax.set_ylabel("class")
    ax.set_yticks(range(len(classes)), [str(c) for c in classes])
    ax.set_title("Most active unit per sample")
    fig.colorbar(image, ax=ax, label="fraction" if normalize else "samples")
    return fig


def embedding_scatter(
    embeddings: ArrayLike,
    labels: ArrayLike,
    method: str = "pca",
    *,
    seed: int = 0,
    max_points: int | None = 5000,
    projection_kwargs: dict[str, Any] | None = None,
) -> Figure:
    """2-D projection of embeddings, coloured by label (their Figure 5).

    Args:
        embeddings: ``(N, F)`` with ``F >= 2`` (further axes are flattened).
        labels: ``(N,)`` labels.
        method: ``"pca"`` (scikit-learn PCA) or ``"tsne"`` (scikit-learn
            t-SNE, slower).
        seed: seed of the subsample and of t-SNE.
        max_points: at most this many points, drawn at random (None: all).
        projection_kwargs: further arguments of ``sklearn.decomposition.PCA``
            or ``sklearn.manifold.TSNE`` (e.g. ``{"max_iter": 250}``).

    Returns:
        A ``matplotlib.figure.Figure`` with one scatter axes and a legend.

    Example:

        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(30, 4))
        >>> fig = embedding_scatter(x, np.arange(30) % 3)
        >>> fig.axes[0].get_title()
        'PCA of the embeddings'

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, Figure 5.
    """
    check_choice("method", method, ("pca", "tsne"))
    seed = check_seed("seed", seed)
    h, y = _embeddings_and_labels(embeddings, labels, min_samples=2)
    if h.shape[1] < 2:
        raise ValueError(
            "Invalid shape for argument embeddings: expected at least 2 "
            f"features to project to 2-D. Received: embeddings.shape={h.shape}"
        )
    rng = np.random.default_rng(seed)
    if max_points is not None and h.shape[0] > max_points:
        keep = np.sort(rng.choice(h.shape[0], max_points, replace=False))
        h, y = h[keep], y[keep]
    extra = check_no_reserved_keys(
        "projection_kwargs",
        dict(projection_kwargs or {}),
        ("n_components", "random_state"),
    )
    if method == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed, **extra).fit_transform(h)
    else:
        from sklearn.manifold import TSNE

        # t-SNE needs perplexity < N; keep its default 30 where possible.
        extra.setdefault("perplexity", float(min(30.0, max(1.0, (h.shape[0] - 1) / 3))))
        points = TSNE(n_components=2, random_state=seed, **extra).fit_transform(h)
    fig = new_figure(figsize=(5.5, 5.0))
    ax = fig.subplots()
    classes = np.unique(y)
    for c in classes:
        mask = y == c
        ax.scatter(points[mask, 0], points[mask, 1], s=6, label=str(c))
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(f"{method.upper() if method == 'pca' else 't-SNE'} of the embeddings")
    if len(classes) <= 20:
        ax.legend(title="label", markerscale=2, fontsize="small")
    return fig


def write_projector(
    embeddings: ArrayLike,
    labels: ArrayLike,
    log_dir: str | os.PathLike,
    *,
    tensor_name: str = "embedding",
) -> dict[str, str]:
    """Writes embeddings and labels for the TensorBoard projector.

    Plain files, no TensorFlow or TensorBoard needed to write them:
    ``tensors.tsv`` (one row per sample, tab-separated), ``metadata.tsv``
    (one label per line, no header, as the projector expects for a single
    column) and ``projector_config.pbtxt`` pointing at both. Then run
    ``tensorboard --logdir LOG_DIR`` and open the Projector tab.

    Args:
        embeddings: ``(N, F)`` (further axes are flattened).
        labels: ``(N,)`` labels (written with ``str``; tabs and newlines are
            replaced by spaces).
        log_dir: directory to write into (created if missing).
        tensor_name: the name shown in the projector.

    Returns:
        ``{"tensors": path, "metadata": path, "config": path}``.

    Example:

        >>> import tempfile, numpy as np
        >>> with tempfile.TemporaryDirectory() as log_dir:
        ...     paths = write_projector(np.eye(3), [0, 1, 1], log_dir)
        ...     print(open(paths["metadata"]).read().split())
        ['0', '1', '1']

    References:
        TensorBoard, "Visualizing Data using the Embedding Projector".
    """
    h, y = _embeddings_and_labels(embeddings, labels)
    if not isinstance(tensor_name, str) or not tensor_name or '"' in tensor_name:
        raise ValueError(
            "Invalid value for argument tensor_name: expected a non-empty "
            f"string without quotes. Received: tensor_name={tensor_name!r}"
        )
    os.makedirs(log_dir, exist_ok=True)
    paths = {
        "tensors": os.path.join(log_dir, "tensors.tsv"),
        "metadata": os.path.join(log_dir, "metadata.tsv"),
        "config": os.path.join(log_dir, "projector_config.pbtxt"),
    }
    np.savetxt(paths["tensors"], h, delimiter="\t", fmt="%.7g")
    with open(paths["metadata"], "w", encoding="utf-8") as f:
        for label in y:
            text = str(label).replace("\t", " ").replace("\n", " ")
            f.write(f"{text}\n")
    with open(paths["config"], "w", encoding="utf-8") as f:
        f.write(
            "embeddings {\n"
            f'  tensor_name: "{tensor_name}"\n'
            '  tensor_path: "tensors.tsv"\n'
            '  metadata_path: "metadata.tsv"\n'
            "}\n"
        )
    return paths


def scores_by_n_clusters(
    embeddings_by_model: Mapping[str, ArrayLike],
    labels: ArrayLike,
    n_clusters: Iterable[int] = range(2, 21),
    *,
    score: str = "ami",
    seed: int = 0,
    **kmeans_kwargs: Any,
) -> Figure:
    """A clustering score against the number of KMeans clusters (Figure 6).

    For each model and each ``k`` in ``n_clusters``, runs
    ``scores.cluster_scores(embeddings, labels, n_clusters=k, seed=seed)``
    and draws ``score`` against ``k``, one line per model.

    Args:
        embeddings_by_model: ``{name: embeddings (N, F)}``.
        labels: ``(N,)`` class labels shared by all models.
        n_clusters: the cluster counts, each >= 1.
        score: ``"ami"``, ``"nmi"``, ``"ari"`` or ``"acc"``.
        seed: KMeans seed.
        **kmeans_kwargs: passed to ``scores.cluster_scores`` (``threads``)
            and ``sklearn.cluster.KMeans`` (``n_init``, ...).

    Returns:
        A ``matplotlib.figure.Figure``; the line of each model carries its
        label and the scores as y data.

    Example:

        >>> import numpy as np
        >>> y = np.repeat([0, 1], 10)
        >>> fig = scores_by_n_clusters({"one-hot": np.eye(2)[y]}, y, n_clusters=[2, 3])
        >>> round(float(fig.axes[0].lines[0].get_ydata()[0]), 3)
        1.0

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, Figure 6.
    """
    check_choice("score", score, ("ami", "nmi", "ari", "acc"))
    seed = check_seed("seed", seed)
    if not isinstance(embeddings_by_model, Mapping) or not embeddings_by_model:
        raise ValueError(
            "Invalid value for argument embeddings_by_model: expected a "
            "non-empty dict {name: embeddings}. Received: "
            f"{type(embeddings_by_model).__name__}"
        )
    ks = [int(k) for k in n_clusters]
    if not ks:
        raise ValueError(
            "Invalid value for argument n_clusters: expected at least one "
            "cluster count. Received: an empty sequence"
        )
    fig = new_figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    for name, embeddings in embeddings_by_model.items():
        values = [
            scores.cluster_scores(
                embeddings, labels, n_clusters=k, seed=seed, **kmeans_kwargs
            )[score]
            for k in ks
        ]
        ax.plot(ks, values, marker="o", markersize=3, label=str(name))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of clusters")
    ax.set_ylabel(score.upper())
    ax.set_title(f"{score.upper()} of KMeans against the number of clusters")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def covariance_image(
    h: ArrayLike, *, title: str | None = None, log_spectrum: bool = False
) -> Figure:
    """A layer's covariance matrix and its sorted variance spectrum.

    Kågebäck & Mogren's Figures 4 and 5: under L_Sigma the covariance
    becomes diagonal and the variance concentrates in a few units. ``C`` is
    the sample covariance (``1/(N-1)``); the colour scale is symmetric
    around 0.

    Args:
        h: activations ``(N, p)`` (further axes are flattened), N >= 2.
        title: an overall title (e.g. the model's name).
        log_spectrum: draw the variances on a log scale.

    Returns:
        A ``matplotlib.figure.Figure`` with two axes (covariance, spectrum)
        and the covariance's colorbar.

    Example:

        >>> import numpy as np
        >>> fig = covariance_image(np.random.default_rng(0).normal(size=(50, 4)))
        >>> [ax.get_title() for ax in fig.axes[:2]]
        ['Covariance', 'Variance spectrum']

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        Figures 4-5.
    """
    h = _matrix("h", h, min_samples=2)
    c = scores.disentanglement._covariance(h)
    variances = np.sort(np.diag(c))[::-1]
    fig = new_figure(figsize=(9.0, 4.0))
    ax_cov, ax_spec = fig.subplots(1, 2)
    limit = float(np.abs(c).max()) or 1.0
    image = ax_cov.imshow(
        c, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
    )
    ax_cov.set_title("Covariance")
    ax_cov.set_xlabel("unit")
    ax_cov.set_ylabel("unit")
    ax_spec.plot(np.arange(1, len(variances) + 1), variances, marker="o")
    ax_spec.set_title("Variance spectrum")
    ax_spec.set_xlabel("rank")
    ax_spec.set_ylabel("variance")
    if log_spectrum:
        ax_spec.set_yscale("symlog", linthresh=limit * 1e-6)
    fig.colorbar(image, ax=ax_cov)
    if title:
        fig.suptitle(title)
    return fig
