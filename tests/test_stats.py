import math

import numpy as np
import pytest

from accelbench.stats import SampleStats, percentile


def test_percentiles_match_numpy_linear_interpolation():
    values = sorted([0.5, 3.0, 1.25, 9.0, 2.0, 4.5, 7.25])
    for q in (0, 10, 25, 50, 75, 90, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_sample_stats_fields():
    samples = [1.0, 2.0, 3.0, 4.0, 10.0]
    s = SampleStats.from_samples(samples)
    assert s.n == 5 and s.median == 3.0 and s.min == 1.0 and s.max == 10.0
    assert s.mean == pytest.approx(4.0)
    assert s.stdev == pytest.approx(np.std(samples, ddof=1))
    assert s.cv == pytest.approx(np.std(samples, ddof=1) / 4.0)
    assert s.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert s.p10 == pytest.approx(np.percentile(samples, 10))
    assert s.p90 == pytest.approx(np.percentile(samples, 90))


def test_single_sample_has_zero_spread():
    s = SampleStats.from_samples([0.25])
    assert (s.median, s.stdev, s.cv, s.iqr) == (0.25, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [[], [1.0, math.nan], [-1.0], [math.inf]])
def test_rejects_bad_samples(bad):
    with pytest.raises(ValueError):
        SampleStats.from_samples(bad)
