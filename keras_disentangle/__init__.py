"""keras_disentangle: disentangling penalties, self-supervised models and
representation scores for Keras 3.

Importing the package registers every public Keras object, so that models
saved to ``.keras`` load back with ``keras.saving.load_model``.
"""

import importlib
import os
import sys

if "tensorflow" not in sys.modules:
    # TensorFlow's C++ start-up INFO lines drown the progress of the command
    # line; a value the user set is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_disentangle import (
    callbacks,  # noqa: F401
    layers,  # noqa: F401
    losses,  # noqa: F401
    metrics,  # noqa: F401
    models,  # noqa: F401
    penalties,  # noqa: F401
    regularizers,  # noqa: F401
)

__version__ = "0.1.0"

# Modules with optional dependencies (matplotlib, tensorflow-datasets, mlxtend)
# are imported on first use, so that the core package needs none of them.
_LAZY = ("plots", "datasets", "experiments")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"keras_disentangle.{name}")
    raise AttributeError(f"module 'keras_disentangle' has no attribute {name!r}")
