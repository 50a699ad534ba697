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

from typing import Any

import keras

__all__ = [
    "num_replicas",
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
