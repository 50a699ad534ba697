"""The few primitives that differ between Keras backends, one helper each.

Everything else in the package is written with ``keras.ops``. An input
gradient (VAT's adversarial direction, the tests' gradient checks) has no
``keras.ops`` form, so it is written here once per backend, the way Keras's
own GAN guide writes one ``train_step`` per backend. No module imports
TensorFlow, JAX or PyTorch unless that backend is the active one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = ["backend_name", "value_and_gradient"]


def backend_name() -> str:
    """The active Keras backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return keras.backend.backend()


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


def assert_tf_backend(what: str) -> None:
    """Raises a clear error when ``what`` needs the TensorFlow backend.

    Kept only while a feature has no version for the other backends; every
    public object should work on all three (issue: every Keras backend).
    """
    backend = backend_name()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend of Keras, but the active "
            f"backend is {backend!r}. Set the environment variable "
            "KERAS_BACKEND=tensorflow before importing keras."
        )
