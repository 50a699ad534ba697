"""A batch-statistic activity penalty as a pass-through layer."""

from __future__ import annotations

from typing import Any

import keras

from keras_disentangle import regularizers
from keras_disentangle.layers._penalty_layer import PenaltyLayer


@keras.saving.register_keras_serializable(package="keras_disentangle")
class ActivityPenalty(PenaltyLayer):
    """Adds an activity penalty of its input to the model's losses.

    Called on a layer's output ``h``, it returns ``h`` unchanged and adds
    ``penalty.weight * formula(h)`` to ``model.losses`` during training
    and evaluation, where ``penalty`` is one of the batch-statistic
    regularizers ``keras_disentangle.regularizers.DeCov``,
    ``CovarianceL1`` or ``ActivityKLMargin`` (the same loss as passing it
    as the layer's ``activity_regularizer``).

    Several devices: with ``synchronized=True`` the formula is computed on
    the global batch of all replicas (``tf.distribute`` strategies,
    ``torch.distributed`` process groups; covariances from all-reduced
    statistics, pairwise terms as each replica's block against the
    all-gathered samples), so one step moves the weights exactly as one
    device on the global batch; ``False`` optimises the mean over the
    replicas of the value on each slice, as the regularizer does. JAX's
    ``keras.distribution`` computes on the global batch either way. A
    synchronized layer owns an empty ``(0,)`` weight that carries its loss
    (``keras_disentangle.layers.PenaltyLayer``).

    Saving: registered with Keras (the penalty is saved in the config), so
    a model holding it saves to ``.keras`` and loads back with
    ``keras.saving.load_model`` after ``import keras_disentangle``
    (without that import, loading fails with a long error whose cause, an
    unknown ``keras_disentangle>...`` object, is at its end).

    Args:
        penalty: a ``DeCov``, ``CovarianceL1`` or ``ActivityKLMargin``
            (its ``weight`` and hyperparameters are used).
        synchronized: compute it over the global batch of all replicas.
        **kwargs: base layer arguments (``name``, ...).

    Example:

        >>> import keras
        >>> from keras_disentangle.regularizers import DeCov
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(15)(x)
        >>> h = ActivityPenalty(DeCov(weight=0.1), synchronized=True)(h)
        >>> model = keras.Model(x, keras.layers.Dense(1)(h))

    References:
        Cogswell et al. 2015 (DeCov); Kågebäck & Mogren 2018
        (CovarianceL1); Romanov & Rumshisky 2017 (ActivityKLMargin).
    """

    def __init__(self, penalty: Any, synchronized: bool = False, **kwargs: Any) -> None:
        if isinstance(penalty, dict):
            penalty = keras.saving.deserialize_keras_object(penalty)
        if not isinstance(penalty, regularizers._BatchStatisticRegularizer):
            raise ValueError(
                "Invalid value for argument penalty: expected a "
                "keras_disentangle.regularizers.DeCov, CovarianceL1 or "
                f"ActivityKLMargin. Received: penalty={penalty!r}"
            )
        kwargs.pop("weight", None)
        super().__init__(penalty.weight, synchronized, **kwargs)
        self.penalty = penalty

    def call(self, inputs: Any) -> Any:
        self.add_penalty(self.penalty.penalty(inputs, self.collectives()))
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("weight")
        config["penalty"] = keras.saving.serialize_keras_object(self.penalty)
        return config
