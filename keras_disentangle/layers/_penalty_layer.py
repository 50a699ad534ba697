"""The base of the pass-through penalty layers: who owns a synchronized loss.

A penalty layer computes a batch statistic of its inputs and adds it to the
model's losses. With ``synchronized=False`` it calls ``add_loss``. With
``synchronized=True`` the statistic is computed on the global batch through
collectives (``keras_disentangle._distribute``), and under
``tf.distribute.MirroredStrategy`` a collective hands control to the next
replica's thread in the middle of the layer's call. Keras keeps the losses
added by a layer in one list per layer that every replica thread clears
and appends to, so a loss added with ``add_loss`` after a collective would
also be read by the other replicas (a wrong logged loss). The layer
therefore owns its synchronized loss through a public Keras mechanism that
Keras evaluates in the reading thread: an empty ``(0,)`` trainable weight
whose ``regularizer`` returns the value this layer computed in the same
thread (``Layer.losses`` calls the weight regularizers each time it is
read, in every backend's trainer and in a hand-written PyTorch loop). The
weight holds no number and its gradient is empty.
"""

from __future__ import annotations

import threading
from typing import Any

import keras
from keras import ops

from keras_disentangle._distribute import Collectives, collectives
from keras_disentangle._validation import check_bool, check_non_negative


class _ThreadLoss(keras.regularizers.Regularizer):
    """A weight regularizer that returns the loss set in the calling thread
    (0 before the first call), plus the empty weight's sum to keep a
    gradient path to it. (A ``Regularizer`` subclass: Keras 3.14 accepts no
    other callable as a weight's regularizer.) It is not serialised: the
    layer creates it again in ``build``."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, value: Any) -> None:
        self._local.value = value

    def __call__(self, weight: Any) -> Any:
        anchor = ops.sum(weight)
        value = getattr(self._local, "value", None)
        if value is None:
            return anchor
        return value + ops.cast(anchor, value.dtype)


class PenaltyLayer(keras.layers.Layer):
    """Base of the penalty layers: ``weight``, ``synchronized``, and
    ``add_penalty(value)`` that adds ``weight * value`` to the losses."""

    def __init__(
        self, weight: float = 1.0, synchronized: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.weight = check_non_negative("weight", weight)
        self.synchronized = check_bool("synchronized", synchronized)
        self._thread_loss = _ThreadLoss() if self.synchronized else None

    def build(self, input_shape: Any) -> None:
        if self._thread_loss is not None:
            self.loss_owner = self.add_weight(
                shape=(0,),
                initializer="zeros",
                trainable=True,
                regularizer=self._thread_loss,
                name="loss_owner",
            )

    def collectives(self) -> Collectives | None:
        """The runtime's collectives when synchronized, else None."""
        return collectives() if self.synchronized else None

    def add_penalty(self, value: Any) -> None:
        """Adds ``weight * value`` to the model's losses."""
        loss = self.weight * value
        if self._thread_loss is None:
            self.add_loss(loss)
        else:
            self._thread_loss.set(loss)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"weight": self.weight, "synchronized": self.synchronized})
        return config
