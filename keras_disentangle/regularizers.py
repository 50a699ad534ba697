"""Weight and activity regularizers around ``keras_disentangle.penalties``.

Use them as any Keras regularizer::

    keras.layers.Dense(15, kernel_regularizer=KernelKLMargin(margin=5.0, weight=1e-3))
    keras.layers.Dense(15, activity_regularizer=DeCov(weight=0.1))

Keras 3 (from 3.14, the version this package requires) divides what an
``activity_regularizer`` returns by the batch size (it assumes a sum of
per-sample terms). The activity penalties here are batch
statistics (a covariance, a mean over pairs), so their ``__call__`` returns
``weight * N * formula``: after Keras's division, the loss a layer adds to
``model.losses`` is exactly ``weight * formula`` at any batch size ``N``.
Call the functions of ``keras_disentangle.penalties`` for the bare values.

Several devices. Under a ``tf.distribute`` strategy of ``R`` replicas,
replica ``r`` sees ``N_r`` of the ``N`` samples of the global batch; Keras
divides each replica's activity loss by ``N_r`` and multiplies every loss
by ``1/R``, and the optimizer sums the replicas' gradients: the step
optimises ``weight * mean_r formula(slice_r)`` (an empty slice counts as
0), the per-replica statistic. A statistic of the global batch needs a
loss that its owner computes inside a call that Keras makes itself, which
an activity regularizer (called by its layer with the output alone) cannot
be: ``synchronized=True`` raises, and names the layer to use instead,
``keras_disentangle.layers.ActivityPenalty(regularizer,
synchronized=True)`` after the regularized layer.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_disentangle import penalties
from keras_disentangle._validation import (
    check_bool,
    check_choice,
    check_non_negative,
)

__all__ = ["KernelKLMargin", "ActivityKLMargin", "DeCov", "CovarianceL1"]

_register = keras.saving.register_keras_serializable(package="keras_disentangle")


@_register
class KernelKLMargin(keras.regularizers.Regularizer):
    """L_single: pushes the units' weight distributions apart (a kernel regularizer).

    Units are the last axis of the kernel; ``d_k = softmax(W[:, k])`` over the
    fan-in (all other axes flattened), and the penalty is

    ``weight * sum_{i<j} [max(0, m - KL(d_i‖d_j)) + max(0, m - KL(d_j‖d_i))]``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 5-10.
        weight: the factor of the penalty, a finite number >= 0.

    Example:

        >>> import numpy as np
        >>> reg = KernelKLMargin(margin=1.0, weight=0.5)
        >>> round(float(reg(np.zeros((3, 2)))), 4)
        1.0

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 1-3.
    """

    def __init__(self, margin: float = 5.0, weight: float = 1e-3) -> None:
        self.margin = check_non_negative("margin", margin)
        self.weight = check_non_negative("weight", weight)

    def __call__(self, x: Any) -> Any:
        return self.weight * penalties.kernel_kl_margin(x, self.margin)

    def get_config(self) -> dict:
        return {"margin": self.margin, "weight": self.weight}


def _check_synchronized(regularizer: str, synchronized) -> bool:
    if check_bool("synchronized", synchronized):
        raise ValueError(
            "Invalid value for argument synchronized: an activity regularizer "
            "cannot compute a statistic of the global batch exactly (Keras calls "
            "it with the layer's output alone, outside the layer's call). Keep "
            f"synchronized=False here and wrap it in a layer: "
            f"keras_disentangle.layers.ActivityPenalty({regularizer}(...), "
            "synchronized=True), called on the layer's output. "
            "Received: synchronized=True"
        )
    return False


class _BatchStatisticRegularizer(keras.regularizers.Regularizer):
    """Base of the activity penalties: undoes Keras's division by batch size
    and keeps the per-replica statistic (module docstring)."""

    def __init__(self, weight: float, synchronized: bool = False) -> None:
        self.weight = check_non_negative("weight", weight)
        self.synchronized = _check_synchronized(type(self).__name__, synchronized)

    def penalty(self, x: Any, collectives: Any = None) -> Any:
        """The unweighted formula of ``x``; on the global batch with
        ``collectives`` (``keras_disentangle.penalties``)."""
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        value = self.penalty(x)
        n = ops.cast(ops.shape(x)[0], value.dtype)
        return self.weight * n * value  # Keras divides by n (and by R)

    def get_config(self) -> dict:
        return {"weight": self.weight, "synchronized": self.synchronized}


class _CovarianceRegularizer(_BatchStatisticRegularizer):
    def __init__(
        self, weight: float, features: str = "flatten", synchronized: bool = False
    ) -> None:
        super().__init__(weight, synchronized)
        self.features = check_choice("features", features, penalties.FEATURES)

    def get_config(self) -> dict:
        return {**super().get_config(), "features": self.features}


@_register
class ActivityKLMargin(_BatchStatisticRegularizer):
    """L_multi without labels: pushes the samples' activation distributions apart.

    ``s_n = softmax(h_n)`` over the features; the loss added to the model is

    ``weight * 1/N^2 sum_{i,j} [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    over all ordered pairs of the batch, the diagonal included (eq. 6). With
    labels, use ``keras_disentangle.losses.LabelledKLMargin`` (eq. 4).

    Several devices: the pairs within each replica's slice, averaged over
    the replicas (module docstring); for the pairs of the global batch use
    ``keras_disentangle.layers.ActivityPenalty(ActivityKLMargin(...),
    synchronized=True)``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 0.1-1.
        weight: the factor of the penalty, a finite number >= 0.
        synchronized: False (kept for configs); True raises a ValueError
            that names ``keras_disentangle.layers.ActivityPenalty``.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(
        ...     15, activity_regularizer=ActivityKLMargin(margin=1.0, weight=0.1))

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 6.
    """

    def __init__(
        self, margin: float = 1.0, weight: float = 0.1, synchronized: bool = False
    ) -> None:
        super().__init__(weight, synchronized)
        self.margin = check_non_negative("margin", margin)

    def penalty(self, x: Any, collectives: Any = None) -> Any:
        return penalties.activity_kl_margin(x, self.margin, collectives=collectives)

    def get_config(self) -> dict:
        return {"margin": self.margin, **super().get_config()}


@_register
class DeCov(_CovarianceRegularizer):
    """DeCov: penalises the off-diagonal covariances of a layer's activations.

    The loss added to the model is ``weight * 0.5 (‖C‖_F^2 - ‖diag C‖_2^2)``
    with ``C = (1/N) Hc^T Hc``, ``Hc`` the batch-centred activations.

    On a feature map ``(N, H, W, C)``, ``features="flatten"`` makes
    ``H*W*C`` features (a 32x32x64 map: a 65,536^2 covariance, refused
    above ``penalties.MAX_COVARIANCE_FEATURES``); ``features="channels"``
    counts each of the ``N*H*W`` positions as a sample of ``C`` channels.
    Several devices: the per-replica statistic (module docstring); for
    ``C`` on the global batch use ``keras_disentangle.layers.ActivityPenalty(
    DeCov(...), synchronized=True)``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        weight: the factor of the penalty, a finite number >= 0.
        features: ``"flatten"`` or ``"channels"`` (channels-last maps).
        synchronized: False (kept for configs); True raises a ValueError
            that names ``keras_disentangle.layers.ActivityPenalty``.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(15, activity_regularizer=DeCov(weight=0.1))

    References:
        Cogswell et al., "Reducing Overfitting in Deep Networks by
        Decorrelating Representations", 2015.
    """

    def __init__(
        self, weight: float = 0.1, features: str = "flatten", synchronized: bool = False
    ) -> None:
        super().__init__(weight, features, synchronized)

    def penalty(self, x: Any, collectives: Any = None) -> Any:
        return penalties.decov(x, features=self.features, collectives=collectives)


@_register
class CovarianceL1(_CovarianceRegularizer):
    """L_Sigma: the L1 norm of the activation covariance over ``p^2``.

    The loss added to the model is ``weight * (1/p^2) sum_ij |C_ij|`` with
    ``C = (1/(N-1)) Hc^T Hc``, the diagonal included. ``features`` and
    ``synchronized`` as in ``DeCov``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        weight: the factor ``λ`` of the penalty, a finite number >= 0.
        features: ``"flatten"`` or ``"channels"`` (channels-last maps).
        synchronized: False (kept for configs); True raises a ValueError
            that names ``keras_disentangle.layers.ActivityPenalty``.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(
        ...     10, activity_regularizer=CovarianceL1(weight=0.1))

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        eq. 1-2.
    """

    def __init__(
        self, weight: float = 0.1, features: str = "flatten", synchronized: bool = False
    ) -> None:
        super().__init__(weight, features, synchronized)

    def penalty(self, x: Any, collectives: Any = None) -> Any:
        return penalties.covariance_l1(
            x, features=self.features, collectives=collectives
        )
