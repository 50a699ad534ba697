"""Deep InfoMax: features that maximise mutual information with their input."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_disentangle import _distribute, estimators
from keras_disentangle._backend import (
    apply_gradients,
    backend_name,
    stateless_train_step,
    variable_gradients,
)
from keras_disentangle._ops import as_float
from keras_disentangle._validation import (
    check_bool,
    check_choice,
    check_non_negative,
    check_positive,
    check_positive_int,
    check_seed,
)
from keras_disentangle.models._serialization import (
    SeedStateMixin,
    deserialize_sub_objects,
)

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


def discriminator_loss(real_logits: Any, fake_logits: Any) -> Any:
    """GAN discriminator loss ``mean softplus(-D(real)) + mean softplus(D(fake))``.

    That is ``-mean log sigmoid(D(real)) - mean log(1 - sigmoid(D(fake)))``,
    computed in float32 (or float64).
    """
    real, fake = as_float(real_logits), as_float(fake_logits)
    return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))


def generator_loss(fake_logits: Any) -> Any:
    """Non-saturating GAN generator loss ``mean softplus(-D(fake))``."""
    return ops.mean(ops.softplus(-as_float(fake_logits)))


def _batch_size(x: Any) -> Any:
    return ops.shape(keras.tree.flatten(x)[0])[0]


@_register
class DeepInfoMax(SeedStateMixin, keras.Model):
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

    ``-alpha I(y; C(x)) - beta I_local + gamma L_prior``

    with ``I`` one of the estimators of ``keras_disentangle.estimators``
    (``"jsd"``, ``"dv"``, ``"nce"``) applied to the score tensor
    ``T[i, j, p]``. For ``"jsd"`` and ``"dv"`` the local term averages over
    every pair ``(i, j, p)``. For ``"nce"`` the local negatives of the
    positive ``(i, i, p)`` are, by default, the ``(N - 1) L`` features of the
    other images at *every* position (``local_negatives="all_positions"``,
    as rdevon/DIM's ``infonce_loss``); ``"same_position"`` keeps the ``N - 1``
    features at position ``p`` only (cheaper in the softmax, a weaker task).
    A batch of one sample has no negatives: its estimates are 0 (no NaN).

    With ``gamma > 0`` a discriminator ``D`` learns to tell ``y`` from
    samples of the uniform prior on ``[0, 1]^D`` with its own optimizer,
    one step after each encoder step (a real alternating min-max, written
    for the TensorFlow, JAX and PyTorch trainers), while the encoder
    minimises the non-saturating ``L_prior = mean softplus(-D(y))``; put a
    sigmoid on the encoder's output for the prior to be reachable. The
    discriminator's variables are not among the model's
    ``trainable_variables``. Under the ``"mixed_float16"`` policy the
    discriminator's optimizer gets loss scaling as the main one does.

    **Several devices.** Under a ``tf.distribute`` strategy with ``R``
    replicas every loss term is scaled per replica like Keras's own, and the
    logs equal one device's. ``synchronized=False`` (default) scores each
    replica's ``n_r`` samples against each other (``n_r - 1`` negatives per
    positive; the loss is the mean of the per-replica estimates).
    ``synchronized=True`` scores them against the whole global batch of
    ``N`` samples: each replica gathers the critic's projected features
    (``replica_gather``), builds its ``n_r x N (x L)`` block of scores and
    returns its share of the global estimate (its rows' sums over the
    global pair counts; for ``"dv"`` one gathered log-sum-exp), so the step
    equals the one-device step on the global batch; gradients flow through
    the gather. Keras's JAX ``DataParallel`` already computes on the global
    batch.

    ``predict`` returns the encoder's global vectors. Logs show ``loss`` and
    the terms ``global_mi``, ``local_mi`` (the estimates, in nats) and, with
    ``gamma > 0``, ``prior_loss`` and ``discriminator_loss``. The model and
    the state of its random prior samples save to ``.keras`` and load back
    after ``import keras_disentangle``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

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
        local_negatives: ``"all_positions"`` (default) or ``"same_position"``:
            the local InfoNCE negatives (``estimator="nce"`` only).
        synchronized: score against the global batch under a distribution
            strategy (see above).
        seed: seed of the prior samples (None or an int >= 0).
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
        local_negatives: str = "all_positions",
        synchronized: bool = False,
        seed: int | None = None,
        **kwargs: Any,
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
        self.local_negatives = check_choice(
            "local_negatives", local_negatives, estimators.NCE_NEGATIVES
        )
        self.synchronized = check_bool("synchronized", synchronized)
        self.seed = check_seed("seed", seed)
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
            self.seed_generator = keras.random.SeedGenerator(self.seed)
            self.prior_tracker = keras.metrics.Mean(name="prior_loss")
            self.discriminator_tracker = keras.metrics.Mean(name="discriminator_loss")
        self.global_mi_tracker = keras.metrics.Mean(name="global_mi")
        self.local_mi_tracker = keras.metrics.Mean(name="local_mi")
        self._last: tuple[Any, Any] | None = None

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """``keras.Model.compile``; under ``"mixed_float16"`` it also gives the
        discriminator's optimizer loss scaling (``LossScaleOptimizer``), as
        Keras does for the main optimizer."""
        super().compile(*args, **kwargs)
        if (
            self.gamma > 0
            and kwargs.get("auto_scale_loss", True)
            and self.dtype_policy.name == "mixed_float16"
            and not isinstance(
                self.discriminator_optimizer, keras.optimizers.LossScaleOptimizer
            )
        ):
            self.discriminator_optimizer = keras.optimizers.LossScaleOptimizer(
                self.discriminator_optimizer
            )
            self.discriminator_optimizer.build(self.discriminator.trainable_variables)

    def compile_from_config(self, config: dict) -> None:
        """Compiles from a saved compile config (what Keras does for a model
        whose ``compile`` is not overridden)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        local, glob = self.feature_extractor(inputs, training=training)
        # The loss reads the local map of this very forward pass (the way
        # Keras itself collects add_loss terms), so a step runs one forward.
        self._last = (glob, local)
        return glob

    def mutual_information_terms(self, local: Any, glob: Any) -> tuple[Any, Any]:
        """The global and local estimates (scalars; 0 for a zero weight).

        Without a distribution strategy they are the estimates on the batch;
        under one, each replica's share (they add up over the replicas to
        the per-replica mean, or with ``synchronized=True`` to the global
        batch's estimate).

        Args:
            local: ``(N, L, C)`` local feature maps.
            glob: ``(N, D)`` global vectors.

        Returns:
            A tuple ``(global_mi, local_mi)`` of scalar tensors.
        """
        rows, columns = [], []
        if self.alpha > 0:
            flat = ops.reshape(local, (-1, math.prod(self._local_shape[1:])))
            rows.append(as_float(self.global_critic_y(glob)))
            columns.append(as_float(self.global_critic_map(flat)))
        if self.beta > 0:
            rows.append(as_float(self.local_critic_y(glob)))
            columns.append(as_float(self.local_critic_map(local)))
        offset, gather = 0, None
        if self.synchronized:
            offset, gather, columns = self._gather_columns(rows[0], columns)
        estimates = []
        for y, m in zip(rows, columns, strict=True):
            if len(m.shape) == 2:
                scores = ops.matmul(y, ops.transpose(m))
            else:
                scores = ops.einsum("iu,jlu->ijl", y, m)
            value = estimators.mutual_information(
                scores,
                self.estimator,
                offset=offset,
                gather=gather,
                negatives=self.local_negatives,
            )
            if self.synchronized:  # this replica's share of the global value
                value = _distribute.share_for_gradients(value)
            else:
                value = _distribute.scale_for_replicas(value)
            estimates.append(value)
        zero = ops.zeros((), dtype="float32")
        global_mi = estimates[0] if self.alpha > 0 else zero
        local_mi = estimates[-1] if self.beta > 0 else zero
        return global_mi, local_mi

    def _gather_columns(self, y: Any, columns: list) -> tuple[Any, Any, list]:
        """Synchronized scores: this replica's offset, a gather function and
        the critic's column features of the whole global batch.

        Both terms' columns travel in one gather; every collective of the
        step waits for the previous one (a data dependency), so that the
        replicas run them in the same order.
        """
        offset = _distribute.replica_offset(ops.shape(y)[0])
        previous = [ops.cast(offset, "float32")]

        def after_previous(x: Any) -> Any:
            ready = ops.all(ops.isfinite(ops.stop_gradient(previous[-1])))
            return ops.where(ready, x, ops.zeros_like(x))

        def gather(x: Any) -> Any:
            out = _distribute.replica_gather(after_previous(x))
            previous.append(ops.cast(out, "float32"))
            return out

        widths = [math.prod(m.shape[1:]) for m in columns]
        flat = [ops.reshape(m, (-1, w)) for m, w in zip(columns, widths, strict=True)]
        gathered = gather(ops.concatenate(flat, axis=-1) if len(flat) > 1 else flat[0])
        out, start = [], 0
        for m, w in zip(columns, widths, strict=True):
            part = gathered[:, start : start + w]
            out.append(ops.reshape(part, (-1,) + tuple(m.shape[1:])))
            start += w
        return offset, gather, out

    def _batch_mean(self, values: Any) -> Any:
        """This replica's share of a per-sample mean (finite on an empty slice)."""
        values = as_float(values)
        total = ops.sum(values)
        count = ops.cast(ops.shape(values)[0], total.dtype)
        if self.synchronized:
            share = total / ops.maximum(_distribute.replica_sum(count), 1.0)
            return _distribute.share_for_gradients(share)
        return _distribute.scale_for_replicas(total / ops.maximum(count, 1.0))

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The encoder's loss, scaled per replica like Keras's own losses."""
        last, self._last = self._last, None
        if last is not None and y_pred is last[0]:
            glob, local = last
        else:
            local, glob = self.feature_extractor(x, training=training)
        global_mi, local_mi = self.mutual_information_terms(local, glob)
        unscale = _distribute.unscale_for_replicas
        self.global_mi_tracker.update_state(unscale(global_mi))
        self.local_mi_tracker.update_state(unscale(local_mi))
        loss = -self.alpha * global_mi - self.beta * local_mi
        if self.gamma > 0:
            logits = self.discriminator(glob, training=training)
            prior = self._batch_mean(ops.softplus(-as_float(logits)))
            self.prior_tracker.update_state(unscale(prior))
            loss = loss + self.gamma * prior
            if not training:
                # In fit, the discriminator step logs its own loss.
                self.discriminator_tracker.update_state(
                    unscale(self._discriminator_loss(ops.stop_gradient(glob), False))
                )
        if self.losses:
            extra = sum(as_float(v) for v in self.losses)
            loss = loss + ops.cast(_distribute.scale_for_replicas(extra), loss.dtype)
        return loss

    def _without_discriminator(self, variables: list) -> list:
        if self.gamma == 0:
            return variables
        own = {id(v) for v in self.discriminator.variables}
        return [v for v in variables if id(v) not in own]

    @property
    def trainable_variables(self) -> list:
        """The trainable variables of the main optimizer (no discriminator)."""
        return self._without_discriminator(super().trainable_variables)

    @property
    def trainable_weights(self) -> list:
        """The trainable weights of the main optimizer (no discriminator)."""
        return self._without_discriminator(super().trainable_weights)

    @property
    def non_trainable_variables(self) -> list:
        """Keras's list, plus (with ``gamma > 0``) the discriminator's weights
        and its optimizer's variables: the state the JAX trainer carries."""
        variables = super().non_trainable_variables
        if self.gamma == 0:
            return variables
        seen = {id(v) for v in variables}
        extra = list(self.discriminator.trainable_variables)
        extra += list(self.discriminator_optimizer.variables)
        return variables + [v for v in extra if id(v) not in seen]

    def _all_variables(self) -> list:
        groups = [
            super().trainable_variables,
            self.non_trainable_variables,
            self.metrics_variables,
        ]
        if self.optimizer is not None:
            groups.append(self.optimizer.variables)
        seen, out = set(), []
        for v in (v for group in groups for v in group):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        return out

    def train_step(self, *args: Any) -> Any:
        """Keras's step for ``gamma = 0``; otherwise the min-max step below.

        Accepts ``(data)`` (TensorFlow, PyTorch) and the stateless JAX
        signature ``(state, data)``.
        """
        if self.gamma == 0:
            return super().train_step(*args)
        if backend_name() == "jax":
            state, data = args
            return stateless_train_step(self, state, lambda: self._min_max_step(data))
        (data,) = args
        return self._min_max_step(data)

    def _discriminator_loss(self, fake: Any, training: bool) -> Any:
        """The discriminator's loss, uniform prior samples against ``fake``
        (this replica's share)."""
        real = keras.random.uniform(
            ops.shape(fake), dtype=fake.dtype, seed=self.seed_generator
        )
        return self._batch_mean(
            ops.softplus(-as_float(self.discriminator(real, training=training)))
        ) + self._batch_mean(
            ops.softplus(as_float(self.discriminator(fake, training=training)))
        )

    def _min_max_step(self, data: Any) -> dict:
        """One encoder step on the DIM loss, then one discriminator step.

        Each player is differentiated with ``variable_gradients`` (one small
        piece per backend) and moved by its own optimizer.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        everything = self._all_variables()
        weights = self.trainable_variables

        def encoder_loss():
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight, training=True)
            return self.optimizer.scale_loss(loss), (loss, y_pred)

        _, (loss, y_pred), grads = variable_gradients(encoder_loss, weights, everything)
        apply_gradients(self.optimizer, grads, weights)
        self._loss_tracker.update_state(
            _distribute.unscale_for_replicas(loss), sample_weight=_batch_size(x)
        )

        fake = ops.stop_gradient(y_pred)
        d_weights = self.discriminator.trainable_variables
        d_optimizer = self.discriminator_optimizer

        def discriminator_step_loss():
            d_loss = self._discriminator_loss(fake, training=True)
            return d_optimizer.scale_loss(d_loss), d_loss

        _, d_loss, grads = variable_gradients(
            discriminator_step_loss, d_weights, self._all_variables()
        )
        apply_gradients(d_optimizer, grads, d_weights)
        self.discriminator_tracker.update_state(
            _distribute.unscale_for_replicas(d_loss)
        )
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self) -> dict:
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
                "local_negatives": self.local_negatives,
                "synchronized": self.synchronized,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(
        cls, config: dict, custom_objects: dict | None = None
    ) -> DeepInfoMax:
        return cls(**deserialize_sub_objects(config, ("encoder",), custom_objects))
