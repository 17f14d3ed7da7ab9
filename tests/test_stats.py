import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from dagr.stats import Comparison, bootstrap_ci, compare, paired_t_test


def test_t_test_matches_scipy():
    a, b = [0.91, 0.93, 0.95, 0.92], [0.90, 0.90, 0.94, 0.90]
    t, p = paired_t_test(a, b)
    expected = scipy_stats.ttest_rel(a, b)
    assert t == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_t_test_constant_differences():
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]) == (0.0, 1.0)
    t, p = paired_t_test([1.5, 2.5], [1.0, 2.0])
    assert t == math.inf
    assert math.isnan(p)


def test_compare_identical_differences_not_significant():
    comparison = compare([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert not comparison.significant
    assert "identical in all 3 seeds" in comparison.statement()


def test_t_test_needs_two_seeds():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_t_test([0.9], [0.8])


def test_length_mismatch_rejected():
    with pytest.raises(ValueError, match="one value per seed"):
        compare([0.9, 0.8], [0.8])


def test_non_numeric_rejected():
    with pytest.raises(TypeError, match="method"):
        compare(["a", "b"], [0.1, 0.2])


def test_nan_rejected():
    with pytest.raises(ValueError, match="baseline must be finite"):
        compare([0.1, 0.2], [0.1, float("nan")])


def test_bootstrap_contains_mean_and_bounds():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 0.1, size=20)
    b = a - 0.5 + rng.normal(0, 0.05, size=20)
    low, high = bootstrap_ci(a, b)
    assert low <= 0.5 <= high or abs((a - b).mean() - 0.5) > 0.02
    assert low <= (a - b).mean() <= high
    assert min(a - b) <= low and high <= max(a - b)


def test_bootstrap_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1, 2], [0, 1], confidence=1.5)


def test_bootstrap_rejects_bad_resamples():
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1, 2], [0, 1], n_resamples=0)


def test_compare_significant_statement():
    comparison = compare([0.95, 0.96, 0.97, 0.955], [0.90, 0.905, 0.915, 0.90])
    assert comparison.significant
    text = comparison.statement("DAGR", "the baseline")
    assert "higher" in text
    assert "significant (paired t-test" in text
    assert "not significant" not in text
    assert comparison.cell().endswith("*")


def test_compare_not_significant_statement():
    comparison = compare([0.90, 0.95, 0.91], [0.92, 0.91, 0.92])
    assert not comparison.significant
    assert "not significant" in comparison.statement()


def test_compare_single_seed():
    comparison = compare([0.9], [0.8])
    assert math.isnan(comparison.p)
    assert not comparison.significant
    assert "one seed only" in comparison.statement()
    assert "p=n/a" in comparison.cell()


def test_compare_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        compare([1, 2], [0, 1], alpha=0.0)


def test_comparison_equal_statement():
    comparison = Comparison(0.0, 0.0, 1.0, 0.0, 0.0, 3)
    assert comparison.statement("A", "B").startswith("A has the same mean as B")


def test_statement_rounds_tiny_difference():
    comparison = Comparison(-1e-17, 0.0, 1.0, -0.01, 0.01, 3)
    assert comparison.statement("A", "B").startswith("A has the same mean as B")
