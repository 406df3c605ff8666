"""cryolab.normalise: one meaning per name, checked against numpy and scipy."""

import numpy as np
import pytest
from scipy import stats

from cryolab.errors import ConfigError, FormatError
from cryolab.normalise import MAD_TO_STD, minmax, percentile_scale, robust_zscore, zscore


@pytest.fixture
def data():
    return np.random.default_rng(0).normal(3.0, 2.0, size=(12, 10, 8)).astype(np.float32)


@pytest.mark.parametrize("fn", [minmax, percentile_scale, zscore, robust_zscore])
def test_each_keeps_its_inputs_float_type(fn, data):
    assert fn(data).dtype == np.float32
    assert fn(data.astype(np.float64)).dtype == np.float64
    assert fn(np.arange(1, 10)).dtype == np.float64


def test_minmax(data):
    out = minmax(data)
    assert out.min() == 0 and out.max() == 1
    np.testing.assert_allclose(out, (data - data.min()) / np.ptp(data), rtol=1e-6)
    with pytest.raises(ConfigError, match="constant"):
        minmax(np.ones(4))
    with pytest.raises(ConfigError, match="empty"):
        minmax(np.array([]))
    with pytest.raises(FormatError, match="NaN"):
        minmax(np.array([0.0, np.nan, 1.0]))


def test_percentile_scale_variants(data):
    out = percentile_scale(data, 90)
    assert np.mean(out > 1) == pytest.approx(0.1, abs=0.01)
    masked = np.where(data > 3, data, 0)
    nonzero = percentile_scale(masked, 50, nonzero=True, clip=(0.0, 1.0))
    top = np.percentile(masked[masked != 0], 50)
    np.testing.assert_allclose(nonzero, np.clip(masked / top, 0, 1), rtol=1e-6)
    assert nonzero.max() == 1 and nonzero[masked == 0].max() == 0
    with pytest.raises(ConfigError, match="percentile"):
        percentile_scale(-np.abs(data))
    with pytest.raises(ConfigError, match=r"\[0, 100\]"):
        percentile_scale(data, 101)


def test_zscore_matches_scipy(data):
    np.testing.assert_allclose(zscore(data.astype(np.float64)),
                               stats.zscore(data.astype(np.float64), axis=None), atol=1e-12)
    with pytest.raises(ConfigError, match="constant"):
        zscore(np.full(5, 2.0))
    np.testing.assert_array_equal(zscore(np.full(5, 2.0), eps=1e-12), np.zeros(5))


def test_robust_zscore_ignores_outliers_and_is_idempotent(data):
    spiked = data.copy().ravel()
    spiked[:20] = -1e4  # gold beads
    out = robust_zscore(spiked, clip=4.0)
    inliers = out[20:]
    assert abs(float(np.median(out))) < 0.05 and abs(float(inliers.std()) - 1) < 0.1
    assert out.min() == -4.0
    np.testing.assert_allclose(robust_zscore(out, clip=4.0), out, atol=1e-5)
    mad = stats.median_abs_deviation(spiked, scale="normal")
    assert MAD_TO_STD == pytest.approx(1 / stats.norm.ppf(0.75), rel=1e-4)
    np.testing.assert_allclose(robust_zscore(spiked), (spiked - np.median(spiked)) / mad,
                               rtol=1e-3)
