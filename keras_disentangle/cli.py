"""The ``keras-disentangle`` command line: one subcommand per experiment.

Usage::

    keras-disentangle                      # = keras-disentangle forced-to-learn
    keras-disentangle covariance --quick
    keras-disentangle xor --output results/xor --seeds 3
    python -m keras_disentangle --help

Every subcommand prints progress and a results table, and writes a CSV and
PNG plots to ``--output`` (default ``./results/<name>``).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
from collections.abc import Sequence

from keras_disentangle.experiments import MODULES

__all__ = ["build_parser", "main"]


def _load_modules() -> list:
    """Imports the experiment modules; one not written yet is skipped."""
    modules = []
    for name in MODULES:
        full = f"keras_disentangle.experiments.{name}"
        try:
            modules.append(importlib.import_module(full))
        except ModuleNotFoundError as error:
            if error.name != full:  # a real missing dependency: show it
                raise
    return modules


def _add_common_options(parser: argparse.ArgumentParser, name: str) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--output",
        type=pathlib.Path,
        default=pathlib.Path("results") / name,
        help="folder for the CSV and PNG files (default: %(default)s)",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="reduced run (well under a minute), used by the tests",
    )
    group.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="number of seeds: runs seeds 0..N-1 (default: per experiment)",
    )
    group.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: per experiment)",
    )
    group.add_argument(
        "--verbose",
        action="store_true",
        help="show Keras's training logs",
    )


def build_parser(modules: Sequence | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subcommand per experiment module."""
    if modules is None:
        modules = _load_modules()
    parser = argparse.ArgumentParser(
        prog="keras-disentangle",
        description=(
            "Reproduce the papers' experiments: each subcommand prints a "
            "results table and writes a CSV and PNG plots to --output. "
            "Without a subcommand, runs the first one listed."
        ),
    )
    from keras_disentangle import __version__

    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        child = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        _add_common_options(child, module.NAME)
        module.configure(child)
        child.set_defaults(_main=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``keras-disentangle`` with ``argv`` (default ``sys.argv[1:]``).

    Returns the experiment's exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    modules = _load_modules()
    parser = build_parser(modules)
    names = {m.NAME for m in modules}
    top_level = {"-h", "--help", "--version"}
    if modules and (
        not argv
        or (
            argv[0] not in names
            and argv[0] not in top_level
            and argv[0].startswith("-")
        )
    ):
        argv.insert(0, modules[0].NAME)  # the default subcommand
    args = parser.parse_args(argv)
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
