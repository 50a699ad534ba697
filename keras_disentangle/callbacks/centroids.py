"""Callbacks for ``LatentCentroids``: a weight ramp and centroid re-initialisation.

Both find their layer in ``self.model`` when training begins (by instance, by
name, or as the model's only ``LatentCentroids``), and both survive
``copy.deepcopy`` without copying a model or a layer, so keras-tuner can copy
them for every trial.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_disentangle._submodel import layer_model
from keras_disentangle._validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
    check_seed,
    label_vector,
)

__all__ = ["CentroidWeightRamp", "CentroidReinit"]


def _all_layers(model):
    """Every layer of ``model``, nested models included, depth first."""
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _find_layer(model, layer):
    """Resolves ``layer`` (instance, name or None) to a LatentCentroids of model."""
    from keras_disentangle.layers.latent_centroids import LatentCentroids

    if model is None:
        raise ValueError(
            "The callback has no model: use it in model.fit(callbacks=[...])."
        )
    layers = list(_all_layers(model))
    if isinstance(layer, LatentCentroids):
        if any(candidate is layer for candidate in layers):
            return layer
        name = layer.name  # a copy of the model (keras-tuner): match the name
    else:
        name = layer
    centroid_layers = [lay for lay in layers if isinstance(lay, LatentCentroids)]
    if name is not None:
        named = [lay for lay in centroid_layers if lay.name == name]
        if named:
            return named[0]
        if isinstance(layer, str) or len(centroid_layers) != 1:
            raise ValueError(
                "Invalid value for argument layer: expected the name of a "
                "LatentCentroids layer of the model "
                f"({[lay.name for lay in centroid_layers]}). Received: layer={name!r}"
            )
    if len(centroid_layers) != 1:
        raise ValueError(
            "Invalid value for argument layer: the model has "
            f"{len(centroid_layers)} LatentCentroids layers, pass one (or its "
            "name). Received: layer=None"
        )
    return centroid_layers[0]


class _CentroidCallback(keras.callbacks.Callback):
    """Shared set-up: layer resolution and a deepcopy that skips Keras state."""

    # Attributes that hold Keras objects of one training run.
    _RUN_STATE: tuple[str, ...] = ("_model", "_resolved")

    def __init__(self, layer: str | keras.layers.Layer | None) -> None:
        super().__init__()
        if layer is not None and not isinstance(layer, (str, keras.layers.Layer)):
            raise ValueError(
                "Invalid value for argument layer: expected a LatentCentroids "
                f"layer, its name or None. Received: layer={layer!r}"
            )
        self.layer = layer
        self._resolved: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Finds the layer (a misspelt name raises before the first epoch)."""
        self._resolved = _find_layer(self.model, self.layer)

    def __deepcopy__(self, memo):
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key in self._RUN_STATE:
                setattr(clone, key, None)
            elif key == "layer":
                setattr(clone, key, value)  # never copy a layer: shared reference
            else:
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone


class CentroidWeightRamp(_CentroidCallback):
    """Sets the weight of a ``LatentCentroids`` layer at the start of each epoch.

    Either a ``schedule(epoch) -> weight`` callable, or a linear ramp: ``start``
    for the first ``delay`` epochs, then linearly to ``end`` over ``epochs``
    epochs, then ``end``:

        w(e) = start                                   if e < delay
        w(e) = start + (end − start) min(1, (e − delay + 1) / epochs)  otherwise

    The paper's warm-up (zero, then growing) is ``start=0, delay=k``. The
    weight of each epoch is written to ``logs[log_name]``.

    Args:
        layer: the ``LatentCentroids`` layer, its name, or None for the model's
            only one.
        schedule: a callable ``epoch -> weight`` (epoch counted from 0); when
            given, ``start``, ``end``, ``epochs`` and ``delay`` are ignored.
        start: weight before and at the start of the ramp, >= 0.
        end: weight at the end of the ramp, >= 0; None uses the layer's initial
            ``weight``.
        epochs: length of the ramp in epochs, an integer >= 1.
        delay: epochs at ``start`` before the ramp, an integer >= 0.
        log_name: key of the weight in ``logs``.

    Example:

        >>> ramp = CentroidWeightRamp(start=0.0, end=1.0, epochs=4, delay=2)
        >>> [ramp.value(e) for e in range(7)]
        [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

    References:
        Karakulak et al., "Clustering latent representations for
        semi-supervised learning", 2019.
    """

    def __init__(
        self,
        layer: str | keras.layers.Layer | None = None,
        schedule: Callable[[int], float] | None = None,
        *,
        start: float = 0.0,
        end: float | None = None,
        epochs: int = 1,
        delay: int = 0,
        log_name: str = "centroid_weight",
    ) -> None:
        super().__init__(layer)
        if schedule is not None and not callable(schedule):
            raise ValueError(
                "Invalid value for argument schedule: expected a callable "
                f"epoch -> weight or None. Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.start = check_non_negative("start", start)
        self.end = None if end is None else check_non_negative("end", end)
        self.epochs = check_positive_int("epochs", epochs)
        self.delay = check_positive_int("delay", delay, minimum=0)
        if not isinstance(log_name, str) or not log_name:
            raise ValueError(
                "Invalid value for argument log_name: expected a non-empty "
                f"string. Received: log_name={log_name!r}"
            )
        self.log_name = log_name

    def value(self, epoch: int) -> float:
        """The weight of ``epoch`` (counted from 0)."""
        if self.schedule is not None:
            return check_non_negative("schedule(epoch)", float(self.schedule(epoch)))
        end = self.end
        if end is None:
            if self._resolved is None:
                raise ValueError(
                    "CentroidWeightRamp with end=None takes the layer's initial "
                    "weight: call it during fit, or pass end."
                )
            end = self._resolved.initial_weight
        if epoch < self.delay:
            return self.start
        fraction = min(1.0, (epoch - self.delay + 1) / self.epochs)
        return self.start + (end - self.start) * fraction

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._resolved is None:
            self._resolved = _find_layer(self.model, self.layer)
        self._resolved.weight.assign(self.value(epoch))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None and self._resolved is not None:
            logs[self.log_name] = float(
                keras.ops.convert_to_numpy(self._resolved.weight)
            )


class CentroidReinit(_CentroidCallback):
    """Re-initialises the centroids from labelled latents for the first epochs.

    At the start of each epoch ``e < epochs``, the labelled samples go through
    the model up to the ``LatentCentroids`` layer (inference mode); on a feature
    map, one random position per image is kept. Then, class-balanced:

    - ``method="sample"`` (the reference code's ``init_clusters``): centroid
      ``j`` is the latent of a randomly chosen sample of class ``j mod k``
      (``k`` classes), ``ceil(n_clusters / k)`` distinct samples per class
      (drawn with replacement only if a class has fewer);
    - ``method="mean"``: each class's shuffled samples are split into
      ``ceil(n_clusters / k)`` groups and centroid ``j`` is the mean of one
      group of class ``j mod k``; with ``n_clusters == k`` these are the class
      means.

    Args:
        data: ``(x, y)`` labelled samples; ``y`` labels ``(N,)``, ``(N, 1)``
            or one-hot ``(N, k)`` (NaN or fractional labels raise).
        layer: the ``LatentCentroids`` layer, its name, or None for the model's
            only one. It must be reachable from the model's inputs (a layer of
            the model's own functional graph).
        epochs: re-initialise at the start of epochs ``0 .. epochs-1``, an
            integer >= 1.
        method: ``"sample"`` or ``"mean"``.
        batch_size: batch size of the forward pass.
        seed: seed of the NumPy generator that picks samples and positions,
            an integer >= 0 or None.

    Example:

        >>> import numpy as np
        >>> x = np.random.rand(20, 5).astype("float32")
        >>> y = np.arange(20) % 2
        >>> reinit = CentroidReinit((x, y), epochs=3, method="mean")

    References:
        Karakulak et al., "Clustering latent representations for
        semi-supervised learning", 2019; ``init_clusters`` in
        https://github.com/skarakulak/CLR_SSL (utils.py).
    """

    _RUN_STATE: tuple[str, ...] = ("_model", "_resolved", "_extractor")

    def __init__(
        self,
        data: tuple[Any, Any],
        layer: str | keras.layers.Layer | None = None,
        epochs: int = 1,
        method: str = "sample",
        batch_size: int = 256,
        seed: int | None = None,
    ) -> None:
        super().__init__(layer)
        if not isinstance(data, (list, tuple)) or len(data) != 2:
            raise ValueError(
                "Invalid value for argument data: expected a tuple (x, y) of "
                f"labelled samples. Received: data of type {type(data).__name__}"
            )
        x, y = data
        y = label_vector("data", y)
        n_x = len(x) if not isinstance(x, dict) else len(next(iter(x.values())))
        if n_x != len(y) or len(y) == 0:
            raise ValueError(
                "Invalid value for argument data: expected x and y with the same "
                f"number (> 0) of samples. Received: {n_x} and {len(y)}"
            )
        self.x = x
        self.y = y
        self.epochs = check_positive_int("epochs", epochs)
        self.method = check_choice("method", method, ("sample", "mean"))
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.seed = check_seed("seed", seed)
        self._rng = np.random.default_rng(seed)
        self._extractor: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        self._extractor = layer_model(self.model, self._resolved, "CentroidReinit")

    def _latents(self) -> np.ndarray:
        z = keras.ops.convert_to_numpy(
            self._extractor.predict(self.x, batch_size=self.batch_size, verbose=0)
        )
        z = np.asarray(z, dtype="float32")
        if z.ndim > 2:
            if self._resolved.data_format == "channels_first":
                z = np.moveaxis(z, 1, -1)
            z = z.reshape(len(z), -1, z.shape[-1])
            position = self._rng.integers(0, z.shape[1], size=len(z))
            z = z[np.arange(len(z)), position]
        return z

    def centroids_from(self, z: np.ndarray) -> np.ndarray:
        """Class-balanced centroids ``(n_clusters, D)`` from latents ``z``."""
        n_clusters = self._resolved.n_clusters
        classes = np.unique(self.y)
        per_class = math.ceil(n_clusters / len(classes))
        picks = []  # picks[c][i]: the i-th centroid of class c
        for label in classes:
            members = self._rng.permutation(np.flatnonzero(self.y == label))
            if len(members) < per_class:
                extra = self._rng.choice(members, per_class - len(members))
                members = np.concatenate([members, extra])
            if self.method == "sample":
                picks.append([z[i] for i in members[:per_class]])
            else:
                groups = np.array_split(members, per_class)
                picks.append([z[group].mean(axis=0) for group in groups])
        rows = [picks[j % len(classes)][j // len(classes)] for j in range(n_clusters)]
        return np.stack(rows).astype("float32")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch >= self.epochs:
            return
        if self._extractor is None:
            self.on_train_begin()
        self._resolved.centroids.assign(self.centroids_from(self._latents()))
