"""The argument parser of ``keras-disentangle``, built without Keras.

The subcommands are the modules listed in ``keras_disentangle.experiments.
MODULES``. Each one's ``NAME``, ``HELP``, ``configure`` and ``OUTPUTS`` are
read from the module itself, loaded with the package's ``__init__`` skipped
(:func:`light_modules`): ``import keras_disentangle`` imports Keras and
TensorFlow (10-40 s), the experiment modules at their top level only the
standard library, NumPy and ``experiments._common``. The run then imports the
real package and calls the real module's ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

__all__ = ["build_parser", "light_modules", "module_path", "with_default_command"]

_PACKAGE = "keras_disentangle"


def module_path(entry: str) -> str:
    """The full module name of a ``MODULES`` entry (a bare name lives in
    ``keras_disentangle.experiments``).

    >>> module_path("xor"), module_path("my_pkg.my_experiment")
    ('keras_disentangle.experiments.xor', 'my_pkg.my_experiment')
    """
    return entry if "." in entry else f"{_PACKAGE}.experiments.{entry}"


@contextlib.contextmanager
def _package_without_init() -> Iterator[None]:
    """Lets ``keras_disentangle.<sub>`` be imported without running
    ``keras_disentangle/__init__.py``; removes every module so imported on
    exit, so that the later ``import keras_disentangle`` is the real one.

    When the package is imported already (a test, a notebook), nothing
    changes.
    """
    if _PACKAGE in sys.modules:
        yield
        return
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.submodule_search_locations is None:  # pragma: no cover
        yield
        return
    before = set(sys.modules)
    sys.modules[_PACKAGE] = importlib.util.module_from_spec(spec)  # not executed
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name == _PACKAGE or name.startswith(_PACKAGE + "."):
                del sys.modules[name]


def light_modules(entries: Sequence[str] | None = None) -> list[ModuleType]:
    """The experiment modules, loaded without Keras (see the module doc).

    A listed module that does not exist yet is skipped.
    """
    with _package_without_init():
        if entries is None:
            entries = importlib.import_module(f"{_PACKAGE}.experiments").MODULES
        modules = []
        for entry in entries:
            full = module_path(entry)
            try:
                module = importlib.import_module(full)
            except ModuleNotFoundError as error:
                if error.name != full:  # a real missing dependency: show it
                    raise
                continue
            module.__dict__.setdefault("_cli_module_path", full)
            modules.append(module)
    return modules


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or False."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _add_common_options(parser: argparse.ArgumentParser, name: str, common) -> None:
    group = parser.add_argument_group("common options")
    group.add_argument(
        "--output",
        type=common.output_folder,
        default=os.path.join("results", name),  # a string: checked like a value
        help="folder for the CSV and PNG files; the files a previous run of "
        "this command wrote there are replaced, other files are never deleted",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a file in --output that has the name of an output but "
        "was not written by keras-disentangle (by default the command stops)",
    )
    group.add_argument(
        "--quick",
        action="store_true",
        help="reduced run (well under a minute), used by the tests",
    )
    group.add_argument(
        "--seeds",
        type=common.positive_int,
        default=None,
        metavar="N",
        help="number of seeds: runs seeds 0..N-1 (default: per experiment)",
    )
    group.add_argument(
        "--epochs",
        type=common.positive_int,
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
        "instead of the bar, and the frameworks' start-up lines on stderr",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_PACKAGE)
    except PackageNotFoundError:  # a checkout that is not installed
        return "0+unknown"


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.exit(message=_version() + "\n")


def build_parser(
    modules: Sequence[ModuleType] | None = None,
) -> argparse.ArgumentParser:
    """The argument parser with one subcommand per experiment module.

    Each subcommand's defaults hold ``_module`` (the full name of the module
    whose ``main`` runs it) and ``_outputs`` (its ``OUTPUTS`` patterns).
    """
    if modules is None:
        modules = light_modules()
    with _package_without_init():
        common = importlib.import_module(f"{_PACKAGE}.experiments._common")
    parser = argparse.ArgumentParser(
        prog="keras-disentangle",
        description=(
            "Reproduce the papers' experiments: each subcommand prints a "
            "results table and writes a CSV and PNG plots to --output. "
            "Without a subcommand, runs the first one listed."
        ),
    )
    parser.add_argument(
        "--version", action=_VersionAction, help="print the version and exit"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in modules:
        text = module.HELP.replace("%", "%%")  # argparse formats help with %
        child = sub.add_parser(
            module.NAME,
            help=text,
            description=text,
            formatter_class=_HelpFormatter,
        )
        _add_common_options(child, module.NAME, common)
        module.configure(child)
        child.set_defaults(
            _module=getattr(module, "_cli_module_path", module.__name__),
            _outputs=tuple(getattr(module, "OUTPUTS", ())),
        )
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
