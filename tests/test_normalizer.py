"""The point-wise Gaussian normaliser against NumPy: fit, round trip, and resampling that is
exact on subgrids (periodic and vertex) and linear between stored points."""

import jax.numpy as jnp
import numpy as np
import pytest

from fno.data import normalizer
from tests.helpers import InMemorySource


def test_fit_is_the_pointwise_mean_and_unbiased_std():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(37, 9, 9))
    y = rng.normal(-1.0, 0.5, size=(37, 9, 9))
    fields = normalizer.fit(InMemorySource(x, y), chunk=8)  # chunks that do not divide 37
    np.testing.assert_allclose(fields["x_mean"], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(fields["x_std"], x.std(0, ddof=1), rtol=1e-5)  # torch.std
    np.testing.assert_allclose(fields["y_mean"], y.mean(0), rtol=1e-5)
    np.testing.assert_allclose(fields["y_std"], y.std(0, ddof=1), rtol=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        normalizer.fit(InMemorySource(x[:1], y[:1]))


def test_encode_then_decode_is_the_identity():
    rng = np.random.default_rng(1)
    x, mean, std = rng.normal(size=(3, 4, 5))
    std = np.abs(std)
    back = normalizer.decode(normalizer.encode(x, mean, std), mean, std)
    np.testing.assert_allclose(back, x, rtol=1e-12)


@pytest.mark.parametrize("grid, stored, target, step", [
    ("vertex", 421, 85, 5), ("vertex", 421, 141, 3), ("periodic", 64, 16, 4)])
def test_resampling_to_a_subgrid_is_exact(grid, stored, target, step):
    field = np.random.default_rng(2).normal(size=(stored, stored)).astype(np.float32)
    out = np.asarray(normalizer.resample(jnp.asarray(field), (target, target), grid))
    np.testing.assert_array_equal(out, field[::step, ::step])


def test_resampling_between_points_is_linear_interpolation():
    stored = np.linspace(0.0, 1.0, 5)  # a linear function on a 5-point vertex grid
    field = np.add.outer(2 * stored, 3 * stored).astype(np.float32)
    out = np.asarray(normalizer.resample(jnp.asarray(field), (7, 4), "vertex"))
    x, y = np.linspace(0.0, 1.0, 7), np.linspace(0.0, 1.0, 4)
    np.testing.assert_allclose(out, np.add.outer(2 * x, 3 * y), atol=1e-6)
    periodic = np.sin(2 * np.pi * np.arange(8) / 8)
    out = np.asarray(normalizer.resample(jnp.asarray(periodic), (16,), "periodic"))
    midpoints = (periodic + np.roll(periodic, -1)) / 2  # the last one wraps to the first
    np.testing.assert_allclose(out[1::2], midpoints, atol=1e-6)
    np.testing.assert_allclose(out[::2], periodic, atol=0)
