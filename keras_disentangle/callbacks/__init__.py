"""Keras callbacks: representation scores written into ``logs``, weight ramps
and centroid re-initialisation."""

from keras_disentangle.callbacks.centroids import (  # noqa: F401
    CentroidReinit,
    CentroidWeightRamp,
)
from keras_disentangle.callbacks.scores import (  # noqa: F401
    ClusteringScores,
    DisentanglementScores,
)
