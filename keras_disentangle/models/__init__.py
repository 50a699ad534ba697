"""Self-supervised and clustering models (``keras.Model`` subclasses)."""

from keras_disentangle.models.aet import AET  # noqa: F401
from keras_disentangle.models.deep_info_max import (  # noqa: F401
    DeepInfoMax,
    MI1x1ConvNet,
)
from keras_disentangle.models.imsat import IMSAT, fit_imsat, imsat_mlp  # noqa: F401
