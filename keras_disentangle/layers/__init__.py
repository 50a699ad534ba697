"""Keras layers: pass-through penalty layers and learnable latent centroids."""

from keras_disentangle.layers.latent_centroids import LatentCentroids  # noqa: F401
from keras_disentangle.layers.xcov import XCovPenalty  # noqa: F401
