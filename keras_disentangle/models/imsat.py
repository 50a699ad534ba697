"""IMSAT: information-maximising self-augmented training (Hu et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_disentangle import information
from keras_disentangle._backend import value_and_gradient
from keras_disentangle._distribute import replica_sum, scale_for_replicas
from keras_disentangle._validation import (
    check_bool,
    check_choice,
    check_non_negative,
    check_positive,
    check_positive_int,
    check_seed,
)
from keras_disentangle.models._serialization import deserialize_sub_objects

__all__ = ["IMSAT", "fit_imsat", "imsat_mlp", "knn_distance"]

_INPUT_KEYS = ("x", "knn_distance")
_SEED_STATE_KEY = "seed_generator_state"
_TINY = 1e-12

# The authors' neighbour: calculate_distance.py sets the sample's own distance
# to 1000, sorts, and keeps sorted_dist[10], the 11th-nearest other sample.
AUTHORS_NEIGHBOR = 11


def knn_distance(x, n_neighbors: int = AUTHORS_NEIGHBOR) -> np.ndarray:
    """Euclidean distance from every sample to its ``n_neighbors``-th neighbour.

    The sample itself is not its own neighbour (another sample equal to it
    is, at distance 0); samples are flattened over all axes but the first.
    Exact, by scikit-learn's brute-force ``NearestNeighbors`` (chunked, so
    memory stays bounded). The default, 11, is the authors' choice: their
    ``calculate_distance.py`` moves the sample itself to the end of the sorted
    distances and keeps ``sorted_dist[10]``, i.e. the 11th-nearest other
    sample (their file is named ``10th_neighbor.txt``).

    Args:
        x: array ``(N, ...)`` with ``N > n_neighbors``, no NaN or infinity.
        n_neighbors: which neighbour, counted from 1 (the nearest other
            sample).

    Returns:
        float32 array ``(N,)``.

    Example:

        >>> import numpy as np
        >>> knn_distance(np.array([[0.0], [1.0], [3.0]]), n_neighbors=1).tolist()
        [1.0, 1.0, 2.0]

    References:
        Hu et al., IMSAT, ICML 2017, section 4.1 (the per-sample radius);
        reference code github.com/weihua916/imsat, ``calculate_distance.py``.
    """
    from sklearn.neighbors import NearestNeighbors

    n_neighbors = check_positive_int("n_neighbors", n_neighbors)
    x = np.asarray(x)
    if x.ndim < 1 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            "Invalid value for argument x: expected a numeric array (N, ...). "
            f"Received: x with dtype {x.dtype} and shape {x.shape}"
        )
    x = x.reshape(len(x), -1)
    if not np.all(np.isfinite(x)):
        raise ValueError(
            "Invalid value for argument x: expected finite values. Received: x "
            "with NaN or infinite entries"
        )
    n = len(x)
    if n <= n_neighbors:
        raise ValueError(
            "Invalid value for argument x: expected more samples than "
            f"n_neighbors={n_neighbors}. Received: x with {n} samples"
        )
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    search = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute").fit(x)
    distances, _ = search.kneighbors()  # without X: a sample is not its own
    return distances[:, n_neighbors - 1].astype(np.float32)


def imsat_mlp(
    input_dim: int,
    n_outputs: int,
    hidden: Sequence[int] = (1200, 1200),
    *,
    weight_scale: float = 0.1,
    head_scale: float = 1e-4,
    seed: int | None = None,
    name: str = "imsat_mlp",
) -> keras.Sequential:
    """The authors' IMSAT encoder: Dense-BatchNorm-ReLU blocks and a linear head.

    ``input_dim -> hidden[0] -> ... -> n_outputs`` logits (no activation),
    initialised as the authors' Chainer code (``imsat_cluster.py``,
    ``imsat_hash.py``): each ``Linear(fan_in, units, wscale=s)`` of Chainer
    1.21 draws its weights from ``N(0, s / fan_in)``, i.e. a standard
    deviation of ``sqrt(s / fan_in)`` (Chainer scales by the square root of
    ``wscale``; chainer/chainer#1806), with ``s = weight_scale = 0.1`` for the
    hidden layers and ``s = head_scale = 1e-4`` for the head (a near-zero
    head: the first predictions are almost uniform); biases start at 0.
    BatchNormalization follows Chainer's defaults: ``epsilon=2e-5`` and
    moving-average decay 0.9 (Keras ``momentum=0.9``), scale 1 and offset 0.
    The authors use ``hidden=(1200, 1200)`` for clustering and ``(400, 400)``
    for 16-bit hashing, on inputs scaled to ``[-1, 1]``.

    Args:
        input_dim: number of input features (flatten images first).
        n_outputs: number of logits: ``n_clusters`` or ``n_bits``.
        hidden: units of the hidden layers (may be empty: a linear model).
        weight_scale: Chainer's ``wscale`` of the hidden layers.
        head_scale: Chainer's ``wscale`` of the head.
        seed: seed of the initial weights (``None``: Keras's global seed).
        name: name of the ``keras.Sequential`` model.

    Returns:
        An unbuilt-free ``keras.Sequential`` (built on ``input_dim``).

    Example:

        >>> encoder = imsat_mlp(64, 10, hidden=(32, 32), seed=0)
        >>> encoder.output_shape
        (None, 10)
        >>> [layer.__class__.__name__ for layer in encoder.layers][:3]
        ['Dense', 'BatchNormalization', 'ReLU']

    References:
        Hu et al., IMSAT, ICML 2017, section 5; reference code
        github.com/weihua916/imsat (``Encoder`` in ``imsat_cluster.py``).
    """
    input_dim = check_positive_int("input_dim", input_dim)
    n_outputs = check_positive_int("n_outputs", n_outputs)
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise ValueError(
            "Invalid value for argument hidden: expected a sequence of "
            f"integers >= 1. Received: hidden={hidden!r}"
        )
    hidden = [check_positive_int("hidden", units) for units in hidden]
    weight_scale = check_positive("weight_scale", weight_scale)
    head_scale = check_positive("head_scale", head_scale)
    seed = check_seed("seed", seed)
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, len(hidden) + 1)

    def initializer(scale, fan_in, i):
        return keras.initializers.RandomNormal(
            stddev=float(np.sqrt(scale / fan_in)),
            seed=None if seed is None else int(seeds[i]),
        )

    layers: list[Any] = [keras.Input((input_dim,))]
    fan_in = input_dim
    for i, units in enumerate(hidden):
        layers += [
            keras.layers.Dense(
                units, kernel_initializer=initializer(weight_scale, fan_in, i)
            ),
            keras.layers.BatchNormalization(momentum=0.9, epsilon=2e-5),
            keras.layers.ReLU(),
        ]
        fan_in = units
    layers.append(
        keras.layers.Dense(
            n_outputs, kernel_initializer=initializer(head_scale, fan_in, len(hidden))
        )
    )
    return keras.Sequential(layers, name=name)


def _unit(d):
    """Rescales every sample of ``d`` to unit L2 norm (over non-batch axes)."""
    axes = tuple(range(1, len(d.shape)))
    d = d / (1e-12 + ops.max(ops.abs(d), axis=axes, keepdims=True))
    return d / ops.sqrt(1e-6 + ops.sum(ops.square(d), axis=axes, keepdims=True))


def _replica_sum_flat(stats: dict) -> dict:
    """``replica_sum`` of a dict of tensors as ONE all-reduce of one vector.

    One collective (and one in the backward pass) of a few numbers: the
    replicas never disagree on the order or the packing of several.
    """
    keys = sorted(stats)
    shapes = [tuple(stats[k].shape) for k in keys]
    flat = ops.concatenate([ops.reshape(stats[k], (-1,)) for k in keys], axis=0)
    flat = replica_sum(flat)
    out, start = {}, 0
    for key, shape in zip(keys, shapes, strict=True):
        size = int(np.prod(shape, dtype=np.int64))
        out[key] = ops.reshape(flat[start : start + size], shape)
        start += size
    return out


def _check_head(n_clusters, n_bits) -> tuple[int | None, int | None]:
    """Exactly one of ``n_clusters`` (>= 2) and ``n_bits`` (>= 1)."""
    if (n_clusters is None) == (n_bits is None):
        raise ValueError(
            "Invalid values for arguments n_clusters and n_bits: expected "
            "exactly one of them (n_clusters for clustering, n_bits for "
            f"hashing). Received: n_clusters={n_clusters!r}, n_bits={n_bits!r}"
        )
    if n_clusters is not None:
        return check_positive_int("n_clusters", n_clusters, minimum=2), None
    return None, check_positive_int("n_bits", n_bits)


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

    with ``H(Y|X) = 1/N sum_n H(p_n)`` the batch mean of the per-sample
    entropies, ``H(Y) = H(pbar)`` the entropy of the batch-mean prediction
    ``pbar = 1/N sum_n p_n`` (for bits: the sum of the bits' marginal
    Bernoulli entropies) and ``I(y_i; y_j)`` the mutual information of two
    bits from their batch joint (``keras_disentangle.information``). The pair
    sum runs over ordered pairs, i.e. twice the sum over unordered pairs, as
    the authors' ``imsat_hash.py`` computes it. Any loss of the encoder's
    layers (``self.losses``: regularizers) is added, as Keras does.

    ``R_SAT = 1/N sum_n KL(p(y|x_n) || p(y|T(x_n)))``, categorical or summed
    per-bit Bernoulli KL, with the clean prediction held constant
    (``stop_gradient``). ``T`` is one of:

    - ``"vat"``: virtual adversarial perturbation, ``T(x) = x + eps * g/|g|``
      with ``g`` the input gradient of ``KL(p(y|x) || p(y|x + xi d))`` at a
      random unit direction ``d`` (one power iteration), taken with
      ``keras_disentangle._backend.value_and_gradient`` on the TensorFlow,
      JAX and PyTorch backends, also inside ``jit_compile``;
    - ``"rpt"``: ``T(x) = x + eps * d`` with ``d`` a random unit direction;
    - a callable ``x -> T(x)``: your own augmentation (to save and reload
      the model, register it with ``keras.saving.register_keras_serializable``).

    The radius ``eps`` is per sample by default, ``eps_scale`` times the
    distance from the sample to its ``n_neighbors``-th nearest other sample
    in the training data (the authors' 11th: ``knn_distance``). Those
    distances are computed once, before training, by ``model.knn_inputs(x)``,
    which returns the dict ``{"x": x, "knn_distance": d}`` to pass to
    ``fit``/``evaluate`` in place of ``x``: Keras then batches and shuffles
    the distances with the samples, also for a ``tf.data.Dataset`` of such
    dicts. With a fixed ``epsilon`` the model trains on plain ``x``.

    Perturbed inputs go through the encoder with ``stateless_call``, so they
    use batch statistics in BatchNormalization (as the clean training pass
    does) but only the clean pass updates the moving statistics, as in the
    authors' code. Everything goes through ``compute_loss``, so Keras's own
    ``train_step`` (mixed precision, distribution, metrics) is kept.

    **Sample weights.** With ``sample_weight`` ``w`` every batch mean above
    is the weighted mean ``sum_n w_n (.) / sum_n w_n`` (``pbar`` included):
    the batch is the weighted empirical distribution, and ``w_n = 0`` leaves
    a sample out. Keras hands ``sample_weight`` to the loss only when ``fit``
    gets a ``y``: pass any ``y`` (IMSAT ignores it),
    ``fit(x, np.zeros(len(x)), sample_weight=w)``.

    **Several devices** (``tf.distribute``; replicas ``r = 1..R`` holding
    slices ``B_r`` of ``n_r`` samples, ``N = sum_r n_r``). The per-sample
    terms are always exact over the global batch: ``R_SAT`` and ``H(Y|X)``
    are ``1/N`` times sums all-reduced over the replicas (not a mean of
    per-replica means, so uneven and empty slices are exact). The batch
    statistic ``H(Y)`` (and the bits' pair joints) depends on
    ``synchronized``:

    - ``synchronized=True``: ``H(pbar)`` with ``pbar = 1/N sum_{n in all B_r}
      p_n`` from the all-reduced sum of ``p`` and the count (for bits also
      ``1/N sum_n p_n p_n^T``, a ``K x K`` sum): the one-device value on the
      global batch, and the same gradient;
    - ``synchronized=False`` (default, as ``BatchNormalization``):
      ``sum_r (n_r / N) H(pbar_r)`` with ``pbar_r`` the mean over the slice
      ``B_r``: each replica's own statistic, weighted by its share of the
      batch (the mean of the per-slice values for equal slices; an empty
      slice counts 0).

    Every replica returns ``L / R`` (Keras's per-replica scaling of every
    loss term), so the optimizer's sum over replicas gives the one-device
    gradient of ``L``; the logged loss and terms are ``L`` and its terms.
    Without a strategy, on JAX (``keras.distribution.DataParallel`` computes
    on the global batch) and on PyTorch both modes are the one-device loss,
    at no extra cost.

    ``model(x)`` and ``predict(x)`` give the probabilities (Keras's
    ``predict`` signature and semantics); ``predict_clusters`` gives cluster
    ids and ``predict_codes`` ``{0, 1}`` codes. IMSAT is unsupervised: ``y``
    is ignored and ``compile(loss=...)`` raises. The loss terms are logged as
    ``r_sat``, ``conditional_entropy``, ``marginal_entropy`` (and
    ``pair_mutual_information`` for bits). The random directions come from a
    ``keras.random.SeedGenerator`` whose state is saved with the model, so
    training resumed from a saved model draws new directions.

    Save with ``model.save("m.keras")``; load with ``import keras_disentangle``
    first (it registers the class), then ``keras.saving.load_model``.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        encoder: a Keras model or layer mapping inputs to ``n_clusters`` or
            ``n_bits`` logits (no final activation); ``imsat_mlp`` builds the
            authors' one.
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
        n_neighbors: which neighbour ``knn_inputs`` measures (authors: the
            11th-nearest other sample).
        synchronized: ``H(Y)`` from the global batch (``True``) or from each
            replica's slice (``False``) under a ``tf.distribute`` strategy.
        seed: seed of the random directions: ``None`` or an integer >= 0.
        **kwargs: passed to ``keras.Model`` (``name``...).

    Example:

        >>> import keras, numpy as np
        >>> encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> model = IMSAT(encoder, n_clusters=3, seed=0)
        >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        >>> model.compile(optimizer="adam")
        >>> history = model.fit(model.knn_inputs(x), epochs=1, verbose=0)
        >>> model.predict(x, verbose=0).shape, model.predict_clusters(x).shape
        ((32, 3), (32,))

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
        n_neighbors: int = AUTHORS_NEIGHBOR,
        synchronized: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        # Every argument is checked before anything is built.
        if not isinstance(encoder, keras.layers.Layer):
            raise ValueError(
                "Invalid value for argument encoder: expected a Keras model or "
                f"layer. Received: encoder={encoder!r}"
            )
        n_clusters, n_bits = _check_head(n_clusters, n_bits)
        if not callable(augmentation):
            check_choice("augmentation", augmentation, ("vat", "rpt"))
        lam = check_non_negative("lam", lam)
        mu = check_non_negative("mu", mu)
        xi = check_positive("xi", xi)
        epsilon = _check_optional_positive("epsilon", epsilon)
        eps_scale = check_positive("eps_scale", eps_scale)
        n_neighbors = check_positive_int("n_neighbors", n_neighbors)
        synchronized = check_bool("synchronized", synchronized)
        seed = check_seed("seed", seed)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.n_clusters = n_clusters
        self.n_bits = n_bits
        self.augmentation = augmentation
        self.lam = lam
        self.mu = mu
        self.xi = xi
        self.epsilon = epsilon
        self.eps_scale = eps_scale
        self.n_neighbors = n_neighbors
        self.synchronized = bool(synchronized)
        self.seed = seed
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
        return int(self.n_clusters or self.n_bits or 0)

    # ----------------------------------------------------------------- inputs

    def knn_inputs(self, x) -> dict:
        """``{"x": x, "knn_distance": d}`` for ``fit`` with per-sample radii.

        ``d`` is the distance of every sample to its ``n_neighbors``-th
        nearest other sample in ``x`` (``knn_distance``); the step multiplies
        it by ``eps_scale``, so ``eps_scale`` can be tuned without
        recomputing.

        Args:
            x: the training samples, array ``(N, ...)``.

        Returns:
            A dict of NumPy arrays.
        """
        x = np.asarray(x)
        return {"x": x, "knn_distance": knn_distance(x, self.n_neighbors)}

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
        """One power iteration: the unit input gradient of the KL at ``xi d``.

        The KL is summed over the samples (not averaged) so that an empty
        replica slice gives 0, not NaN; the direction is normalised per
        sample, so the scale does not matter.
        """

        def divergence(direction):
            q = self._perturbed_predict(x + self.xi * direction, training)
            return ops.sum(self._divergence(target, q))

        _, grad = value_and_gradient(divergence, d)
        if grad is None:  # the encoder ignores its input
            return d
        return _unit(grad)

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

    def _batch_statistics(self, p, weights):
        """The local sums every term is made of, and the batch statistic.

        Returns a dict of sums over this replica's slice: ``count`` (sum of
        the weights), ``p_sum`` and for bits ``pp_sum`` (synchronized) or the
        count-weighted slice statistics ``marginal`` and ``pair`` (per
        replica).
        """
        count = ops.sum(weights)
        wp = p * ops.expand_dims(weights, -1)
        stats = {"count": count}
        if self.synchronized:
            stats["p_sum"] = ops.sum(wp, axis=0)
            if self.n_bits:
                stats["pp_sum"] = ops.matmul(ops.transpose(wp), p)
            return stats
        safe = ops.maximum(count, _TINY)
        mean = ops.sum(wp, axis=0) / safe
        if self.n_clusters:
            stats["marginal"] = count * information.entropy(mean)
        else:
            stats["marginal"] = count * ops.sum(information.bernoulli_entropy(mean))
            second = ops.matmul(ops.transpose(wp), p) / safe
            stats["pair"] = (
                count
                * information.bit_pair_mutual_information_from_moments(mean, second)
            )
        return stats

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        del y  # unsupervised
        # Read the encoder's losses before the perturbed passes: each call of
        # the encoder starts by clearing them.
        extra = list(self.losses)
        x, knn = self._unpack(x)
        x = ops.convert_to_tensor(x)
        if not keras.backend.standardize_dtype(x.dtype).startswith("float"):
            x = ops.cast(x, "float32")
        p = ops.cast(y_pred, "float32")
        if sample_weight is None:
            weights = ops.ones(ops.shape(p)[:1], dtype="float32")
        else:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        target = ops.stop_gradient(p)
        q = self._perturbed_predict(self._augment(x, knn, target, training), training)
        if self.n_clusters:
            per_sample_entropy = information.entropy(p, axis=-1)
        else:
            per_sample_entropy = ops.sum(information.bernoulli_entropy(p), axis=-1)
        stats = self._batch_statistics(p, weights)
        stats["r_sat"] = ops.sum(weights * self._divergence(target, q))
        stats["conditional"] = ops.sum(weights * per_sample_entropy)
        stats = _replica_sum_flat(stats)
        n = ops.maximum(stats["count"], _TINY)
        r_sat = stats["r_sat"] / n
        cond = stats["conditional"] / n
        if self.synchronized:
            mean = stats["p_sum"] / n
            if self.n_clusters:
                marg = information.entropy(mean)
            else:
                marg = ops.sum(information.bernoulli_entropy(mean))
                pair = information.bit_pair_mutual_information_from_moments(
                    mean, stats["pp_sum"] / n
                )
        else:
            marg = stats["marginal"] / n
            if self.n_bits:
                pair = stats["pair"] / n
        if self.n_clusters:
            info = cond - self.mu * marg
        else:
            pair_mi = 2.0 * pair  # ordered pairs, as the authors' code
            info = cond - marg + pair_mi
            if self.pair_mi_tracker is not None:
                self.pair_mi_tracker.update_state(pair_mi)
        self.r_sat_tracker.update_state(r_sat)
        self.conditional_entropy_tracker.update_state(cond)
        self.marginal_entropy_tracker.update_state(marg)
        # L is the same on every replica: each returns L / R (Keras's scaling).
        loss = scale_for_replicas(r_sat + self.lam * info)
        if extra:
            # As Keras's own compute_loss: the sum of self.losses, / R.
            loss = loss + scale_for_replicas(
                ops.cast(ops.sum(ops.stack([ops.sum(v) for v in extra])), loss.dtype)
            )
        return loss

    # ------------------------------------------------------------ prediction

    def _predict_head(self, head, x, batch_size, verbose, steps, callbacks):
        """``predict`` for ``predict_clusters``/``predict_codes`` (silent by
        default); raises unless the model has the ``head`` they need."""
        if getattr(self, head) is None:
            method, other = (
                ("predict_clusters", "predict_codes")
                if head == "n_clusters"
                else ("predict_codes", "predict_clusters")
            )
            raise ValueError(
                f"{method} needs a model with {head}; this one has "
                f"n_clusters={self.n_clusters}, n_bits={self.n_bits}: use "
                f"{other}."
            )
        return self.predict(
            x,
            batch_size=batch_size,
            verbose=0 if verbose == "auto" else verbose,
            steps=steps,
            callbacks=callbacks,
        )

    def predict_clusters(
        self,
        x,
        batch_size: int | None = None,
        verbose="auto",
        steps=None,
        callbacks=None,
    ) -> np.ndarray:
        """Cluster ids ``(N,)``: the argmax of ``predict`` (clustering only).

        Args:
            x: inputs (an array, a ``knn_inputs`` dict or a dataset), as
                ``keras.Model.predict``.
            batch_size: as ``keras.Model.predict``.
            verbose: as ``keras.Model.predict`` (``"auto"``: silent, as this
                is usually called from scoring code; pass 1 for a bar).
            steps: as ``keras.Model.predict``.
            callbacks: as ``keras.Model.predict``.

        Returns:
            int64 array of cluster ids in ``[0, n_clusters)``.
        """
        p = self._predict_head("n_clusters", x, batch_size, verbose, steps, callbacks)
        return np.argmax(p, axis=-1).astype(np.int64)

    def predict_codes(
        self,
        x,
        batch_size: int | None = None,
        verbose="auto",
        steps=None,
        callbacks=None,
    ) -> np.ndarray:
        """Binary codes ``(N, n_bits)``: ``predict(x) > 0.5`` (hashing only).

        Args:
            x: inputs (an array, a ``knn_inputs`` dict or a dataset), as
                ``keras.Model.predict``.
            batch_size: as ``keras.Model.predict``.
            verbose: as ``keras.Model.predict`` (``"auto"``: silent).
            steps: as ``keras.Model.predict``.
            callbacks: as ``keras.Model.predict``.

        Returns:
            int32 array of ``{0, 1}`` codes.
        """
        p = self._predict_head("n_bits", x, batch_size, verbose, steps, callbacks)
        return (p > 0.5).astype(np.int32)

    # ---------------------------------------------------------- serialising

    def save_own_variables(self, store):
        """Saves the model's own variables and the random-number state."""
        super().save_own_variables(store)
        store[_SEED_STATE_KEY] = self.seed_generator.state

    def load_own_variables(self, store):
        """Loads the model's own variables and the random-number state (a
        file saved before the state was saved keeps the fresh state)."""
        keys = list(store.keys())
        if _SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(np.asarray(store[_SEED_STATE_KEY]))
            store = {k: store[k] for k in keys if k != _SEED_STATE_KEY}
        super().load_own_variables(store)

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
                "synchronized": self.synchronized,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        keys = ("encoder", "augmentation")
        return cls(**deserialize_sub_objects(config, keys, custom_objects))


def fit_imsat(
    x,
    *,
    n_clusters: int | None = None,
    n_bits: int | None = None,
    epochs: int = 100,
    n_init: int = 3,
    hidden: Sequence[int] | None = None,
    batch_size: int = 250,
    learning_rate: float = 2e-3,
    seed: int = 0,
    verbose: int = 0,
    **imsat_kwargs,
) -> IMSAT:
    """The authors' IMSAT recipe, with restarts kept by their own objective.

    Trains ``n_init`` models from different initialisations, each the
    authors' way (``imsat_mlp`` encoder, ``IMSAT`` with its defaults, Adam
    with ``learning_rate``, batches of ``batch_size``, ``epochs`` epochs on
    ``model.knn_inputs(x)``), and returns the one whose IMSAT loss on ``x``
    (``model.evaluate``, the objective training minimises, no labels) is the
    lowest: the same rule as ``sklearn.cluster.KMeans(n_init=...)``, which
    keeps the run of lowest inertia. IMSAT's result depends on the
    initialisation (on scikit-learn's 8x8 digits, ten single runs ranged
    from 0.68 to 0.91 clustering accuracy; see the IMSAT page of the
    documentation); the restarts make the recipe dependable.

    Restart ``i`` uses the seed ``SeedSequence(seed).generate_state(n_init)[i]``
    for the encoder's weights, the random directions and, through
    ``keras.utils.set_random_seed`` (which this function calls, changing the
    global seeds of Python, NumPy and the backend), the shuffling.

    Args:
        x: the training samples, array ``(N, d)`` (flatten images first);
            the authors scale them to ``[-1, 1]``.
        n_clusters: number of clusters (softmax head). Exactly one of
            ``n_clusters`` and ``n_bits``.
        n_bits: number of hash bits (sigmoid head).
        epochs: epochs per restart (authors: 50 on MNIST's 70,000 images,
            i.e. 14,000 steps; 100 on the 1,797 to 5,000 bundled samples).
        n_init: number of restarts, >= 1.
        hidden: hidden layers of the encoder; default the authors':
            ``(1200, 1200)`` for clustering, ``(400, 400)`` for hashing.
        batch_size: mini-batch size (authors: 250).
        learning_rate: Adam's learning rate (authors: 0.002).
        seed: an integer >= 0.
        verbose: 0 silent; 1 one line per restart with its objective;
            2 also Keras's progress bar for each epoch.
        **imsat_kwargs: passed to ``IMSAT`` (``augmentation``, ``lam``,
            ``mu``, ...).

    Returns:
        The trained ``IMSAT`` model of the lowest objective; its
        ``restart_objectives`` attribute lists every restart's objective.

    Example:

        >>> import numpy as np
        >>> x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
        >>> model = fit_imsat(x, n_clusters=3, epochs=1, n_init=2, hidden=(8,))
        >>> model.predict_clusters(x).shape, len(model.restart_objectives)
        ((64,), 2)

    References:
        Hu, Miyato, Tokui, Matsumoto & Sugiyama, "Learning Discrete
        Representations via Information Maximizing Self-Augmented Training",
        ICML 2017; reference code github.com/weihua916/imsat
        (``imsat_cluster.py``, ``imsat_hash.py``).
    """
    n_clusters, n_bits = _check_head(n_clusters, n_bits)
    epochs = check_positive_int("epochs", epochs)
    n_init = check_positive_int("n_init", n_init)
    batch_size = check_positive_int("batch_size", batch_size)
    learning_rate = check_positive("learning_rate", learning_rate)
    seed = check_seed("seed", seed)
    if seed is None:
        raise ValueError(
            "Invalid value for argument seed: expected an integer >= 0 (the "
            "restarts derive their seeds from it). Received: seed=None"
        )
    check_choice("verbose", verbose, (0, 1, 2))
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(
            "Invalid shape for argument x: expected (N, d) samples; flatten "
            f"images first, e.g. x.reshape(len(x), -1). Received: x.shape={x.shape}"
        )
    if hidden is None:
        hidden = (1200, 1200) if n_clusters is not None else (400, 400)
    n_outputs = int(n_clusters or n_bits or 0)
    seeds = np.random.SeedSequence(seed).generate_state(n_init) % (2**31 - 1)
    best, best_objective, objectives = None, np.inf, []
    knn = None
    for i, restart_seed in enumerate(int(s) for s in seeds):
        keras.utils.set_random_seed(restart_seed)
        encoder = imsat_mlp(x.shape[1], n_outputs, hidden=hidden, seed=restart_seed)
        model = IMSAT(
            encoder,
            n_clusters=n_clusters,
            n_bits=n_bits,
            seed=restart_seed,
            **imsat_kwargs,
        )
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
        if knn is None:  # the same data for every restart: measured once
            knn = model.knn_inputs(x) if model.epsilon is None else x
        model.fit(
            knn, batch_size=batch_size, epochs=epochs, verbose=2 if verbose == 2 else 0
        )
        objective = float(
            model.evaluate(knn, batch_size=batch_size, verbose=0, return_dict=True)[
                "loss"
            ]
        )
        objectives.append(objective)
        if verbose:
            print(
                f"IMSAT restart {i + 1}/{n_init}: objective {objective:.4f}", flush=True
            )
        if objective < best_objective or best is None:
            best, best_objective = model, objective
    assert best is not None  # n_init >= 1
    best.restart_objectives = objectives
    return best
