"""Learnable latent centroids: a pass-through layer with a k-means penalty."""

from __future__ import annotations

from typing import Any

import keras

from keras_disentangle import penalties
from keras_disentangle._validation import (
    check_choice,
    check_non_negative,
    check_positive_int,
    check_seed,
)


@keras.saving.register_keras_serializable(package="keras_disentangle")
class LatentCentroids(keras.layers.Layer):
    """Adds ``weight * mean_n min_j ‖h_n − C_j‖²`` to the model's losses.

    A pass-through layer: it returns its input unchanged and holds ``n_clusters``
    trainable centroids ``C`` of shape ``(n_clusters, D)``. Every call adds

        weight * mean_n min_j ‖h_n − C_j‖²

    to ``model.losses`` (computed as ``‖h‖² − 2 h C^T + ‖C‖²``, see
    ``keras_disentangle.penalties.min_centroid_distance``), so the
    encoder learns latents that gather around a few centroids while the
    centroids follow the latents (an online k-means). The penalty sees every
    sample of the batch, labelled or not; with a classification loss weighted
    by ``sample_weight`` (0 for unlabelled samples) this is the semi-supervised
    method of Karakulak et al.

    The penalty is a per-sample mean, so under a ``tf.distribute`` strategy
    Keras's per-replica scaling makes one step equal the one-device step on
    the global batch (equal slices); a replica whose slice is empty adds 0,
    never NaN. Under JAX's ``DataParallel`` the global batch is used as is.

    On a feature map of rank > 2 the penalty uses the channel vector at one
    random position per image (``D`` = channels), as the reference code does;
    the position comes from a ``keras.random.SeedGenerator``.

    ``weight`` is held in a non-trainable float32 variable ``layer.weight``, so
    a callback can ramp it during training (``CentroidWeightRamp``; the paper
    keeps it at zero for the first epochs, then grows it). The config stores
    the initial value; the current value is saved with the weights.
    ``CentroidReinit`` re-initialises ``layer.centroids`` from the latents of
    labelled data, class-balanced, during the first epochs.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        n_clusters: number of centroids, an integer >= 1.
        weight: initial factor of the penalty, a finite number >= 0.
        data_format: ``"channels_last"`` or ``"channels_first"``, for inputs
            of rank > 2; None uses ``keras.config.image_data_format()``.
        centroids_initializer: initializer of the centroids; None draws them
            from N(0, 1), as the reference code does.
        seed: seed of the random positions (an int or None).
        **kwargs: base layer arguments (``name``, ...).

    Call arguments:
        inputs: latents ``(N, D)`` or a feature map ``(N, ..., D)``.

    Returns:
        ``inputs``, unchanged.

    Example:

        >>> import keras
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(4)(x)
        >>> h = LatentCentroids(n_clusters=3, weight=0.1)(h)
        >>> model = keras.Model(x, keras.layers.Dense(2)(h))
        >>> tuple(model.layers[2].centroids.shape)
        (3, 4)

    References:
        Karakulak et al., "Clustering latent representations for
        semi-supervised learning", 2019; reference code
        https://github.com/skarakulak/CLR_SSL.
    """

    def __init__(
        self,
        n_clusters: int,
        weight: float = 1.0,
        data_format: str | None = None,
        centroids_initializer: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.n_clusters = check_positive_int("n_clusters", n_clusters)
        self.initial_weight = check_non_negative("weight", weight)
        if data_format is None:
            data_format = keras.config.image_data_format()
        self.data_format = check_choice(
            "data_format", data_format, ("channels_last", "channels_first")
        )
        self.seed = check_seed("seed", seed)
        if centroids_initializer is None:
            centroids_initializer = keras.initializers.RandomNormal(
                mean=0.0, stddev=1.0, seed=seed
            )
        self.centroids_initializer = keras.initializers.get(centroids_initializer)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.initial_weight),
            trainable=False,
            dtype="float32",
            autocast=False,
            name="weight",
        )
        self.supports_masking = True

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) < 2:
            raise ValueError(
                "LatentCentroids expects inputs of rank >= 2 with samples on the "
                f"first axis. Received: input_shape={input_shape}"
            )
        axis = (
            1 if (len(input_shape) > 2 and self.data_format == "channels_first") else -1
        )
        features = input_shape[axis]
        if features is None:
            raise ValueError(
                "LatentCentroids needs a known feature (channel) axis to create "
                f"its centroids. Received: input_shape={input_shape}"
            )
        self.centroids = self.add_weight(
            shape=(self.n_clusters, int(features)),
            initializer=self.centroids_initializer,
            trainable=True,
            dtype="float32",
            autocast=False,
            name="centroids",
        )

    def latents(self, inputs: Any) -> Any:
        """The ``(N, D)`` vectors the penalty sees (a random position per image)."""
        return penalties.random_location(
            inputs, seed=self.seed_generator, data_format=self.data_format
        )

    def call(self, inputs: Any) -> Any:
        latents = self.latents(inputs)
        distance = penalties.min_centroid_distance(latents, self.centroids)
        # An empty batch (a replica's share of the last partial global batch
        # under tf.distribute) has no sample to pull: its penalty is 0, not
        # the NaN of a mean over nothing.
        count = keras.ops.shape(latents)[0]
        distance = keras.ops.where(
            keras.ops.greater(count, 0), distance, keras.ops.zeros_like(distance)
        )
        self.add_loss(keras.ops.cast(self.weight, distance.dtype) * distance)
        return inputs

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        return mask

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "n_clusters": self.n_clusters,
                "weight": self.initial_weight,
                "data_format": self.data_format,
                "centroids_initializer": keras.initializers.serialize(
                    self.centroids_initializer
                ),
                "seed": self.seed,
            }
        )
        return config
