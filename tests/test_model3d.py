"""FNO3d and SpectralConv3d against independent references."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from fno import registry
from fno.models.base import count_params
from fno.models.fno3d import (
    FNO3d,
    SpectralConv3d,
    check_time_padding,
    resolve_spectral_impl_3d,
)
from fno.parallel import sharding


def apply(module, *args):
    """``module(*args)`` compiled as one program (eager dispatch of the FFT paths costs
    several times the compile)."""
    return nnx.jit(lambda m, *a: m(*a))(module, *args)


def channel_first(x):
    """``[b, sx, sy, st, c]`` -> the layer's ``[c, b, sx, sy, st]``."""
    return jnp.transpose(x, (4, 0, 1, 2, 3))


def naive_spectral_conv3d(x, w_real, w_imag, modes):
    """float64 reference on ``[b, sx, sy, st, c]``: explicit 3D DFT sums per kept mode (kx and
    ky of both signs, kz < modes), complex mixing, explicit inverse of the half spectrum."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w_real, np.float64) + 1j * np.asarray(w_imag, np.float64)
    b, sx, sy, st, _ = x.shape
    gx, gy, gt = np.meshgrid(np.arange(sx), np.arange(sy), np.arange(st), indexing="ij")
    # The released code's four corners: [:m] and [-m:] of the full x and y spectra.
    kept_x = list(range(modes)) + list(range(sx - modes, sx))
    kept_y = list(range(modes)) + list(range(sy - modes, sy))
    out = np.zeros((b, sx, sy, st, w.shape[1]))
    for qx, kx in enumerate(kept_x):
        for qy, ky in enumerate(kept_y):
            for kz in range(modes):
                basis = np.exp(-2j * np.pi * (kx * gx / sx + ky * gy / sy + kz * gt / st))
                x_k = np.einsum("bxyti,xyt->bi", x, basis)
                y_k = x_k @ w[:, :, qx, qy, kz]
                # A real field from the half spectrum in t: kz = 0 once (real part), others
                # twice.
                factor = 1.0 if kz == 0 else 2.0
                out += factor * np.real(np.einsum("bo,xyt->bxyto", y_k, np.conj(basis)))
    return out / (sx * sy * st)


@pytest.mark.parametrize("impl", ["fft", "dft"])
@pytest.mark.parametrize("grid, modes", [((8, 10, 9), 3), ((6, 7, 8), 3)])
def test_spectral_conv_matches_naive_3d_dft(impl, grid, modes):
    """Four corners on odd and even axes; 6 = 2 * 3 makes the x corners meet (kx = 3, the x
    Nyquist, is kept), 7 = 2 * 3 + 1 keeps all ky but none twice."""
    cin, cout = 3, 2
    layer = SpectralConv3d(cin, cout, modes, impl=impl, rngs=nnx.Rngs(0))
    assert layer.weight_real[...].shape == (cin, cout, 2 * modes, 2 * modes, modes)
    x = jax.random.normal(jax.random.key(1), (2, *grid, cin))
    got = np.asarray(apply(layer, channel_first(x)), np.float64).transpose(1, 2, 3, 4, 0)
    want = naive_spectral_conv3d(x, layer.weight_real[...], layer.weight_imag[...], modes)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


def test_fft_and_dft_models_agree():
    a = jax.random.normal(jax.random.key(2), (2, 10, 8, 7))
    ya, yb = (np.asarray(apply(FNO3d(width=6, modes=3, time_padding=2, spectral_impl=impl,
                                     rngs=nnx.Rngs(3)), a))
              for impl in ("fft", "dft"))
    assert ya.shape == (2, 10, 8, 7)
    assert np.linalg.norm(ya - yb) / np.linalg.norm(ya) < 1e-5


def test_model_matches_channel_last_reference():
    """The whole FNO3d against a float64 NumPy forward pass in the released code's
    channel-last layout: the input fields then (x, y, t), each linspace(0, 1, s) over the
    unpadded grid; zeros appended to t after the lift, cropped before the projection; the
    naive 3D DFT."""
    from scipy.special import erf

    pad, modes = 2, 2
    model = FNO3d(width=4, modes=modes, in_channels=2, num_layers=2, time_padding=pad,
                  rngs=nnx.Rngs(0))
    a = np.asarray(jax.random.normal(jax.random.key(3), (2, 6, 5, 4, 2)), np.float64)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.state(model, nnx.Param))

    def dense(layer, h):
        return h @ layer["kernel"][...] + layer["bias"][...]

    def act(h):
        return 0.5 * h * (1 + erf(h / np.sqrt(2)))

    coords = np.meshgrid(*(np.linspace(0, 1, s) for s in a.shape[1:4]), indexing="ij")
    h = dense(p["lift"], np.concatenate(
        [a, np.stack([np.broadcast_to(g, a.shape[:4]) for g in coords], -1)], -1))
    h = np.pad(h, ((0, 0), (0, 0), (0, 0), (0, pad), (0, 0)))
    for i in range(2):
        spec = p["spectral"][i]
        h = (naive_spectral_conv3d(h, spec["weight_real"][...], spec["weight_imag"][...],
                                   modes)
             + dense(p["pointwise"][i], h))
        h = act(h) if i < 1 else h
    h = h[:, :, :, :-pad]
    want = dense(p["project_out"], act(dense(p["project_hidden"], h)))[..., 0]
    got = np.asarray(apply(model, jnp.asarray(a, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_parameter_count_of_released_settings():
    """Width 20, 8 modes, fc0 from 13 = 10 input fields + (x, y, t): fc0 13*20+20, 4 x (four
    corners 4*20*20*8*8*8 complex, two reals each, + 20*20+20), fc1 20*128+128, fc2 128+1:
    6,558,377 real scalars. The paper's 6,558,537 is 160 more: the released model also
    declares four BatchNorm3d(20) (weight and bias, 4 * 40), which its forward pass no
    longer uses."""
    model = nnx.eval_shape(lambda: FNO3d(in_channels=10, rngs=nnx.Rngs(0)))
    assert model.lift.kernel.shape == (13, 20)
    assert count_params(model) == 6_558_377 == 6_558_537 - 4 * 2 * 20


@pytest.fixture(scope="module")
def small_model():
    return FNO3d(width=4, modes=2, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("grid", [(8, 8, 6), (12, 10, 9)])
def test_same_parameters_run_at_any_resolution(small_model, grid):
    a = jax.random.normal(jax.random.key(4), (2, *grid))
    out = apply(small_model, a)
    assert out.shape == (2, *grid) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))


def test_resolution_below_two_modes_is_rejected(small_model):
    with pytest.raises(ValueError, match="too coarse"):
        small_model(jnp.zeros((1, 8, 8, 3)))


@pytest.mark.parametrize("impl", ["fft", "dft"])
def test_gradients_finite_and_nonzero(impl):
    model = FNO3d(width=4, modes=2, time_padding=1, spectral_impl=impl, rngs=nnx.Rngs(0))
    a = jax.random.normal(jax.random.key(0), (2, 6, 5, 4))
    u = jnp.roll(a, 1, axis=3)
    grads = nnx.jit(nnx.grad(lambda m: jnp.mean((m(a) - u) ** 2)))(model)
    leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.abs(g).max()) > 0 for g in leaves)


def test_auto_rule_time_padding_and_names():
    assert resolve_spectral_impl_3d("auto", 64, 64, 46) == "dft"
    assert resolve_spectral_impl_3d("auto", 64, 64, 4096) == "fft"
    assert resolve_spectral_impl_3d("fft", 64, 64, 46) == "fft"
    with pytest.raises(ValueError, match="spectral_impl"):
        resolve_spectral_impl_3d("fast", 64, 64, 46)
    assert check_time_padding(np.int64(6)) == 6
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="model.time_padding must be a non-negative"):
            FNO3d(width=4, modes=2, time_padding=bad, rngs=nnx.Rngs(0))


def test_registry_builds_fno3d_and_its_param_axes_shard_it():
    """``MODELS["fno3d"]`` from a config (``model.time_padding`` read where present), and
    the base class's parameter axes: every map reading the hidden state split over its input
    channels, the lift over its outputs, ``project_out`` whole."""
    model_config = ml_collections.ConfigDict(dict(
        name="fno3d", width=8, modes=2, in_channels=None, out_channels=None, num_layers=2,
        activation="gelu", projection_width=16, spectral_impl="auto", dtype="float32"))
    cls = registry.MODELS["fno3d"]
    assert cls is FNO3d and cls.grid_rank == 3
    model = nnx.eval_shape(lambda: cls.from_config(model_config, 0))
    assert model.time_padding == 0 and model.lift.kernel.shape == (4, 8)
    model_config.time_padding = 3
    assert nnx.eval_shape(lambda: cls.from_config(model_config, 0)).time_padding == 3

    mesh = sharding.make_mesh((2, 2, 2), ("data", "model", "t"))
    layout = sharding.Layout(mesh, rules=sharding.axis_rules("model", ",,t"),
                             param_axes=cls.param_axes, grid_rank=cls.grid_rank)
    # The training state's parameters are plain dicts (fno.training.steps.init_state).
    specs = layout.state_shardings(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert specs["spectral"][0]["weight_real"].spec == P("model")
    assert specs["spectral"][1]["weight_imag"].spec == P("model")
    assert specs["pointwise"][0]["kernel"].spec == P("model")
    assert specs["lift"]["kernel"].spec == P(None, "model")
    assert specs["project_hidden"]["kernel"].spec == P("model")
    assert specs["project_out"]["kernel"].spec == P()
    # The third grid axis (grid_z) is the time axis of batches.
    assert layout.batch_sharding((8, 16, 16, 10), stacked=False).spec == P("data", None,
                                                                            None, "t")
