"""XCov as a pass-through layer: it needs the prediction and the latent."""

from __future__ import annotations

import keras

from keras_disentangle import penalties
from keras_disentangle._validation import check_non_negative


@keras.saving.register_keras_serializable(package="keras_disentangle")
class XCovPenalty(keras.layers.Layer):
    """Adds ``weight * XCov(prediction, latent)`` to the model's losses.

    Called on ``[prediction, latent]``, it returns ``prediction`` unchanged and
    adds ``weight * 0.5 sum_ij C_ij^2``, ``C = (1/N) Yc^T Hc`` (both centred
    over the batch), to ``model.losses`` during training and evaluation.

    Args:
        weight: the factor of the penalty, a finite number >= 0.
        **kwargs: base layer arguments (``name``, ...).

    Example:

        >>> import keras
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(15)(x)
        >>> y = keras.layers.Dense(1, activation="sigmoid")(h)
        >>> y = XCovPenalty(weight=1.0)([y, h])
        >>> model = keras.Model(x, y)

    References:
        Cheung et al., "Discovering Hidden Factors of Variation in Deep
        Networks", 2014.
    """

    def __init__(self, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = check_non_negative("weight", weight)

    @staticmethod
    def _check_shapes(shapes):
        ok = (
            isinstance(shapes, (list, tuple))
            and len(shapes) == 2
            and all(isinstance(s, (list, tuple)) and len(s) >= 1 for s in shapes)
        )
        if not ok:
            raise ValueError(
                "XCovPenalty expects to be called on a list [prediction, latent] "
                "of tensors with samples on the first axis. "
                f"Received inputs of shape {shapes}"
            )

    def build(self, input_shape):
        self._check_shapes(input_shape)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            self._check_shapes([tuple(t.shape) for t in inputs])
        else:
            self._check_shapes(tuple(inputs.shape))
        prediction, latent = inputs
        self.add_loss(self.weight * penalties.xcov(prediction, latent))
        return prediction

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["weight"] = self.weight
        return config
