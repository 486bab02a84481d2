"""The deploy detector's statistics: the fast Mann-Whitney U matches scipy's, the error
rate bound is conservative, and the onset check of error verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta, mannwhitneyu
from strata.analytics.detectors.deploys import error_verdict, greater_p, looks, rate_bound


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


@pytest.mark.parametrize(("errors", "n"), [(0, 8), (1, 8), (5, 100), (37, 240), (299, 300)])
def test_rate_bound_is_scipy_beta_quantile(errors: int, n: int) -> None:
    """The Clopper-Pearson bound from scipy.special's inverse incomplete beta, which the
    detector uses instead of scipy.stats, equals scipy.stats' beta.ppf."""
    failed = np.arange(n) < errors
    assert rate_bound(failed) == pytest.approx(beta.ppf(0.95, errors + 1, n - errors),
                                               rel=1e-12)


def test_looks_grow_by_half_and_end_with_everything() -> None:
    assert list(looks(30)) == [8, 12, 18, 27, 30]
    assert list(looks(7)) == []


def _tool_calls(failing: list[int], n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    failed = np.zeros(n, dtype=bool)
    failed[failing] = True
    return failed, np.where(failed, "ToolBroken", "").astype(object)


def test_errors_from_the_deploy_on_are_found_though_its_first_calls_were_clean() -> None:
    """A tool failing on ~13% of its calls with a new type, its first 12 calls clean (as
    likely as not at that rate): blamed on the deploy at the look of 27 calls."""
    old, old_types = _tool_calls([], 200)
    new, new_types = _tool_calls([12, 17, 22, 27])
    verdict = error_verdict("errors", old, old_types, new, new_types, np.arange(30))
    assert verdict is not None
    assert (verdict.look_end_ns, verdict.current) == (26, pytest.approx(3 / 27))


def test_errors_that_start_well_after_the_deploy_are_not_blamed_on_it() -> None:
    """No error in the first half of every look, then 40% failing: a later onset."""
    old, old_types = _tool_calls([], 200)
    new, new_types = _tool_calls(list(range(18, 30)))
    assert error_verdict("errors", old, old_types, new, new_types, np.arange(30)) is None
