"""IMSAT: information-maximising self-augmented training (Hu et al. 2017)."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from keras_disentangle import information
from keras_disentangle._backend import assert_tf_backend
from keras_disentangle._validation import (
    check_choice,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from keras_disentangle.models._serialization import deserialize_sub_objects

__all__ = ["IMSAT", "knn_distance"]

_INPUT_KEYS = ("x", "knn_distance")


def knn_distance(x, n_neighbors: int = 10, batch_size: int = 512) -> np.ndarray:
    """Euclidean distance from every sample to its ``n_neighbors``-th neighbour.

    Exact, by chunked matrix products (``|a - b|^2 = |a|^2 - 2 a.b + |b|^2``),
    ``batch_size`` rows at a time, so memory is ``O(batch_size * N)``; the
    sample itself is not its own neighbour (another sample equal to it is, at
    distance 0). Samples are flattened over all axes but the first.

    Args:
        x: array ``(N, ...)`` with ``N > n_neighbors``.
        n_neighbors: which neighbour (IMSAT's default: the 10th).
        batch_size: rows per chunk.

    Returns:
        float32 array ``(N,)``.

    Example:

        >>> import numpy as np
        >>> knn_distance(np.array([[0.0], [1.0], [3.0]]), n_neighbors=1).tolist()
        [1.0, 1.0, 2.0]
    """
    n_neighbors = check_positive_int("n_neighbors", n_neighbors)
    batch_size = check_positive_int("batch_size", batch_size)
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(len(x), -1)
    n = len(x)
    if n <= n_neighbors:
        raise ValueError(
            "Invalid value for argument x: expected more samples than "
            f"n_neighbors={n_neighbors}. Received: x with {n} samples"
        )
    sq = np.sum(x**2, axis=1)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        d2 = sq[start:stop, None] - 2.0 * x[start:stop] @ x.T + sq[None, :]
        d2[np.arange(stop - start), np.arange(start, stop)] = np.inf  # self
        kth = np.partition(d2, n_neighbors - 1, axis=1)[:, n_neighbors - 1]
        out[start:stop] = np.sqrt(np.maximum(kth, 0.0))
    return out.astype(np.float32)


def _unit(d):
    """Rescales every sample of ``d`` to unit L2 norm (over non-batch axes)."""
    axes = tuple(range(1, len(d.shape)))
    d = d / (1e-12 + ops.max(ops.abs(d), axis=axes, keepdims=True))
    return d / ops.sqrt(1e-6 + ops.sum(ops.square(d), axis=axes, keepdims=True))


def _check_optional_positive(name, value):
    return None if value is None else check_positive(name, value)


@keras.saving.register_keras_serializable(package="keras_disentangle")
class IMSAT(keras.Model):
    """Information-maximising self-augmented training for clustering or hashing.

    The encoder maps inputs to logits; IMSAT reads them as a softmax over
    ``n_clusters`` clusters or as ``n_bits`` independent sigmoid bits, and
    trains it without labels to be invariant to small perturbations of the
    input (self-augmented training, ``R_SAT``) while maximising the mutual
    information between inputs and outputs:

    - clustering: ``L = R_SAT + lam * (H(Y|X) - mu * H(Y))``;
    - hashing: ``L = R_SAT + lam * (H(Y|X) - H(Y) + sum_{i != j} I(y_i; y_j))``

    with ``H(Y|X)`` the batch mean of the per-sample entropies, ``H(Y)`` the
    entropy of the batch-mean prediction (for bits: the sum of the bits'
    marginal Bernoulli entropies) and ``I(y_i; y_j)`` the mutual information
    of two bits from their batch joint (``keras_disentangle.information``).
    The pair sum runs over ordered pairs, i.e. twice the sum over unordered
    pairs, as the authors' ``imsat_hash.py`` computes it. Any loss of the
    encoder's layers (``self.losses``: regularizers) is added.

    ``R_SAT = 1/N sum_n KL(p(y|x_n) || p(y|T(x_n)))``, categorical or summed
    per-bit Bernoulli KL, with the clean prediction held constant
    (``stop_gradient``). ``T`` is one of:

    - ``"vat"``: virtual adversarial perturbation, ``T(x) = x + eps * g/|g|``
      with ``g`` the input gradient of ``KL(p(y|x) || p(y|x + xi d))`` for a
      random unit direction ``d`` (one power iteration);
    - ``"rpt"``: ``T(x) = x + eps * d`` with ``d`` a random unit direction;
    - a callable ``x -> T(x)``: your own augmentation (to save and reload
      the model, register it with ``keras.saving.register_keras_serializable``).

    The radius ``eps`` is per sample by default, ``eps_scale`` times the
    distance from the sample to its ``n_neighbors``-th nearest neighbour in
    the training data. Those distances are computed once, before training, by
    ``model.knn_inputs(x)``, which returns the dict
    ``{"x": x, "knn_distance": d}`` to pass to ``fit``/``evaluate`` in place
    of ``x``: Keras then batches and shuffles the distances with the samples,
    also for a ``tf.data.Dataset`` of such dicts. With a fixed ``epsilon``
    the model trains on plain ``x``.

    Perturbed inputs go through the encoder with ``stateless_call``, so they
    use batch statistics in BatchNormalization (as the clean training pass
    does) but only the clean pass updates the moving statistics, as in the
    authors' code. ``"vat"`` needs an input gradient inside the loss and is
    implemented for the TensorFlow backend only; ``"rpt"`` and callables use
    ``keras.ops`` only. Everything goes through ``compute_loss``, so Keras's
    own ``train_step`` (mixed precision, distribution, metrics) is kept.

    ``model(x)`` and ``predict_proba(x)`` give the probabilities; ``predict``
    gives cluster ids (``int64``) or ``{0, 1}`` codes (``int32``). IMSAT is
    unsupervised: ``y`` is ignored and ``compile(loss=...)`` raises. The loss
    terms are logged as ``r_sat``, ``conditional_entropy``, ``marginal_entropy``
    (and ``pair_mutual_information`` for bits).

    Args:
        encoder: a Keras model or layer mapping inputs to ``n_clusters`` or
            ``n_bits`` logits (no final activation).
        n_clusters: number of clusters (softmax head). Exactly one of
            ``n_clusters`` and ``n_bits``.
        n_bits: number of hash bits (sigmoid head).
        augmentation: ``"vat"``, ``"rpt"`` or a callable ``x -> T(x)``.
        lam: weight ``lambda`` of the information term (authors: 0.1).
        mu: weight of ``H(Y)`` for clustering (authors: 4); unused for bits.
        xi: finite-difference step of the VAT power iteration (authors: 10).
        epsilon: a fixed perturbation radius for every sample; ``None``
            (default) for the per-sample radius.
        eps_scale: the per-sample radius is ``eps_scale`` times the
            neighbour distance (authors: 0.25).
        n_neighbors: which neighbour ``knn_inputs`` measures (authors: 10th).
        seed: int seed of the random directions.
        **kwargs: passed to ``keras.Model`` (``name``...).

    Example:

        >>> import keras, numpy as np
        >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model = IMSAT(encoder, n_clusters=3, augmentation="rpt", seed=0)
        >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        >>> model.compile(optimizer="adam")
        >>> history = model.fit(model.knn_inputs(x), epochs=1, verbose=0)
        >>> model.predict(x, verbose=0).shape, model.predict_proba(x, verbose=0).shape
        ((32,), (32, 3))

    References:
        Hu, Miyato, Tokui, Matsumoto & Sugiyama, "Learning Discrete
        Representations via Information Maximizing Self-Augmented Training",
        ICML 2017; reference code github.com/weihua916/imsat.
    """

    def __init__(
        self,
        encoder: keras.layers.Layer,
        n_clusters: int | None = None,
        n_bits: int | None = None,
        augmentation: str | Callable = "vat",
        lam: float = 0.1,
        mu: float = 4.0,
        xi: float = 10.0,
        epsilon: float | None = None,
        eps_scale: float = 0.25,
        n_neighbors: int = 10,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(
                "Invalid value for argument encoder: expected a Keras model or "
                f"layer. Received: encoder={encoder!r}"
            )
        if (n_clusters is None) == (n_bits is None):
            raise ValueError(
                "Invalid values for arguments n_clusters and n_bits: expected "
                "exactly one of them (n_clusters for clustering, n_bits for "
                f"hashing). Received: n_clusters={n_clusters!r}, n_bits={n_bits!r}"
            )
        if n_clusters is not None:
            n_clusters = check_positive_int("n_clusters", n_clusters, minimum=2)
        if n_bits is not None:
            n_bits = check_positive_int("n_bits", n_bits)
        if not callable(augmentation):
            check_choice("augmentation", augmentation, ("vat", "rpt"))
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
        ):
            raise ValueError(
                "Invalid value for argument seed: expected an integer or None. "
                f"Received: seed={seed!r}"
            )
        self.encoder = encoder
        self.n_clusters = n_clusters
        self.n_bits = n_bits
        self.augmentation = augmentation
        if augmentation == "vat":
            # Fail at construction, not in the first step of fit.
            assert_tf_backend('IMSAT(augmentation="vat")')
        self.lam = check_non_negative("lam", lam)
        self.mu = check_non_negative("mu", mu)
        self.xi = check_positive("xi", xi)
        self.epsilon = _check_optional_positive("epsilon", epsilon)
        self.eps_scale = check_positive("eps_scale", eps_scale)
        self.n_neighbors = check_positive_int("n_neighbors", n_neighbors)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.r_sat_tracker = keras.metrics.Mean(name="r_sat")
        self.conditional_entropy_tracker = keras.metrics.Mean(
            name="conditional_entropy"
        )
        self.marginal_entropy_tracker = keras.metrics.Mean(name="marginal_entropy")
        self.pair_mi_tracker = (
            keras.metrics.Mean(name="pair_mutual_information") if n_bits else None
        )

    @property
    def n_outputs(self) -> int:
        """``n_clusters`` or ``n_bits``."""
        return self.n_clusters or self.n_bits

    # ----------------------------------------------------------------- inputs

    def knn_inputs(self, x, batch_size: int = 512) -> dict:
        """``{"x": x, "knn_distance": d}`` for ``fit`` with per-sample radii.

        ``d`` is the distance of every sample to its ``n_neighbors``-th
        neighbour in ``x`` (``knn_distance``); the step multiplies it by
        ``eps_scale``, so ``eps_scale`` can be tuned without recomputing.

        Args:
            x: the training samples, array ``(N, ...)``.
            batch_size: rows per chunk of the exact neighbour search.

        Returns:
            A dict of NumPy arrays.
        """
        x = np.asarray(x)
        return {
            "x": x,
            "knn_distance": knn_distance(x, self.n_neighbors, batch_size),
        }

    @staticmethod
    def _unpack(inputs):
        if isinstance(inputs, dict):
            unknown = set(inputs) - set(_INPUT_KEYS)
            if unknown or "x" not in inputs:
                raise ValueError(
                    "Invalid value for argument inputs: expected an array or a "
                    f"dict with keys {list(_INPUT_KEYS)} (see IMSAT.knn_inputs). "
                    f"Received: dict with keys {sorted(inputs)}"
                )
            return inputs["x"], inputs.get("knn_distance")
        return inputs, None

    # ----------------------------------------------------------------- model

    def _activate(self, logits):
        if logits.shape[-1] is not None and logits.shape[-1] != self.n_outputs:
            kind = "n_clusters" if self.n_clusters else "n_bits"
            raise ValueError(
                f"Invalid value for argument encoder: expected {self.n_outputs} "
                f"output logits ({kind}={self.n_outputs}). Received: encoder "
                f"output shape {tuple(logits.shape)}"
            )
        logits = ops.cast(logits, "float32")
        if self.n_clusters:
            return ops.softmax(logits, axis=-1)
        return ops.sigmoid(logits)

    def call(self, inputs, training=None):
        x, _ = self._unpack(inputs)
        return self._activate(self.encoder(x, training=training))

    def _perturbed_predict(self, x, training):
        """A forward pass that leaves every state (BN statistics...) unchanged."""
        logits, _ = self.encoder.stateless_call(
            self.encoder.trainable_variables,
            self.encoder.non_trainable_variables,
            x,
            training=training,
        )
        return self._activate(logits)

    def _divergence(self, p, q):
        if self.n_clusters:
            return information.categorical_kl(p, q)
        return information.bernoulli_kl(p, q)

    def _radius(self, x, knn):
        if self.epsilon is not None:
            return self.epsilon
        if knn is None:
            raise ValueError(
                "Invalid value for argument x: IMSAT with epsilon=None needs the "
                "per-sample neighbour distances; fit on model.knn_inputs(x) "
                '(a dict {"x": x, "knn_distance": d}) or give a fixed epsilon. '
                "Received: x without knn_distance"
            )
        knn = ops.cast(knn, x.dtype)
        return self.eps_scale * ops.reshape(knn, (-1,) + (1,) * (len(x.shape) - 1))

    def _augment(self, x, knn, target, training):
        if callable(self.augmentation):
            return self.augmentation(x)
        d = _unit(keras.random.normal(ops.shape(x), seed=self.seed_generator))
        if self.augmentation == "vat":
            d = self._adversarial_direction(x, d, target, training)
        return x + self._radius(x, knn) * d

    def _adversarial_direction(self, x, d, target, training):
        assert_tf_backend('IMSAT(augmentation="vat")')
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(d)
            q = self._perturbed_predict(x + self.xi * d, training)
            kl = ops.mean(self._divergence(target, q))
        grad = tape.gradient(kl, d)
        if grad is None:  # the encoder ignores its input
            return d
        return _unit(ops.stop_gradient(grad))

    # ------------------------------------------------------------------ loss

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """``keras.Model.compile`` without ``loss``: IMSAT brings its own."""
        if loss is not None:
            raise ValueError(
                "Invalid value for argument loss: IMSAT computes its own loss, "
                f"expected None. Received: loss={loss!r}"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        # Keras skips a custom compile() on loading unless this is overridden.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if getattr(self, "optimizer", None) is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        del y  # unsupervised
        if sample_weight is not None:
            raise ValueError(
                "Invalid value for argument sample_weight: IMSAT's batch "
                "entropies are unweighted, expected None. Received: "
                "a sample_weight"
            )
        # Read the encoder's losses before the perturbed passes: each call of
        # the encoder starts by clearing them.
        extra = self.losses
        x, knn = self._unpack(x)
        x = ops.convert_to_tensor(x)
        if not keras.backend.standardize_dtype(x.dtype).startswith("float"):
            x = ops.cast(x, "float32")
        p = ops.cast(y_pred, "float32")
        target = ops.stop_gradient(p)
        q = self._perturbed_predict(self._augment(x, knn, target, training), training)
        r_sat = ops.mean(self._divergence(target, q))
        if self.n_clusters:
            cond = information.conditional_entropy(p)
            marg = information.marginal_entropy(p)
            info = cond - self.mu * marg
        else:
            cond = information.bit_conditional_entropy(p)
            marg = information.bit_marginal_entropy(p)
            pair_mi = 2.0 * information.bit_pair_mutual_information(p)
            info = cond - marg + pair_mi
            self.pair_mi_tracker.update_state(pair_mi)
        self.r_sat_tracker.update_state(r_sat)
        self.conditional_entropy_tracker.update_state(cond)
        self.marginal_entropy_tracker.update_state(marg)
        loss = r_sat + self.lam * info
        if extra:
            loss = loss + ops.cast(ops.sum(ops.stack(extra)), loss.dtype)
        return loss

    # ------------------------------------------------------------ prediction

    def predict_proba(self, x, **kwargs) -> np.ndarray:
        """Cluster probabilities ``(N, n_clusters)`` or bit probabilities.

        Args:
            x: inputs (an array, a ``knn_inputs`` dict or a dataset).
            **kwargs: as ``keras.Model.predict`` (``batch_size``, ``verbose``).

        Returns:
            float32 array.
        """
        return super().predict(x, **kwargs)

    def predict(self, x, **kwargs) -> np.ndarray:
        """Cluster ids ``(N,)`` or ``{0, 1}`` codes ``(N, n_bits)``.

        Args:
            x: inputs (an array, a ``knn_inputs`` dict or a dataset).
            **kwargs: as ``keras.Model.predict`` (``batch_size``, ``verbose``).

        Returns:
            int64 cluster ids or int32 codes.
        """
        p = self.predict_proba(x, **kwargs)
        if self.n_clusters:
            return np.argmax(p, axis=-1)
        return (p > 0.5).astype(np.int32)

    # ---------------------------------------------------------- serialising

    def get_config(self) -> dict:
        config = super().get_config()
        augmentation = self.augmentation
        if callable(augmentation):
            augmentation = keras.saving.serialize_keras_object(augmentation)
        config.update(
            {
                "encoder": keras.saving.serialize_keras_object(self.encoder),
                "n_clusters": self.n_clusters,
                "n_bits": self.n_bits,
                "augmentation": augmentation,
                "lam": self.lam,
                "mu": self.mu,
                "xi": self.xi,
                "epsilon": self.epsilon,
                "eps_scale": self.eps_scale,
                "n_neighbors": self.n_neighbors,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        keys = ("encoder", "augmentation")
        return cls(**deserialize_sub_objects(config, keys, custom_objects))
