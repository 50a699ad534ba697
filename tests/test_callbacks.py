"""ClusteringScores and DisentanglementScores: scores reach logs, files, copies."""

import copy
import csv
import warnings

import keras
import numpy as np
import pytest

from keras_disentangle.callbacks import ClusteringScores, DisentanglementScores
from keras_disentangle.scores import (
    cluster_scores,
    cvr,
    mapc,
    utilized_dimensions,
)


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = (np.eye(3)[labels] * 2 + rng.normal(size=(n, 3)) * 0.5).astype("float32")
    x = np.hstack([x, rng.normal(size=(n, 3)).astype("float32")])
    return x, labels


def _model():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    outputs = keras.layers.Dense(1, name="out")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    return model


def _fit(model, x, callbacks, epochs=2):
    return model.fit(
        x,
        np.zeros((len(x), 1)),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=callbacks,
    )


def test_clustering_scores_reach_history_and_a_later_csv_logger(tmp_path):
    x, labels = _data()
    model = _model()
    scores = ClusteringScores((x, labels), layer="hidden")
    csv_path = tmp_path / "log.csv"
    history = _fit(model, x, [scores, keras.callbacks.CSVLogger(str(csv_path))])
    for key in (
        "val_cluster_ami",
        "val_cluster_nmi",
        "val_cluster_ari",
        "val_cluster_acc",
    ):
        assert len(history.history[key]) == 2
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    logged = [float(r["val_cluster_ami"]) for r in rows]
    assert logged == pytest.approx(history.history["val_cluster_ami"])
    # The last logged value is the score of the trained model's hidden layer,
    # recomputed independently.
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    # The callback's default KMeans: n_init=3, seed 0.
    expected = cluster_scores(hidden.predict(x, verbose=0), labels, n_init=3)
    for key, value in expected.items():
        assert history.history[f"val_cluster_{key}"][-1] == pytest.approx(value)
        assert scores.scores[f"val_cluster_{key}"] == pytest.approx(value)
    assert sorted(scores.scores_by_epoch) == [0, 1]


def test_a_csv_logger_before_the_scores_misses_them(tmp_path):
    # The documented ordering requirement: Keras hands one logs dict to the
    # callbacks in list order.
    x, labels = _data()
    csv_path = tmp_path / "log.csv"
    before = [keras.callbacks.CSVLogger(str(csv_path)), ClusteringScores((x, labels))]
    history = _fit(_model(), x, before, epochs=1)
    assert "val_cluster_ami" in history.history  # the History comes last
    with open(csv_path) as f:
        assert "val_cluster_ami" not in next(csv.DictReader(f))


def test_kmeans_settings_and_threads():
    x, labels = _data()
    model = _model()
    _fit(model, x, [], epochs=1)
    out = model.predict(x, verbose=0)
    for kwargs in ({"kmeans_kwargs": {"n_init": 10}, "threads": None}, {"seed": 4}):
        callback = ClusteringScores((x, labels), **kwargs)
        expected = cluster_scores(
            out, labels, seed=callback.seed, n_init=callback.kmeans_kwargs["n_init"]
        )
        got = callback.evaluate(model)
        assert got == pytest.approx({f"cluster_{k}": v for k, v in expected.items()})
    with pytest.raises(ValueError, match="argument threads"):
        ClusteringScores((x, labels), threads=0)
    with pytest.raises(ValueError, match="argument kmeans_kwargs"):
        ClusteringScores((x, labels), kmeans_kwargs=[("n_init", 2)])


def test_early_stopping_sees_the_score():
    x, labels = _data()
    stopper = keras.callbacks.EarlyStopping("val_cluster_ami", mode="max", patience=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(_model(), x, [ClusteringScores((x, labels), layer="hidden"), stopper])
    assert not [w for w in caught if "val_cluster_ami" in str(w.message)]
    assert np.isfinite(stopper.best)


def test_layer_by_object_and_model_output_and_prefix():
    x, labels = _data()
    model = _model()
    by_object = ClusteringScores((x, labels), layer=model.get_layer("hidden"))
    output = ClusteringScores((x, labels), prefix="out_", n_clusters=2)
    history = _fit(model, x, [by_object, output], epochs=1)
    assert "out_cluster_ami" in history.history
    assert "val_cluster_ami" in history.history
    out = model.predict(x, verbose=0)
    expected = cluster_scores(out, labels, n_clusters=2, n_init=3)
    assert history.history["out_cluster_acc"][-1] == pytest.approx(expected["acc"])


def test_every_scores_only_every_nth_epoch():
    x, labels = _data()
    scores = ClusteringScores((x, labels), layer="hidden", every=2)
    history = _fit(_model(), x, [scores], epochs=4)
    assert sorted(scores.scores_by_epoch) == [1, 3]
    assert len(history.history["val_cluster_ami"]) == 2
    assert len(history.history["loss"]) == 4


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_dataset_input_gives_the_same_scores_as_arrays():
    import tensorflow as tf

    x, labels = _data()
    model = _model()
    _fit(model, x, [], epochs=1)
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(25)
    from_arrays = ClusteringScores((x, labels), layer="hidden")
    from_dataset = ClusteringScores(dataset, layer="hidden")
    assert from_dataset.evaluate(model) == pytest.approx(from_arrays.evaluate(model))
    # A shuffled dataset keeps each embedding with its label (KMeans depends
    # on the sample order, so compare the pairs rather than the scores).
    shuffled = tf.data.Dataset.from_tensor_slices((x, labels)).shuffle(120).batch(25)
    emb, lab = ClusteringScores(shuffled, layer="hidden").embed(model)
    ref_emb, ref_lab = from_arrays.embed(model)
    order = [int(np.argmin(((ref_emb - row) ** 2).sum(1))) for row in emb]
    assert sorted(order) == list(range(120)) and order != list(range(120))
    np.testing.assert_array_equal(lab, ref_lab[order])
    np.testing.assert_allclose(emb, ref_emb[order], rtol=1e-5, atol=1e-6)


def test_deepcopy_shares_data_and_forgets_the_model():
    _check_deepcopy(_data())


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_deepcopy_shares_a_dataset():
    import tensorflow as tf

    _check_deepcopy(tf.data.Dataset.from_tensor_slices(_data()).batch(40))


def _check_deepcopy(data):
    x, _ = _data()
    original = ClusteringScores(data, layer="hidden", kmeans_kwargs={"n_init": 2})
    _fit(_model(), x, [original], epochs=1)
    clone = copy.deepcopy(original)
    assert clone._data is original._data
    assert clone.model is None and clone._embedder is None
    assert clone.kmeans_kwargs == {"n_init": 2}
    assert clone.kmeans_kwargs is not original.kmeans_kwargs
    history = _fit(_model(), x, [clone], epochs=1)
    assert "val_cluster_ami" in history.history
    # A list of callbacks, as keras-tuner copies them.
    copies = copy.deepcopy([original, DisentanglementScores(data)])
    assert copies[1]._data is data


def test_subclassed_model_inner_layer_raises_a_clear_error():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(4, name="hidden")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.hidden(x))

    x, labels = _data()
    net = Net()
    net.compile("sgd", "mse")
    with pytest.raises(ValueError, match="subclassed"):
        _fit(net, x, [ClusteringScores((x, labels), layer="hidden")], epochs=1)
    # The model output is fine for a subclassed model.
    history = _fit(net, x, [ClusteringScores((x, labels))], epochs=1)
    assert "val_cluster_ami" in history.history


def test_unknown_layer_and_multi_output_model_raise():
    x, labels = _data()
    with pytest.raises(ValueError, match="nope"):
        _fit(_model(), x, [ClusteringScores((x, labels), layer="nope")], epochs=1)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs)] * 2)
    with pytest.raises(ValueError, match="several outputs"):
        ClusteringScores((x, labels)).evaluate(model)


def test_constructor_validates_arguments():
    x, labels = _data()
    with pytest.raises(ValueError, match="argument every"):
        ClusteringScores((x, labels), every=0)
    with pytest.raises(ValueError, match="argument prefix"):
        ClusteringScores((x, labels), prefix=3)
    with pytest.raises(ValueError, match="argument data"):
        ClusteringScores(x)
    with pytest.raises(ValueError, match="same number of samples"):
        ClusteringScores((x, labels[:-1]))
    with pytest.raises(ValueError, match="at least 2"):
        ClusteringScores((x[:1], labels[:1]))
    with pytest.raises(ValueError, match="argument layer"):
        ClusteringScores((x, labels), layer=3)
    with pytest.raises(ValueError, match="argument n_clusters"):
        ClusteringScores((x, labels), n_clusters=0)
    with pytest.raises(ValueError, match="argument fraction"):
        DisentanglementScores(x, fraction=0)
    with pytest.raises(ValueError, match="min_variance_fraction"):
        DisentanglementScores(x, min_variance_fraction=-0.1)
    with pytest.raises(ValueError, match="has no model"):
        ClusteringScores((x, labels)).evaluate()


def test_disentanglement_scores_match_the_metrics(tmp_path, capsys):
    x, labels = _data()
    model = _model()
    scores = DisentanglementScores(
        x, layer="hidden", verbose=1, fraction=0.95, min_variance_fraction=0.01
    )
    csv_path = tmp_path / "log.csv"
    history = _fit(model, x, [scores, keras.callbacks.CSVLogger(str(csv_path))], 1)
    h = keras.Model(model.inputs, model.get_layer("hidden").output).predict(
        x, verbose=0
    )
    assert history.history["val_mapc"][-1] == pytest.approx(mapc(h, 0.01))
    assert history.history["val_cvr"][-1] == pytest.approx(cvr(h))
    assert history.history["val_ud95"][-1] == utilized_dimensions(h, 0.95)
    with open(csv_path) as f:
        assert "val_ud95" in next(csv.DictReader(f))
    assert "DisentanglementScores val_mapc" in capsys.readouterr().out


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_disentanglement_scores_of_datasets():
    import tensorflow as tf

    x, labels = _data()
    model = _model()
    _fit(model, x, [], epochs=1)
    h = keras.Model(model.inputs, model.get_layer("hidden").output).predict(
        x, verbose=0
    )
    # A dataset of (x, y) batches works, and so does one of x batches.
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(50)
    from_dataset = DisentanglementScores(dataset, layer="hidden", fraction=0.95)
    assert from_dataset.evaluate(model)["cvr"] == pytest.approx(cvr(h))
    x_only = tf.data.Dataset.from_tensor_slices(x).batch(50)
    assert DisentanglementScores(x_only, layer="hidden").evaluate(model)[
        "cvr"
    ] == pytest.approx(cvr(h))


def test_rank_3_layer_output_is_flattened():
    x, labels = _data()
    inputs = keras.Input((6,))
    reshaped = keras.layers.Reshape((3, 2), name="grid")(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(reshaped))
    embeddings, _ = ClusteringScores((x, labels), layer="grid").embed(model)
    assert embeddings.shape == (120, 6)
    np.testing.assert_allclose(embeddings, x, rtol=1e-6)


def test_one_hot_labels_give_the_same_scores_as_integers():
    x, labels = _data()
    model = _model()
    plain = ClusteringScores((x, labels), layer="hidden").evaluate(model)
    for form in (np.eye(3)[labels], labels[:, None], labels.astype("float32")):
        got = ClusteringScores((x, form), layer="hidden").evaluate(model)
        assert got == pytest.approx(plain)


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_one_hot_labels_of_a_dataset():
    import tensorflow as tf

    x, labels = _data()
    model = _model()
    plain = ClusteringScores((x, labels), layer="hidden").evaluate(model)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.eye(3)[labels])).batch(32)
    from_dataset = ClusteringScores(dataset, layer="hidden").evaluate(model)
    assert from_dataset == pytest.approx(plain)


def test_list_data_is_an_array_not_an_x_labels_pair():
    x, _ = _data(n=2)
    scores = DisentanglementScores(x.tolist()).evaluate(_model())
    assert set(scores) == {"mapc", "cvr", "ud90"}


@pytest.mark.parametrize("seed", [1.5, -1, True])
def test_bad_seed_names_the_argument(seed):
    x, labels = _data()
    with pytest.raises(ValueError, match="argument seed"):
        ClusteringScores((x, labels), seed=seed)


def test_reserved_kmeans_kwargs_name_the_argument():
    x, labels = _data()
    with pytest.raises(ValueError, match="kmeans_kwargs"):
        ClusteringScores((x, labels), kmeans_kwargs={"n_clusters": 4})


# ------------------------------------------- issue 10: keys, layer, predict


def test_keras_val_acc_is_not_overwritten_by_the_clustering_accuracy():
    # Issue 10 item 3: with metrics=["acc"], History's val_acc was the
    # clustering accuracy. Keras's own value must reach the History.
    x, labels = _data()
    y = (labels == 0).astype("float32")[:, None]
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, "sigmoid")(hidden))
    model.compile("sgd", "binary_crossentropy", metrics=["acc"])
    scores = ClusteringScores((x, labels), layer="hidden")
    history = model.fit(
        x,
        y,
        validation_data=(x, y),
        epochs=1,
        verbose=0,
        callbacks=[scores],
    )
    keras_acc = model.evaluate(x, y, verbose=0, return_dict=True)
    assert history.history["val_acc"][-1] == pytest.approx(keras_acc["acc"])
    assert history.history["val_cluster_acc"][-1] == pytest.approx(
        scores.scores["val_cluster_acc"]
    )
    assert scores.log_keys == [
        "val_cluster_ami",
        "val_cluster_nmi",
        "val_cluster_ari",
        "val_cluster_acc",
    ]


class _Writes(keras.callbacks.Callback):
    def __init__(self, key):
        super().__init__()
        self.key = key

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = -1.0


@pytest.mark.parametrize(
    "make, key",
    [
        (lambda d: ClusteringScores(d), "val_cluster_ami"),
        (lambda d: DisentanglementScores(d[0]), "val_mapc"),
    ],
)
def test_a_key_already_in_logs_raises_naming_it(make, key):
    x, labels = _data()
    with pytest.raises(ValueError, match=f"overwrite.*{key}"):
        _fit(_model(), x, [_Writes(key), make((x, labels))], epochs=1)
    # Two scoring callbacks with the same prefix collide too; another prefix
    # is the way out.
    with pytest.raises(ValueError, match=key):
        _fit(_model(), x, [make((x, labels)), make((x, labels))], epochs=1)


class _CountBatches(keras.callbacks.Callback):
    batches = 0

    def on_train_batch_end(self, batch, logs=None):
        type(self).batches += 1


@pytest.mark.parametrize("cls", [ClusteringScores, DisentanglementScores])
def test_misspelt_layer_raises_before_the_first_batch(cls):
    # Issue 10 item 10: the name was checked only after the first epoch.
    x, labels = _data()
    _CountBatches.batches = 0
    with pytest.raises(ValueError, match="hiddn"):
        _fit(_model(), x, [_CountBatches(), cls((x, labels), layer="hiddn")], 1)
    assert _CountBatches.batches == 0


def test_multi_output_model_without_layer_raises_before_the_first_batch():
    x, labels = _data()
    inputs = keras.Input((6,))
    model = keras.Model(inputs, [keras.layers.Dense(2)(inputs)] * 2)
    model.compile("sgd", ["mse", "mse"])
    _CountBatches.batches = 0
    with pytest.raises(ValueError, match="several outputs"):
        model.fit(
            x,
            [np.zeros((120, 2))] * 2,
            epochs=1,
            verbose=0,
            callbacks=[_CountBatches(), ClusteringScores((x, labels))],
        )
    assert _CountBatches.batches == 0


class _PredictsClusterIds(keras.Model):
    """A model whose ``predict`` is not its ``predict_on_batch`` (as IMSAT's
    used to be): the callbacks must score what ``predict`` returns."""

    def __init__(self):
        super().__init__(name="predicts_cluster_ids")
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x)

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        probs = super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        return np.eye(3)[np.argmax(probs, axis=1)]


def test_model_output_is_what_predict_returns():
    x, labels = _data()
    model = _PredictsClusterIds()
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((120, 3)), epochs=1, verbose=0)
    embeddings, _ = ClusteringScores((x, labels)).embed(model)
    np.testing.assert_array_equal(embeddings, model.predict(x, verbose=0))


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_model_output_is_what_predict_returns_for_a_dataset_too():
    import tensorflow as tf

    x, labels = _data()
    model = _PredictsClusterIds()
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((120, 3)), epochs=1, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(32)
    from_dataset, _ = ClusteringScores(dataset).embed(model)
    np.testing.assert_array_equal(from_dataset, model.predict(x, verbose=0))


@pytest.mark.parametrize(
    "labels, message",
    [
        (lambda y: y.astype(float) + 0.5, "fractions"),
        (lambda y: np.where(y == 0, np.nan, y), "NaN"),
        (lambda y: None, "argument data"),
    ],
)
def test_bad_labels_raise_at_construction_naming_data(labels, message):
    x, y = _data()
    with pytest.raises(ValueError, match=f"argument data.*{message}|{message}"):
        ClusteringScores((x, labels(y)))


# ----------------------------------------------- ground-truth factor scores


def _factor_data(n=96, seed=0):
    """Inputs that hold two factors in separate features, and the factors."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
    x = np.hstack([f, rng.normal(size=(n, 4))]).astype("float32")
    return x, f


def test_factor_scores_reach_logs_and_equal_the_score_functions():
    from keras_disentangle import scores as S

    x, f = _factor_data()
    model = _model()
    callback = DisentanglementScores(
        x, layer="hidden", factors=f, factor_scores=["mig", "sap", "modularity"]
    )
    history = _fit(model, x, [callback], epochs=1)
    keys = ["val_mig", "val_sap", "val_modularity", "val_explicitness"]
    assert all(len(history.history[k]) == 1 for k in keys)
    assert "val_dci_disentanglement" not in history.history
    h, _ = callback.embed(model)
    assert history.history["val_mig"][0] == pytest.approx(S.mig(h, f))
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:48], order[48:]
    split = (h[train], f[train], h[test], f[test])
    assert history.history["val_sap"][0] == pytest.approx(S.sap(*split))
    expected = S.modularity_explicitness(*split)
    assert history.history["val_explicitness"][0] == pytest.approx(
        expected["explicitness_test"]
    )


def test_factor_scores_dci_keys_and_identity_beats_noise():
    x, f = _factor_data()
    identity = keras.Sequential([keras.Input((6,)), keras.layers.Identity()])
    noise = np.random.default_rng(1).normal(size=x.shape).astype("float32")
    callback = DisentanglementScores(x, factors=f, factor_scores=["dci", "mig"])
    good = callback.evaluate(identity)
    bad = DisentanglementScores(noise, factors=f, factor_scores=["dci", "mig"])
    bad = bad.evaluate(identity)
    assert set(good) >= {
        "dci_disentanglement",
        "dci_completeness",
        "dci_informativeness",
    }
    assert good["mig"] > 0.6 > 0.2 > bad["mig"]
    assert good["dci_disentanglement"] > bad["dci_disentanglement"] + 0.3


def test_factor_arguments_are_checked():
    x, f = _factor_data()
    with pytest.raises(ValueError, match="argument factors: expected one row"):
        DisentanglementScores(x, factors=f[:-1])
    with pytest.raises(ValueError, match="argument factors: expected whole"):
        DisentanglementScores(x, factors=f + 0.5)
    with pytest.raises(ValueError, match="argument factor_scores"):
        DisentanglementScores(x, factors=f, factor_scores=["beta"])
    with pytest.raises(ValueError, match="argument test_fraction"):
        DisentanglementScores(x, factors=f, test_fraction=1.0)


# ---------------------------------------- checks before the first epoch


class _EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1


def test_n_clusters_above_the_sample_count_raises_at_construction():
    x, labels = _data(n=20)
    with pytest.raises(ValueError, match="argument n_clusters: expected at most"):
        ClusteringScores((x, labels), n_clusters=21)


@pytest.mark.backends("tensorflow", reason="tf.data input")
def test_dataset_checks_fail_before_the_first_epoch():
    import tensorflow as tf

    x, labels = _data(n=20)
    unlabelled = tf.data.Dataset.from_tensor_slices(x).batch(8)
    with pytest.raises(ValueError, match="argument data: expected a tf.data"):
        ClusteringScores(unlabelled)
    counter = _EpochCounter()
    dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(8)
    too_many = ClusteringScores(dataset, n_clusters=21)
    with pytest.raises(ValueError, match="argument n_clusters: expected at most"):
        _fit(_model(), x, [too_many, counter])
    assert counter.epochs == 0


@pytest.mark.backends("tensorflow", reason="counts tf.function traces")
def test_embedding_function_is_traced_once_per_training():
    x, labels = _data(n=150)  # not a multiple of the batch size
    callbacks = [
        ClusteringScores((x, labels), layer="hidden", batch_size=64),
        DisentanglementScores(x, layer="hidden", batch_size=64, prefix="d_"),
    ]
    _fit(_model(), x, callbacks, epochs=3)
    for callback in callbacks:
        function = callback._embedder.predict_function
        assert function.experimental_get_tracing_count() == 1
