"""Shared saving logic of the models that wrap an encoder."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import keras

_SEED_KEY = "seed_generator_state"


def deserialize_sub_objects(
    config: dict, keys: Iterable[str], custom_objects: dict | None = None
) -> dict:
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


class SeedStateMixin:
    """Saves the state of ``self.seed_generator`` with the model's weights.

    Keras saves a model's weights but not the state of its
    ``keras.random.SeedGenerator``: a reloaded model would restart its random
    stream (replaying the perturbations of the first steps). The mixin
    stores the state beside the model's own variables and restores it on
    load; a file without it (saved before) loads as before.
    """

    def save_own_variables(self, store: Any) -> None:
        super().save_own_variables(store)  # type: ignore[misc]
        generator = getattr(self, "seed_generator", None)
        if generator is not None:
            store[_SEED_KEY] = keras.ops.convert_to_numpy(generator.state.value)

    def load_own_variables(self, store: Any) -> None:
        keys = list(store.keys())
        if _SEED_KEY in keys:
            generator = getattr(self, "seed_generator", None)
            if generator is not None:
                generator.state.assign(store[_SEED_KEY])
            store = {k: store[k] for k in keys if k != _SEED_KEY}
        super().load_own_variables(store)  # type: ignore[misc]
