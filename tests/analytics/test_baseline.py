"""The rolling statistics under the shift detectors."""

import warnings

import numpy as np
import pytest
from strata.analytics.baseline import row_nanmedians


@pytest.mark.parametrize("width", [1, 2, 5, 120])
def test_row_nanmedians_equal_numpys_on_gappy_rows(width: int) -> None:
    rng = np.random.default_rng(width)
    rows = rng.lognormal(size=(400, width))
    rows[rng.random(rows.shape) < 0.4] = np.nan  # odd and even counts of values
    rows[:7] = np.nan  # rows without any value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on all-NaN rows
        expected = np.nanmedian(rows, axis=1)
    np.testing.assert_array_equal(row_nanmedians(rows), expected)


def test_row_nanmedians_of_no_rows() -> None:
    assert row_nanmedians(np.empty((0, 5))).shape == (0,)
