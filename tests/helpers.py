"""Backend-neutral helpers for the tests (imported as ``from helpers import``).

- ``numpy(x)``: any backend tensor (or nest) as NumPy.
- ``value_and_grad(fn, x)``: the package's own backend-neutral input gradient.
- ``FLOAT64``: whether the backend computes float64 end to end. TensorFlow
  and JAX with x64 do; Keras's JAX and PyTorch backends compute some float64
  ops in float32, so float64 references are checked with float32 tolerances
  there (``rtol()`` says which).
- ``reload_in_fresh_process(path, script)``: the save/reload harness (one
  fresh process per test file, see ``FreshProcess``).
- ``compiled(fn)``: ``fn`` traced as in ``fit`` (``tf.function``,
  ``jax.jit``; PyTorch runs eagerly).
- ``count_row_blocks(monkeypatch, max_elements)``: the bounded row-block
  loop beyond ``max_elements`` scores, and the list of its passes.
- ``count_row_block_runs(monkeypatch)``: the blocked passes that run in a
  ``tf.function`` (TensorFlow), where the choice is made at run time.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import textwrap

import keras

from keras_disentangle._backend import value_and_gradient

BACKEND = keras.backend.backend()


def _onednn_empty_slice_bug() -> bool:
    """TensorFlow >= 2.21 on the CPU with oneDNN on: a replica that gets an
    empty slice of the last batch under ``MirroredStrategy`` fails inside
    TensorFlow (``Matrix size-incompatible: In[0]: [0,2]``, ``ReluGrad ...
    [0,3,3,4] != [0,8,8,1]``); with ``TF_ENABLE_ONEDNN_OPTS=0`` the same step
    runs. CI runs those tests once more with oneDNN off."""
    if BACKEND != "tensorflow" or os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":
        return False
    import tensorflow as tf

    major, minor = (int(v) for v in tf.__version__.split(".")[:2])
    return (major, minor) >= (2, 21)


def onednn_empty_slice_xfail():
    """``pytest.mark.xfail`` for a test with an empty replica slice, on the
    TensorFlow builds with the oneDNN bug above (strict: a fixed TensorFlow
    makes the test fail until the mark is removed)."""
    import pytest

    if not _onednn_empty_slice_bug():
        return pytest.mark.usefixtures()
    import tensorflow as tf

    return pytest.mark.xfail(
        reason="TensorFlow >= 2.21 with oneDNN fails on an empty replica slice",
        raises=tf.errors.InvalidArgumentError,
        strict=True,
    )


# Keras's JAX backend runs without jax_enable_x64 and its PyTorch backend
# mixes float32 into some float64 ops: only TensorFlow keeps float64 exact.
FLOAT64 = BACKEND == "tensorflow"


def numpy(x):
    """A tensor, a Keras variable or a nest of them, as NumPy arrays."""
    if isinstance(x, (list, tuple)):
        return type(x)(numpy(v) for v in x)
    if isinstance(x, dict):
        return {k: numpy(v) for k, v in x.items()}
    return keras.ops.convert_to_numpy(x)


def value_and_grad(fn, x):
    """``(fn(x), d fn / d x)`` as NumPy arrays, on any backend."""
    value, grad = value_and_gradient(fn, keras.ops.convert_to_tensor(x))
    return numpy(value), numpy(grad)


def compiled(fn):
    """``fn`` traced by the backend's compiler, as a ``fit`` step is."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def count_row_blocks(monkeypatch, max_elements: int) -> list:
    """Every score block over ``max_elements`` in bounded row blocks
    (``_blocks.fused_row_blocks``); returns the list of the blocked passes'
    ``rows_per_block``, filled as they run (so that a test knows they ran)."""
    from keras_disentangle import _blocks

    monkeypatch.setattr(_blocks, "MAX_BLOCK_ELEMENTS", max_elements)
    calls = []
    fused = _blocks.fused_row_blocks

    def counted(*args, **kwargs):
        calls.append(kwargs["rows_per_block"])
        return fused(*args, **kwargs)

    monkeypatch.setattr(_blocks, "fused_row_blocks", counted)
    return calls


def count_row_block_runs(monkeypatch) -> object:
    """A ``tf.Variable`` counting the blocked passes
    (``_blocks.fused_row_blocks``) that RUN, not only traced: in a
    ``tf.function`` with sizes known at run time both the one-block and
    the blocked branch are traced, and one runs (TensorFlow only)."""
    import tensorflow as tf

    from keras_disentangle import _blocks

    runs = tf.Variable(0)
    fused = _blocks.fused_row_blocks

    def counted(*args, **kwargs):
        with tf.control_dependencies([runs.assign_add(1)]):
            return tf.identity(fused(*args, **kwargs))

    monkeypatch.setattr(_blocks, "fused_row_blocks", counted)
    return runs


def rtol(exact: float = 1e-9, single: float = 1e-5) -> float:
    """The relative tolerance of a float64 check: ``exact`` where the backend
    computes float64 end to end, ``single`` (float32 precision) elsewhere."""
    return exact if FLOAT64 else single


class FreshProcess:
    """A Python process that has imported only ``keras`` and
    ``keras_disentangle`` (on the tests' backend), running scripts sent to
    it one after the other, each in a new namespace.

    It is fresh for the objects a test saves (nothing the test process
    registered or built is there), and one process serves all the reload
    tests of a test file: an interpreter that imports TensorFlow takes 5-15
    s to start on a 2-core machine.
    """

    _SERVER = textwrap.dedent(
        """
        import contextlib, io, json, sys, traceback
        import keras, numpy as np, keras_disentangle
        protocol = sys.stdout
        sys.stdout = sys.stderr
        for line in sys.stdin:
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(json.loads(line), {"keras": keras, "np": np,
                                            "keras_disentangle": keras_disentangle})
                reply = {"ok": True, "stdout": out.getvalue()}
            except BaseException:
                reply = {"ok": False, "stdout": out.getvalue(),
                         "error": traceback.format_exc()}
            protocol.write(json.dumps(reply) + "\\n")
            protocol.flush()
        """
    )

    def __init__(self) -> None:
        env = dict(os.environ, KERAS_BACKEND=BACKEND)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, "-c", self._SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def run(self, code: str) -> str:
        """Runs ``code``; its standard output, or an AssertionError with the
        traceback of an exception raised there."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the fresh process died (exit {self.process.wait()})"
        reply = json.loads(line)
        assert reply["ok"], reply["error"][-3000:]
        return reply["stdout"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_FRESH: dict[str, FreshProcess] = {}


def _fresh_process() -> FreshProcess:
    """The fresh process of the running test's file (one per file)."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0]
    if current not in _FRESH:
        for other in _FRESH.values():  # the previous file's: done with it
            other.close()
        _FRESH.clear()
        _FRESH[current] = FreshProcess()
    return _FRESH[current]


atexit.register(lambda: [p.close() for p in _FRESH.values()])


def reload_in_fresh_process(path, script: str) -> str:
    """Runs ``script`` in a process that has imported only ``keras``,
    ``numpy as np`` and ``keras_disentangle``, with ``PATH`` bound to the
    saved file, on the same backend; returns its standard output. Fails the
    test if the script raises. One such process serves a test file.
    """
    code = f"PATH = {str(path)!r}\n" + textwrap.dedent(script)
    return _fresh_process().run(code)


def assert_reload_resumes(model, x, tmp_path, checks: str = "") -> None:
    """Saves ``model`` (a fitted package model with a ``seed_generator``),
    reloads it in a fresh process and checks there: ``checks`` (code using
    ``model``), identical predictions on ``x``, the same random-stream state
    (so resumed training draws new samples), and that training resumes."""
    import numpy as np

    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "pred.npy", model.predict(x, verbose=0))
    state = numpy(model.seed_generator.state)
    assert state.any(), "the random stream has not advanced"
    np.save(tmp_path / "seed.npy", state)
    folder = str(tmp_path)
    script = f"""
        model = keras.saving.load_model(PATH)
        x = np.load({folder!r} + "/x.npy")
        np.testing.assert_array_equal(
            model.predict(x, verbose=0), np.load({folder!r} + "/pred.npy")
        )
        seed = keras.ops.convert_to_numpy(model.seed_generator.state)
        np.testing.assert_array_equal(seed, np.load({folder!r} + "/seed.npy"))
        model.fit(x, epochs=1, batch_size=16, verbose=0)
        print("OK")
        """
    script = textwrap.dedent(script) + textwrap.dedent(checks)
    assert "OK" in reload_in_fresh_process(path, script)
