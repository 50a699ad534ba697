"""The distribution seam: collectives for batch statistics, one per runtime.

A batch statistic with ``synchronized=True`` is computed on the global
batch of all devices. The maths (``keras_disentangle.penalties``,
``.estimators``) take the collectives as an argument and never look up the
runtime; the Keras adapters ask ``collectives()`` for them at call time.
It returns ``None`` on one device, else an object with

- ``sum(x)``: ``x`` (a tensor or a nest of tensors) summed over the
  replicas. Its gradient is again a sum over the replicas.
- ``gather(x)``: the replicas' ``x`` concatenated along axis 0 in replica
  order (slices may differ in length, even be empty); the gradient of each
  row flows back to the replica that holds it, summed over its uses.
- ``offset(n_local)``: the index, in the gathered batch, of this replica's
  first row.

The runtimes:

- ``tf.distribute`` (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``)
  inside a replica context with R > 1 replicas: the replica context's
  ``all_reduce`` / ``all_gather``. Keras multiplies every loss term by
  ``1/R`` and the optimizer sums the replicas' gradients.
- ``torch.distributed`` with an initialised process group of more than one
  process (``DistributedDataParallel``): ``torch.distributed.nn.functional``
  ``all_reduce`` (its backward is again an all-reduce). ``gather`` is an
  all-reduce of the rows placed at their offset in a zero buffer, so slices
  may differ in length and the gloo backend, which has no reduce-scatter,
  works too. DDP averages the processes' gradients.
- JAX: nothing to do. Under ``keras.distribution.DataParallel`` (one
  process or several, ``jax.distributed.initialize``) a batch is one global
  array and every statistic is computed on the global batch by XLA.

Either way a loss ``V(global batch)`` computed on every replica yields,
after the runtime's reduction of the gradients (TensorFlow: ``1/R`` and a
sum; PyTorch: a mean), exactly the one-device gradient of ``V``: the
collectives' backward passes sum each replica's share over the replicas.
No module imports TensorFlow or PyTorch unless its backend is the active one.
"""

from __future__ import annotations

import warnings
from typing import Any, Protocol

import keras

__all__ = [
    "Collectives",
    "collectives",
    "num_replicas",
    "replicas_in_sync",
    "replica_gather",
    "replica_offset",
    "replica_sum",
    "scale_for_replicas",
    "share_for_gradients",
    "unscale_for_replicas",
]


class Collectives(Protocol):
    """What the maths need from a runtime (module docstring)."""

    size: int

    def sum(self, x: Any) -> Any: ...

    def gather(self, x: Any) -> Any: ...

    def offset(self, n_local: Any) -> Any: ...


class _TensorFlowReplicaContext:
    """``tf.distribute``: the replica context's collectives."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.size = int(context.num_replicas_in_sync)

    def sum(self, x: Any) -> Any:
        import tensorflow as tf

        return self.context.all_reduce(tf.distribute.ReduceOp.SUM, x)

    def gather(self, x: Any) -> Any:
        return self.context.all_gather(x, axis=0)

    def offset(self, n_local: Any) -> Any:
        import tensorflow as tf

        size = tf.reshape(tf.cast(n_local, tf.int32), (1,))
        sizes = self.context.all_gather(size, axis=0)
        return tf.reduce_sum(sizes[: self.context.replica_id_in_sync_group])


def _all_reduce(x: Any) -> Any:
    """``torch.distributed.nn.functional.all_reduce`` (differentiable).

    PyTorch 2.13 marks it deprecated in favour of the private
    ``torch.distributed._functional_collectives``; it is still the public
    differentiable collective, so its FutureWarning is silenced here.
    """
    from torch.distributed.nn import functional

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return functional.all_reduce(x)


class _TorchProcessGroup:
    """``torch.distributed``: differentiable collectives of the default group."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.size = int(dist.get_world_size())
        self.rank = int(dist.get_rank())

    def sum(self, x: Any) -> Any:
        return keras.tree.map_structure(_all_reduce, x)

    def _sizes(self, n_local: int) -> list[int]:
        import torch
        import torch.distributed as dist

        size = torch.tensor([int(n_local)], dtype=torch.int64)
        sizes = [torch.zeros_like(size) for _ in range(self.size)]
        dist.all_gather(sizes, size)
        return [int(s.item()) for s in sizes]

    def gather(self, x: Any) -> Any:
        import torch

        sizes = self._sizes(x.shape[0])
        start = sum(sizes[: self.rank])
        before = x.new_zeros((start, *x.shape[1:]))
        after = x.new_zeros((sum(sizes) - start - x.shape[0], *x.shape[1:]))
        return _all_reduce(torch.cat([before, x, after], dim=0))

    def offset(self, n_local: Any) -> Any:
        return sum(self._sizes(int(n_local))[: self.rank])


def collectives() -> Collectives | None:
    """The collectives of the runtime in use, ``None`` on one device (and on
    JAX, whose global arrays need none)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.distribute.in_cross_replica_context():
            return None
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return None
        return _TensorFlowReplicaContext(context)
    if backend == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            if dist.get_world_size() > 1:
                return _TorchProcessGroup()
    return None


def num_replicas() -> int:
    """The number of replicas R of the active ``tf.distribute`` strategy,
    by which Keras divides every loss term (1 without one, and on JAX and
    PyTorch, where Keras divides nothing)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def replicas_in_sync() -> int:
    """The number of replicas the collectives act on (1 without them)."""
    found = collectives()
    return 1 if found is None else found.size


def replica_sum(x: Any) -> Any:
    """Sum of ``x`` (a tensor or a nest of tensors) over all replicas."""
    found = collectives()
    return x if found is None else found.sum(x)


def replica_gather(x: Any) -> Any:
    """``x`` of every replica, concatenated along axis 0 in replica order."""
    found = collectives()
    return x if found is None else found.gather(x)


def replica_offset(n_local: Any) -> Any:
    """The index, in the global batch, of this replica's first sample: the
    sum of the slice sizes ``n_local`` of the replicas before it, in the
    order of ``replica_gather`` (0 without collectives)."""
    found = collectives()
    return 0 if found is None else found.offset(n_local)


def share_for_gradients(share: Any) -> Any:
    """A replica's share of a sum over replicas (its rows' part of a global
    mean), as the term its loss adds: unchanged where the optimizer sums
    the replicas' gradients (``tf.distribute``, one device), times the
    number of processes P where ``DistributedDataParallel`` averages them
    (``torch.distributed``)."""
    found = collectives()
    if isinstance(found, _TorchProcessGroup):
        return keras.ops.multiply(share, keras.ops.cast(found.size, share.dtype))
    return share


def scale_for_replicas(loss: Any) -> Any:
    """``loss / R``: the per-replica share Keras gives every loss term under
    ``tf.distribute``, so that the optimizer's sum over replicas is the
    one-device loss."""
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
