"""Paired comparisons over seeds: a paired t-test and a bootstrap confidence interval.

Two methods trained with the same seeds give paired results: seed ``s`` fixes the
initialization and batch order of both. :func:`compare` tests the mean of the
per-seed differences ``method - baseline``::

    comparison = compare(dagr_accuracies, baseline_accuracies)
    comparison.significant, comparison.statement("DAGR", "the baseline")

With three seeds a t-test has two degrees of freedom, so only large, consistent
differences come out significant, and the statement reports a non-significant
difference as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats


def as_values(name: str, values) -> np.ndarray:
    """Return ``values`` (a sequence, array or tensor) as a finite, non-empty 1-D float64 array."""
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def _paired(method, baseline) -> np.ndarray:
    a = as_values("method", method)
    b = as_values("baseline", baseline)
    if a.shape != b.shape:
        raise ValueError(
            f"method and baseline must have one value per seed each, got {a.size} and {b.size} values"
        )
    return a - b


def paired_t_test(method, baseline) -> tuple[float, float]:
    """Return ``(t, p)`` of the two-sided paired t-test (``scipy.stats.ttest_rel``).

    Needs at least 2 pairs. When every difference is identical the variance is zero
    and the test is undefined: ``p`` is 1.0 for all-zero differences and NaN otherwise
    (``t`` is then +-inf). A NaN ``p`` never counts as significant.
    """
    differences = _paired(method, baseline)
    if differences.size < 2:
        raise ValueError(f"paired_t_test needs at least 2 seeds, got {differences.size}")
    if np.allclose(differences, differences[0], rtol=0.0, atol=1e-12):
        if abs(differences[0]) < 1e-12:
            return 0.0, 1.0
        return math.copysign(math.inf, differences[0]), math.nan
    result = scipy_stats.ttest_rel(np.asarray(method, dtype=np.float64), np.asarray(baseline, dtype=np.float64))
    return float(result.statistic), float(result.pvalue)


def bootstrap_ci(method, baseline, confidence: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Return the percentile bootstrap interval of the mean paired difference ``method - baseline``.

    Seeds are resampled with replacement. With 3 seeds there are only 10 distinct
    resampled means, so the interval is coarse.
    """
    differences = _paired(method, baseline)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, differences.size, size=(n_resamples, differences.size))
    means = differences[picks].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass
class Comparison:
    """A paired comparison over seeds.

    Attributes:
        difference: mean of ``method - baseline`` over seeds.
        t, p: paired t-test statistic and two-sided p-value (NaN with one seed, or
            when every seed gives the same nonzero difference).
        ci_low, ci_high: bootstrap interval of ``difference``.
        n: number of seeds.
        alpha: significance level.
    """

    difference: float
    t: float
    p: float
    ci_low: float
    ci_high: float
    n: int
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        """Whether the t-test rejects a zero mean difference at ``alpha``."""
        return bool(self.p < self.alpha)

    def statement(self, method: str = "the method", baseline: str = "the baseline", scale: float = 100.0,
                  unit: str = " points") -> str:
        """Return one plain sentence on the difference, its interval and its significance."""
        change = self.difference * scale
        interval = f"bootstrap {100 * (1 - self.alpha):.0f}% CI [{self.ci_low * scale:+.2f}, {self.ci_high * scale:+.2f}]"
        if self.n < 2:
            verdict = "one seed only, so no test is possible"
        elif math.isnan(self.p):
            verdict = (f"the difference is identical in all {self.n} seeds, so the t-test is undefined "
                       f"(zero variance) and the difference is not counted as significant")
        elif self.significant:
            verdict = f"significant (paired t-test p = {self.p:.3f}, {self.n} seeds)"
        else:
            verdict = f"not significant (paired t-test p = {self.p:.3f}, {self.n} seeds)"
        # A change that rounds to 0.00 is reported as no change, not as "0.00 lower".
        if round(change, 2) == 0:
            size = "has the same mean as"
        elif change > 0:
            size = f"is {abs(change):.2f}{unit} higher than"
        elif change < 0:
            size = f"is {abs(change):.2f}{unit} lower than"
        else:
            size = "has the same mean as"
        return f"{method} {size} {baseline} ({interval}); {verdict}."

    def cell(self, scale: float = 100.0) -> str:
        """Return a compact table cell such as ``"+0.52 (p=0.210)"``, with ``*`` when significant."""
        mark = "*" if self.significant else ""
        p = "n/a" if math.isnan(self.p) else f"{self.p:.3f}"
        return f"{self.difference * scale:+.2f} (p={p}){mark}"


def compare(method, baseline, alpha: float = 0.05, confidence: float | None = None,
            n_resamples: int = 2000, seed: int = 0) -> Comparison:
    """Compare paired per-seed values of a method and a baseline.

    ``confidence`` of the bootstrap interval defaults to ``1 - alpha``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
    differences = _paired(method, baseline)
    if differences.size >= 2:
        t, p = paired_t_test(method, baseline)
    else:
        t, p = math.nan, math.nan
    low, high = bootstrap_ci(method, baseline, 1.0 - alpha if confidence is None else confidence,
                             n_resamples, seed)
    return Comparison(float(differences.mean()), t, p, low, high, int(differences.size), alpha)
