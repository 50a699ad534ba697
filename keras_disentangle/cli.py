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

__all__ = ["build_parser", "main", "with_default_command"]


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


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or False."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_common_options(parser: argparse.ArgumentParser, name: str) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--output",
        type=pathlib.Path,
        default=pathlib.Path("results") / name,
        help="folder for the CSV and PNG files",
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
        text = module.HELP.replace("%", "%%")  # argparse formats help with %
        child = sub.add_parser(
            module.NAME,
            help=text,
            description=text,
            formatter_class=_HelpFormatter,
        )
        _add_common_options(child, module.NAME)
        module.configure(child)
        child.set_defaults(_main=module.main)
    return parser


def with_default_command(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """``argv`` with the default subcommand ``names[0]`` put first if none is.

    >>> with_default_command([], ["a", "b"])
    ['a']
    >>> with_default_command(["--quick"], ["a", "b"])
    ['a', '--quick']
    >>> with_default_command(["b", "--quick"], ["a", "b"])
    ['b', '--quick']
    >>> with_default_command(["--help"], ["a", "b"])
    ['--help']
    """
    argv = list(argv)
    if not names:
        return argv
    top_level = {"-h", "--help", "--version"}
    if not argv or (argv[0].startswith("-") and argv[0] not in top_level):
        argv.insert(0, names[0])
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``keras-disentangle`` with ``argv`` (default ``sys.argv[1:]``).

    Without a subcommand, runs the first (``forced-to-learn``).

    Returns:
        The experiment's exit status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    modules = _load_modules()
    parser = build_parser(modules)
    args = parser.parse_args(with_default_command(argv, [m.NAME for m in modules]))
    return int(args._main(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
