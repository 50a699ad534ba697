"""Keras losses for label-aware penalties."""

from __future__ import annotations

import keras

from keras_disentangle import penalties
from keras_disentangle._validation import check_non_negative

__all__ = ["LabelledKLMargin"]


@keras.saving.register_keras_serializable(package="keras_disentangle")
class LabelledKLMargin(keras.losses.Loss):
    """L_multi with labels: pushes apart the representations of same-label pairs.

    ``y_true`` are the labels (integers ``(N,)``/``(N, 1)`` or one-hot
    ``(N, C)``) and ``y_pred`` the representation ``h``. With
    ``s_n = softmax(h_n)``, the loss is

    ``1/P sum_{i,j: y_i = y_j} [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    over ordered pairs, the diagonal included, ``P = sum_c N_c^2`` (eq. 4).
    It is a statistic of the whole batch: ``sample_weight`` can only scale it
    (by the mean of the weights), not exclude samples from the pairs.

    Use it on a named representation output of a multi-output model, with
    ``loss_weights`` as the penalty weight.

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 0.1-1.
        name: name of the loss.
        reduction: Keras reduction; the value is already a scalar.

    Example:

        >>> import keras
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(15, name="fc1")(x)
        >>> y = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
        >>> model = keras.Model(x, {"out": y, "fc1": h})
        >>> model.compile(
        ...     "adam",
        ...     loss={"out": "binary_crossentropy", "fc1": LabelledKLMargin(0.5)},
        ...     loss_weights={"out": 1.0, "fc1": 0.1})

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 4.
    """

    def __init__(
        self,
        margin: float = 1.0,
        name: str = "labelled_kl_margin",
        reduction: str = "sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)

    def call(self, y_true, y_pred):
        return penalties.activity_kl_margin(y_pred, self.margin, labels=y_true)

    def get_config(self):
        config = super().get_config()
        config.update({"margin": self.margin, "dtype": self.dtype})
        return config
