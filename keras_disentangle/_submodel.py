"""A sub-model from a model's inputs to one of its layers."""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["layer_model"]


def layer_model(
    model: keras.Model,
    layer: str | keras.layers.Layer | None = None,
    owner: str = "keras_disentangle",
) -> keras.Model:
    """The model itself (``layer=None``) or a sub-model from its inputs to ``layer``.

    The one helper for "a sub-model up to a named layer" (score callbacks,
    centroid callbacks, experiments, examples).

    ``layer`` is a layer name or object of ``model``. Raises a ``ValueError``
    that says what to do when the layer has no symbolic output (a subclassed
    model) or is not connected to the model's inputs.
    """
    if layer is None:
        return model
    # A name is looked up (its ValueError names the layer); a layer is used.
    target: Any = model.get_layer(layer) if isinstance(layer, str) else layer
    try:
        try:  # the input structure the model was built with (tensor, dict...)
            inputs = model.input
        except (AttributeError, ValueError):  # a Sequential not yet called
            inputs = model.inputs
        output = target.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"{owner} cannot read the output of layer {target.name!r} of model "
            f"{model.name!r}: scoring an inner layer needs a Functional or "
            "Sequential model whose layer has a symbolic output (a subclassed "
            "model has none). Build the model with the functional API, or pass "
            f"layer=None and score a model that outputs the embeddings. ({error})"
        ) from error
    if isinstance(output, (list, tuple, dict)):
        raise ValueError(
            f"Layer {target.name!r} has several outputs; {owner} scores a single "
            "embedding tensor."
        )
    try:
        return keras.Model(inputs, output, name=f"{model.name}_{target.name}")
    except ValueError as error:
        raise ValueError(
            f"Layer {target.name!r} is not connected to the inputs of model "
            f"{model.name!r} (is it inside a nested model?). ({error})"
        ) from error
