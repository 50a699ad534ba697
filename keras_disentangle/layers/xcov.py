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

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "XCovPenalty expects to be called on a list [prediction, latent]. "
                f"Received: inputs={inputs!r}"
            )
        prediction, latent = inputs
        if len(prediction.shape) < 1 or len(latent.shape) < 1:
            raise ValueError(
                "XCovPenalty expects prediction and latent with samples on the "
                f"first axis. Received shapes {prediction.shape} and {latent.shape}"
            )
        return prediction, latent

    def build(self, input_shape):
        # Validates the structure once, with symbolic shapes.
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(
                "XCovPenalty expects to be called on a list [prediction, latent]. "
                f"Received input_shape={input_shape}"
            )

    def call(self, inputs):
        prediction, latent = self._check_inputs(inputs)
        self.add_loss(self.weight * penalties.xcov(prediction, latent))
        return prediction

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["weight"] = self.weight
        return config
