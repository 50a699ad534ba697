"""Callbacks that score a representation at the end of an epoch into ``logs``.

``ClusteringScores`` writes ``val_ami``, ``val_nmi``, ``val_ari``, ``val_acc``
(KMeans on the embeddings, ``keras_disentangle.scores.cluster_scores``);
``DisentanglementScores`` writes ``val_mapc``, ``val_cvr``, ``val_ud90``
(``keras_disentangle.metrics``). The values go into the ``logs`` dict that
Keras hands to every callback, as ``LearningRateScheduler`` writes
``logs["learning_rate"]``, so EarlyStopping, ModelCheckpoint, CSVLogger,
TensorBoard, the History and keras-tuner see them.

Ordering: Keras passes ONE ``logs`` dict to the callbacks in list order, so a
callback sees a score only if it comes AFTER the scoring callback in the
``callbacks`` list. Put these callbacks first:
``callbacks=[ClusteringScores(...), keras.callbacks.CSVLogger(...),
keras.callbacks.EarlyStopping("val_ami", mode="max")]``. The History and the
progress bar are appended by Keras after the user's callbacks, and keras-tuner
appends its own after them too, so those always see the scores.
"""

from __future__ import annotations

import copy
import time

import keras
import numpy as np

from keras_disentangle._submodel import layer_model
from keras_disentangle._validation import (
    check_fraction,
    check_no_reserved_keys,
    check_positive_int,
)
from keras_disentangle.scores import (
    cluster_scores,
    cvr,
    mapc,
    utilized_dimensions,
)

__all__ = ["ClusteringScores", "DisentanglementScores"]

# Attributes a deep copy shares with the original (data, layer objects) or
# resets (the model and the cached sub-model): keras-tuner deep-copies the
# callbacks of every trial and then hands each copy a freshly built model.
_SHARED = ("_data", "_x", "_labels", "layer")
_RESET = ("_model", "_embedder", "_embedder_source")

# KMeans restarts of ClusteringScores (cluster_scores itself uses 10): see the
# class docstring and benchmarks/clustering_callback.py.
_CALLBACK_N_INIT = 3


def _is_dataset(data) -> bool:
    """Duck-typed ``tf.data.Dataset`` (no TensorFlow import needed)."""
    return hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator")


def _to_numpy(output, name):
    if isinstance(output, (list, tuple, dict)):
        raise ValueError(
            f"Model {name!r} has several outputs; pass layer= to choose the "
            "embedding to score."
        )
    return np.asarray(keras.ops.convert_to_numpy(output))


def _label_vector(y_batch) -> np.ndarray:
    """Integer labels: ``(N,)``, ``(N, 1)`` or one-hot ``(N, C)``."""
    y = np.asarray(y_batch)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    if y.ndim not in (1, 2):
        raise ValueError(
            "Invalid value for argument data: expected labels of shape (N,), "
            f"(N, 1) or one-hot (N, C). Received: labels.shape={y.shape}"
        )
    return y.reshape(-1)


class _ScoresCallback(keras.callbacks.Callback):
    """Embeds ``data`` at ``layer`` every ``every`` epochs and logs scores."""

    _needs_labels = True

    def __init__(
        self,
        data,
        layer=None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
    ):
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

    def _check_data(self, data):
        if _is_dataset(data):
            return None, None
        if isinstance(data, tuple) and len(data) == 2:
            x, labels = data
            labels = _label_vector(labels)
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

    def _embedder_for(self, model):
        if self._embedder is None or self._embedder_source is not model:
            self._embedder = layer_model(model, self.layer, type(self).__name__)
            self._embedder_source = model
        return self._embedder

    def embed(self, model=None):
        """Embeddings ``(N, F)`` of the data and their labels (or None).

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
            out = embedder.predict(self._x, batch_size=self.batch_size, verbose=0)
            embeddings = _to_numpy(out, embedder.name)
            labels = self._labels
        else:
            parts, label_parts = [], []
            for element in self._data.as_numpy_iterator():
                if not isinstance(element, (tuple, list)) or len(element) < 2:
                    if self._needs_labels:
                        raise ValueError(
                            "Invalid value for argument data: expected a "
                            "tf.data.Dataset of (x, y) batches. Received "
                            f"elements of type {type(element).__name__}"
                        )
                    x_batch, y_batch = element, None
                else:
                    x_batch, y_batch = element[0], element[1]
                out = embedder.predict_on_batch(x_batch)
                parts.append(_to_numpy(out, embedder.name))
                if y_batch is not None:
                    label_parts.append(_label_vector(y_batch))
            if not parts:
                raise ValueError("Invalid value for argument data: empty dataset.")
            embeddings = np.concatenate(parts, axis=0)
            labels = np.concatenate(label_parts) if label_parts else None
        embeddings = embeddings.reshape(embeddings.shape[0], -1)
        return embeddings, labels

    # ----------------------------------------------------------------- hooks

    def compute_scores(self, embeddings, labels) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, model=None) -> dict[str, float]:
        """Scores of the model now, without the prefix (e.g. ``{"ami": ...}``)."""
        embeddings, labels = self.embed(model)
        return self.compute_scores(embeddings, labels)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every != 0:
            return
        start = time.perf_counter()
        scores = self.evaluate()
        named = {f"{self.prefix}{k}": v for k, v in scores.items()}
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
    ``layer``, runs KMeans and writes ``{prefix}ami``, ``{prefix}nmi``,
    ``{prefix}ari`` and ``{prefix}acc`` into ``logs``
    (``keras_disentangle.scores.cluster_scores``). The scores are also kept
    in ``self.scores`` (the latest) and ``self.scores_by_epoch``.

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
            is fine).
        layer: the layer to score, by name or object; ``None`` scores the
            model's output. An inner layer needs a Functional or Sequential
            model.
        n_clusters: KMeans clusters; defaults to the number of classes.
        every: score every ``every`` epochs.
        prefix: prefix of the keys written into ``logs``.
        verbose: 1 prints the scores and their time each scored epoch.
        batch_size: batch size of the embedding pass (tuple data).
        seed: ``random_state`` of KMeans; the scores are deterministic.
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
        ['val_acc', 'val_ami', 'val_ari', 'val_nmi']

    References:
        Romanov & Rumshisky, "Forced to Learn: Discovering Disentangled
        Representations Without Exhaustive Labels", 2017.
    """

    def __init__(
        self,
        data,
        layer=None,
        n_clusters: int | None = None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
        seed: int = 0,
        kmeans_kwargs: dict | None = None,
        threads: int | None = 1,
    ):
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
        self.n_clusters = n_clusters
        self.seed = check_positive_int("seed", seed, minimum=0)
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

    def compute_scores(self, embeddings, labels) -> dict[str, float]:
        return cluster_scores(
            embeddings,
            labels,
            n_clusters=self.n_clusters,
            seed=self.seed,
            threads=self.threads,
            **self.kmeans_kwargs,
        )


class DisentanglementScores(_ScoresCallback):
    """Logs Kågebäck & Mogren's scores of a layer at the end of epochs.

    At the end of every ``every``-th epoch, embeds ``data`` at ``layer`` and
    writes into ``logs``: ``{prefix}mapc`` (mean absolute Pearson correlation,
    ``keras_disentangle.scores.mapc``), ``{prefix}cvr`` (covariance to
    variance ratio, ``cvr``) and ``{prefix}ud90`` (utilized
    dimensions, ``utilized_dimensions``; the key follows
    ``fraction``, e.g. ``ud95`` for 0.95). Lower MAPC and CVR are more
    disentangled. The ordering, ``every`` and deep-copy notes of
    ``ClusteringScores`` hold here too.

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
        data,
        layer=None,
        every: int = 1,
        prefix: str = "val_",
        verbose: int = 0,
        batch_size: int = 256,
        min_variance_fraction: float = 0.0,
        fraction: float = 0.9,
    ):
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

    def compute_scores(self, embeddings, labels) -> dict[str, float]:
        ud_key = f"ud{round(self.fraction * 100):d}"
        return {
            "mapc": mapc(embeddings, min_variance_fraction=self.min_variance_fraction),
            "cvr": cvr(embeddings),
            ud_key: float(utilized_dimensions(embeddings, self.fraction)),
        }
