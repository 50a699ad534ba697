"""AET: auto-encoding transformations, a self-supervised image encoder."""

from __future__ import annotations

import math
import numbers
from typing import Any

import keras
from keras import ops

from keras_disentangle import _distribute, transforms
from keras_disentangle._ops import as_float
from keras_disentangle._validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
    check_seed,
)
from keras_disentangle.models._serialization import (
    SeedStateMixin,
    deserialize_sub_objects,
)

__all__ = ["AET"]

_register = keras.saving.register_keras_serializable(package="keras_disentangle")

_N_TARGETS = {"affine": 6, "projective": 8}
_DEFAULT_SCALE = {"affine": (0.7, 1.3), "projective": (0.8, 1.2)}


def _check_at_most(name, value, high):
    value = check_non_negative(name, value)
    if value > high:
        raise ValueError(
            f"Invalid value for argument {name}: expected a number in "
            f"[0, {high}]. Received: {name}={value!r}"
        )
    return value


def _check_scale(scale):
    ok = (
        isinstance(scale, (tuple, list))
        and len(scale) == 2
        and all(
            isinstance(s, numbers.Real) and not isinstance(s, bool) and math.isfinite(s)
            for s in scale
        )
        and 0 < scale[0] <= scale[1]
    )
    if not ok:
        raise ValueError(
            "Invalid value for argument scale: expected a pair (low, high) "
            f"with 0 < low <= high. Received: scale={scale!r}"
        )
    return (float(scale[0]), float(scale[1]))


def _pool(features):
    """Global average pooling over every axis but the first and the last."""
    if len(features.shape) > 2:
        return ops.mean(features, axis=tuple(range(1, len(features.shape) - 1)))
    return features


@_register
class AET(SeedStateMixin, keras.Model):
    """Auto-Encoding Transformations: learn features by predicting a warp.

    Each training image ``x`` is warped by a random transformation ``t``
    (drawn with a ``keras.random.SeedGenerator``, applied with
    ``keras_disentangle.transforms.apply_transform``). The shared encoder ``E`` sees
    both images; a head regresses the parameters of ``t`` from the
    concatenated, globally average-pooled features, with the loss

    ``L = mean || head([pool E(x), pool E(t(x))]) - target(t) ||^2``.

    ``transform="affine"``: rotation in +-``rotation`` degrees, translation
    in +-``translation`` of the size, scale in ``scale`` and shear in
    +-``shear`` degrees; the targets are ``(cos, sin, tx, ty, scale,
    shear)`` rescaled to [-1, 1]. ``transform="projective"``: the image
    corners moved by up to +-``corner`` of the size, a scale in ``scale``
    and a rotation by a multiple of 90 degrees; the targets are the 8
    coefficients of the homography in normalised coordinates (see
    ``keras_disentangle.transforms``). Both run on TensorFlow, JAX and
    PyTorch, inside ``jit_compile``. The model only overrides
    ``compute_loss``, adding the encoder's regularization losses (activity
    penalties averaged over the two passes); ``y`` and ``sample_weight`` are
    ignored.

    Under a ``tf.distribute`` strategy with ``R`` replicas each replica's
    loss is its slice's mean divided by ``R`` (what Keras does to its own
    losses), so a step equals the one-device step and the logged ``loss``
    and ``transform_mse`` equal one device's; an empty slice gives 0. The
    state of the random warps is saved with the model, so training resumed
    after loading draws new warps.

    ``predict`` returns the encoder's features of the untransformed input.
    Logs show ``loss`` and ``transform_mse``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        encoder: a ``keras.Model`` from images ``(batch, H, W)`` or
            ``(batch, H, W, C)`` (channels last, H and W known) to one output,
            a vector or a feature map.
        transform: ``"affine"`` (default) or ``"projective"``.
        head_units: width of the head's hidden layer (0: a linear head).
        rotation: the largest rotation in degrees, in [0, 180] (affine).
        translation: the largest translation, a fraction of the size in
            [0, 1] (affine).
        scale: the ``(low, high)`` range of the scale factor; None gives
            (0.7, 1.3) for affine and (0.8, 1.2) for projective.
        shear: the largest shear angle in degrees, in [0, 60] (affine).
        corner: the largest corner displacement, a fraction of the size in
            [0, 0.25] (projective).
        seed: seed of the transformations (None or an int >= 0).
        **kwargs: passed to ``keras.Model`` (``name``, ...).

    Example:

        >>> import numpy as np, keras
        >>> encoder = keras.Sequential([
        ...     keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
        ...     keras.layers.GlobalAveragePooling2D()])
        >>> aet = AET(encoder, head_units=8, seed=0)
        >>> aet.compile(optimizer="adam")
        >>> _ = aet.fit(np.random.rand(16, 8, 8, 1), epochs=1, verbose=0)
        >>> aet.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape
        (2, 4)

    References:
        Zhang, Qi, Wang & Luo, "AET vs. AED: Unsupervised representation
        learning by auto-encoding transformations rather than data",
        CVPR 2019. Reference code: github.com/maple-research-lab/AET.
    """

    def __init__(
        self,
        encoder: keras.Model,
        transform: str = "affine",
        head_units: int = 256,
        rotation: float = 180.0,
        translation: float = 0.2,
        scale: tuple[float, float] | None = None,
        shear: float = 30.0,
        corner: float = 0.125,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.transform = check_choice("transform", transform, tuple(_N_TARGETS))
        self.head_units = check_positive_int("head_units", head_units, minimum=0)
        self.rotation = _check_at_most("rotation", rotation, 180.0)
        self.translation = _check_at_most("translation", translation, 1.0)
        self.scale = _check_scale(_DEFAULT_SCALE[transform] if scale is None else scale)
        self.shear = _check_at_most("shear", shear, 60.0)
        self.corner = _check_at_most("corner", corner, 0.25)
        self.seed = check_seed("seed", seed)
        self.encoder = encoder
        self._image_shape = self._check_encoder(encoder)

        feature_dim = encoder.outputs[0].shape[-1]
        head = [keras.Input((2 * feature_dim,))]
        if self.head_units:
            head.append(keras.layers.Dense(self.head_units, activation="relu"))
        head.append(keras.layers.Dense(_N_TARGETS[transform]))
        self.head = keras.Sequential(head, name="transform_head")
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.mse_tracker = keras.metrics.Mean(name="transform_mse")

    @staticmethod
    def _check_encoder(encoder: Any) -> tuple[int, int]:
        """Returns the ``(H, W)`` image size, or raises naming ``encoder``."""
        problem = None
        if not isinstance(encoder, keras.Model):
            problem = "expected a keras.Model"
        else:
            try:
                inputs, outputs = encoder.inputs, encoder.outputs
            except (AttributeError, ValueError):
                inputs = outputs = None
            if not inputs or not outputs:
                problem = "expected a model built on a keras.Input"
            elif len(inputs) != 1 or len(outputs) != 1:
                problem = "expected one input and one output"
            elif len(inputs[0].shape) not in (3, 4) or None in inputs[0].shape[1:3]:
                problem = (
                    "expected images (batch, H, W) or (batch, H, W, C) with H "
                    f"and W known, got input shape {tuple(inputs[0].shape)}"
                )
            elif outputs[0].shape[-1] is None:
                problem = "expected an output with a known last axis"
        if problem:
            raise ValueError(
                f"Invalid value for argument encoder: {problem}. "
                f"Received: encoder={encoder!r}"
            )
        return tuple(encoder.inputs[0].shape[1:3])

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.encoder(inputs, training=training)

    def sample_transforms(self, batch_size: Any) -> tuple[Any, Any]:
        """Draws ``batch_size`` transformations.

        Args:
            batch_size: an int or a scalar tensor.

        Returns:
            A tuple ``(matrices, targets)``: forward pixel-coordinate
            matrices ``(N, 3, 3)`` and regression targets ``(N, 6)`` or
            ``(N, 8)``.
        """
        height, width = self._image_shape
        if self.transform == "affine":
            params = transforms.sample_affine(
                batch_size,
                self.seed_generator,
                rotation=self.rotation,
                translation=self.translation,
                scale=self.scale,
                shear=self.shear,
            )
            targets = transforms.affine_targets(
                params, translation=self.translation, scale=self.scale, shear=self.shear
            )
            return transforms.affine_matrices(params, height, width), targets
        h = transforms.sample_projective(
            batch_size, self.seed_generator, corner=self.corner, scale=self.scale
        )
        matrices = transforms.normalized_to_pixels(h, height, width)
        return matrices, transforms.projective_targets(h)

    def transform_images(self, x: Any, matrices: Any) -> Any:
        """Warps a batch ``(N, H, W)`` or ``(N, H, W, C)`` by ``matrices``."""
        x = ops.convert_to_tensor(x)
        dtype = x.dtype
        images = ops.cast(x, "float32")
        if len(x.shape) == 3:
            images = ops.expand_dims(images, -1)
        warped = transforms.apply_transform(images, matrices)
        if len(x.shape) == 3:
            warped = ops.squeeze(warped, -1)
        return ops.cast(warped, dtype)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The transform MSE plus the encoder's losses, scaled per replica."""
        if y_pred is None:
            y_pred = self.encoder(x, training=training)
        # Regularization losses of the first pass: calling the encoder again
        # replaces its activity losses with those of the second pass.
        first = [as_float(v) for v in self.losses]
        matrices, targets = self.sample_transforms(ops.shape(x)[0])
        warped = self.transform_images(x, matrices)
        features = self.encoder(warped, training=training)
        second = [as_float(v) for v in self.losses]
        pairs = ops.concatenate(
            [_pool(as_float(y_pred)), _pool(as_float(features))], axis=-1
        )
        predicted = as_float(self.head(pairs, training=training))
        errors = ops.mean(
            ops.square(predicted - ops.cast(targets, predicted.dtype)), -1
        )
        count = ops.cast(ops.shape(errors)[0], errors.dtype)
        # The slice's mean, 0 on an empty slice (never NaN).
        mse = ops.sum(errors) / ops.maximum(count, 1.0)
        self.mse_tracker.update_state(mse, sample_weight=count)
        # Weight penalties appear in both lists, activity penalties once per
        # pass: their average counts the first once and averages the second.
        penalties = 0.5 * (sum(first, 0.0) + sum(second, 0.0))
        return _distribute.scale_for_replicas(mse + penalties)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "transform": self.transform,
                "head_units": self.head_units,
                "rotation": self.rotation,
                "translation": self.translation,
                "scale": list(self.scale),
                "shear": self.shear,
                "corner": self.corner,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> AET:
        return cls(**deserialize_sub_objects(config, ("encoder",), custom_objects))
