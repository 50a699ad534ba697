"""Deep InfoMax: features that maximise mutual information with their input."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_disentangle import estimators
from keras_disentangle._backend import assert_tf_backend
from keras_disentangle._validation import (
    check_choice,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from keras_disentangle.models._serialization import deserialize_sub_objects

__all__ = ["DeepInfoMax"]

_register = keras.saving.register_keras_serializable(package="keras_disentangle")


class _Projection(keras.layers.Layer):
    """``W2 relu(W1 x + b1) + b2 + Ws x`` on the last axis (a 1x1 convolution).

    The residual block of the reference code's local and global encoders:
    applied to a ``(N, L, C)`` feature map it is a 1x1 convolution.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = keras.layers.Dense(units, activation="relu", name="hidden")
        self.out = keras.layers.Dense(units, name="out")
        self.shortcut = keras.layers.Dense(units, use_bias=False, name="shortcut")

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build(tuple(input_shape[:-1]) + (self.units,))
        self.shortcut.build(input_shape)

    def call(self, x):
        return self.out(self.hidden(x)) + self.shortcut(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


def _names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def _feature_extractor(encoder, local_layer):
    """A functional model ``x -> (local map (N, L, C), global vector (N, D))``."""
    if not isinstance(encoder, keras.Model):
        raise ValueError(
            "Invalid value for argument encoder: expected a functional or "
            "Sequential keras.Model with a known input. "
            f"Received: encoder={encoder!r}"
        )
    if not isinstance(local_layer, str) or local_layer not in _names(encoder):
        raise ValueError(
            "Invalid value for argument local_layer: expected the name of a "
            f"layer of the encoder, one of {_names(encoder)}. "
            f"Received: local_layer={local_layer!r}"
        )
    try:
        inputs = encoder.inputs
        outputs = encoder.outputs
        local = encoder.get_layer(local_layer).output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            "Invalid value for argument encoder: expected a functional or "
            "Sequential keras.Model built on a keras.Input, whose layer "
            f"{local_layer!r} is called once. Received: encoder={encoder!r} "
            f"({error})"
        ) from None
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        raise ValueError(
            "Invalid value for argument encoder: expected a single output of "
            "shape (batch, features), the global vector. Received output "
            f"shapes {[tuple(o.shape) for o in outputs]}"
        )
    if len(local.shape) not in (3, 4) or any(d is None for d in local.shape[1:]):
        raise ValueError(
            "Invalid value for argument local_layer: expected a layer whose "
            "output is a feature map of known shape (batch, positions, "
            "channels) or (batch, height, width, channels). Received: "
            f"local_layer={local_layer!r} with output shape {tuple(local.shape)}"
        )
    if len(inputs) == 1:
        inputs = inputs[0]  # called with a bare tensor, not a list
    positions = math.prod(local.shape[1:-1])
    local = keras.layers.Reshape((positions, local.shape[-1]))(local)
    return keras.Model(inputs, [local, outputs[0]], name="dim_features")


def discriminator_loss(real_logits, fake_logits):
    """GAN discriminator loss ``mean softplus(-D(real)) + mean softplus(D(fake))``.

    That is ``-mean log sigmoid(D(real)) - mean log(1 - sigmoid(D(fake)))``.
    """
    return ops.mean(ops.softplus(-real_logits)) + ops.mean(ops.softplus(fake_logits))


def generator_loss(fake_logits):
    """Non-saturating GAN generator loss ``mean softplus(-D(fake))``."""
    return ops.mean(ops.softplus(-fake_logits))


@_register
class DeepInfoMax(keras.Model):
    """Deep InfoMax (DIM): an encoder trained to maximise mutual information.

    The encoder maps an image to a global vector ``y = E(x)``; one of its
    intermediate layers (``local_layer``) gives a feature map ``C(x)`` of
    ``L`` positions. A critic scores pairs by dot products of learnt 1x1
    projections, as the reference code does:

    - local: ``T_l(y_i, C(x_j)_p) = phi(y_i) . psi(C(x_j)_p)`` at each
      position ``p`` (``psi`` a residual 1x1 convolution);
    - global: ``T_g(y_i, C(x_j)) = phi'(y_i) . psi'(flatten C(x_j))``.

    Positive pairs come from the same image (``i == j``), negatives from the
    other images of the batch. The loss is

    ``-alpha I(y; C(x)) - beta mean_p I(y; C(x)_p) + gamma L_prior``

    with ``I`` one of the estimators of ``keras_disentangle.estimators``
    (``"jsd"``, ``"dv"``, ``"nce"``). With ``gamma > 0`` a discriminator
    ``D`` learns to tell ``y`` from samples of the uniform prior on
    ``[0, 1]^D`` (its own optimizer, one step after each encoder step: a
    real min-max; the discriminator's variables are not among the model's
    ``trainable_variables``), while the encoder minimises the non-saturating
    ``L_prior = mean softplus(-D(y))``; put a sigmoid on the encoder's
    output for the prior to be reachable. Prior matching overrides
    ``train_step`` and needs the TensorFlow backend; with ``gamma = 0`` (the
    default) the model only overrides ``compute_loss`` and runs on any
    backend.

    The defaults combine both terms (``alpha = 0.5, beta = 1``); the paper's
    DIM(L) keeps the local term alone (``alpha = 0``), which served its
    downstream classifiers best.

    ``predict`` returns the encoder's global vectors. Logs show ``loss`` and
    the terms ``global_mi``, ``local_mi`` (the estimates, in nats) and, with
    ``gamma > 0``, ``prior_loss`` and ``discriminator_loss``.

    Args:
        encoder: a functional or Sequential ``keras.Model`` built on a
            ``keras.Input`` whose single output is ``(batch, D)``.
        local_layer: the name of the encoder's layer whose output is the local
            feature map, ``(batch, H, W, C)`` or ``(batch, L, C)``.
        estimator: ``"jsd"`` (default), ``"dv"`` or ``"nce"``.
        alpha: weight of the global mutual information, >= 0.
        beta: weight of the local mutual information, >= 0.
        gamma: weight of the prior matching, >= 0 (0 turns it off).
        units: width of the critic's projections.
        discriminator_units: width of the discriminator's two hidden layers.
        discriminator_learning_rate: Adam learning rate of the discriminator.
        seed: seed of the prior samples (an int or None).
        **kwargs: passed to ``keras.Model`` (``name``, ...).

    Example:

        >>> import numpy as np, keras
        >>> inputs = keras.Input((8, 8, 1))
        >>> h = keras.layers.Conv2D(4, 3, name="local")(inputs)
        >>> y = keras.layers.Dense(3)(keras.layers.Flatten()(h))
        >>> dim = DeepInfoMax(keras.Model(inputs, y), "local", units=4)
        >>> dim.compile(optimizer="adam")
        >>> _ = dim.fit(np.random.rand(16, 8, 8, 1), epochs=1, verbose=0)
        >>> dim.predict(np.zeros((2, 8, 8, 1)), verbose=0).shape
        (2, 3)

    References:
        Hjelm, Fedorov, Lavoie-Marchildon, Grewal, Bachman, Trischler &
        Bengio, "Learning deep representations by mutual information
        estimation and maximization", ICLR 2019. Reference code:
        github.com/rdevon/DIM.
    """

    def __init__(
        self,
        encoder: keras.Model,
        local_layer: str,
        estimator: str = "jsd",
        alpha: float = 0.5,
        beta: float = 1.0,
        gamma: float = 0.0,
        units: int = 64,
        discriminator_units: int = 256,
        discriminator_learning_rate: float = 1e-4,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.estimator = check_choice("estimator", estimator, estimators.ESTIMATORS)
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        if self.alpha == 0 and self.beta == 0:
            raise ValueError(
                "Invalid value for arguments alpha and beta: expected at least "
                f"one > 0. Received: alpha={alpha!r}, beta={beta!r}"
            )
        self.units = check_positive_int("units", units)
        self.discriminator_units = check_positive_int(
            "discriminator_units", discriminator_units
        )
        self.discriminator_learning_rate = check_positive(
            "discriminator_learning_rate", discriminator_learning_rate
        )
        if seed is not None:
            seed = check_positive_int("seed", seed, minimum=0)
        self.seed = seed
        if self.gamma > 0:
            assert_tf_backend("DeepInfoMax with prior matching (gamma > 0)")
        self.local_layer = local_layer
        self.encoder = encoder
        self.feature_extractor = _feature_extractor(encoder, local_layer)
        local_shape, global_shape = (
            tuple(o.shape) for o in self.feature_extractor.outputs
        )
        self._local_shape, self._global_dim = local_shape, global_shape[-1]

        if self.alpha > 0:
            self.global_critic_y = _Projection(self.units, name="global_critic_y")
            self.global_critic_y.build((None, self._global_dim))
            self.global_critic_map = _Projection(self.units, name="global_critic_map")
            self.global_critic_map.build((None, math.prod(local_shape[1:])))
        if self.beta > 0:
            self.local_critic_y = _Projection(self.units, name="local_critic_y")
            self.local_critic_y.build((None, self._global_dim))
            self.local_critic_map = _Projection(self.units, name="local_critic_map")
            self.local_critic_map.build(local_shape)
        if self.gamma > 0:
            self.discriminator = keras.Sequential(
                [
                    keras.Input((self._global_dim,)),
                    keras.layers.Dense(self.discriminator_units, activation="relu"),
                    keras.layers.Dense(self.discriminator_units, activation="relu"),
                    keras.layers.Dense(1),
                ],
                name="prior_discriminator",
            )
            self.discriminator_optimizer = keras.optimizers.Adam(
                self.discriminator_learning_rate
            )
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.prior_tracker = keras.metrics.Mean(name="prior_loss")
            self.discriminator_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.global_mi_tracker = keras.metrics.Mean(name="global_mi")
        self.local_mi_tracker = keras.metrics.Mean(name="local_mi")
        self._last = None

    def call(self, inputs, training=None):
        local, glob = self.feature_extractor(inputs, training=training)
        # The loss reads the local map of this very forward pass (the way
        # Keras itself collects add_loss terms), so a step runs one forward.
        self._last = (glob, local)
        return glob

    def mutual_information_terms(self, local, glob):
        """The global and local estimates (scalars; 0 for a zero weight).

        Args:
            local: ``(N, L, C)`` local feature maps.
            glob: ``(N, D)`` global vectors.

        Returns:
            A tuple ``(global_mi, local_mi)`` of scalar tensors.
        """
        zero = ops.zeros((), dtype="float32")
        global_mi = local_mi = zero
        if self.alpha > 0:
            flat = ops.reshape(local, (-1, math.prod(self._local_shape[1:])))
            y = self.global_critic_y(glob)
            m = self.global_critic_map(flat)
            scores = ops.matmul(y, ops.transpose(m))
            global_mi = estimators.mutual_information(scores, self.estimator)
        if self.beta > 0:
            y = self.local_critic_y(glob)
            m = self.local_critic_map(local)
            scores = ops.einsum("iu,jlu->ijl", y, m)
            local_mi = estimators.mutual_information(scores, self.estimator)
        return global_mi, local_mi

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        last, self._last = self._last, None
        if last is not None and y_pred is last[0]:
            glob, local = last
        else:
            local, glob = self.feature_extractor(x, training=training)
        global_mi, local_mi = self.mutual_information_terms(local, glob)
        self.global_mi_tracker.update_state(global_mi)
        self.local_mi_tracker.update_state(local_mi)
        loss = -self.alpha * global_mi - self.beta * local_mi
        if self.gamma > 0:
            prior = generator_loss(self.discriminator(glob, training=training))
            self.prior_tracker.update_state(prior)
            loss = loss + self.gamma * prior
            if not training:
                # In fit, the discriminator step logs its own loss.
                self.discriminator_tracker.update_state(
                    self._discriminator_loss(ops.stop_gradient(glob), training)
                )
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def _without_discriminator(self, variables):
        if self.gamma == 0:
            return variables
        own = {id(v) for v in self.discriminator.variables}
        return [v for v in variables if id(v) not in own]

    @property
    def trainable_variables(self):
        """The trainable variables of the main optimizer (no discriminator)."""
        return self._without_discriminator(super().trainable_variables)

    @property
    def trainable_weights(self):
        """The trainable weights of the main optimizer (no discriminator)."""
        return self._without_discriminator(super().trainable_weights)

    def train_step(self, data):
        if self.gamma == 0:
            return super().train_step(data)
        return self._adversarial_train_step(data)

    def _discriminator_loss(self, fake, training):
        """The discriminator's loss: uniform prior samples against ``fake``."""
        real = keras.random.uniform(
            ops.shape(fake), dtype=fake.dtype, seed=self.seed_generator
        )
        return discriminator_loss(
            self.discriminator(real, training=training),
            self.discriminator(fake, training=training),
        )

    def _adversarial_train_step(self, data):
        """Encoder step on the DIM loss, then a discriminator step (TF only)."""
        import tensorflow as tf

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            self._loss_tracker.update_state(
                loss, sample_weight=tf.shape(keras.tree.flatten(x)[0])[0]
            )
            scaled = self.optimizer.scale_loss(loss)
        weights = self.trainable_variables
        gradients = tape.gradient(scaled, weights)
        self.optimizer.apply_gradients(zip(gradients, weights, strict=True))

        fake = ops.stop_gradient(y_pred)
        with tf.GradientTape() as tape:
            d_loss = self._discriminator_loss(fake, training=True)
        d_weights = self.discriminator.trainable_variables
        gradients = tape.gradient(d_loss, d_weights)
        self.discriminator_optimizer.apply_gradients(
            zip(gradients, d_weights, strict=True)
        )
        self.discriminator_tracker.update_state(d_loss)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "local_layer": self.local_layer,
                "estimator": self.estimator,
                "alpha": self.alpha,
                "beta": self.beta,
                "gamma": self.gamma,
                "units": self.units,
                "discriminator_units": self.discriminator_units,
                "discriminator_learning_rate": self.discriminator_learning_rate,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**deserialize_sub_objects(config, ("encoder",), custom_objects))
