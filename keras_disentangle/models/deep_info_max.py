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
    computes_on_cpu,
    differentiable_input_gradient,
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

__all__ = ["DeepInfoMax", "MI1x1ConvNet"]

_register = keras.saving.register_keras_serializable(package="keras_disentangle")

CRITICS = ("projection", "reference")


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

    def call(self, x, training=None):
        return self.out(self.hidden(x)) + self.shortcut(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


@_register
class MI1x1ConvNet(keras.layers.Layer):
    """The reference critic of Deep InfoMax: a residual 1x1 convolution.

    A Keras port of rdevon/DIM's ``MI1x1ConvNet``
    (``cortex_DIM/nn_modules/mi_networks.py`` lines 68-120):

    ``h = LayerNorm(W2 relu(BatchNorm(W1 x)) + b2 + Ws x)``

    on the last axis, so that on a ``(N, L, C)`` or ``(N, H, W, C)`` map it
    is a 1x1 convolution and on a ``(N, C)`` vector a dense block. ``W1`` has
    no bias; BatchNorm and LayerNorm use PyTorch's ``epsilon=1e-5`` and
    momentum (Keras ``momentum=0.9``). The shortcut ``Ws`` starts as a
    noisy identity, as the reference's (lines 99-104): entries uniform in
    ``[-0.01, 0.01]`` with ``Ws[i, i] = 1`` for ``i < C``, when
    ``units >= C``; with ``units < C`` (no identity exists) the shortcut
    keeps the default Glorot initialisation (the reference keeps PyTorch's
    default there).

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle``.

    Args:
        units: the output width, an int >= 1.
        **kwargs: passed to ``keras.layers.Layer``.

    Example:

        >>> import numpy as np
        >>> layer = MI1x1ConvNet(4)
        >>> tuple(layer(np.zeros((2, 5, 3), "float32")).shape)
        (2, 5, 4)

    References:
        Hjelm et al., ICLR 2019; github.com/rdevon/DIM.
    """

    def __init__(self, units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.hidden = keras.layers.Dense(units, use_bias=False, name="hidden")
        self.batch_norm = keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-5, name="batch_norm"
        )
        self.out = keras.layers.Dense(units, name="out")
        self.shortcut = keras.layers.Dense(
            units,
            use_bias=False,
            kernel_initializer=keras.initializers.RandomUniform(-0.01, 0.01),
            name="shortcut",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="layer_norm"
        )

    def build(self, input_shape):
        inner = tuple(input_shape[:-1]) + (self.units,)
        self.hidden.build(input_shape)
        self.batch_norm.build(inner)
        self.out.build(inner)
        self.shortcut.build(input_shape)
        self.layer_norm.build(inner)
        channels = input_shape[-1]
        if self.units >= channels:
            kernel = self.shortcut.kernel
            eye = ops.eye(channels, self.units, dtype=kernel.dtype)
            kernel.assign(ops.where(eye > 0, eye, kernel.value))
        else:
            kernel = self.shortcut.kernel
            kernel.assign(
                keras.initializers.GlorotUniform()(tuple(kernel.shape), kernel.dtype)
            )

    def call(self, x, training=None):
        h = keras.activations.relu(self.batch_norm(self.hidden(x), training=training))
        return self.layer_norm(self.out(h) + self.shortcut(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"units": self.units})
        return config


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


# Scores per row block of the estimates beyond one block
# (``estimators.bilinear_mutual_information``). On the CPU 2^22: with
# ``L`` positions a row holds ``N L`` scores, and the KL hinges' 2^19 leaves
# blocks of a few rows whose thin products are slow (N = 1,024, L = 49, one
# value + gradient over one block: 2^19 gave 0.5-4.3x, 2^22 0.3-1.6x on
# JAX / TensorFlow / PyTorch); 2^24 (64 MiB) on an accelerator.
_CPU_BLOCK_ELEMENTS = 2**22
_DEVICE_BLOCK_ELEMENTS = 2**24


def _block_elements(x: Any) -> int:
    """Scores per row block on the device that computes ``x``."""
    return _CPU_BLOCK_ELEMENTS if computes_on_cpu(x) else _DEVICE_BLOCK_ELEMENTS


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

    **Against the reference code** (rdevon/DIM, commit ``bac4765``): the
    JSD values and gradients, the DV gradients, InfoNCE over all positions
    and the prior-matching losses agree with it to 1e-5 on the same scores.
    Two differences remain, both stated where they live:

    - DV's value: ``donsker_varadhan_loss``
      (``cortex_DIM/functions/dim_losses.py`` line 148) divides the
      negatives' sum of ``N (N - 1) L`` terms by ``N (N - 1)``, so its
      estimate is this one minus ``log L`` for a map of ``L > 1`` positions
      (same gradient); the package keeps the true log-mean-exp, the DV bound.
    - InfoNCE's self-scores: ``infonce_loss`` (same file, line 96) keeps an
      image's own ``L`` positions in the softmax with score ``-10``; they are
      left out by default and put back with ``nce_self_score=-10.0``.

    ``critic="projection"`` (default) scores with the package's residual
    projections ``W2 relu(W1 x) + Ws x``; ``critic="reference"`` with the
    reference's ``MI1x1ConvNet`` (BatchNorm in the block, a final
    LayerNorm, the shortcut started at a noisy identity; see
    ``MI1x1ConvNet``).

    With ``gamma > 0`` a discriminator ``D`` learns to tell ``y`` from
    samples of the uniform prior on ``[0, 1]^D`` with its own optimizer,
    one step after each encoder step (a real alternating min-max, written
    for the TensorFlow, JAX and PyTorch trainers), while the encoder
    minimises the non-saturating ``L_prior = mean softplus(-D(y))``; put a
    sigmoid on the encoder's output for the prior to be reachable. The
    discriminator's variables are not among the model's
    ``trainable_variables``. Under the ``"mixed_float16"`` policy the
    discriminator's optimizer gets loss scaling as the main one does.
    The discriminator's loss carries the reference's gradient penalty
    (Mescheder et al. 2018; rdevon/DIM ``cortex_DIM/models/discriminator.py``
    lines 47-49 and ``cortex_DIM/functions/gradient_penalty.py`` line 40):

    ``L_D = mean softplus(-D(p)) + mean softplus(D(y))
    + gradient_penalty * (E_p ||grad_x D(x)||^2 + E_y ||grad_x D(x)||^2) / 2``

    with ``p`` the prior samples and ``y`` the encoder's (gradient-stopped)
    vectors; the input gradient is differentiated again with respect to
    ``D``'s weights on every backend (``_backend.differentiable_input_gradient``).
    ``gradient_penalty=0`` turns it off (the package's form before 0.3).

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

    **Memory.** Each term's ``n x N x L`` scores (``n`` this device's rows)
    are formed and differentiated whole up to ``2^24`` scores; beyond, in
    blocks of rows of ``2^22`` scores on the CPU and ``2^24`` on an
    accelerator, each block's value and gradient computed together
    (``estimators.bilinear_mutual_information``): memory ``O(b N L)`` for a
    block of ``b`` rows, not ``O(n N L)``, on every estimator ("dv" with
    one more pass without gradient for its global log-sum-exp), also under
    a ``tf.distribute`` strategy, where a replica's batch size is only
    known at run time (the choice is made then).

    ``predict`` returns the encoder's global vectors. Logs show ``loss`` and
    the terms ``global_mi``, ``local_mi`` (the estimates, in nats) and, with
    ``gamma > 0``, ``prior_loss``, ``discriminator_loss`` (penalty included)
    and ``gradient_penalty``. The model and
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
        critic: ``"projection"`` (default) or ``"reference"`` (rdevon/DIM's
            ``MI1x1ConvNet``).
        gradient_penalty: weight of the discriminator's gradient penalty,
            >= 0 (default 1.0, the reference's; ``gamma > 0`` only).
        nce_self_score: None (default) or the score of an image's own
            positions in the InfoNCE softmax (the reference's ``-10.0``;
            ``estimator="nce"`` with ``"all_positions"`` only).
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
        github.com/rdevon/DIM. Mescheder, Geiger & Nowozin, "Which training
        methods for GANs do actually converge?", ICML 2018 (the penalty).
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
        critic: str = "projection",
        gradient_penalty: float = 1.0,
        nce_self_score: float | None = None,
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
        self.critic = check_choice("critic", critic, CRITICS)
        self.gradient_penalty = check_non_negative("gradient_penalty", gradient_penalty)
        self.nce_self_score = estimators.check_self_score(
            nce_self_score, "nce_self_score"
        )
        if self.nce_self_score is not None and local_negatives == "same_position":
            raise ValueError(
                "Invalid value for argument nce_self_score: expected None with "
                "local_negatives='same_position' (the reference's self-scores "
                "belong to the 'all_positions' form). "
                f"Received: nce_self_score={nce_self_score!r}"
            )
        self.local_layer = local_layer
        self.encoder = encoder
        self.feature_extractor = _feature_extractor(encoder, local_layer)
        local_shape, global_shape = (
            tuple(o.shape) for o in self.feature_extractor.outputs
        )
        self._local_shape, self._global_dim = local_shape, global_shape[-1]

        make = _Projection if self.critic == "projection" else MI1x1ConvNet
        if self.alpha > 0:
            self.global_critic_y = make(self.units, name="global_critic_y")
            self.global_critic_y.build((None, self._global_dim))
            self.global_critic_map = make(self.units, name="global_critic_map")
            self.global_critic_map.build((None, math.prod(local_shape[1:])))
        if self.beta > 0:
            self.local_critic_y = make(self.units, name="local_critic_y")
            self.local_critic_y.build((None, self._global_dim))
            self.local_critic_map = make(self.units, name="local_critic_map")
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
            self.penalty_tracker = keras.metrics.Mean(name="gradient_penalty")
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

    def mutual_information_terms(
        self, local: Any, glob: Any, training: bool | None = None
    ) -> tuple[Any, Any]:
        """The global and local estimates (scalars; 0 for a zero weight).

        Without a distribution strategy they are the estimates on the batch;
        under one, each replica's share (they add up over the replicas to
        the per-replica mean, or with ``synchronized=True`` to the global
        batch's estimate).

        Args:
            local: ``(N, L, C)`` local feature maps.
            glob: ``(N, D)`` global vectors.
            training: passed to the critics (the reference critic's
                BatchNorm uses the batch's statistics when True).

        Returns:
            A tuple ``(global_mi, local_mi)`` of scalar tensors.
        """
        rows, columns = [], []
        if self.alpha > 0:
            flat = ops.reshape(local, (-1, math.prod(self._local_shape[1:])))
            rows.append(as_float(self.global_critic_y(glob, training=training)))
            columns.append(as_float(self.global_critic_map(flat, training=training)))
        if self.beta > 0:
            rows.append(as_float(self.local_critic_y(glob, training=training)))
            columns.append(as_float(self.local_critic_map(local, training=training)))
        offset, gather = 0, None
        if self.synchronized:
            offset, gather, columns = self._gather_columns(rows[0], columns)
        estimates = []
        for y, m in zip(rows, columns, strict=True):
            value = estimators.bilinear_mutual_information(
                y,
                m,
                self.estimator,
                offset=offset,
                gather=gather,
                negatives=self.local_negatives,
                self_score=self.nce_self_score,
                block_elements=_block_elements(y),
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
        global_mi, local_mi = self.mutual_information_terms(
            local, glob, training=training
        )
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
                d_loss, penalty = self._discriminator_loss(
                    ops.stop_gradient(glob), False
                )
                self.discriminator_tracker.update_state(unscale(d_loss))
                self.penalty_tracker.update_state(unscale(penalty))
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

    def prior_samples(self, fake: Any) -> Any:
        """Samples of the uniform prior on ``[0, 1]^D``, shaped like ``fake``."""
        return keras.random.uniform(
            ops.shape(fake), dtype=fake.dtype, seed=self.seed_generator
        )

    def input_gradient_norms(self, samples: Any, training: bool = True) -> Any:
        """``||grad_x D(x)||^2`` of each sample ``x``: a ``(N,)`` tensor.

        The gradient stays differentiable with respect to the
        discriminator's weights (``_backend.differentiable_input_gradient``),
        so a penalty built from it trains them. The discriminator treats
        samples independently, so the gradient of ``sum_i D(x_i)`` holds
        each sample's own gradient, as the reference's ``grad_outputs=ones``
        (``cortex_DIM/functions/gradient_penalty.py`` lines 24-40).

        Args:
            samples: ``(N, D)`` points.
            training: passed to the discriminator.

        Returns:
            A float tensor ``(N,)``.
        """

        def total(x: Any) -> Any:
            return ops.sum(as_float(self.discriminator(x, training=training)))

        grad = differentiable_input_gradient(total, samples)
        return ops.sum(ops.square(as_float(grad)), axis=-1)

    def _discriminator_loss(self, fake: Any, training: bool) -> tuple[Any, Any]:
        """The discriminator's loss, uniform prior samples against ``fake``,
        with its gradient penalty; and the penalty (this replica's shares)."""
        real = self.prior_samples(fake)
        loss = self._batch_mean(
            ops.softplus(-as_float(self.discriminator(real, training=training)))
        ) + self._batch_mean(
            ops.softplus(as_float(self.discriminator(fake, training=training)))
        )
        if self.gradient_penalty == 0:
            return loss, ops.zeros_like(loss)
        penalty = (
            0.5
            * self.gradient_penalty
            * (
                self._batch_mean(self.input_gradient_norms(real, training))
                + self._batch_mean(self.input_gradient_norms(fake, training))
            )
        )
        return loss + penalty, penalty

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
            d_loss, penalty = self._discriminator_loss(fake, training=True)
            return d_optimizer.scale_loss(d_loss), (d_loss, penalty)

        _, (d_loss, penalty), grads = variable_gradients(
            discriminator_step_loss, d_weights, self._all_variables()
        )
        apply_gradients(d_optimizer, grads, d_weights)
        self.discriminator_tracker.update_state(
            _distribute.unscale_for_replicas(d_loss)
        )
        self.penalty_tracker.update_state(_distribute.unscale_for_replicas(penalty))
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
                "critic": self.critic,
                "gradient_penalty": self.gradient_penalty,
                "nce_self_score": self.nce_self_score,
            }
        )
        return config

    @classmethod
    def from_config(
        cls, config: dict, custom_objects: dict | None = None
    ) -> DeepInfoMax:
        return cls(**deserialize_sub_objects(config, ("encoder",), custom_objects))
