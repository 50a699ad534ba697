"""Keras losses for label-aware penalties."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_disentangle import penalties
from keras_disentangle._backend import concrete_value
from keras_disentangle._distribute import collectives, scale_for_replicas
from keras_disentangle._validation import check_bool, check_non_negative, label_vector

__all__ = ["LabelledKLMargin"]


@keras.saving.register_keras_serializable(package="keras_disentangle")
class LabelledKLMargin(keras.losses.Loss):
    """L_multi with labels: pushes apart the representations of same-label pairs.

    ``y_true`` are the labels (integers ``(N,)``/``(N, 1)`` or one-hot
    ``(N, C)``) and ``y_pred`` the representation ``h`` (at least 2
    features). With ``s_n = softmax(h_n)``, the loss is

    ``1/P sum_{i,j} w_ij [max(0, m - KL(s_i‖s_j)) + max(0, m - KL(s_j‖s_i))]``

    over ordered pairs, the diagonal included, with
    ``w_ij = [y_i = y_j] * sw_i * sw_j`` and ``P = sum_ij w_ij``
    (``sum_c N_c^2`` without weights, eq. 4). Semi-supervised batches: a
    sample labelled ``unlabelled`` (default -1) or with
    ``sample_weight == 0`` is left out of every pair; the value is 0 when
    no pair is left. It is a statistic of the whole batch: the value is a
    scalar and ``reduction`` does not apply to it.

    Several devices: Keras does not divide a loss that is already a scalar
    by the number of replicas ``R`` of a ``tf.distribute`` strategy, so this
    loss does it itself (as Keras does for per-sample losses): one step
    moves the weights as on one device, and the logged loss is the
    one-device value. ``synchronized=True`` sums over the same-label pairs
    of the global batch (each replica its ``N_r x N`` block against the
    all-gathered samples; ``tf.distribute`` or ``torch.distributed``
    collectives, and JAX's ``keras.distribution`` computes on the global
    batch either way); ``False`` takes the mean over the replicas of the
    value on each slice (an empty slice counts as 0).

    Checks: shapes (labels and weights one per row of ``y_pred``, at least 2
    features) are checked whenever they are known, also in ``fit``; label
    values (NaN, fractions) when they are known, in eager calls
    (``run_eagerly=True``). Inside a compiled step a non-whole label makes
    the loss NaN instead of being rounded.

    Use it on a named representation output of a multi-output model, with
    ``loss_weights`` as the penalty weight.

    Saving: registered with Keras, so a model holding it saves to
    ``.keras`` and loads back with ``keras.saving.load_model`` after
    ``import keras_disentangle`` (without that import, loading fails with
    a long error whose cause, an unknown ``keras_disentangle>...``
    object, is at its end).

    Args:
        margin: the margin ``m``, a finite number >= 0. The paper used 0.1-1.
        unlabelled: the label value of unlabelled samples, an integer or
            None (every sample labelled).
        synchronized: compute it over the global batch of all replicas.
        name: name of the loss.
        reduction: kept for Keras; the value is already a scalar.
        dtype: dtype of the loss's computations.

    Example:

        >>> import keras
        >>> x = keras.Input((8,))
        >>> h = keras.layers.Dense(15, name="fc1")(x)
        >>> y = keras.layers.Dense(1, activation="sigmoid", name="out")(h)
        >>> model = keras.Model(x, {"out": y, "fc1": h})
        >>> model.compile(
        ...     "adam",
        ...     loss={"out": "binary_crossentropy", "fc1": LabelledKLMargin(0.5)},
        ...     loss_weights={"out": 1.0, "fc1": 0.1})

    References:
        Romanov & Rumshisky, "Forced to Learn", 2017, eq. 4.
    """

    def __init__(
        self,
        margin: float = 1.0,
        unlabelled: int | None = -1,
        synchronized: bool = False,
        name: str = "labelled_kl_margin",
        reduction: str = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_non_negative("margin", margin)
        if unlabelled is not None and (
            isinstance(unlabelled, bool) or not isinstance(unlabelled, int)
        ):
            raise ValueError(
                "Invalid value for argument unlabelled: expected an integer label "
                f"or None. Received: unlabelled={unlabelled!r}"
            )
        self.unlabelled = unlabelled
        self.synchronized = check_bool("synchronized", synchronized)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            if len(y_pred.shape) < 2 or y_pred.shape[-1] == 1:
                raise ValueError(
                    "Invalid shape for argument y_pred: expected a representation "
                    "(N, units) with units >= 2 (the softmax over one unit is 1 for "
                    "every sample, and the loss a constant 2 * margin). "
                    f"Received: y_pred.shape={tuple(y_pred.shape)}"
                )
            self._check_labels(y_true, y_pred)
            value = penalties.activity_kl_margin(
                y_pred,
                self.margin,
                labels=y_true,
                sample_weight=sample_weight,
                unlabelled=self.unlabelled,
                collectives=collectives() if self.synchronized else None,
            )
            return ops.cast(scale_for_replicas(value), self.dtype)

    @staticmethod
    def _check_labels(y_true, y_pred):
        """Label values when known (eager); their number when it is static."""
        concrete = concrete_value(y_true)
        if concrete is not None and concrete.ndim > 0:
            label_vector("y_true", concrete, min_samples=0)
        rows = (concrete.shape if concrete is not None else y_true.shape)[:1]
        if (
            rows
            and None not in (rows[0], y_pred.shape[0])
            and rows[0] != y_pred.shape[0]
        ):
            raise ValueError(
                "Invalid shape for argument y_true: expected one label per sample "
                f"of y_pred ({y_pred.shape[0]}). Received: y_true.shape="
                f"{tuple(concrete.shape if concrete is not None else y_true.shape)}"
                f", y_pred.shape={tuple(y_pred.shape)}"
            )

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self(y_true, y_pred)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "margin": self.margin,
                "unlabelled": self.unlabelled,
                "synchronized": self.synchronized,
                "dtype": self.dtype,
            }
        )
        return config
