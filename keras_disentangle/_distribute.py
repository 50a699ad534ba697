"""Replica collectives for batch statistics under a distribution strategy.

With ``tf.distribute`` (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``)
each replica computes the loss on its slice of the global batch, Keras
divides every loss term by the number of replicas R, and the optimizer sums
the R gradients. A batch statistic computed on the slice is then the mean of
per-slice statistics (``synchronized=False``). With the collectives below a
statistic is computed on the global batch instead (``synchronized=True``):

- ``replica_sum(x)`` all-reduces (sums) ``x`` over the replicas. Its gradient
  is again a sum over replicas, so a term ``L(global stats) / R`` computed on
  every replica yields, after the optimizer's sum, exactly the one-device
  gradient of ``L`` on the global batch.
- ``replica_gather(x)`` concatenates the replicas' ``x`` along axis 0 (slices
  may differ in length, even be empty), with gradients flowing back to each
  replica's own rows.

Without a strategy (or in JAX, whose ``keras.distribution.DataParallel``
computes every statistic on the global batch by itself) they return ``x``
unchanged at no cost. TensorFlow is imported only on its own backend.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import keras

__all__ = [
    "num_replicas",
    "replicas_in_sync",
    "replica_gather",
    "replica_offset",
    "replica_sum",
    "scale_for_replicas",
    "unscale_for_replicas",
]


def _replica_context():
    """The ``tf.distribute`` replica context when R > 1, else ``None``."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas() -> int:
    """The number of replicas R of the active ``tf.distribute`` strategy (1
    without one, and on JAX and PyTorch)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replicas_in_sync() -> int:
    """R inside the replica context of a ``tf.distribute`` strategy with
    R > 1 replicas (where the collectives act), 1 everywhere else."""
    context = _replica_context()
    return 1 if context is None else int(context.num_replicas_in_sync)


def replica_sum(x: Any) -> Any:
    """Sum of ``x`` (a tensor or a nest of tensors) over all replicas."""
    context = _replica_context()
    if context is None:
        return x
    import tensorflow as tf

    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def replica_gather(x: Any) -> Any:
    """``x`` of every replica, concatenated along axis 0 in replica order."""
    context = _replica_context()
    if context is None:
        return x
    return context.all_gather(x, axis=0)


def replica_offset(n_local: Any) -> Any:
    """The index, in the global batch, of this replica's first sample: the
    sum of the slice sizes ``n_local`` of the replicas before it, in the
    order of ``replica_gather`` (0 without a strategy)."""
    context = _replica_context()
    if context is None:
        return 0
    import tensorflow as tf

    sizes = context.all_gather(tf.reshape(tf.cast(n_local, tf.int32), (1,)), axis=0)
    return tf.reduce_sum(sizes[: context.replica_id_in_sync_group])


def scale_for_replicas(loss: Any) -> Any:
    """``loss / R``: the per-replica share Keras gives every loss term, so
    that the optimizer's sum over replicas is the one-device loss."""
    replicas = num_replicas()
    if replicas == 1:
        return loss
    return keras.ops.multiply(loss, keras.ops.cast(1.0 / replicas, loss.dtype))


def unscale_for_replicas(loss: Any) -> Any:
    """``loss * R``: the inverse of ``scale_for_replicas``, for logging."""
    replicas = num_replicas()
    if replicas == 1:
        return loss
    return keras.ops.multiply(loss, keras.ops.cast(replicas, loss.dtype))


class _ReplicaLocalList:
    """A list with one content per thread, for ``Layer._losses``.

    ``MirroredStrategy`` traces each replica in its own thread and switches
    threads at every collective (``merge_call``). Keras keeps a layer's added
    losses in ONE list, cleared when a replica's forward pass starts and
    appended when its loss is ready; a collective between the two lets the
    next replica clear the list before the first appends, and that replica
    then also sums the first replica's loss (its logged loss, not its
    gradient: gradient tapes are per thread). One list per thread, as the
    tapes, keeps each replica's losses its own.
    """

    def __init__(self, items=()):
        self._local = threading.local()
        self._local.items = list(items)

    @property
    def _items(self) -> list:
        if not hasattr(self._local, "items"):
            self._local.items = []
        return self._local.items

    def extend(self, values) -> None:
        self._items.extend(values)

    def append(self, value) -> None:
        self._items.append(value)

    def clear(self) -> None:
        self._items.clear()

    def __getitem__(self, index):
        return self._items[index]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


def isolate_replica_losses(layer: Any) -> None:
    """Makes ``layer``'s added losses per replica thread (see
    ``_ReplicaLocalList``) when a collective runs inside its call under a
    multi-replica strategy; a no-op elsewhere."""
    if replicas_in_sync() == 1 or not isinstance(layer, keras.layers.Layer):
        return
    losses = getattr(layer, "_losses", None)
    if isinstance(losses, list):
        object.__setattr__(layer, "_losses", _ReplicaLocalList(losses))


def calling_layer() -> Any:
    """The Keras layer whose ``__call__`` calls the caller (an activity
    regularizer is called by ``Layer.__call__`` with no reference to the
    layer), or ``None``."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back if frame is not None else None
        for _ in range(6):  # the regularizer's __call__ (and its super calls)
            if caller is None:
                return None
            owner = caller.f_locals.get("self")
            if isinstance(owner, keras.layers.Layer):
                return owner
            caller = caller.f_back
        return None
    finally:
        del frame
