"""Callbacks that score a representation at the end of an epoch into ``logs``.

``ClusteringScores`` writes ``val_cluster_ami``, ``val_cluster_nmi``,
``val_cluster_ari`` and ``val_cluster_acc`` (KMeans on the embeddings,
``keras_disentangle.scores.cluster_scores``); ``DisentanglementScores``
writes ``val_mapc``, ``val_cvr``, ``val_ud90`` (``keras_disentangle.scores``).
The values go into the ``logs`` dict that Keras hands to every callback, as
``LearningRateScheduler`` writes ``logs["learning_rate"]``, so EarlyStopping,
ModelCheckpoint, CSVLogger, TensorBoard, the History and keras-tuner see them.

A score never replaces a value that Keras or another callback wrote: the
clustering keys carry ``cluster_`` so that they cannot be mistaken for
Keras's own ``val_acc`` (the validation accuracy of ``metrics=["acc"]``), and
a key that is already in ``logs`` when the callback writes raises a
``ValueError`` that names it (choose another ``prefix``).

Ordering: Keras passes ONE ``logs`` dict to the callbacks in list order, so a
callback sees a score only if it comes AFTER the scoring callback in the
``callbacks`` list. Put these callbacks first:
``callbacks=[ClusteringScores(...), keras.callbacks.CSVLogger(...),
keras.callbacks.EarlyStopping("val_cluster_ami", mode="max")]``. The History
and the progress bar are appended by Keras after the user's callbacks, and
keras-tuner appends its own after them too, so those always see the scores.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import keras
import numpy as np

from keras_disentangle._submodel import layer_model
from keras_disentangle._validation import (
    check_fraction,
    check_no_reserved_keys,
    check_positive_int,
    check_seed,
    label_vector,
)
from keras_disentangle.scores import (
    cluster_scores,
    cvr,
    dci,
    mapc,
    mig,
    modularity_explicitness,
    sap,
    utilized_dimensions,
)
from keras_disentangle.scores._inputs import _factors

#: The ground-truth scores of ``DisentanglementScores(factors=...)`` and the
#: keys each writes (without the prefix).
FACTOR_SCORES = {
    "mig": ("mig",),
    "sap": ("sap",),
    "dci": ("dci_disentanglement", "dci_completeness", "dci_informativeness"),
    "modularity": ("modularity", "explicitness"),
}

__all__ = ["ClusteringScores", "DisentanglementScores"]

# Attributes a deep copy shares with the original (data, layer objects) or
# resets (the model and the cached sub-model): keras-tuner deep-copies the
# callbacks of every trial and then hands each copy a freshly built model.
_SHARED = ("_data", "_x", "_labels", "layer", "factors")
_RESET = ("_model", "_embedder", "_embedder_source")

# KMeans restarts of ClusteringScores (cluster_scores itself uses 10): see the
# class docstring and benchmarks/clustering_callback.py.
_CALLBACK_N_INIT = 3


def _is_dataset(data: Any) -> bool:
    """Duck-typed ``tf.data.Dataset`` (no TensorFlow import needed)."""
    return hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator")


def _to_numpy(output: Any, name: str) -> np.ndarray:
    if isinstance(output, (list, tuple, dict)):
        raise ValueError(
            f"Model {name!r} has several outputs; pass layer= to choose the "
            "embedding to score."
        )
    return np.asarray(keras.ops.convert_to_numpy(output))


def _length(x: Any) -> int | None:
    """The number of samples of an array (or nest of arrays), if known."""
    leaves = keras.tree.flatten(x)
    if leaves and all(hasattr(v, "shape") and len(v.shape) for v in leaves):
        return int(leaves[0].shape[0])
    return None


def _concatenate(parts: list) -> Any:
    """Concatenates a list of batches (arrays or nests of arrays) on axis 0."""
    return keras.tree.map_structure(
        lambda *leaves: np.concatenate(leaves, axis=0), *parts
    )


class _ScoresCallback(keras.callbacks.Callback):
    """Embeds ``data`` at ``layer`` every ``every`` epochs and logs scores."""

    _needs_labels = True

    def __init__(
        self,
        data: Any,
        layer: str | keras.layers.Layer | None = None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
    ) -> None:
        super().__init__()
        self._data = data
        self._x, self._labels = self._check_data(data)
        if layer is not None and not isinstance(layer, (str, keras.layers.Layer)):
            raise ValueError(
                "Invalid value for argument layer: expected None, a layer name "
                f"or a keras.layers.Layer. Received: layer={layer!r}"
            )
        self.layer = layer
        self.every = check_positive_int("every", every)
        if not isinstance(prefix, str):
            raise ValueError(
                "Invalid value for argument prefix: expected a string. "
                f"Received: prefix={prefix!r}"
            )
        self.prefix = prefix
        self.verbose = check_positive_int("verbose", verbose, minimum=0)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self._embedder = None
        self._embedder_source = None
        self.scores: dict[str, float] = {}
        self.scores_by_epoch: dict[int, dict[str, float]] = {}

    # ------------------------------------------------------------------ data

    def _check_data(self, data: Any) -> tuple[Any, np.ndarray | None]:
        if _is_dataset(data):
            spec = data.element_spec
            if self._needs_labels and not (
                isinstance(spec, (tuple, list)) and len(spec) >= 2
            ):
                raise ValueError(
                    "Invalid value for argument data: expected a "
                    "tf.data.Dataset of (x, y) batches, with labels. Received: "
                    f"a dataset whose elements are {type(spec).__name__}"
                )
            return None, None
        if isinstance(data, tuple) and len(data) == 2:
            x, labels = data
            labels = label_vector("data", labels)
            n = (
                len(x)
                if isinstance(x, (np.ndarray, list)) or hasattr(x, "shape")
                else None
            )
            if n is not None and n != labels.shape[0]:
                raise ValueError(
                    "Invalid value for argument data: expected x and labels with "
                    f"the same number of samples. Received: {n} and "
                    f"{labels.shape[0]}"
                )
            if labels.shape[0] < 2:
                raise ValueError(
                    "Invalid value for argument data: expected at least 2 "
                    f"samples. Received: {labels.shape[0]}"
                )
            return x, labels
        if not self._needs_labels and not isinstance(data, (tuple, dict)):
            x = np.asarray(data)
            if x.ndim < 1 or x.shape[0] < 2:
                raise ValueError(
                    "Invalid value for argument data: expected at least 2 "
                    f"samples. Received: data.shape={x.shape}"
                )
            return (x if isinstance(data, list) else data), None
        expected = "an (x, labels) tuple or a tf.data.Dataset of (x, y) batches"
        if not self._needs_labels:
            expected += " or an array x"
        raise ValueError(
            f"Invalid value for argument data: expected {expected}. "
            f"Received: data of type {type(data).__name__}"
        )

    def __deepcopy__(self, memo):
        """Copies the settings; shares the data, forgets the model.

        keras-tuner deep-copies every callback of a search for each trial; a
        ``tf.data.Dataset`` cannot be deep-copied and a dataset in memory need
        not be, so the copy shares them.
        """
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in _SHARED:
                setattr(new, key, value)
            elif key in _RESET:
                setattr(new, key, None)
            else:
                setattr(new, key, copy.deepcopy(value, memo))
        return new

    # ------------------------------------------------------------- embedding

    def _embedder_for(self, model: keras.Model) -> keras.Model:
        if self._embedder is None or self._embedder_source is not model:
            self._embedder = layer_model(model, self.layer, type(self).__name__)
            self._embedder_source = model
        return self._embedder

    def embed(
        self, model: keras.Model | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Embeddings ``(N, F)`` of the data and their labels (or None).

        The embeddings are what ``predict`` returns: the model's own output
        for ``layer=None``, the layer's output otherwise, whether the data
        are arrays or a ``tf.data.Dataset`` (read once, in its order, then
        predicted in batches of ``batch_size``).

        Args:
            model: the model to embed with; defaults to the model being
                trained.

        Returns:
            ``(embeddings, labels)`` as NumPy arrays; axes of the layer
            output after the first are flattened into ``F``.
        """
        model = self.model if model is None else model
        if model is None:
            raise ValueError(
                f"{type(self).__name__} has no model: call it during fit() or "
                "pass model=."
            )
        embedder = self._embedder_for(model)
        if self._x is not None or not _is_dataset(self._data):
            x, labels = self._x, self._labels
        else:
            x, labels = self._read_dataset()
        embeddings = self._predict(embedder, x)
        return embeddings.reshape(embeddings.shape[0], -1), labels

    def _predict(self, embedder: keras.Model, x: Any) -> np.ndarray:
        """``embedder.predict(x)`` in batches of one shape.

        The last batch is padded (with copies of the last sample) to the
        batch size and the padding's outputs dropped, so that ``predict``
        sees a single input shape and traces (TensorFlow) or compiles (JAX)
        its function once per training, not once more for the remainder.
        """
        leaves = keras.tree.flatten(x)
        n = len(leaves[0]) if leaves and hasattr(leaves[0], "__len__") else None
        if n is None or not all(isinstance(v, np.ndarray) for v in leaves):
            out = embedder.predict(x, batch_size=self.batch_size, verbose=0)
            return _to_numpy(out, embedder.name)
        batch = min(self.batch_size, n)
        pad = -n % batch
        if pad:
            x = keras.tree.map_structure(
                lambda v: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)]), x
            )
        out = embedder.predict(x, batch_size=batch, verbose=0)
        return _to_numpy(out, embedder.name)[:n]

    def _read_dataset(self) -> tuple[Any, np.ndarray | None]:
        """One pass over the dataset: the inputs and labels, in one order."""
        x_parts, y_parts = [], []
        for element in self._data.as_numpy_iterator():
            if isinstance(element, (tuple, list)) and len(element) >= 2:
                x_parts.append(element[0])
                y_parts.append(element[1])
            elif self._needs_labels:
                raise ValueError(
                    "Invalid value for argument data: expected a "
                    "tf.data.Dataset of (x, y) batches. Received "
                    f"elements of type {type(element).__name__}"
                )
            elif isinstance(element, (tuple, list)):
                x_parts.append(element[0])
            else:
                x_parts.append(element)
        if not x_parts:
            raise ValueError("Invalid value for argument data: empty dataset.")
        labels = (
            label_vector("data", np.concatenate(y_parts, axis=0)) if y_parts else None
        )
        return _concatenate(x_parts), labels

    # ----------------------------------------------------------------- hooks

    def compute_scores(
        self, embeddings: np.ndarray, labels: np.ndarray | None
    ) -> dict[str, float]:
        """The scores of ``embeddings``, keyed by their names without prefix."""
        raise NotImplementedError

    def score_names(self) -> list[str]:
        """The names of the scores, without the prefix."""
        raise NotImplementedError

    @property
    def log_keys(self) -> list[str]:
        """The keys this callback writes into ``logs``."""
        return [f"{self.prefix}{name}" for name in self.score_names()]

    def evaluate(self, model: keras.Model | None = None) -> dict[str, float]:
        """Scores of the model now, without the prefix (``{"cluster_ami": ...}``)."""
        embeddings, labels = self.embed(model)
        return self.compute_scores(embeddings, labels)

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Checks ``layer`` (and builds the sub-model) before any epoch runs."""
        if self.layer is None:
            try:
                outputs = self.model.outputs  # Functional and Sequential
            except (AttributeError, ValueError):  # subclassed: read at predict
                outputs = None
            if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
                raise ValueError(
                    f"Model {self.model.name!r} has several outputs; pass layer= "
                    f"to {type(self).__name__} to choose the embedding to score."
                )
        self._embedder_for(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every != 0:
            return
        start = time.perf_counter()
        scores = self.evaluate()
        named = {f"{self.prefix}{k}": v for k, v in scores.items()}
        if logs is not None:
            taken = sorted(set(named) & set(logs))
            if taken:
                raise ValueError(
                    f"{type(self).__name__} would overwrite {taken} in logs: "
                    "Keras (a compiled loss or metric) or an earlier callback "
                    "wrote that key. Pass another prefix= (e.g. prefix="
                    f"'{self.prefix}{type(self).__name__.lower()}_'). Received: "
                    f"prefix={self.prefix!r}"
                )
        self.scores = named
        self.scores_by_epoch[epoch] = named
        if logs is not None:
            logs.update(named)
        if self.verbose:
            text = " - ".join(f"{k}: {v:.4f}" for k, v in named.items())
            print(
                f"Epoch {epoch + 1}: {type(self).__name__} {text} "
                f"({time.perf_counter() - start:.2f}s)"
            )


class ClusteringScores(_ScoresCallback):
    """Logs clustering scores of a layer's embeddings at the end of epochs.

    At the end of every ``every``-th epoch (epochs ``every, 2 every, ...``
    counted from 1, as ``validation_freq`` in ``fit``), embeds ``data`` at
    ``layer`` with ``predict``, runs KMeans and writes
    ``{prefix}cluster_ami``, ``{prefix}cluster_nmi``, ``{prefix}cluster_ari``
    and ``{prefix}cluster_acc`` into ``logs``
    (``keras_disentangle.scores.cluster_scores``; ``val_cluster_ami`` and so
    on with the default prefix). The scores are also kept in ``self.scores``
    (the latest) and ``self.scores_by_epoch``.

    The keys never replace a value Keras or another callback wrote: before
    0.2 they were ``val_ami``, ..., ``val_acc``, and ``val_acc`` overwrote
    Keras's own validation accuracy of ``metrics=["acc"]``. A key that is
    already in ``logs`` raises a ``ValueError`` naming it. ``layer`` is
    checked when training begins, before the first epoch.

    Put it BEFORE the callbacks that read the scores (CSVLogger,
    EarlyStopping, ModelCheckpoint, TensorBoard) in the ``callbacks`` list:
    Keras hands one ``logs`` dict to the callbacks in order. On the epochs
    that are not scored the keys are absent, as ``val_loss`` is with
    ``validation_freq > 1``: EarlyStopping skips such epochs, but CSVLogger
    fixes its columns at the first epoch and the History lists get shorter,
    so use ``every=1`` with CSVLogger and keras-tuner.

    ``copy.deepcopy`` (which keras-tuner applies to the callbacks of every
    trial) copies the settings and shares ``data`` and a ``layer`` object; with
    keras-tuner, name the layer (``layer="embedding"``), since each trial
    builds a new model.

    Args:
        data: ``(x, labels)`` (NumPy arrays, or anything ``model.predict``
            accepts for ``x``), or a finite ``tf.data.Dataset`` yielding
            ``(x, y)`` batches (read once per scoring, so a shuffled dataset
            is fine; its inputs are held in memory while they are
            predicted). Labels: ``(N,)``, ``(N, 1)`` or one-hot ``(N, C)``,
            integers or strings; NaN or fractional labels raise.
        layer: the layer to score, by name or object; ``None`` scores the
            model's output as ``model.predict`` returns it (the same for
            arrays and datasets). An inner layer needs a Functional or
            Sequential model.
        n_clusters: KMeans clusters; defaults to the number of classes.
        every: score every ``every`` epochs.
        prefix: prefix of the keys written into ``logs``.
        verbose: 1 prints the scores and their time each scored epoch.
        batch_size: batch size of the embedding pass (tuple data).
        seed: ``random_state`` of KMeans, an integer >= 0 (the scores are
            then deterministic) or None.
        kmeans_kwargs: arguments of ``sklearn.cluster.KMeans``; the callback
            uses ``n_init=3`` unless given here (``{"n_init": 10}`` gives
            exactly the values of ``cluster_scores``' defaults).
        threads: OpenMP/BLAS threads of the KMeans (``threadpoolctl``); None
            leaves scikit-learn's default (all cores).

    Speed: the defaults (``n_init=3``, one thread) keep the callback below one
    epoch of a small model on 10,000 x 16 embeddings
    (``benchmarks/clustering_callback.py``). At that size one thread is
    enough, and KMeans's OpenMP threads wait on each other for seconds when
    the CPU is shared with other work (measured 20-40x slower on a loaded
    2-core machine); raise ``threads`` on a dedicated machine with large data.

    Example:

        >>> import keras, numpy as np
        >>> x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
        >>> y = (x[:, 0] > 0).astype("int64")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.compile("sgd", "mse")
        >>> history = model.fit(x, np.zeros((40, 3)), epochs=1, verbose=0,
        ...                     callbacks=[ClusteringScores((x, y))])
        >>> sorted(k for k in history.history if k.startswith("val_"))
        ['val_cluster_acc', 'val_cluster_ami', 'val_cluster_ari', 'val_cluster_nmi']

    References:
        Romanov & Rumshisky, "Forced to Learn: Discovering Disentangled
        Representations Without Exhaustive Labels", 2017.
    """

    def __init__(
        self,
        data: Any,
        layer: str | keras.layers.Layer | None = None,
        n_clusters: int | None = None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
        seed: int | None = 0,
        kmeans_kwargs: dict[str, Any] | None = None,
        threads: int | None = 1,
    ) -> None:
        super().__init__(
            data,
            layer=layer,
            every=every,
            prefix=prefix,
            verbose=verbose,
            batch_size=batch_size,
        )
        if n_clusters is not None:
            n_clusters = check_positive_int("n_clusters", n_clusters)
            if self._labels is not None:
                self._check_n_clusters(n_clusters, self._labels.shape[0])
        self.n_clusters = n_clusters
        self.seed = check_seed("seed", seed)
        if kmeans_kwargs is not None and not isinstance(kmeans_kwargs, dict):
            raise ValueError(
                "Invalid value for argument kmeans_kwargs: expected a dict or "
                f"None. Received: kmeans_kwargs={kmeans_kwargs!r}"
            )
        check_no_reserved_keys(
            "kmeans_kwargs",
            kmeans_kwargs or {},
            ("n_clusters", "random_state", "seed", "threads"),
        )
        self.kmeans_kwargs = {"n_init": _CALLBACK_N_INIT, **(kmeans_kwargs or {})}
        if threads is not None:
            threads = check_positive_int("threads", threads)
        self.threads = threads

    @staticmethod
    def _check_n_clusters(n_clusters: int, n_samples: int) -> None:
        if n_clusters > n_samples:
            raise ValueError(
                "Invalid value for argument n_clusters: expected at most the "
                f"number of samples of data ({n_samples}). Received: "
                f"n_clusters={n_clusters}"
            )

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Checks ``layer`` and, for a dataset, its labels and ``n_clusters``.

        A ``tf.data.Dataset`` is read once here, so that a dataset without
        labels or with fewer samples than ``n_clusters`` fails before the
        first epoch rather than after it.
        """
        super().on_train_begin(logs)
        if self._x is None and _is_dataset(self._data):
            _, labels = self._read_dataset()
            if self.n_clusters is not None and labels is not None:
                self._check_n_clusters(self.n_clusters, labels.shape[0])

    def score_names(self) -> list[str]:
        return [f"cluster_{k}" for k in ("ami", "nmi", "ari", "acc")]

    def compute_scores(
        self, embeddings: np.ndarray, labels: np.ndarray | None
    ) -> dict[str, float]:
        if labels is None:
            raise ValueError(
                "Invalid value for argument labels: ClusteringScores scores "
                "embeddings against class labels. Received: labels=None"
            )
        scores = cluster_scores(
            embeddings,
            labels,
            n_clusters=self.n_clusters,
            seed=self.seed,
            threads=self.threads,
            **self.kmeans_kwargs,
        )
        return {f"cluster_{k}": v for k, v in scores.items()}


class DisentanglementScores(_ScoresCallback):
    """Logs Kågebäck & Mogren's scores of a layer at the end of epochs.

    At the end of every ``every``-th epoch, embeds ``data`` at ``layer`` and
    writes into ``logs``: ``{prefix}mapc`` (mean absolute Pearson correlation,
    ``keras_disentangle.scores.mapc``), ``{prefix}cvr`` (covariance to
    variance ratio, ``cvr``) and ``{prefix}ud90`` (utilized
    dimensions, ``utilized_dimensions``; the key follows
    ``fraction``, e.g. ``ud95`` for 0.95). Lower MAPC and CVR are more
    disentangled. No Keras loss or metric has these names; a key already in
    ``logs`` raises a ``ValueError`` naming it all the same.

    Given the ground-truth ``factors`` that generated the samples (e.g.
    ``datasets.shapes2d().factors``), it also writes the field's scores
    (``keras_disentangle.scores.factors``, after disentanglement_lib):
    ``{prefix}mig``, ``{prefix}sap``, ``{prefix}dci_disentanglement``,
    ``{prefix}dci_completeness``, ``{prefix}dci_informativeness`` (test
    accuracy), ``{prefix}modularity`` and ``{prefix}explicitness`` (test
    ROC-AUC); higher is more disentangled for all of them. SAP, DCI and
    explicitness fit classifiers on a ``1 - test_fraction`` share of the
    samples and score the rest. Like the other keys, they can be the
    objective of keras-tuner (``keras_tuner.Objective("val_mig",
    "max")``) or EarlyStopping. The ordering,
    ``every``, ``layer`` check and deep-copy notes of ``ClusteringScores``
    hold here too.

    Args:
        data: ``(x, labels)`` (labels unused), an array ``x``, or a finite
            ``tf.data.Dataset`` of ``(x, y)`` batches or of ``x`` batches.
        layer: the layer to score, by name or object; ``None`` scores the
            model's output.
        every: score every ``every`` epochs.
        prefix: prefix of the keys written into ``logs``.
        verbose: 1 prints the scores each scored epoch.
        batch_size: batch size of the embedding pass.
        min_variance_fraction: passed to ``mapc``: units holding less
            than this share of the total variance are left out of MAPC.
        fraction: the share of variance of ``utilized_dimensions``.
        factors: the integer ground-truth factors ``(N, F)`` of the samples
            of ``data``, in their order (a dataset is read in its order, so
            do not shuffle it), or None.
        factor_scores: which ground-truth scores to compute when
            ``factors`` is given, from ``"mig"``, ``"sap"``, ``"dci"``
            (boosted trees, the slowest) and ``"modularity"``.
        test_fraction: the share of the samples (drawn with ``seed``) on
            which SAP, DCI and explicitness are measured, the classifiers
            being fitted on the rest.
        seed: seed of that split and of DCI's trees, an integer >= 0.
        n_bins: histogram bins of MIG and modularity.

    Example:

        >>> import keras, numpy as np
        >>> x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model.compile("sgd", "mse")
        >>> history = model.fit(x, np.zeros((40, 3)), epochs=1, verbose=0,
        ...                     callbacks=[DisentanglementScores(x)])
        >>> sorted(k for k in history.history if k.startswith("val_"))
        ['val_cvr', 'val_mapc', 'val_ud90']

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018.
    """

    _needs_labels = False

    def __init__(
        self,
        data: Any,
        layer: str | keras.layers.Layer | None = None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
        min_variance_fraction: float = 0.0,
        fraction: float = 0.9,
        factors: Any = None,
        factor_scores: tuple[str, ...] | list[str] = (
            "mig",
            "sap",
            "dci",
            "modularity",
        ),
        test_fraction: float = 0.5,
        seed: int = 0,
        n_bins: int = 20,
    ) -> None:
        super().__init__(
            data,
            layer=layer,
            every=every,
            prefix=prefix,
            verbose=verbose,
            batch_size=batch_size,
        )
        self.min_variance_fraction = check_fraction(
            "min_variance_fraction", min_variance_fraction, inclusive_zero=True
        )
        self.fraction = check_fraction("fraction", fraction)
        if factors is not None:
            factors = _factors("factors", factors)
            n = None if self._x is None else _length(self._x)
            if n is not None and n != factors.shape[0]:
                raise ValueError(
                    "Invalid value for argument factors: expected one row per "
                    f"sample of data ({n}). Received: factors.shape="
                    f"{factors.shape}"
                )
        self.factors = factors
        if isinstance(factor_scores, str) or not all(
            name in FACTOR_SCORES for name in factor_scores
        ):
            raise ValueError(
                "Invalid value for argument factor_scores: expected a list of "
                f"names from {list(FACTOR_SCORES)}. Received: "
                f"factor_scores={factor_scores!r}"
            )
        self.factor_scores = tuple(factor_scores)
        self.test_fraction = check_fraction("test_fraction", test_fraction)
        if self.test_fraction >= 1:
            raise ValueError(
                "Invalid value for argument test_fraction: expected a number "
                f"in (0, 1). Received: test_fraction={test_fraction!r}"
            )
        self.seed = check_seed("seed", seed)
        self.n_bins = check_positive_int("n_bins", n_bins)

    def score_names(self) -> list[str]:
        names = ["mapc", "cvr", f"ud{round(self.fraction * 100):d}"]
        if self.factors is not None:
            for name in self.factor_scores:
                names += FACTOR_SCORES[name]
        return names

    def compute_scores(
        self, embeddings: np.ndarray, labels: np.ndarray | None
    ) -> dict[str, float]:
        ud_key = self.score_names()[2]
        out = {
            "mapc": mapc(embeddings, min_variance_fraction=self.min_variance_fraction),
            "cvr": cvr(embeddings),
            ud_key: float(utilized_dimensions(embeddings, self.fraction)),
        }
        if self.factors is not None:
            out.update(self.factor_scores_of(embeddings))
        return out

    def factor_scores_of(self, embeddings: np.ndarray) -> dict[str, float]:
        """The ground-truth scores of ``embeddings`` against ``factors``."""
        f = self.factors
        if embeddings.shape[0] != f.shape[0]:
            raise ValueError(
                "Invalid value for argument factors: expected one row per "
                f"sample of data ({embeddings.shape[0]}). Received: "
                f"factors.shape={f.shape}"
            )
        order = np.random.default_rng(self.seed).permutation(f.shape[0])
        n_test = min(f.shape[0] - 2, max(2, round(self.test_fraction * f.shape[0])))
        test, train = order[:n_test], order[n_test:]
        split = (embeddings[train], f[train], embeddings[test], f[test])
        out: dict[str, float] = {}
        if "mig" in self.factor_scores:
            out["mig"] = mig(embeddings, f, n_bins=self.n_bins)
        if "sap" in self.factor_scores:
            out["sap"] = sap(*split)
        if "dci" in self.factor_scores:
            d = dci(*split, random_state=self.seed)
            out["dci_disentanglement"] = d["disentanglement"]
            out["dci_completeness"] = d["completeness"]
            out["dci_informativeness"] = d["informativeness_test"]
        if "modularity" in self.factor_scores:
            m = modularity_explicitness(*split, n_bins=self.n_bins)
            out["modularity"] = m["modularity"]
            out["explicitness"] = m["explicitness_test"]
        return out
