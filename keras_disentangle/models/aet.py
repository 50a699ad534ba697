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
TARGETS = ("inverse", "forward")
HEADS = ("linear", "mlp")
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


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"Invalid value for argument {name}: expected True or False. "
            f"Received: {name}={value!r}"
        )
    return value


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

    The defaults follow the authors' code (maple-research-lab/AET, commit
    ``042be33``, ``cifar/affine`` and ``cifar/projective``):

    - ``crop_and_flip=True``: during training each image is first cropped
      with padding 4 and flipped left-right at random (``main.py`` lines
      59-60), and the encoder sees that image ``x'`` and its warp ``t(x')``;
      as Keras's augmentation layers, only in training (``predict`` and
      ``evaluate`` see the images as given; ``compute_loss`` with
      ``training=True`` encodes ``x'`` itself);
    - ``transform="affine"``: rotation in +-``rotation`` degrees,
      translation in +-``translation`` of the size (whole pixels with
      ``integer_translation=True``, ``dataset.py`` line 160), scale in
      ``scale`` and shear in +-``shear`` degrees with the reference's
      ``shear_form="sin"`` (``s R [[1, -sin phi], [0, cos phi]]``,
      torchvision 0.2's); the targets are ``(cos, sin, tx, ty, scale,
      shear)`` rescaled to [-1, 1] (``dataset.py`` lines 211-216);
    - ``transform="projective"``, ``target="inverse"``: the corners scaled
      by ``scale``, turned by a multiple of 90 degrees and moved by whole
      pixels (up to ``corner`` of the size, 4 px at 32); the target is the
      8 coefficients of the inverse pixel homography standardised as the
      reference's (``transforms.projective_standardize``);
    - ``head="linear"``: one Dense layer on the concatenated features, with
      ``tanh`` for affine (``NetworkInNetwork.py``, ``Regressor``).

    The package's earlier behaviour stays behind arguments:
    ``shear_form="tan"``, ``integer_translation=False``,
    ``crop_and_flip=False``, ``target="forward"`` (the forward homography
    in ``[-1, 1]`` coordinates, unstandardised, corners moved in
    normalised units) and ``head="mlp"`` (``Dense(head_units, relu)`` then
    ``Dense``). Still different from the reference: the affine warp's
    centre is half a pixel away (see ``keras_disentangle.transforms``) and
    outside points are filled with 0, not grey. Both transforms run on
    TensorFlow, JAX and
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
        head_units: width of the hidden layer of ``head="mlp"`` (0: a
            linear head without tanh).
        rotation: the largest rotation in degrees, in [0, 180] (affine).
        translation: the largest translation, a fraction of the size in
            [0, 1] (affine).
        scale: the ``(low, high)`` range of the scale factor; None gives
            (0.7, 1.3) for affine and (0.8, 1.2) for projective.
        shear: the largest shear angle in degrees, in [0, 60] (affine).
        corner: the largest corner displacement, a fraction of the size in
            [0, 0.25] (projective).
        shear_form: ``"sin"`` (default, the reference's) or ``"tan"``.
        integer_translation: whole-pixel affine translations and projective
            corner moves (default True, the reference's).
        crop_and_flip: the reference's random crop (padding 4) and flip
            before the warp, in training (default True).
        target: ``"inverse"`` (default, the reference's standardised inverse
            pixel homography) or ``"forward"`` (projective only).
        head: ``"linear"`` (default) or ``"mlp"``.
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
        shear_form: str = "sin",
        integer_translation: bool = True,
        crop_and_flip: bool = True,
        target: str = "inverse",
        head: str = "linear",
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
        self.shear_form = check_choice("shear_form", shear_form, transforms.SHEAR_FORMS)
        self.integer_translation = _check_bool(
            "integer_translation", integer_translation
        )
        self.crop_and_flip = _check_bool("crop_and_flip", crop_and_flip)
        self.target = check_choice("target", target, TARGETS)
        self.head_form = check_choice("head", head, HEADS)
        self.encoder = encoder
        self._image_shape = self._check_encoder(encoder)

        feature_dim = encoder.outputs[0].shape[-1]
        layers = [keras.Input((2 * feature_dim,))]
        if self.head_form == "linear":
            activation = "tanh" if transform == "affine" else None
            layers.append(keras.layers.Dense(_N_TARGETS[transform], activation))
        else:
            if self.head_units:
                layers.append(keras.layers.Dense(self.head_units, activation="relu"))
            layers.append(keras.layers.Dense(_N_TARGETS[transform]))
        self.head = keras.Sequential(layers, name="transform_head")
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

    def crop_and_flip_images(self, x: Any) -> Any:
        """The reference's random crop (padding 4) and left-right flip."""
        height, width = self._image_shape
        matrices = transforms.crop_and_flip_matrices(
            ops.shape(x)[0], self.seed_generator, height, width, padding=4
        )
        return self.transform_images(x, matrices, interpolation="nearest")

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
                size=(height, width) if self.integer_translation else None,
            )
            targets = transforms.affine_targets(
                params, translation=self.translation, scale=self.scale, shear=self.shear
            )
            matrices = transforms.affine_matrices(
                params, height, width, shear_form=self.shear_form
            )
            return matrices, targets
        if self.target == "inverse":
            matrices, coefficients = transforms.sample_projective_pixels(
                batch_size,
                self.seed_generator,
                height,
                width,
                corner=self.corner,
                scale=self.scale,
                integer=self.integer_translation,
            )
            targets = transforms.projective_standardize(coefficients, height, width)
            return matrices, targets
        h = transforms.sample_projective(
            batch_size, self.seed_generator, corner=self.corner, scale=self.scale
        )
        matrices = transforms.normalized_to_pixels(h, height, width)
        return matrices, transforms.projective_targets(h)

    def transform_images(
        self, x: Any, matrices: Any, interpolation: str = "bilinear"
    ) -> Any:
        """Warps a batch ``(N, H, W)`` or ``(N, H, W, C)`` by ``matrices``."""
        x = ops.convert_to_tensor(x)
        dtype = x.dtype
        images = ops.cast(x, "float32")
        if len(x.shape) == 3:
            images = ops.expand_dims(images, -1)
        warped = transforms.apply_transform(images, matrices, interpolation)
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
        if training and self.crop_and_flip:
            # The reference's augmentation: the encoder sees x' = crop_flip(x)
            # and t(x'). The features of x that Keras computed are not used
            # (a compiled step prunes them; no state is shared between the
            # replicas' threads).
            x = self.crop_and_flip_images(x)
            y_pred = self.encoder(x, training=training)
        elif y_pred is None:
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
                "shear_form": self.shear_form,
                "integer_translation": self.integer_translation,
                "crop_and_flip": self.crop_and_flip,
                "target": self.target,
                "head": self.head_form,
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None) -> AET:
        return cls(**deserialize_sub_objects(config, ("encoder",), custom_objects))
