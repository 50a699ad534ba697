"""Entry point of the ``keras-disentangle`` console script.

A separate, tiny package, so that the command line answers at once:
``import keras_disentangle`` imports Keras and TensorFlow (10-40 s). Here,
in this order:

1. signal handlers are installed (SIGINT: exit 130, SIGTERM: exit 143, one
   line, no temporary file left), and ``TF_CPP_MIN_LOG_LEVEL=2`` set unless
   the user set it;
2. the command line is parsed and every option checked, from the
   experiment modules loaded without Keras (``_parser``): ``--help``,
   ``--version`` and every misuse answer without importing Keras;
3. a file in ``--output`` that the run would replace but did not write stops
   it (exit 2), before anything is deleted;
4. the first line says where the files go; the frameworks' start-up lines
   are filtered out of stderr (``_stderr``; kept with ``--verbose 2``);
5. Keras and the experiment are imported, op determinism is turned on
   (TensorFlow), and the experiment's ``main`` runs.

``keras_disentangle.cli.main(argv)`` runs steps 2-5 in the calling process
without touching its signal handlers, its stderr or TensorFlow's global
settings (no op determinism).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["main", "run", "Interrupted", "INTERRUPTED", "TERMINATED"]

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 128 + signal.SIGINT
#: Exit status after SIGTERM (128 + SIGTERM).
TERMINATED = 128 + signal.SIGTERM

_PROG = "keras-disentangle"


class Interrupted(KeyboardInterrupt):
    """Raised by the signal handlers; ``status`` is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.status = 128 + signum


#: Signals received by this process's handlers, in order.
_received: list[int] = []


def _remove_temporary_files() -> None:
    common = sys.modules.get("keras_disentangle.experiments._common")
    if common is not None:
        common.remove_temporary_files()


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) > 1:  # a second signal: leave now
        _remove_temporary_files()
        os._exit(128 + _received[0])
    raise Interrupted(signum)


def _install_signal_handlers() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def _interrupted(status: int) -> int:
    """Cleans up after a signal; one line; returns ``status``."""
    _remove_temporary_files()
    common = sys.modules.get("keras_disentangle.experiments._common")
    bar = getattr(getattr(common, "RunProgress", None), "active", None)
    if bar is not None:
        bar.clear()
        common.RunProgress.active = None  # type: ignore[union-attr]
    # TensorFlow logs "Object was never used" for the tensors of a step
    # cut short when they are collected at exit: not the user's concern.
    import logging

    logging.getLogger("tensorflow").setLevel(logging.CRITICAL)
    word = "terminated" if status == TERMINATED else "interrupted"
    print(f"{_PROG}: {word}", file=sys.stderr, flush=True)
    return status


def _deterministic() -> None:
    """TensorFlow's op determinism (a rerun gives the same bytes); the JAX and
    PyTorch CPU kernels the experiments use are deterministic already."""
    import warnings

    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        # Keras then compiles without XLA and says so at every compile.
        warnings.filterwarnings(
            "ignore", message="Model doesn't support `jit_compile=True`"
        )


def run(
    argv: Sequence[str] | None = None,
    *,
    quiet_startup: bool = False,
    deterministic: bool = False,
    modules: Sequence | None = None,
) -> int:
    """Parses ``argv``, checks ``--output`` and runs the experiment.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        quiet_startup: filter the frameworks' start-up lines out of fd 2
            unless ``--verbose 2`` (the console script does).
        deterministic: turn on TensorFlow's op determinism, for the whole
            process (the console script does).
        modules: the experiment modules (default: ``experiments.MODULES``,
            loaded without Keras).

    Returns:
        The exit status: the experiment's, 2 for misuse (argparse's usage and
        one line), 130 after SIGINT / Ctrl-C, 143 after SIGTERM.
    """
    from keras_disentangle_cli._parser import (
        build_parser,
        light_modules,
        with_default_command,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:  # answered without loading any module
        from keras_disentangle_cli._parser import _version

        print(_version(), flush=True)
        return 0
    startup = None
    try:
        try:
            if modules is None:
                modules = light_modules()
            parser = build_parser(modules)
            args = parser.parse_args(
                with_default_command(argv, [m.NAME for m in modules])
            )
        except SystemExit as exit_:  # --help, --version, misuse
            return exit_.code if isinstance(exit_.code, int) else 1
        prefix = f"{_PROG} {args.command}"
        from keras_disentangle_cli._parser import _package_without_init

        with _package_without_init():
            from keras_disentangle.experiments import _common as light_common

            try:
                light_common.check_output(args.output, args._outputs, args.overwrite)
            except light_common.OutputConflict as error:
                print(f"{prefix}: {error}", file=sys.stderr, flush=True)
                return 2
        print(f"{prefix}: writing results to {args.output}", flush=True)
        if quiet_startup and args.verbose < 2:
            from keras_disentangle_cli._stderr import StartupFilter

            startup = StartupFilter()
            startup.start()
        import importlib

        module = importlib.import_module(args._module)
        if deterministic:
            _deterministic()
        from keras_disentangle.experiments import _common

        try:
            return int(module.main(args) or 0)
        except _common.OutputConflict as error:
            print(f"{prefix}: {error}", file=sys.stderr, flush=True)
            return 2
    except BaseException as error:
        if isinstance(error, Interrupted):
            return _interrupted(error.status)
        if _received:  # a signal, turned into another error on its way up
            return _interrupted(128 + _received[0])
        if isinstance(error, KeyboardInterrupt):
            return _interrupted(INTERRUPTED)
        raise
    finally:
        if startup is not None:
            startup.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``keras-disentangle`` as a process: ``argv`` (default
    ``sys.argv[1:]``), with signal handlers and quiet start-up."""
    _received.clear()
    _install_signal_handlers()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run(argv, quiet_startup=True, deterministic=True)
