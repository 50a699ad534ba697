"""Scores of representations: clustering, disentanglement and hashing.

Pure NumPy / SciPy / scikit-learn, one module per family (as
disentanglement_lib keeps one module per metric): every function takes arrays
(NumPy arrays or anything ``np.asarray`` accepts, such as the output of
``model.predict``) and returns Python floats or ints. These are not
``keras.metrics`` objects and do not go into ``compile``: the Keras callbacks
of ``keras_disentangle.callbacks`` call them at the end of an epoch and write
the values into ``logs``.

- ``scores.clustering`` (Romanov & Rumshisky): ``clustering_accuracy``,
  ``cluster_scores`` (KMeans, then AMI, NMI, ARI and accuracy),
  ``linear_probe_accuracy``.
- ``scores.disentanglement`` (Kågebäck & Mogren): ``mapc``, ``cvr``, ``tdv``,
  ``utilized_dimensions``, ``active_unit_mask`` / ``active_units`` (the
  variance-share rule of ``mapc``).
- ``scores.factors`` (against known generating factors, after
  disentanglement_lib): ``mig``, ``sap``, ``dci``,
  ``modularity_explicitness``, ``beta_vae_score``, ``factor_vae_score``.
- ``scores.hashing`` (IMSAT's evaluation of binary codes):
  ``hamming_ranking_map``, ``precision_at_k``, ``precision_within_radius``.

Labels follow the package's one label rule (``(N,)``, ``(N, 1)``, one-hot
``(N, C)``, integers or strings; NaN, fractions and None raise). Inputs are
checked: a wrong rank, lengths that disagree, too few samples or
non-finite values raise a ``ValueError`` naming the argument. A degenerate
but valid representation (a constant unit, a collapsed layer, one cluster)
gives a defined value documented in each function, never a NaN.
"""

from keras_disentangle.scores.clustering import (
    cluster_scores,
    clustering_accuracy,
    linear_probe_accuracy,
)
from keras_disentangle.scores.disentanglement import (
    active_unit_mask,
    active_units,
    cvr,
    mapc,
    tdv,
    utilized_dimensions,
)
from keras_disentangle.scores.factors import (
    beta_vae_score,
    dci,
    discrete_mutual_info,
    factor_vae_score,
    histogram_discretize,
    mig,
    modularity_explicitness,
    sap,
)
from keras_disentangle.scores.hashing import (
    hamming_ranking_map,
    precision_at_k,
    precision_within_radius,
)

__all__ = [
    "clustering_accuracy",
    "cluster_scores",
    "linear_probe_accuracy",
    "mapc",
    "cvr",
    "tdv",
    "utilized_dimensions",
    "active_unit_mask",
    "active_units",
    "mig",
    "sap",
    "dci",
    "modularity_explicitness",
    "beta_vae_score",
    "factor_vae_score",
    "histogram_discretize",
    "discrete_mutual_info",
    "hamming_ranking_map",
    "precision_at_k",
    "precision_within_radius",
]
