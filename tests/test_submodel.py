"""``_submodel.layer_model``: the one "sub-model up to a named layer" helper."""

import keras
import numpy as np
import pytest
from helpers import numpy

from keras_disentangle._submodel import layer_model


def _model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(hidden))


def test_none_is_the_model_and_a_name_or_layer_gives_its_output():
    model = _model()
    assert layer_model(model) is model
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    layer = model.get_layer("hidden")
    kernel, bias = (numpy(w) for w in layer.weights)
    for which in ("hidden", layer):
        sub = layer_model(model, which)
        np.testing.assert_allclose(
            numpy(sub(x)), x @ kernel + bias, rtol=1e-5, atol=1e-6
        )


def test_errors_name_the_layer_and_say_what_to_do():
    with pytest.raises(ValueError, match="nope"):
        layer_model(_model(), "nope")

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(2, name="hidden")

        def call(self, x):
            return self.hidden(x)

    net = Net()
    net(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match="Owner cannot read.*subclassed"):
        layer_model(net, "hidden", "Owner")

    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="deep")(inner_in))
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, inner(inputs))
    with pytest.raises(ValueError, match="not connected to the inputs"):
        layer_model(outer, inner.get_layer("deep"))

    split = keras.layers.Lambda(lambda t: [t, t], name="split")
    inputs = keras.Input((4,))
    a, b = split(inputs)
    two = keras.Model(inputs, keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="several outputs"):
        layer_model(two, "split")
