"""The ``keras-disentangle`` command line: one subcommand per experiment.

Usage::

    keras-disentangle                      # = keras-disentangle forced-to-learn
    keras-disentangle covariance --quick
    keras-disentangle xor --output results/xor --seeds 3
    python -m keras_disentangle --help

Every subcommand prints where its files go, progress and a results table,
and writes a CSV and PNG plots to ``--output`` (default
``./results/<name>``); ``docs/cli.md`` states the file contract.

The command line itself lives in the tiny package ``keras_disentangle_cli``
(the console script's entry point), which parses and checks every option
before Keras is imported. This module gives the same command line to code
that has imported the package already: :func:`main` runs it in the calling
process and returns the exit status (misuse: 2 with argparse's usage and one
line; Ctrl-C: 130), without touching the process's signal handlers, its
stderr or TensorFlow's global settings (the console script turns on op
determinism).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from keras_disentangle.experiments._common import output_folder, positive_int
from keras_disentangle_cli import INTERRUPTED, TERMINATED, run
from keras_disentangle_cli._parser import build_parser, with_default_command

__all__ = [
    "build_parser",
    "main",
    "with_default_command",
    "positive_int",
    "output_folder",
    "INTERRUPTED",
    "TERMINATED",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``keras-disentangle`` with ``argv`` (default ``sys.argv[1:]``).

    Without a subcommand, runs the first (``forced-to-learn``).

    Returns:
        The exit status: the experiment's, 2 for misuse, 130 after Ctrl-C.
    """
    return run(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
