"""FNO1d and SpectralConv1d against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fno.model import FNO1d, SpectralConv1d, count_params


def naive_spectral_conv(x, w_real, w_imag, modes):
    """float64 reference: explicit DFT sums, complex mixing, explicit inverse DFT."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w_real, np.float64) + 1j * np.asarray(w_imag, np.float64)
    b, s, _ = x.shape
    j = np.arange(s)
    out = np.zeros((b, s, w.shape[1]))
    for k in range(modes):
        basis = np.exp(-2j * np.pi * k * j / s)  # forward DFT row
        x_k = np.einsum("bsi,s->bi", x, basis)
        y_k = np.einsum("bi,io->bo", x_k, w[:, :, k])
        # Real signal from the half spectrum: k = 0 once (real part), others twice.
        factor = 1.0 if k == 0 else 2.0
        out += factor * np.real(np.einsum("bo,s->bso", y_k, np.conj(basis))) / s
    return out


@pytest.mark.parametrize("impl", ["fft", "dft"])
@pytest.mark.parametrize("s", [32, 100, 256])
def test_spectral_conv_matches_naive_dft(impl, s):
    modes, cin, cout = 8, 3, 5
    layer = SpectralConv1d(cin, cout, modes, impl=impl, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, s, cin))
    got = np.asarray(layer(x), np.float64)
    want = naive_spectral_conv(x, layer.weight_real[...], layer.weight_imag[...], modes)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_fft_and_dft_paths_agree():
    x = jax.random.normal(jax.random.key(2), (4, 1024, 16))
    a = SpectralConv1d(16, 16, 16, impl="fft", rngs=nnx.Rngs(3))
    b = SpectralConv1d(16, 16, 16, impl="dft", rngs=nnx.Rngs(3))
    ya, yb = np.asarray(a(x)), np.asarray(b(x))
    assert np.linalg.norm(ya - yb) / np.linalg.norm(ya) < 1e-5


def test_spectral_weights_are_real_parameters_initialised_like_reference():
    layer = SpectralConv1d(4, 6, 5, rngs=nnx.Rngs(0))
    scale = 1.0 / (4 * 6)
    for w in (layer.weight_real[...], layer.weight_imag[...]):
        assert w.dtype == jnp.float32 and w.shape == (4, 6, 5)
        assert 0.0 <= float(w.min()) and float(w.max()) < scale
    assert not np.allclose(layer.weight_real[...], layer.weight_imag[...])


def test_default_parameter_count():
    assert count_params(FNO1d(rngs=nnx.Rngs(0))) == 549_569


@pytest.mark.parametrize("s", [64, 256, 1024, 8192])
def test_same_parameters_run_at_any_resolution(s):
    model = FNO1d(rngs=nnx.Rngs(0))
    u0 = jnp.sin(2 * jnp.pi * jnp.linspace(0, 1, s, endpoint=False))[None].repeat(2, 0)
    out = model(u0)
    assert out.shape == (2, s)
    assert bool(jnp.all(jnp.isfinite(out)))


def test_resolution_below_two_modes_is_rejected():
    model = FNO1d(modes=16, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="too coarse"):
        model(jnp.zeros((1, 30)))


def test_gradients_finite_and_nonzero():
    model = FNO1d(width=16, modes=8, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (3, 64))
    y = jnp.roll(x, 3, axis=1)

    def loss(m):
        return jnp.mean((m(x) - y) ** 2)

    grads = nnx.grad(loss)(model)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.abs(g).max()) > 0 for g in leaves)

