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
"""

from __future__ import annotations

import keras
from keras import ops

from keras_disentangle import penalties
from keras_disentangle._validation import check_non_negative

__all__ = ["KernelKLMargin", "ActivityKLMargin", "DeCov", "CovarianceL1"]

_register = keras.saving.register_keras_serializable(package="keras_disentangle")


@_register
class KernelKLMargin(keras.regularizers.Regularizer):
    """L_single: pushes the units' weight distributions apart (a kernel regularizer).

    Units are the last axis of the kernel; ``d_k = softmax(W[:, k])`` over the
    fan-in (all other axes flattened), and the penalty is

    ``weight * sum_{i<j} [max(0, m - KL(d_i‖d_j)) + max(0, m - KL(d_j‖d_i))]``.

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 5-10.
        weight: the factor of the penalty, a finite number >= 0.

    Example:

        >>> import numpy as np
        >>> reg = KernelKLMargin(margin=1.0, weight=0.5)
        >>> float(reg(np.zeros((3, 2))))
        1.0

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 1-3.
    """

    def __init__(self, margin: float = 5.0, weight: float = 1e-3):
        self.margin = check_non_negative("margin", margin)
        self.weight = check_non_negative("weight", weight)

    def __call__(self, x):
        return self.weight * penalties.kernel_kl_margin(x, self.margin)

    def get_config(self):
        return {"margin": self.margin, "weight": self.weight}


class _BatchStatisticRegularizer(keras.regularizers.Regularizer):
    """Base of the activity penalties: undoes Keras's division by batch size."""

    def __init__(self, weight: float):
        self.weight = check_non_negative("weight", weight)

    def penalty(self, x):
        raise NotImplementedError

    def __call__(self, x):
        value = self.penalty(x)
        return self.weight * ops.cast(ops.shape(x)[0], value.dtype) * value

    def get_config(self):
        return {"weight": self.weight}


@_register
class ActivityKLMargin(_BatchStatisticRegularizer):
    """L_multi without labels: pushes the samples' activation distributions apart.

    ``s_n = softmax(h_n)`` over the features; the loss added to the model is

    ``weight * 1/N^2 sum_{i,j} [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    over all ordered pairs of the batch, the diagonal included (eq. 6). With
    labels, use ``keras_disentangle.losses.LabelledKLMargin`` (eq. 4).

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 0.1-1.
        weight: the factor of the penalty, a finite number >= 0.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(
        ...     15, activity_regularizer=ActivityKLMargin(margin=1.0, weight=0.1))

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 6.
    """

    def __init__(self, margin: float = 1.0, weight: float = 0.1):
        super().__init__(weight)
        self.margin = check_non_negative("margin", margin)

    def penalty(self, x):
        return penalties.activity_kl_margin(x, self.margin)

    def get_config(self):
        return {"margin": self.margin, "weight": self.weight}


@_register
class DeCov(_BatchStatisticRegularizer):
    """DeCov: penalises the off-diagonal covariances of a layer's activations.

    The loss added to the model is ``weight * 0.5 (‖C‖_F^2 - ‖diag C‖_2^2)``
    with ``C = (1/N) Hc^T Hc``, ``Hc`` the batch-centred activations.

    Args:
        weight: the factor of the penalty, a finite number >= 0.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(15, activity_regularizer=DeCov(weight=0.1))

    References:
        Cogswell et al., "Reducing Overfitting in Deep Networks by
        Decorrelating Representations", 2015.
    """

    def __init__(self, weight: float = 0.1):
        super().__init__(weight)

    def penalty(self, x):
        return penalties.decov(x)


@_register
class CovarianceL1(_BatchStatisticRegularizer):
    """L_Sigma: the L1 norm of the activation covariance over ``p^2``.

    The loss added to the model is ``weight * (1/p^2) sum_ij |C_ij|`` with
    ``C = (1/(N-1)) Hc^T Hc``, the diagonal included.

    Args:
        weight: the factor ``λ`` of the penalty, a finite number >= 0.

    Example:

        >>> import keras
        >>> layer = keras.layers.Dense(
        ...     10, activity_regularizer=CovarianceL1(weight=0.1))

    References:
        Kågebäck & Mogren, "Disentangled activations in deep networks", 2018,
        eq. 1-2.
    """

    def __init__(self, weight: float = 0.1):
        super().__init__(weight)

    def penalty(self, x):
        return penalties.covariance_l1(x)
