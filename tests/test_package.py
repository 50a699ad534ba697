"""The package as a whole: import side effects, version, deprecated alias."""

import importlib.metadata
import json
import os
import subprocess
import sys
import warnings

import pytest

pytestmark = pytest.mark.backend_independent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, backend: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND=backend, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# Keras itself sets a few variables when imported (TF_CPP_MIN_LOG_LEVEL,
# TF_FORCE_GPU_ALLOW_GROWTH on JAX): the package must add none of its own.
IMPORT_CHECK = """
import json, os, sys
import keras
before = dict(os.environ)
import keras_disentangle
after = dict(os.environ)
changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps({"changed": changed, "tf": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_import_changes_no_environment_variable(backend):
    pytest.importorskip(backend)
    result = _run(IMPORT_CHECK, backend)
    assert result["changed"] == []
    if backend != "tensorflow":
        # On another backend the package does not start TensorFlow.
        assert result["tf"] is False


def test_version_is_the_installed_metadata():
    import keras_disentangle

    try:
        expected = importlib.metadata.version("keras_disentangle")
    except importlib.metadata.PackageNotFoundError:
        expected = "0+unknown"
    assert keras_disentangle.__version__ == expected


def test_metrics_alias_warns_and_reexports_scores():
    import keras_disentangle.scores as scores

    sys.modules.pop("keras_disentangle.metrics", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import keras_disentangle.metrics as metrics
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert metrics.cluster_scores is scores.cluster_scores
    assert set(metrics.__all__) == set(scores.__all__)


def test_every_registered_class_says_how_to_load_it():
    import keras

    import keras_disentangle  # noqa: F401 (registers the classes)

    registered = {
        name: obj
        for name, obj in keras.saving.get_custom_objects().items()
        if name.startswith("keras_disentangle>")
    }
    assert len(registered) >= 10
    missing = [
        n
        for n, obj in registered.items()
        if "import keras_disentangle``" not in (obj.__doc__ or "")
    ]
    assert not missing, f"docstrings without the save/load note: {missing}"
