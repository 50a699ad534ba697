"""XCov as a pass-through layer: it needs the prediction and the latent."""

from __future__ import annotations

from typing import Any

import keras

from keras_disentangle import penalties
from keras_disentangle._validation import check_choice
from keras_disentangle.layers._penalty_layer import PenaltyLayer


@keras.saving.register_keras_serializable(package="keras_disentangle")
class XCovPenalty(PenaltyLayer):
    """Adds ``weight * XCov(prediction, latent)`` to the model's losses.

    Called on ``[prediction, latent]``, it returns ``prediction`` unchanged and
    adds ``weight * 0.5 sum_ij C_ij^2``, ``C = (1/N) Yc^T Hc`` (both centred
    over the batch), to ``model.losses`` during training and evaluation.

    ``features="channels"`` with a channels-last feature map as the latent
    counts every spatial position as a sample of ``C`` channels (the
    prediction repeated at each position); ``"flatten"`` makes all of
    ``H*W*C`` features and is refused above
    ``penalties.MAX_COVARIANCE_FEATURES``.

    Several devices (``tf.distribute``, ``torch.distributed``; JAX's
    ``keras.distribution`` computes on the global batch either way):
    ``synchronized=True`` computes ``C`` on the global batch (the counts,
    sums and cross terms ``Yc^T Hc`` all-reduced) on every replica, so one
    step equals the one-device step; ``False`` optimises the mean over the
    replicas of the value on each slice (an empty slice counts as 0). A
    synchronized layer owns an empty ``(0,)`` weight that carries its loss
    (``keras_disentangle.layers.PenaltyLayer``).

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        weight: the factor of the penalty, a finite number >= 0.
        features: ``"flatten"`` or ``"channels"``.
        synchronized: compute it over the global batch of all replicas.
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

    def __init__(
        self,
        weight: float = 1.0,
        features: str = "flatten",
        synchronized: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight, synchronized, **kwargs)
        self.features = check_choice("features", features, penalties.FEATURES)

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
        prediction, latent = shapes[0][0], shapes[1][0]
        if prediction is not None and latent is not None and prediction != latent:
            raise ValueError(
                "Invalid shapes for arguments prediction and latent of "
                "XCovPenalty: expected the same number of samples on the first "
                f"axis. Received: prediction.shape={tuple(shapes[0])}, "
                f"latent.shape={tuple(shapes[1])}"
            )

    def build(self, input_shape: Any) -> None:
        self._check_shapes(input_shape)
        super().build(input_shape)

    def call(self, inputs: Any) -> Any:
        if isinstance(inputs, (list, tuple)):
            self._check_shapes([tuple(t.shape) for t in inputs])
        else:
            self._check_shapes(tuple(inputs.shape))
        prediction, latent = inputs
        value = penalties.xcov(
            prediction,
            latent,
            features=self.features,
            collectives=self.collectives(),
        )
        self.add_penalty(value)
        return prediction

    def compute_output_shape(self, input_shape):
        self._check_shapes(input_shape)
        return input_shape[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "features": self.features}
