"""The few places that need TensorFlow itself are fenced behind this check."""

import keras


def assert_tf_backend(what: str) -> None:
    """Raises a clear error when ``what`` needs the TensorFlow backend."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend of Keras, but the active "
            f"backend is {backend!r}. Set the environment variable "
            "KERAS_BACKEND=tensorflow before importing keras."
        )
