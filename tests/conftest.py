"""Shared pytest set-up.

- Long claim trainings are opt-in with ``--slow`` (CI runs them once), whole
  reproductions with ``--reproductions`` (run by hand).
- Two devices are simulated on the CPU before any backend starts: two logical
  CPUs for TensorFlow (``tf.distribute.MirroredStrategy``), two XLA host
  devices for JAX (``keras.distribution.DataParallel``). A model built
  without a strategy or distribution still runs on the first device alone.
- ``@pytest.mark.backend_independent`` (or a module's ``pytestmark``): a test
  of NumPy scores, docs, CLI parsing or datasets that no Keras backend
  changes; it runs on TensorFlow, the default backend, and is skipped on the
  others (CI runs the suite once per backend).
- Fixtures ``mirrored_strategy`` and ``data_parallel`` give the two-replica
  set-ups, skipping on a backend that has none.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()

import keras  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [
            tf.config.LogicalDeviceConfiguration(),
            tf.config.LogicalDeviceConfiguration(),
        ],
    )


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run the long claim trainings marked @pytest.mark.slow",
    )
    parser.addoption(
        "--reproductions",
        action="store_true",
        default=False,
        help="also run the whole reproductions marked @pytest.mark.reproduction "
        "(10-20 minutes each on 2 cores)",
    )


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="long claim training: use pytest --slow")
    skip_reproduction = pytest.mark.skip(
        reason="whole reproduction: use pytest --reproductions"
    )
    for item in items:
        if "slow" in item.keywords and not config.getoption("--slow"):
            item.add_marker(skip_slow)
        if "reproduction" in item.keywords and not config.getoption("--reproductions"):
            item.add_marker(skip_reproduction)
        if "backend_independent" in item.keywords and BACKEND != "tensorflow":
            item.add_marker(
                pytest.mark.skip(
                    reason="backend-independent: runs on the TensorFlow run only"
                )
            )
            continue
        marker = item.get_closest_marker("backends")
        if marker is not None and BACKEND not in marker.args:
            reason = marker.kwargs.get("reason", "")
            item.add_marker(
                pytest.mark.skip(
                    reason=f"runs on {', '.join(marker.args)} only: {reason}"
                )
            )


@pytest.fixture(scope="session")
def mirrored_strategy():
    """A ``tf.distribute.MirroredStrategy`` over two logical CPUs (TensorFlow).

    One for the whole session: a second strategy over the same devices
    reuses the first one's collective instance keys, and its replica-context
    all-reduces then fail with "Shape mismatch in the collective instance".
    """
    if BACKEND != "tensorflow":
        pytest.skip("tf.distribute needs the TensorFlow backend")
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture
def data_parallel():
    """Sets ``keras.distribution.DataParallel`` over two JAX CPU devices for
    the test, and restores the previous distribution after it (JAX)."""
    if BACKEND != "jax":
        pytest.skip("keras.distribution.DataParallel needs the JAX backend")
    devices = keras.distribution.list_devices("cpu")
    if len(devices) < 2:
        pytest.skip("needs 2 JAX CPU devices (XLA_FLAGS was set too late)")
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices[:2])
    )
    yield keras.distribution.distribution()
    keras.distribution.set_distribution(previous)
