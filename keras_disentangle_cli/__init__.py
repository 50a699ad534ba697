"""Entry point of the ``keras-disentangle`` console script.

A separate, tiny package: importing ``keras_disentangle`` imports Keras and
with it TensorFlow, whose C++ logging reads ``TF_CPP_MIN_LOG_LEVEL`` once, at
import. This module sets it (to 2, hiding TensorFlow's INFO and WARNING
lines; a value the user set is kept) *before* importing the package, so the
command line is quiet while ``import keras_disentangle`` changes nothing in
the user's environment.
"""

import os
import sys

__all__ = ["main"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    """Runs ``keras-disentangle`` (``keras_disentangle.cli.main``)."""
    from keras_disentangle.cli import main as cli_main

    return cli_main(sys.argv[1:])
