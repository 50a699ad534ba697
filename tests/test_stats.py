"""Statistics over seeds (``experiments._stats``) against SciPy's paired t-test."""

import numpy as np
import pytest
from scipy import stats

from keras_disentangle.experiments import _stats

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("n", [2, 3, 10])
def test_t_interval_is_scipys_one_sample_interval(n):
    x = np.random.default_rng(n).normal(0.5, 0.05, size=n)
    row = _stats.t_interval(list(x))
    low, high = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    np.testing.assert_allclose([row["low"], row["high"]], [low, high], rtol=1e-10)
    assert row["mean"] == pytest.approx(float(np.mean(x)))
    assert row["std"] == pytest.approx(float(np.std(x, ddof=1)))


def test_one_value_has_a_zero_width_interval():
    row = _stats.t_interval([0.4])
    assert (row["low"], row["high"], row["std"]) == (0.4, 0.4, 0.0)


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.05])
def test_paired_differences_decide_as_the_paired_t_test(shift):
    rng = np.random.default_rng(7)
    base = rng.normal(0.45, 0.04, size=10)
    other = base + shift + rng.normal(0.0, 0.02, size=10)
    # Rows in another order: pairing is by seed, not by position.
    rows = [{"v": "pen", "seed": 9 - s, "ami": a} for s, a in enumerate(other[::-1])]
    rows += [{"v": "base", "seed": s, "ami": a} for s, a in enumerate(base)]
    (d,) = _stats.paired_differences(rows, "v", "ami", "base")
    test = stats.ttest_rel(other, base)
    low, high = test.confidence_interval(0.95)
    np.testing.assert_allclose([d["low"], d["high"]], [low, high], rtol=1e-10)
    assert d["significant"] == (test.pvalue < 0.05)
    assert d["wins"] == int(np.sum(other > base)) and d["n"] == 10


def test_only_common_seeds_are_paired_and_errors_name_the_argument():
    rows = [{"v": "base", "seed": 0, "ami": 0.4}, {"v": "base", "seed": 1, "ami": 0.5}]
    rows += [{"v": "pen", "seed": 1, "ami": 0.6}, {"v": "pen", "seed": 2, "ami": 0.9}]
    (d,) = _stats.paired_differences(rows, "v", "ami", "base")
    assert d["n"] == 1 and d["mean"] == pytest.approx(0.1) and not d["significant"]
    with pytest.raises(ValueError, match="argument baseline"):
        _stats.paired_differences(rows, "v", "ami", "none")
    with pytest.raises(ValueError, match="seed 0 appears twice"):
        _stats.paired_differences(rows + rows[:1], "v", "ami", "base")
    with pytest.raises(ValueError, match="argument values"):
        _stats.t_interval([0.1, float("nan")])
