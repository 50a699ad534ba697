"""keras_disentangle: disentangling penalties, self-supervised models and
representation scores for Keras 3.

Importing the package registers every public Keras object, so that models
saved to ``.keras`` load back with ``keras.saving.load_model``.
"""

import importlib
import importlib.metadata
import types

from keras_disentangle import (
    callbacks,  # noqa: F401
    layers,  # noqa: F401
    losses,  # noqa: F401
    models,  # noqa: F401
    penalties,  # noqa: F401
    regularizers,  # noqa: F401
    scores,  # noqa: F401
)

try:
    # One version string: the one pyproject.toml gives the installed package.
    __version__ = importlib.metadata.version("keras_disentangle")
except importlib.metadata.PackageNotFoundError:  # a checkout that is not installed
    __version__ = "0+unknown"

# Modules with optional dependencies (matplotlib, tensorflow-datasets, mlxtend)
# are imported on first use, so that the core package needs none of them.
_LAZY = ("plots", "datasets", "experiments", "metrics")


def __getattr__(name: str) -> types.ModuleType:
    if name in _LAZY:
        return importlib.import_module(f"keras_disentangle.{name}")
    raise AttributeError(f"module 'keras_disentangle' has no attribute {name!r}")
