"""The few primitives that differ between Keras backends, one helper each.

Everything else in the package is written with ``keras.ops``. An input
gradient (VAT's adversarial direction, the tests' gradient checks) has no
``keras.ops`` form, so it is written here once per backend, the way Keras's
own GAN guide writes one ``train_step`` per backend. No module imports
TensorFlow, JAX or PyTorch unless that backend is the active one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = [
    "apply_gradients",
    "backend_name",
    "computes_on_cpu",
    "concrete_value",
    "matmul",
    "differentiable_input_gradient",
    "stateless_train_step",
    "value_and_gradient",
    "variable_gradients",
]


def backend_name() -> str:
    """The active Keras backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return keras.backend.backend()


def computes_on_cpu(x: Any = None) -> bool:
    """Whether the backend computes on the CPU (``x``'s device on PyTorch).

    Used to size work for the CPU's caches (the pairwise penalties process
    their ``N x N`` block in column slices there); on an accelerator the
    whole block is one kernel.
    """
    backend = backend_name()
    if backend == "torch":
        device = getattr(x, "device", None)
        if device is not None:
            return device.type == "cpu"
        import torch

        return not torch.cuda.is_available()
    return _default_device_is_cpu(backend)


@functools.cache
def _default_device_is_cpu(backend: str) -> bool:
    if backend == "jax":
        import jax

        return jax.default_backend() == "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return not (
            tf.config.list_logical_devices("GPU")
            or tf.config.list_logical_devices("TPU")
        )
    return True


def concrete_value(x: Any) -> Any:
    """``x`` as NumPy when its values are known now (eager), ``None`` when it
    is traced (``tf.function``, ``jax.jit``, ``torch.compile``)."""
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
        return np.asarray(x)
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.executing_eagerly() and hasattr(x, "numpy"):
            return x.numpy()
        return None
    if backend == "jax":
        import jax

        return None if isinstance(x, jax.core.Tracer) else np.asarray(x)
    if backend == "torch":
        import torch

        if torch.compiler.is_compiling():
            return None
        return x.detach().cpu().numpy()
    return np.asarray(x)


def matmul(a: Any, b: Any) -> Any:
    """``a @ b``. Keras 3.15's PyTorch ``matmul`` (and ``maximum``) compute
    float64 tensors in float32 (its ``result_type`` of two torch dtypes is
    the default float), which makes ``‖h‖² − 2 h·c + ‖c‖²`` mix precisions;
    ``einsum`` keeps float64 there."""
    if (
        backend_name() == "torch"
        and keras.backend.standardize_dtype(a.dtype) == "float64"
    ):
        return keras.ops.einsum("ij,jk->ik", a, b)
    return keras.ops.matmul(a, b)


def value_and_gradient(fn: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """Value of a scalar function and its gradient with respect to ``x``.

    ``fn`` maps one tensor ``x`` to a scalar tensor. The gradient is taken
    with respect to ``x`` only; everything ``fn`` closes over (the model's
    weights) is held constant, and neither the value nor the gradient
    carries a gradient back to those weights. Works eagerly and inside a
    compiled train step (``tf.function``, ``jax.jit``, ``torch`` eager), on
    the TensorFlow, JAX and PyTorch backends.

    Args:
        fn: a function of one tensor returning a scalar tensor.
        x: the point, a tensor or array of the backend's float dtype.

    Returns:
        ``(value, gradient)``: the scalar ``fn(x)`` and ``d fn / d x`` with
        the shape of ``x``, both backend tensors, gradient-stopped.

    Example:

        >>> import keras
        >>> value, grad = value_and_gradient(
        ...     lambda x: keras.ops.sum(x**2), keras.ops.array([1.0, 2.0]))
        >>> keras.ops.convert_to_numpy(grad).tolist()
        [2.0, 4.0]
    """
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            value = fn(x)
        grad = tape.gradient(value, x)
        return tf.stop_gradient(value), tf.stop_gradient(grad)
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(x)
        return jax.lax.stop_gradient(value), jax.lax.stop_gradient(grad)
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        with torch.enable_grad():
            value = fn(x)
            (grad,) = torch.autograd.grad(value, x)
        return value.detach(), grad.detach()
    raise NotImplementedError(
        f"value_and_gradient supports the tensorflow, jax and torch backends of "
        f"Keras. Received: backend={backend!r}"
    )


def differentiable_input_gradient(fn: Callable[[Any], Any], x: Any) -> Any:
    """``d fn / d x``, itself differentiable (a gradient penalty's gradient).

    Unlike ``value_and_gradient`` the gradient is *not* stopped: a loss built
    from it (``mean ||grad_x D(x)||^2``) differentiates, through it, with
    respect to the weights ``fn`` closes over (double backpropagation:
    ``create_graph=True`` on PyTorch, a nested ``tf.GradientTape``, a nested
    ``jax.grad``). ``x`` itself is treated as a constant. Works eagerly and
    inside a compiled step, also where the trainer turned gradients off
    (PyTorch's evaluation step).

    Args:
        fn: a function of one tensor returning a scalar tensor.
        x: the point, a float tensor.

    Returns:
        ``d fn / d x``, shaped like ``x``.

    Example:

        >>> import keras
        >>> g = differentiable_input_gradient(
        ...     lambda x: keras.ops.sum(x**3), keras.ops.array([1.0, 2.0]))
        >>> keras.ops.convert_to_numpy(g).tolist()
        [3.0, 12.0]
    """
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.stop_gradient(tf.convert_to_tensor(x))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            value = fn(x)
        return tape.gradient(value, x)
    if backend == "jax":
        import jax

        return jax.grad(fn)(jax.lax.stop_gradient(x))
    if backend == "torch":
        import torch

        x = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        with torch.enable_grad():
            value = fn(x)
            (grad,) = torch.autograd.grad(value, x, create_graph=True)
        return grad
    raise NotImplementedError(
        "differentiable_input_gradient supports the tensorflow, jax and torch "
        f"backends of Keras. Received: backend={backend!r}"
    )


def variable_gradients(
    fn: Callable[[], tuple[Any, Any]],
    variables: Sequence[Any],
    state_variables: Sequence[Any] = (),
) -> tuple[Any, Any, list[Any]]:
    """Runs ``fn() -> (loss, aux)``; returns ``(loss, aux, d loss / d variables)``.

    The gradient step of a hand-written ``train_step`` (a GAN's two players),
    written once per backend as Keras's GAN guide does: ``tf.GradientTape``,
    ``torch.autograd.grad``, ``jax.value_and_grad``. What ``fn`` does to other
    Keras variables (metric updates, batch-norm statistics, seed states) is
    kept: in place on TensorFlow and PyTorch; on JAX ``fn`` runs in a
    ``keras.StatelessScope`` that maps ``variables`` and ``state_variables``
    (every other variable ``fn`` reads or writes), and the new values of
    ``state_variables`` are assigned afterwards (inside the trainer's own
    scope, see ``stateless_train_step``). Losses added by layers during
    ``fn`` are collected as Keras's JAX trainer does.

    Args:
        fn: a function of no argument returning ``(scalar loss, aux)``.
        variables: the Keras variables to differentiate with respect to.
        state_variables: (JAX) the other variables ``fn`` uses.

    Returns:
        ``(loss, aux, gradients)``, one gradient per variable (zeros for a
        variable the loss does not depend on).
    """
    variables = list(variables)
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss, aux = fn()
        grads = tape.gradient(loss, variables)
    elif backend == "torch":
        import torch

        loss, aux = fn()
        grads = torch.autograd.grad(
            loss, [v.value for v in variables], allow_unused=True
        )
    elif backend == "jax":
        import jax

        own = {id(v) for v in variables}
        state_variables = [v for v in state_variables if id(v) not in own]
        state_values = [v.value for v in state_variables]

        def pure(values):
            mapping = list(zip(variables, values, strict=True))
            mapping += list(zip(state_variables, state_values, strict=True))
            with keras.StatelessScope(
                state_mapping=mapping, collect_losses=True
            ) as scope:
                loss, aux = fn()
            updated = [scope.get_current_value(v) for v in state_variables]
            return loss, (aux, updated)

        (loss, (aux, updated)), grads = jax.value_and_grad(pure, has_aux=True)(
            [v.value for v in variables]
        )
        for v, value in zip(state_variables, updated, strict=True):
            v.assign(value)
    else:
        raise NotImplementedError(
            "variable_gradients supports the tensorflow, jax and torch backends "
            f"of Keras. Received: backend={backend!r}"
        )
    grads = [
        keras.ops.zeros_like(v.value) if g is None else g
        for v, g in zip(variables, grads, strict=True)
    ]
    return loss, aux, grads


def apply_gradients(
    optimizer: Any, grads: Sequence[Any], variables: Sequence[Any]
) -> None:
    """``optimizer.apply_gradients`` on every backend; on JAX (inside
    ``stateless_train_step``'s scope) through ``optimizer.stateless_apply``,
    whose loss-scaling branches are written for JAX, and the new values
    assigned into the scope."""
    variables = list(variables)
    if backend_name() != "jax":
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return
    new_values, new_state = optimizer.stateless_apply(
        [v.value for v in optimizer.variables],
        list(grads),
        [v.value for v in variables],
    )
    for v, value in zip(variables, new_values, strict=True):
        v.assign(value)
    for v, value in zip(optimizer.variables, new_state, strict=True):
        v.assign(value)


def stateless_train_step(
    model: keras.Model, state: Sequence[Any], step: Callable[[], Any]
) -> tuple[Any, tuple[list[Any], ...]]:
    """Keras's stateless JAX ``train_step(state, data)`` around a stateful one.

    ``state`` is the JAX trainer's ``(trainable_variables,
    non_trainable_variables, optimizer_variables, metrics_variables)``
    values, in the order of the model's lists. ``step()`` runs in a
    ``keras.StatelessScope`` mapping them (it may call
    ``variable_gradients`` and ``optimizer.apply_gradients``) and returns
    the logs; the new values are read back from the scope.

    Returns:
        ``(logs, new_state)`` as the JAX trainer expects.
    """
    groups = (
        model.trainable_variables,
        model.non_trainable_variables,
        model.optimizer.variables,
        model.metrics_variables,
    )
    mapping = [
        (ref, value)
        for refs, values in zip(groups, state, strict=True)
        for ref, value in zip(refs, values, strict=True)
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step()
    new_state = tuple(
        [
            value
            if scope.get_current_value(ref) is None
            else scope.get_current_value(ref)
            for ref, value in zip(refs, values, strict=True)
        ]
        for refs, values in zip(groups, state, strict=True)
    )
    return logs, new_state
