"""Keras layers: pass-through penalty layers and learnable latent centroids."""

from keras_disentangle.layers._penalty_layer import PenaltyLayer  # noqa: F401
from keras_disentangle.layers.activity_penalty import ActivityPenalty  # noqa: F401
from keras_disentangle.layers.latent_centroids import LatentCentroids  # noqa: F401
from keras_disentangle.layers.xcov import XCovPenalty  # noqa: F401
