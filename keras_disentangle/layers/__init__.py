"""Keras layers: pass-through penalty layers and learnable latent centroids."""

from keras_disentangle.layers.xcov import XCovPenalty  # noqa: F401
