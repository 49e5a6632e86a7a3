"""The arrays a case is drawn with: what the data values promise the layers downstream."""

import numpy as np
import pytest

from harness.generate.cases import data_values


@pytest.mark.parametrize("shape", [(3,), (1, 1, 1, 5), (2, 4)])
def test_data_values_are_spaced_and_away_from_zero(shape):
    for seed in range(50):
        values = data_values(np.random.RandomState(seed), shape).ravel()
        assert np.abs(values).min() >= 0.05
        gaps = np.diff(np.sort(np.abs(values)))
        assert gaps.min() >= 0.0055 - 1e-7


def test_no_data_value_is_the_mean_of_the_others():
    """On a lattice, three evenly spaced values have the middle one as their mean, which MVN
    centres to a rounding error on either side of a ReLU's kink."""
    closest = min(
        np.abs(values - values.mean()).min()
        for seed in range(200)
        for values in [data_values(np.random.RandomState(seed), (3,), positive=True).astype(np.float64)]
    )
    assert closest > 1e-5
