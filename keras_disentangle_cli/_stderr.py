"""Keeps the frameworks' start-up lines off the terminal.

TensorFlow's C++ code writes lines to file descriptor 2 that no Python
setting reaches: ``WARNING: All log messages before absl::InitializeLog() is
called are written to STDERR`` at import (before ``TF_CPP_MIN_LOG_LEVEL`` is
read), ``cudart_stub.cc:31] Could not find cuda drivers ...`` and, at the
first operation, ``failed call to cuInit`` (and, when tf.data's graph is
newer than the runtime, ``NodeDef mentions attribute ...``).
:class:`StartupFilter` points fd 2 at a pipe for the whole run; a thread
copies every line to the real stderr except those start-up lines
(:data:`STARTUP`). Python's own
``sys.stderr`` is re-opened on the real stderr, so tracebacks, warnings and
the progress bar go straight to it (a terminal stays a terminal).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import TextIO

__all__ = ["STARTUP", "StartupFilter", "is_startup_line"]

#: Start-up lines of TensorFlow / XLA (absl's ``I``/``W`` lines, CUDA probes
#: on a machine without a GPU, the CPU-feature notice and its second line).
STARTUP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] "
    r"|E\d{4} [\d:.]+ +\d+ \S*(cuda|cufft|cudnn|cublas)\S*:\d+\] "
    r"|E\d{4} [\d:.]+ +\d+ node_def_util\.cc:\d+\] NodeDef mentions attribute"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)


def is_startup_line(line: str) -> bool:
    """Whether ``line`` is one of the frameworks' start-up lines.

    >>> is_startup_line("I0000 00:00:1796.235 16288 cudart_stub.cc:31] Could not")
    True
    >>> is_startup_line("keras-disentangle: interrupted")
    False
    """
    return STARTUP.match(line) is not None


class StartupFilter:
    """Filters fd 2 from :meth:`start` to :meth:`stop` (see the module doc)."""

    def __init__(self) -> None:
        self._saved: int | None = None
        self._thread: threading.Thread | None = None
        self._python_stderr: TextIO | None = None

    def start(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._python_stderr = sys.stderr
        sys.stderr = open(  # noqa: SIM115 - a copy of fd 2, left open
            os.dup(self._saved),
            "w",
            buffering=1,
            encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
            errors="backslashreplace",
        )
        self._thread = threading.Thread(
            target=self._copy, args=(read, self._saved), daemon=True
        )
        self._thread.start()

    @staticmethod
    def _copy(read: int, target: int) -> None:
        pending = b""
        with os.fdopen(read, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                kept = [
                    line + b"\n"
                    for line in lines
                    if not is_startup_line(line.decode("utf-8", "replace"))
                ]
                if kept:
                    os.write(target, b"".join(kept))
        if pending and not is_startup_line(pending.decode("utf-8", "replace")):
            os.write(target, pending)

    def stop(self) -> None:
        """Restores fd 2 and ``sys.stderr`` once the pipe is drained."""
        if self._saved is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last writer: EOF
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._python_stderr is not None:
            # The replacement stays open: a logging handler created during
            # the run may hold it (it writes to a copy of the real stderr).
            sys.stderr.flush()
            sys.stderr = self._python_stderr
        os.close(self._saved)
        self._saved = None
