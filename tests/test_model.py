"""FNO1d and SpectralConv1d against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fno.models.base import count_params
from fno.models.fno1d import FNO1d, SpectralConv1d
from fno.models.layers import channel_matmul, dft_bases, gelu, truncated_dft


def channel_first(x):
    """``[b, s, c]`` -> the layer's ``[c, b, s]``."""
    return jnp.transpose(x, (2, 0, 1))


def naive_spectral_conv(x, w_real, w_imag, modes):
    """float64 reference on ``[b, s, c]``: explicit DFT sums, complex mixing, explicit
    inverse DFT."""
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
    got = np.asarray(layer(channel_first(x)), np.float64).transpose(1, 2, 0)
    want = naive_spectral_conv(x, layer.weight_real[...], layer.weight_imag[...], modes)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_fft_and_dft_paths_agree():
    x = jax.random.normal(jax.random.key(2), (16, 4, 1024))
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


def test_normal_spectral_init_has_neuraloperators_complex_variance():
    """spectral_init="normal": zero-mean complex weights of variance 2 / (in + out), half in
    each part (neuraloperator's ``weight.normal_(0, sqrt(2 / (in + out)))`` on a cfloat)."""
    layer = SpectralConv1d(20, 30, 40, init="normal", rngs=nnx.Rngs(0))
    w = np.asarray(layer.weight_real[...], np.float64) + 1j * np.asarray(
        layer.weight_imag[...], np.float64)
    assert w.shape == (20, 30, 40)
    assert abs(w.mean()) < 0.01
    assert np.mean(np.abs(w) ** 2) == pytest.approx(2 / 50, rel=0.05)
    assert np.var(w.real) == pytest.approx(np.var(w.imag), rel=0.1)
    with pytest.raises(ValueError, match="spectral_init"):
        SpectralConv1d(4, 4, 2, init="xavier", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("init", ["uniform", "normal"])
def test_config_spectral_init_reaches_every_layer(init):
    """``model.spectral_init`` from a config draws every spectral layer of the model: the
    released draw is never negative, the normal one is."""
    from configs import default
    from fno import registry

    config = default.get_config()
    config.model.update(width=8, modes=4, spectral_init=init)
    model = registry.create_model(config, 0)
    negative = [bool((layer.weight_real[...] < 0).any()) for layer in model.spectral]
    assert negative == [init == "normal"] * len(model.spectral)


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



@pytest.mark.parametrize("s", [32, 100])
def test_truncated_dft_vjp_matches_autodiff_of_plain_matmul(s):
    """The hand-written backward of analysis and synthesis equals jax.vjp of the same
    linear maps written as plain einsums."""
    modes = 8
    analysis, synthesis = truncated_dft(s, modes, "float32")
    forward, inverse = (np.asarray(b, np.float32) for b in dft_bases(s, modes))
    x = jax.random.normal(jax.random.key(0), (5, 3, s))
    spec = jax.random.normal(jax.random.key(1), (5, 3, 2 * modes))
    for ours, plain, arg in [
        (analysis, lambda v: jnp.einsum("cbs,sk->cbk", v, forward), x),
        (synthesis, lambda v: jnp.einsum("cbk,ks->cbs", v, inverse), spec),
    ]:
        assert_vjp_matches(ours, plain, (arg,))


def test_channel_matmul_vjp_matches_autodiff():
    kernel = jax.random.normal(jax.random.key(0), (6, 4))
    x = jax.random.normal(jax.random.key(1), (6, 3, 10))
    assert_vjp_matches(channel_matmul, lambda k, v: jnp.einsum("io,ibs->obs", k, v),
                       (kernel, x))


def assert_vjp_matches(ours, plain, args):
    out, vjp = jax.vjp(ours, *args)
    want_out, want_vjp = jax.vjp(plain, *args)
    cot = jax.random.normal(jax.random.key(2), out.shape)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    for got, want in zip(vjp(cot), want_vjp(cot), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_gelu_matches_exact_float64_definition_and_its_derivative():
    x = np.linspace(-8, 8, 4001, dtype=np.float32)
    from scipy.special import erf

    x64 = x.astype(np.float64)
    want = 0.5 * x64 * (1 + erf(x64 / np.sqrt(2)))
    np.testing.assert_allclose(np.asarray(gelu(jnp.asarray(x))), want, rtol=1e-6, atol=1.5e-6)
    dwant = 0.5 * (1 + erf(x64 / np.sqrt(2))) + x64 * np.exp(-x64**2 / 2) / np.sqrt(2 * np.pi)
    got = np.asarray(jax.vmap(jax.grad(gelu))(jnp.asarray(x)))
    np.testing.assert_allclose(got, dwant, rtol=1e-5, atol=1e-6)


def test_grid_major_model_matches_channel_last_reference():
    """The whole FNO1d against a float64 NumPy forward pass in the paper's channel-last
    layout with the naive DFT: layout and custom gradients change nothing numerically."""
    from scipy.special import erf

    model = FNO1d(width=8, modes=4, num_layers=2, projection_width=16, rngs=nnx.Rngs(0))
    u0 = np.asarray(jax.random.normal(jax.random.key(3), (3, 40)), np.float64)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), nnx.state(model, nnx.Param))

    def dense(layer, h):
        return h @ layer["kernel"][...] + layer["bias"][...]

    def act(h):
        return 0.5 * h * (1 + erf(h / np.sqrt(2)))

    grid = np.broadcast_to(np.linspace(0, 1, 40), u0.shape)
    h = dense(p["lift"], np.stack([u0, grid], -1))
    for i in range(2):
        spec = p["spectral"][i]
        h = (naive_spectral_conv(h, spec["weight_real"][...], spec["weight_imag"][...], 4)
             + dense(p["pointwise"][i], h))
        h = act(h) if i < 1 else h
    want = dense(p["project_out"], act(dense(p["project_hidden"], h)))[..., 0]
    got = np.asarray(model(jnp.asarray(u0, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("impl", ["fft", "dft"])
def test_bfloat16_compute_is_close_to_float32_and_keeps_float32_interfaces(impl):
    model32 = FNO1d(width=16, modes=8, spectral_impl=impl, rngs=nnx.Rngs(0))
    model16 = FNO1d(width=16, modes=8, spectral_impl=impl, dtype="bfloat16",
                    rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (16, 3, 128))
    a = np.asarray(model32.spectral[0](x))
    b = np.asarray(model16.spectral[0](x.astype(jnp.bfloat16)), np.float32)
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 2e-2  # bfloat16 keeps 8 bits
    u0 = jax.random.normal(jax.random.key(1), (3, 128))
    assert model16(u0).dtype == jnp.float32
    grads = nnx.grad(lambda m: jnp.mean(m(u0) ** 2))(model16)
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(nnx.state(grads, nnx.Param)))
