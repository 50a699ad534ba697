"""Shared ``from_config`` logic of the models that wrap an encoder."""

from __future__ import annotations

import copy

import keras


def deserialize_sub_objects(config: dict, keys, custom_objects=None) -> dict:
    """Returns a copy of ``config`` with the serialised objects at ``keys`` rebuilt.

    ``keras.saving.deserialize_keras_object`` consumes the dict it is given,
    so each one is deep-copied first: the caller's config stays reusable.
    Keys whose value is not a dict (``None``, a string name) are left as is.
    """
    config = dict(config)
    for key in keys:
        if isinstance(config.get(key), dict):
            config[key] = keras.saving.deserialize_keras_object(
                copy.deepcopy(config[key]), custom_objects=custom_objects
            )
    return config
