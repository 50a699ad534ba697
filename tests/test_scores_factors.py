"""Ground-truth disentanglement scores against transcriptions of
disentanglement_lib (codes transposed to its (d, N) layout, loops as there)."""

import math

import numpy as np
import pytest
import scipy.stats
from sklearn import ensemble, linear_model, metrics, preprocessing, svm

from keras_disentangle import scores

pytestmark = pytest.mark.backend_independent


# ------------------------------------------------- reference transcriptions


def ref_histogram_discretize(target, num_bins):
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(
            target[i, :], np.histogram(target[i, :], num_bins)[1][:-1]
        )
    return discretized


def ref_discrete_mutual_info(mus, ys):
    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = metrics.mutual_info_score(ys[j, :], mus[i, :])
    return m


def ref_discrete_entropy(ys):
    h = np.zeros(ys.shape[0])
    for j in range(ys.shape[0]):
        h[j] = metrics.mutual_info_score(ys[j, :], ys[j, :])
    return h


def ref_mig(mus, ys, num_bins=20):
    discretized = ref_histogram_discretize(mus, num_bins)
    m = ref_discrete_mutual_info(discretized, ys)
    entropy = ref_discrete_entropy(ys)
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def ref_sap(mus, ys, mus_test, ys_test, continuous_factors):
    num_latents, num_factors = mus.shape[0], ys.shape[0]
    score_matrix = np.zeros([num_latents, num_factors])
    for i in range(num_latents):
        for j in range(num_factors):
            mu_i, y_j = mus[i, :], ys[j, :]
            if continuous_factors:
                cov = np.cov(mu_i, y_j, ddof=1)
                cov_mu_y = cov[0, 1] ** 2
                var_mu, var_y = cov[0, 0], cov[1, 1]
                score_matrix[i, j] = (
                    cov_mu_y * 1.0 / (var_mu * var_y) if var_mu > 1e-12 else 0.0
                )
            else:
                classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(mu_i[:, np.newaxis], y_j)
                pred = classifier.predict(mus_test[i, :][:, np.newaxis])
                score_matrix[i, j] = np.mean(pred == ys_test[j, :])
    sorted_matrix = np.sort(score_matrix, axis=0)
    return np.mean(sorted_matrix[-1, :] - sorted_matrix[-2, :])


def ref_dci(x_train, y_train, x_test, y_test, seed):
    num_factors, num_codes = y_train.shape[0], x_train.shape[0]
    importance_matrix = np.zeros([num_codes, num_factors])
    train_loss, test_loss = [], []
    for i in range(num_factors):
        model = ensemble.GradientBoostingClassifier(random_state=seed)
        model.fit(x_train.T, y_train[i, :])
        importance_matrix[:, i] = np.abs(model.feature_importances_)
        train_loss.append(np.mean(model.predict(x_train.T) == y_train[i, :]))
        test_loss.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
    per_code = 1.0 - scipy.stats.entropy(
        importance_matrix.T + 1e-11, base=importance_matrix.shape[1]
    )
    per_factor = 1.0 - scipy.stats.entropy(
        importance_matrix + 1e-11, base=importance_matrix.shape[0]
    )
    im = importance_matrix
    if im.sum() == 0.0:
        im = np.ones_like(im)
    code_importance = im.sum(axis=1) / im.sum()
    factor_importance = im.sum(axis=0) / im.sum()
    return {
        "disentanglement": np.sum(per_code * code_importance),
        "completeness": np.sum(per_factor * factor_importance),
        "informativeness_train": np.mean(train_loss),
        "informativeness_test": np.mean(test_loss),
    }


def ref_modularity(mutual_information):
    squared_mi = np.square(mutual_information)
    max_squared_mi = np.max(squared_mi, axis=1)
    numerator = np.sum(squared_mi, axis=1) - max_squared_mi
    denominator = max_squared_mi * (squared_mi.shape[1] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        modularity_score = 1.0 - numerator / denominator
    modularity_score[max_squared_mi == 0.0] = 0.0
    return np.mean(modularity_score)


def ref_modularity_explicitness(mus_train, ys_train, mus_test, ys_test, bins):
    discretized = ref_histogram_discretize(mus_train, bins)
    mi = ref_discrete_mutual_info(discretized, ys_train)
    mean, std = np.mean(mus_train, axis=1), np.std(mus_train, axis=1)
    train_norm = (mus_train - mean[:, None]) / std[:, None]
    test_norm = (mus_test - mean[:, None]) / std[:, None]
    train, test = [], []
    for i in range(ys_train.shape[0]):
        clf = linear_model.LogisticRegression().fit(train_norm.T, ys_train[i])
        mlb = preprocessing.MultiLabelBinarizer()
        train.append(
            metrics.roc_auc_score(
                mlb.fit_transform(np.expand_dims(ys_train[i], 1)),
                clf.predict_proba(train_norm.T),
            )
        )
        test.append(
            metrics.roc_auc_score(
                mlb.fit_transform(np.expand_dims(ys_test[i], 1)),
                clf.predict_proba(test_norm.T),
            )
        )
    return {
        "modularity": ref_modularity(mi),
        "explicitness_train": np.mean(train),
        "explicitness_test": np.mean(test),
    }


def toy_sampler(sizes=(3, 4, 5)):
    """Observations are the factors themselves (the encoder maps them)."""

    def sample(n, seed, fixed_factor=None):
        rng = np.random.default_rng(seed)
        f = rng.integers(sizes, size=(n, len(sizes)))
        if fixed_factor is not None:
            f[:, fixed_factor] = f[0, fixed_factor]
        return f.astype(float), f

    return sample


def ref_beta_vae(encoder, sample, batch_size, num_train, num_eval, seed):
    rng = np.random.default_rng(seed)
    n_factors = sample(2, 0)[1].shape[1]

    def points(num):
        labels = rng.integers(n_factors, size=num)
        seeds = rng.integers(2**31 - 1, size=num)
        feats = np.zeros((num, encoder(sample(1, 0)[0]).shape[1]))
        for p in range(num):
            x, _ = sample(2 * batch_size, int(seeds[p]), fixed_factor=int(labels[p]))
            z1, z2 = encoder(x[:batch_size]), encoder(x[batch_size:])
            feats[p] = np.mean(np.abs(z1 - z2), axis=0)
        return feats, labels

    xt, yt = points(num_train)
    xe, ye = points(num_eval)
    model = linear_model.LogisticRegression(random_state=seed).fit(xt, yt)
    return {
        "train_accuracy": np.mean(model.predict(xt) == yt),
        "eval_accuracy": np.mean(model.predict(xe) == ye),
    }


def ref_factor_vae(encoder, sample, batch_size, num_train, num_eval, num_var, seed):
    rng = np.random.default_rng(seed)
    n_factors = sample(2, 0)[1].shape[1]
    x, _ = sample(num_var, int(rng.integers(2**31 - 1)))
    global_variances = np.var(encoder(x), axis=0, ddof=1)
    active_dims = np.sqrt(global_variances) >= 0.05
    if not active_dims.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes(num):
        labels = rng.integers(n_factors, size=num)
        seeds = rng.integers(2**31 - 1, size=num)
        v = np.zeros((n_factors, int(active_dims.sum())), dtype=np.int64)
        for p in range(num):
            x, _ = sample(batch_size, int(seeds[p]), fixed_factor=int(labels[p]))
            local = np.var(encoder(x), axis=0, ddof=1)
            argmin = np.argmin(local[active_dims] / global_variances[active_dims])
            v[labels[p], argmin] += 1
        return v

    train = votes(num_train)
    classifier = np.argmax(train, axis=0)
    other = np.arange(train.shape[1])
    evaluation = votes(num_eval)
    return {
        "train_accuracy": np.sum(train[classifier, other]) / np.sum(train),
        "eval_accuracy": np.sum(evaluation[classifier, other]) / np.sum(evaluation),
        "num_active_dims": int(active_dims.sum()),
    }


# ----------------------------------------------------------------- data


def _data(seed, n=300, d=4, sizes=(3, 5), noise=0.5):
    """Codes that mix the factors with noise, and the factors."""
    rng = np.random.default_rng(seed)
    f = np.stack([rng.integers(k, size=n) for k in sizes], axis=1)
    mixing = rng.normal(size=(len(sizes), d))
    codes = f @ mixing + noise * rng.normal(size=(n, d))
    return codes, f


@pytest.mark.parametrize(
    "seed,n,d,sizes,bins",
    [
        (0, 300, 4, (3, 5), 20),
        (1, 200, 1, (2,), 7),
        (2, 500, 6, (4, 2, 6), 10),
    ],
)
def test_mig_matches_reference(seed, n, d, sizes, bins):
    codes, f = _data(seed, n, d, sizes)
    if d == 1:  # the reference needs two codes; ours takes the second as 0
        codes = np.concatenate([codes, np.zeros_like(codes)], axis=1)
    expected = ref_mig(codes.T, f.T, bins)
    assert scores.mig(codes, f, n_bins=bins) == pytest.approx(expected, abs=1e-12)


def test_histogram_discretize_matches_reference():
    codes, _ = _data(3, 400, 5)
    codes[:, 2] = 1.5  # a constant column
    codes[7, 0] = codes[:, 0].max()
    out = scores.histogram_discretize(codes, 13)
    np.testing.assert_array_equal(out, ref_histogram_discretize(codes.T, 13).T)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("seed,d,sizes", [(0, 3, (3, 2)), (4, 5, (2, 4, 3))])
def test_sap_matches_reference(continuous, seed, d, sizes):
    codes, f = _data(seed, 200, d, sizes)
    test_codes, test_f = _data(seed + 100, 150, d, sizes)
    expected = ref_sap(codes.T, f.T, test_codes.T, test_f.T, continuous)
    got = scores.sap(codes, f, test_codes, test_f, continuous_factors=continuous)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed,d,sizes", [(0, 3, (3, 2)), (5, 4, (2, 3, 4))])
def test_dci_matches_reference(seed, d, sizes):
    codes, f = _data(seed, 80, d, sizes)
    test_codes, test_f = _data(seed + 100, 60, d, sizes)
    expected = ref_dci(codes.T, f.T, test_codes.T, test_f.T, seed=3)
    got = scores.dci(codes, f, test_codes, test_f, random_state=3)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("seed,d,sizes,bins", [(0, 3, (3, 2), 20), (6, 5, (4, 3), 8)])
def test_modularity_explicitness_matches_reference(seed, d, sizes, bins):
    codes, f = _data(seed, 300, d, sizes)
    test_codes, test_f = _data(seed + 100, 200, d, sizes)
    expected = ref_modularity_explicitness(codes.T, f.T, test_codes.T, test_f.T, bins)
    got = scores.modularity_explicitness(codes, f, test_codes, test_f, n_bins=bins)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def _mixing_encoder(d, seed, noise=0.0):
    """A linear map of the factors plus a row-wise deterministic "noise"."""
    rng = np.random.default_rng(seed)
    mixing, scramble = rng.normal(size=(3, d)), rng.normal(size=(3, d))

    def encode(x):
        return x @ mixing + noise * np.sin(13.0 * (x @ scramble))

    return encode


@pytest.mark.parametrize("d,noise", [(3, 0.0), (4, 1.0)])
def test_beta_vae_matches_reference(d, noise):
    encode, sample = _mixing_encoder(d, d, noise), toy_sampler()
    expected = ref_beta_vae(encode, sample, 8, 60, 30, seed=2)
    got = scores.beta_vae_score(encode, sample, 8, 60, 30, random_state=2, chunk=7)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


@pytest.mark.parametrize("d,noise", [(3, 0.0), (5, 1.0)])
def test_factor_vae_matches_reference(d, noise):
    encode, sample = _mixing_encoder(d, d, noise), toy_sampler()
    expected = ref_factor_vae(encode, sample, 8, 60, 30, 200, seed=1)
    got = scores.factor_vae_score(
        encode, sample, 8, 60, 30, 200, random_state=1, chunk=9
    )
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


# ------------------------------------------------- good high, bad low


def _grid(sizes=(3, 4, 5), repeat=2):
    f = np.indices(sizes).reshape(len(sizes), -1).T
    return np.tile(f, (repeat, 1))


def test_identity_scores_high_and_noise_low():
    f = _grid()
    rng = np.random.default_rng(0)
    good = f + 0.05 * rng.normal(size=f.shape)
    mixed = f @ rng.normal(size=(3, 3))
    noise = rng.normal(size=f.shape)
    assert scores.mig(good, f) > 0.9
    assert scores.mig(noise, f) < 0.1
    assert scores.mig(good, f) > scores.mig(mixed, f)
    assert scores.sap(good, f, good, f) > 0.3 > 0.1 > scores.sap(noise, f, noise, f)
    good_dci = scores.dci(good, f, good, f)
    noise_dci = scores.dci(noise, f, rng.normal(size=f.shape), f)
    assert good_dci["disentanglement"] > 0.9 > 0.3 > noise_dci["disentanglement"]
    assert good_dci["informativeness_test"] > noise_dci["informativeness_test"]
    good_mod = scores.modularity_explicitness(good, f, good, f)
    noise_mod = scores.modularity_explicitness(noise, f, noise, f)
    assert good_mod["modularity"] > 0.9
    assert good_mod["explicitness_test"] > noise_mod["explicitness_test"] + 0.2


def test_sampling_scores_identity_high_and_constant_low():
    sample = toy_sampler()
    beta_good = scores.beta_vae_score(lambda x: x, sample, 16, 100, 50)
    beta_noise = scores.beta_vae_score(
        lambda x: np.random.default_rng(len(x)).normal(size=x.shape),
        sample,
        16,
        100,
        50,
    )
    assert beta_good["eval_accuracy"] == 1.0
    assert beta_noise["eval_accuracy"] < 0.6
    fv_good = scores.factor_vae_score(lambda x: x, sample, 16, 100, 50, 300)
    fv_zero = scores.factor_vae_score(lambda x: 0 * x, sample, 16, 100, 50, 300)
    assert fv_good["eval_accuracy"] == 1.0 and fv_good["num_active_dims"] == 3
    assert fv_zero == {
        "train_accuracy": 0.0,
        "eval_accuracy": 0.0,
        "num_active_dims": 0,
    }


# ---------------------------------------------------------------- errors


def test_constant_code_column_is_finite():
    codes, f = _data(0, 100)
    codes[:, 1] = 3.0
    values = [
        scores.mig(codes, f),
        scores.sap(codes, f, codes, f),
        scores.sap(codes, f, codes, f, continuous_factors=True),
        *scores.dci(codes, f, codes, f).values(),
        *scores.modularity_explicitness(codes, f, codes, f).values(),
    ]
    assert all(math.isfinite(v) for v in values)
    zero = np.zeros_like(codes)
    assert scores.mig(zero, f) == 0.0
    assert scores.modularity_explicitness(zero, f, zero, f)["modularity"] == 0.0


@pytest.mark.parametrize("name", ["mig", "sap", "dci", "modularity_explicitness"])
def test_invalid_inputs_name_the_argument(name):
    fn = getattr(scores, name)
    codes, f = _data(0, 50)

    def call(c, ff, ct=None, ft=None):
        if name == "mig":
            return fn(c, ff)
        return fn(c, ff, codes if ct is None else ct, f if ft is None else ft)

    single = f.copy()
    single[:, 1] = 2
    with pytest.raises(ValueError, match=r"argument factors.*factors\[:, 1\]"):
        call(codes, single)
    bad = codes.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="argument codes: expected finite"):
        call(bad, f)
    with pytest.raises(ValueError, match="codes and factors"):
        call(codes[:-1], f)
    with pytest.raises(ValueError, match="argument factors: expected whole"):
        call(codes, f + 0.5)
    if name != "mig":
        with pytest.raises(ValueError, match="test_codes and test_factors"):
            call(codes, f, codes[:-2], f)
        with pytest.raises(ValueError, match="argument test_codes"):
            call(codes, f, codes[:, :2], f)


def test_sampling_scores_check_their_arguments():
    sample = toy_sampler()
    with pytest.raises(ValueError, match="argument encoder"):
        scores.beta_vae_score(None, sample)
    with pytest.raises(ValueError, match="argument batch_size"):
        scores.factor_vae_score(lambda x: x, sample, batch_size=1)

    def unfixed(n, seed, fixed_factor=None):
        return sample(n, seed)

    with pytest.raises(ValueError, match="argument sample.*share factor"):
        scores.factor_vae_score(lambda x: x, unfixed, 8, 10, 10, 50)
    with pytest.raises(ValueError, match="argument encoder: expected finite"):
        scores.beta_vae_score(lambda x: x * np.nan, sample, 4, 10, 10)
