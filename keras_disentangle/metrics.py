"""Deprecated alias of :mod:`keras_disentangle.scores`.

The scoring functions are NumPy functions, not ``keras.metrics`` objects, so
they moved to ``keras_disentangle.scores`` (``scores.clustering``,
``scores.disentanglement``, ``scores.hashing``). This module re-exports them
for the 0.2 release and warns; it will be removed in 0.3.
"""

import warnings

from keras_disentangle.scores import *  # noqa: F401,F403
from keras_disentangle.scores import __all__  # noqa: F401

warnings.warn(
    "keras_disentangle.metrics is deprecated and will be removed in 0.3: "
    "import keras_disentangle.scores instead (the same functions).",
    DeprecationWarning,
    stacklevel=2,
)
