"""Self-supervised and clustering models (``keras.Model`` subclasses)."""

from keras_disentangle.models.aet import AET  # noqa: F401
from keras_disentangle.models.deep_info_max import DeepInfoMax  # noqa: F401
from keras_disentangle.models.imsat import IMSAT, fit_imsat, imsat_mlp  # noqa: F401
