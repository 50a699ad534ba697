"""Backend-neutral helpers for the tests (imported as ``from helpers import``).

- ``numpy(x)``: any backend tensor (or nest) as NumPy.
- ``value_and_grad(fn, x)``: the package's own backend-neutral input gradient.
- ``FLOAT64``: whether the backend computes float64 end to end. TensorFlow
  and JAX with x64 do; Keras's JAX and PyTorch backends compute some float64
  ops in float32, so float64 references are checked with float32 tolerances
  there (``rtol()`` says which).
- ``reload_in_fresh_process(path, script)``: the save/reload harness.
- ``compiled(fn)``: ``fn`` traced as in ``fit`` (``tf.function``,
  ``jax.jit``; PyTorch runs eagerly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras

from keras_disentangle._backend import value_and_gradient

BACKEND = keras.backend.backend()
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


def rtol(exact: float = 1e-9, single: float = 1e-5) -> float:
    """The relative tolerance of a float64 check: ``exact`` where the backend
    computes float64 end to end, ``single`` (float32 precision) elsewhere."""
    return exact if FLOAT64 else single


def reload_in_fresh_process(path, script: str) -> str:
    """Runs ``script`` in a new Python process after ``import keras,
    keras_disentangle`` with ``PATH`` bound to the saved file, on the same
    backend; returns its standard output. Fails the test on a non-zero exit.
    """
    code = (
        "import keras, numpy as np, keras_disentangle\n"
        f"PATH = {str(path)!r}\n" + textwrap.dedent(script)
    )
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


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
