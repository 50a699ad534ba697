"""The package's one label rule and one seed rule (``_validation``)."""

import keras
import numpy as np
import pytest

from keras_disentangle._validation import check_bool, check_seed, label_vector

# ---------------------------------------------------------------- label_vector


@pytest.mark.parametrize(
    "value, expected",
    [
        ([2, 0, 1], [2, 0, 1]),
        (np.array([2, 0, 1], dtype=np.uint8), [2, 0, 1]),
        (np.array([[2], [0], [1]]), [2, 0, 1]),
        (np.eye(3)[[2, 0, 1]], [2, 0, 1]),
        (np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]]), [1, 0]),  # probabilities
        (np.array([2.0, 0.0, 1.0]), [2, 0, 1]),
        (np.array([[2.0], [0.0]], dtype=np.float32), [2, 0]),
        ([True, False], [1, 0]),
        (["cat", "dog"], ["cat", "dog"]),
        (np.array([["cat"], ["dog"]]), ["cat", "dog"]),
        (np.array(["cat", 3], dtype=object), ["cat", 3]),
    ],
)
def test_label_vector_accepts_each_form(value, expected):
    out = label_vector("labels", value)
    assert out.ndim == 1
    assert out.tolist() == expected
    if np.asarray(value).dtype.kind in "fb":
        assert out.dtype == np.int64


def test_label_vector_accepts_backend_tensors():
    out = label_vector("labels", keras.ops.ones((3, 1)))
    assert out.tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    "value, message",
    [
        (None, "Invalid value for argument labels.*Received: labels=None"),
        ([0.0, np.nan], "argument labels: expected finite labels"),
        ([0.0, np.inf], "argument labels: expected finite labels"),
        (np.array([[0.0, 1.0], [np.nan, 0.2]]), "argument labels: expected finite"),
        ([0.0, 1.5], "argument labels: expected whole-number labels"),
        ([0, None, 1], "argument labels: expected a label for every sample"),
        (np.array([1, float("nan")], dtype=object), "argument labels"),
        (np.zeros((2, 2, 2)), r"Invalid shape for argument labels.*\(2, 2, 2\)"),
        (np.array(5), "Invalid shape for argument labels"),
        (np.array([1 + 2j, 3j]), "Invalid dtype for argument labels"),
        ([[0, 1], [2]], "argument labels"),  # ragged
    ],
)
def test_label_vector_rejects_with_a_value_error_naming_the_argument(value, message):
    with pytest.raises(ValueError, match=message):
        label_vector("labels", value)


def test_label_vector_minimum_samples():
    assert label_vector("y", [], min_samples=0).shape == (0,)
    with pytest.raises(ValueError, match="argument y: expected at least 2"):
        label_vector("y", [1], min_samples=2)
    with pytest.raises(ValueError, match="argument y: expected at least 1"):
        label_vector("y", np.zeros((0, 3)))


# ------------------------------------------------------------------ check_seed


@pytest.mark.parametrize("seed", [None, 0, 7, np.int64(3), 2**40])
def test_check_seed_accepts_none_and_non_negative_integers(seed):
    out = check_seed("seed", seed)
    assert out == seed and (out is None or type(out) is int)


@pytest.mark.parametrize("seed", [-1, 1.0, 1.5, True, "0", [0], np.float32(2)])
def test_check_seed_rejects_naming_the_argument(seed):
    with pytest.raises(ValueError, match="Invalid value for argument my_seed"):
        check_seed("my_seed", seed)


def test_check_seed_generator_only_where_allowed():
    generator = keras.random.SeedGenerator(1)
    assert check_seed("seed", generator, allow_generator=True) is generator
    with pytest.raises(ValueError, match="an integer >= 0. Received"):
        check_seed("seed", generator)


# ------------------------------------------------------------------ check_bool
@pytest.mark.parametrize("flag", [True, False, np.bool_(True), np.bool_(False)])
def test_check_bool_returns_a_python_bool(flag):
    out = check_bool("synchronized", flag)
    assert type(out) is bool and out == bool(flag)


@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.array([True]), 1.0])
def test_check_bool_refuses_non_booleans(bad):
    with pytest.raises(ValueError) as info:
        check_bool("synchronized", bad)
    message = str(info.value)
    assert "Invalid value for argument synchronized: expected True or False" in message
    assert f"Received: synchronized={bad!r}" in message
