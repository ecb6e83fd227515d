"""The random initial conditions: normalisation, per-mode statistics, determinism."""

import numpy as np
import pytest

from fno.data import grf


def test_pointwise_variance_is_resolution_free():
    # sum_k 2 * 625 / ((2 pi k)^2 + 25)^2, the benchmark's pointwise variance.
    assert grf.pointwise_variance(8192) == pytest.approx(0.35233, abs=1e-5)
    assert grf.pointwise_variance(256) == pytest.approx(grf.pointwise_variance(8192), rel=1e-6)


def test_per_mode_variances_and_zero_mean():
    n, s = 4000, 64
    u0 = grf.sample_grf(11, range(n), s)
    coeffs = np.fft.rfft(u0, norm="forward")
    lam = grf.mode_std(np.arange(1, s // 2))
    # k = 0 and the Nyquist mode are exactly absent: every sample has zero mean.
    assert np.abs(coeffs[:, 0]).max() < 1e-15
    assert np.abs(coeffs[:, s // 2]).max() < 1e-15
    assert np.abs(u0.mean(axis=1)).max() < 1e-15
    # u0 = sum lam_k (xi cos + eta sin)  <=>  c_k = lam_k (xi - i eta) / 2.
    xi = 2 * coeffs[:, 1:s // 2].real / lam
    eta = -2 * coeffs[:, 1:s // 2].imag / lam
    tol = 5 * np.sqrt(2 / n)  # 5 standard errors of a sample variance
    for z in (xi, eta):
        np.testing.assert_allclose(z.var(axis=0), 1.0, atol=tol)
        np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose((xi * eta).mean(axis=0), 0.0, atol=5 / np.sqrt(n))
    # The pointwise variance, dominated by mode 1 (~85 %), so a loose tolerance.
    assert u0.var() == pytest.approx(grf.pointwise_variance(s), rel=0.1)


def test_sample_depends_only_on_seed_and_index():
    batch = grf.sample_grf(3, range(10), 128)
    picked = grf.sample_grf(3, [7, 2], 128)
    assert np.array_equal(picked, batch[[7, 2]])
    assert not np.allclose(grf.sample_grf(4, [7], 128), batch[7])
    assert not np.allclose(batch[0], batch[1])


def test_low_modes_are_the_same_at_every_resolution():
    coarse = np.fft.rfft(grf.sample_grf(5, [0], 64)[0], norm="forward")
    fine = np.fft.rfft(grf.sample_grf(5, [0], 1024)[0], norm="forward")
    np.testing.assert_allclose(fine[:32], coarse[:32], rtol=0, atol=1e-15)


@pytest.mark.parametrize("resolution", [2, 63, 0])
def test_bad_resolution(resolution):
    with pytest.raises(ValueError, match="resolution"):
        grf.sample_grf(0, [0], resolution)
