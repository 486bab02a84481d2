"""The deploy detector's statistics: the fast Mann-Whitney U matches scipy's, and the error
rate bound is conservative."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from strata.analytics.detectors.deploys import greater_p, looks, rate_bound


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rounded", [False, True], ids=["continuous", "ties"])
def test_greater_p_equals_scipy_one_sided_mann_whitney(seed: int, rounded: bool) -> None:
    rng = np.random.default_rng(seed)
    new, old = rng.lognormal(0.2, 0.3, 20), rng.lognormal(0.0, 0.3, 240)
    if rounded:
        new, old = np.round(new * 4), np.round(old * 4)
    expected = mannwhitneyu(new, old, alternative="greater").pvalue
    assert greater_p(new, old) == pytest.approx(expected, rel=1e-9)


def test_rate_bound_is_the_upper_bound_not_the_observed_rate() -> None:
    assert rate_bound(np.zeros(240, dtype=bool)) == pytest.approx(1 - 0.05 ** (1 / 240))
    assert rate_bound(np.ones(10, dtype=bool)) == 1.0
    some = np.zeros(100, dtype=bool)
    some[:5] = True
    assert 0.05 < rate_bound(some) < 0.12


def test_looks_grow_by_half_and_end_with_everything() -> None:
    assert list(looks(30)) == [8, 12, 18, 27, 30]
    assert list(looks(7)) == []
