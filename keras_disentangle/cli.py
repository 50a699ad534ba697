"""The ``keras-disentangle`` command line: one subcommand per experiment.

Usage::

    keras-disentangle                      # = keras-disentangle forced-to-learn
    keras-disentangle covariance --quick
    keras-disentangle xor --output results/xor --seeds 3
    python -m keras_disentangle --help

Every subcommand prints progress and a results table, and writes a CSV and
PNG plots to ``--output`` (default ``./results/<name>``).

Misuse ends with one line naming the option and exit status 2 (argparse's
``error``): the common options are checked when the command line is parsed,
for every subcommand (``--seeds`` and ``--epochs`` are integers >= 1;
``--output`` is not an existing file and its folder can be written). Ctrl-C
prints one line and exits with status 130, without a traceback.

The console script ``keras-disentangle`` enters through the tiny package
``keras_disentangle_cli``, which sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the
user set it) before TensorFlow is imported; ``import keras_disentangle``
itself changes nothing in the environment.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import pathlib
import sys
import tempfile
from collections.abc import Sequence

from keras_disentangle.experiments import MODULES

__all__ = ["build_parser", "main", "with_default_command", "INTERRUPTED"]

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


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


def positive_int(text: str) -> int:
    """argparse ``type``: an integer >= 1.

    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= 1, received {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, received {text}")
    return value


def output_folder(text: str) -> pathlib.Path:
    """argparse ``type``: a folder that exists or can be created, and written.

    Nothing is created here: the nearest existing ancestor must be a folder
    in which a file can be created (probed with a temporary file that is
    removed at once), and ``text`` must not be an existing file.
    """
    path = pathlib.Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r} is an existing file; expected a folder"
        )
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(
            f"cannot create the folder {text!r}: {str(ancestor)!r} is a file"
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".keras-disentangle-", dir=ancestor)
    except OSError as error:
        reason = os.strerror(error.errno or errno.EACCES)
        raise argparse.ArgumentTypeError(
            f"cannot write to {text!r} ({reason} in {str(ancestor)!r})"
        ) from None
    os.close(handle)
    os.unlink(probe)
    return path


def _add_common_options(parser: argparse.ArgumentParser, name: str) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--output",
        type=output_folder,
        default=os.path.join("results", name),  # a string: checked like a value
        help="folder for the CSV and PNG files; the files a previous run of "
        "this command wrote there are replaced",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="reduced run (well under a minute), used by the tests",
    )
    group.add_argument(
        "--seeds",
        type=positive_int,
        default=None,
        metavar="N",
        help="number of seeds: runs seeds 0..N-1 (default: per experiment)",
    )
    group.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="training epochs (default: per experiment)",
    )
    group.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        nargs="?",
        const=2,
        default=1,
        help="0: log lines only; 1: log lines and one progress bar over the "
        "whole run, with an ETA; 2 (or --verbose alone): Keras's epoch logs "
        "instead of the bar",
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
    try:
        modules = _load_modules()
        parser = build_parser(modules)
        args = parser.parse_args(with_default_command(argv, [m.NAME for m in modules]))
        return int(args._main(args) or 0)
    except KeyboardInterrupt:
        from keras_disentangle.experiments._common import RunProgress

        if RunProgress.active is not None:
            RunProgress.active.clear()
            RunProgress.active = None
        # TensorFlow logs "Object was never used" for the tensors of a step
        # cut short when they are collected at exit: not the user's concern.
        logging.getLogger("tensorflow").setLevel(logging.CRITICAL)
        print("keras-disentangle: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
