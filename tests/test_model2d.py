"""FNO2d and SpectralConv2d against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fno.models.base import count_params
from fno.models.fno2d import (
    FNO2d,
    SpectralConv2d,
    corner_dft,
    corner_dft_bases,
    kept_kx,
    resolve_spectral_impl_2d,
)
from tests.test_model import assert_vjp_matches


def apply(module, *args):
    """``module(*args)`` compiled as one program: eager op-by-op dispatch of the FFT paths
    and their gradients costs several times the compile."""
    return nnx.jit(lambda m, *a: m(*a))(module, *args)


def grads_of(model, loss):
    """``nnx.grad(loss)(model)``, compiled, as the parameter leaves."""
    return jax.tree.leaves(nnx.state(nnx.jit(nnx.grad(loss))(model), nnx.Param))


def channel_first(x):
    """``[b, sx, sy, c]`` -> the layer's ``[c, b, sx, sy]``."""
    return jnp.transpose(x, (3, 0, 1, 2))


def naive_spectral_conv2d(x, w_real, w_imag, modes):
    """float64 reference on ``[b, sx, sy, c]``: explicit 2D DFT sums per kept mode (both kx
    corners, ky < modes), complex mixing, explicit inverse of the half spectrum."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w_real, np.float64) + 1j * np.asarray(w_imag, np.float64)
    b, sx, sy, _ = x.shape
    gx, gy = np.meshgrid(np.arange(sx), np.arange(sy), indexing="ij")
    # The corners as the released code indexes them: [:m] and [-m:] of the full x spectrum.
    corners = list(range(modes)) + list(range(sx - modes, sx))
    out = np.zeros((b, sx, sy, w.shape[1]))
    for q, kx in enumerate(corners):
        for ky in range(modes):
            basis = np.exp(-2j * np.pi * (kx * gx / sx + ky * gy / sy))  # forward DFT term
            x_k = np.einsum("bxyi,xy->bi", x, basis)
            y_k = np.einsum("bi,io->bo", x_k, w[:, :, q, ky])
            # A real field from the half spectrum in y: ky = 0 once (real part), others twice.
            factor = 1.0 if ky == 0 else 2.0
            out += factor * np.real(np.einsum("bo,xy->bxyo", y_k, np.conj(basis))) / (sx * sy)
    return out


@pytest.mark.parametrize("impl", ["fft", "dft"])
@pytest.mark.parametrize("grid, modes", [((16, 20), 8), ((17, 13), 6)])
def test_spectral_conv_matches_naive_2d_dft(impl, grid, modes):
    """Both corners, non-square grids; 16 = 2 * 8 makes the corners meet (kx = 8, the x
    Nyquist, is kept), 13 = 2 * 6 + 1 keeps all but the highest ky."""
    cin, cout = 3, 4
    layer = SpectralConv2d(cin, cout, modes, impl=impl, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, *grid, cin))
    got = np.asarray(apply(layer, channel_first(x)), np.float64).transpose(1, 2, 3, 0)
    want = naive_spectral_conv2d(x, layer.weight_real[...], layer.weight_imag[...], modes)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_kept_wavenumbers_are_both_corners():
    assert kept_kx(17, 3).tolist() == [0, 1, 2, 14, 15, 16]


def test_fft_and_dft_models_agree():
    a = jax.random.normal(jax.random.key(2), (2, 30, 26))
    ya, yb = (np.asarray(apply(FNO2d(width=8, modes=4, spectral_impl=impl, rngs=nnx.Rngs(3)), a))
              for impl in ("fft", "dft"))
    assert np.linalg.norm(ya - yb) / np.linalg.norm(ya) < 1e-5


def test_spectral_weights_are_real_parameters_initialised_like_reference():
    layer = SpectralConv2d(4, 6, 5, rngs=nnx.Rngs(0))
    scale = 1.0 / (4 * 6)
    for w in (layer.weight_real[...], layer.weight_imag[...]):
        # Both corners stacked along kx: [:, :, :5] is weights1, [:, :, 5:] weights2.
        assert w.dtype == jnp.float32 and w.shape == (4, 6, 10, 5)
        assert 0.0 <= float(w.min()) and float(w.max()) < scale
    assert not np.allclose(layer.weight_real[...], layer.weight_imag[...])


def test_default_parameter_count_equals_released_code():
    """fc0 3*32+32, 4 x (two corners 2*32*32*12*12 complex + 32*32+32), fc1 32*128+128,
    fc2 128+1: 2,368,001 real scalars, as the released fourier_2d.py (without its early
    BatchNorm layers)."""
    assert count_params(nnx.eval_shape(lambda: FNO2d(rngs=nnx.Rngs(0)))) == 2_368_001


@pytest.fixture(scope="module")
def darcy_modes_model():
    """The default 12 modes (narrow, to keep the tests fast)."""
    return FNO2d(width=8, modes=12, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("grid", [(32, 32), (64, 48)])
def test_same_parameters_run_at_any_resolution(darcy_modes_model, grid):
    x = np.linspace(0, 1, grid[0])[:, None] * np.linspace(0, 1, grid[1])
    a = jnp.asarray(np.where(np.sin(6 * x) > 0, 12.0, 3.0), jnp.float32)[None].repeat(2, 0)
    out = apply(darcy_modes_model, a)
    assert out.shape == (2, *grid) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))


def test_resolution_below_two_modes_is_rejected(darcy_modes_model):
    with pytest.raises(ValueError, match="too coarse"):
        darcy_modes_model(jnp.zeros((1, 64, 23)))


def test_auto_rule_and_names():
    assert resolve_spectral_impl_2d("auto", 421, 421) == "dft"
    assert resolve_spectral_impl_2d("auto", 4096, 64) == "fft"
    assert resolve_spectral_impl_2d("fft", 85, 85) == "fft"
    with pytest.raises(ValueError, match="spectral_impl"):
        resolve_spectral_impl_2d("fast", 85, 85)


@pytest.mark.parametrize("impl", ["fft", "dft"])
def test_gradients_finite_and_nonzero(impl):
    model = FNO2d(width=8, modes=4, spectral_impl=impl, rngs=nnx.Rngs(0))
    a = jax.random.normal(jax.random.key(0), (2, 16, 12))
    u = jnp.roll(a, 2, axis=1)

    leaves = grads_of(model, lambda m: jnp.mean((m(a) - u) ** 2))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.abs(g).max()) > 0 for g in leaves)


@pytest.mark.parametrize("s", [16, 17])
def test_corner_dft_vjp_matches_autodiff_of_plain_matmul(s):
    """The x transforms' hand-written backward (fno.models.fno1d's grid matmul on the corner
    bases) equals jax.vjp of the same linear maps written as plain einsums."""
    modes = 4
    analysis, synthesis = corner_dft(s, modes, "float32")
    forward, inverse = (np.asarray(b, np.float32) for b in corner_dft_bases(s, modes))
    x = jax.random.normal(jax.random.key(0), (5, 3, 2 * s))
    spec = jax.random.normal(jax.random.key(1), (5, 3, 4 * modes))
    for ours, plain, arg in [
        (analysis, lambda v: jnp.einsum("cbs,sk->cbk", v, forward), x),
        (synthesis, lambda v: jnp.einsum("cbk,ks->cbs", v, inverse), spec),
    ]:
        assert_vjp_matches(ours, plain, (arg,))


def test_model_matches_channel_last_reference():
    """The whole FNO2d against a float64 NumPy forward pass in the released code's
    channel-last layout with the naive 2D DFT and its grid (x along axis 1, (a, x, y))."""
    from scipy.special import erf

    model = FNO2d(width=8, modes=4, num_layers=2, spectral_impl="dft", rngs=nnx.Rngs(0))
    a = np.asarray(jax.random.normal(jax.random.key(3), (2, 10, 8)), np.float64)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.state(model, nnx.Param))

    def dense(layer, h):
        return h @ layer["kernel"][...] + layer["bias"][...]

    def act(h):
        return 0.5 * h * (1 + erf(h / np.sqrt(2)))

    gx, gy = np.meshgrid(np.linspace(0, 1, 10), np.linspace(0, 1, 8), indexing="ij")
    h = dense(p["lift"], np.stack([a, *(np.broadcast_to(g, a.shape) for g in (gx, gy))], -1))
    for i in range(2):
        spec = p["spectral"][i]
        h = (naive_spectral_conv2d(h, spec["weight_real"][...], spec["weight_imag"][...], 4)
             + dense(p["pointwise"][i], h))
        h = act(h) if i < 1 else h
    want = dense(p["project_out"], act(dense(p["project_hidden"], h)))[..., 0]
    got = np.asarray(apply(model, jnp.asarray(a, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("impl", ["fft", "dft"])
def test_bfloat16_spectral_conv_is_close_to_float32(impl):
    layer = SpectralConv2d(8, 8, 4, impl=impl, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (8, 2, 20, 16))
    a = np.asarray(apply(layer, x))
    b = apply(layer, x.astype(jnp.bfloat16))
    assert b.dtype == jnp.bfloat16
    b = np.asarray(b, np.float32)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 2e-2  # bfloat16 keeps 8 bits


def test_bfloat16_model_keeps_float32_interfaces():
    model16 = FNO2d(width=8, modes=4, dtype="bfloat16", rngs=nnx.Rngs(0))
    u = jax.random.normal(jax.random.key(1), (2, 20, 16))
    assert apply(model16, u).dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in grads_of(model16, lambda m: jnp.mean(m(u) ** 2)))
