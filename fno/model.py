"""The 1D Fourier Neural Operator (Li et al., ICLR 2021) in flax.nnx.

Layout is channel-last, ``[batch, grid, channels]``, so that every pointwise map is a plain
matmul over the last axis and no transposes are needed around the spectral convolution.

The spectral weights are complex in the paper; here they are stored as two real parameters
(``weight_real``, ``weight_imag``). ``jax.grad`` of a real loss with respect to a complex
parameter returns the *conjugate* of the ascent direction, which makes optax optimizers
silently wrong; with real and imaginary parts as separate real parameters every optimizer
is correct as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fno.sharding import constrain

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
}

SPECTRAL_IMPLS = ("auto", "fft", "dft")

# Above this many grid points the dense truncated-DFT basis ([s, 2*modes] floats) costs more
# memory traffic than an FFT; below it the two matmuls beat the FFT on CPU and accelerators.
DFT_MAX_RESOLUTION = 16384


def _torch_like_bias_init(fan_in: int) -> nnx.initializers.Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's Linear/Conv1d bias default."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def dense(in_features: int, out_features: int, rngs: nnx.Rngs) -> nnx.Linear:
    """A Linear layer initialised like the reference PyTorch code (kaiming-uniform, a=sqrt(5))."""
    return nnx.Linear(
        in_features,
        out_features,
        kernel_init=nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
        bias_init=_torch_like_bias_init(in_features),
        rngs=rngs,
    )


def dft_bases(resolution: int, modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Real matrices for the truncated rFFT and its inverse, computed in float64.

    Forward ``[s, 2*modes]``: columns ``cos(2 pi k j / s)`` then ``-sin(2 pi k j / s)``, so
    ``x @ fwd`` gives the real and imaginary parts of ``rfft(x)[:modes]``.
    Inverse ``[2*modes, s]``: the irfft of a spectrum that is zero above ``modes``, with
    weight 1/s for k = 0 and 2/s for 0 < k < s/2 (requires modes <= s/2, so the Nyquist
    mode is never kept). The k = 0 row of the imaginary block is sin(0) = 0, which matches
    irfft ignoring the imaginary part of the mean.
    """
    if 2 * modes > resolution:
        raise ValueError(f"{modes} modes need a resolution of at least {2 * modes}")
    j = np.arange(resolution)
    k = np.arange(modes)
    angle = 2.0 * np.pi * np.outer(j, k) / resolution
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.concatenate([cos, -sin], axis=1)
    weight = np.where(k == 0, 1.0, 2.0) / resolution
    inverse = np.concatenate([(cos * weight).T, (-sin * weight).T], axis=0)
    return forward, inverse


def resolve_spectral_impl(impl: str, resolution: int) -> str:
    """The concrete implementation for ``impl`` ("auto" picks by resolution)."""
    if impl not in SPECTRAL_IMPLS:
        raise ValueError(f"model.spectral_impl must be one of {SPECTRAL_IMPLS}, got {impl!r}")
    if impl == "auto":
        return "dft" if resolution <= DFT_MAX_RESOLUTION else "fft"
    return impl


class SpectralConv1d(nnx.Module):
    """Multiply the lowest ``modes`` Fourier modes by learned complex matrices; drop the rest.

    Two numerically equivalent implementations: ``fft`` (rfft, mix, zero-padded irfft) and
    ``dft`` (the same linear map as two dense matmuls with a truncated DFT basis; only the
    kept modes are ever computed, which is faster when modes << s).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        modes: int,
        *,
        impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        resolve_spectral_impl(impl, 2 * modes)  # validates the name early
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.modes = modes
        self.impl = impl
        scale = 1.0 / (in_channels * out_channels)
        shape = (in_channels, out_channels, modes)
        # As the reference: scale * rand(..., cfloat), i.e. both parts uniform in [0, scale).
        self.weight_real = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))
        self.weight_imag = nnx.Param(scale * jax.random.uniform(rngs.params(), shape))

    def _mix(self, x_real: jax.Array, x_imag: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Complex per-mode channel mixing ``[b, m, i] x [i, o, m] -> [b, m, o]``."""
        w_re, w_im = self.weight_real[...], self.weight_imag[...]
        out_real = jnp.einsum("bmi,iom->bmo", x_real, w_re) - jnp.einsum(
            "bmi,iom->bmo", x_imag, w_im
        )
        out_imag = jnp.einsum("bmi,iom->bmo", x_real, w_im) + jnp.einsum(
            "bmi,iom->bmo", x_imag, w_re
        )
        return out_real, out_imag

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x``: ``[batch, s, in_channels]`` -> ``[batch, s, out_channels]``."""
        s = x.shape[1]
        if s < 2 * self.modes:
            raise ValueError(f"resolution {s} is too coarse for {self.modes} modes (need s >= "
                             f"{2 * self.modes})")
        if resolve_spectral_impl(self.impl, s) == "fft":
            x_ft = jnp.fft.rfft(x, axis=1)[:, : self.modes]
            out_real, out_imag = self._mix(jnp.real(x_ft), jnp.imag(x_ft))
            out_ft = jax.lax.complex(out_real, out_imag)
            return jnp.fft.irfft(out_ft, n=s, axis=1).astype(x.dtype)
        forward, inverse = dft_bases(s, self.modes)
        spectrum = jnp.einsum("bsi,sk->bki", x, jnp.asarray(forward, x.dtype))
        out_real, out_imag = self._mix(spectrum[:, : self.modes], spectrum[:, self.modes :])
        mixed = jnp.concatenate([out_real, out_imag], axis=1)
        return jnp.einsum("bko,ks->bso", mixed, jnp.asarray(inverse, x.dtype))


class FNO1d(nnx.Module):
    """The released FNO-1D: lift (u0, x) -> width, Fourier layers, project width -> 128 -> 1.

    The grid coordinate x in [0, 1] is appended by the model itself, so the same parameters
    evaluate at any resolution s >= 2 * modes (zero-shot super-resolution).
    """

    def __init__(
        self,
        *,
        width: int = 64,
        modes: int = 16,
        num_layers: int = 4,
        activation: str = "gelu",
        projection_width: int = 128,
        spectral_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.activation = activation
        self.lift = dense(2, width, rngs)
        self.spectral = nnx.List(
            [SpectralConv1d(width, width, modes, impl=spectral_impl, rngs=rngs)
             for _ in range(num_layers)]
        )
        self.pointwise = nnx.List([dense(width, width, rngs) for _ in range(num_layers)])
        self.project_hidden = dense(width, projection_width, rngs)
        self.project_out = dense(projection_width, 1, rngs)

    def __call__(self, u0: jax.Array) -> jax.Array:
        """``u0``: ``[batch, s]`` -> predicted ``u(., t=1)``: ``[batch, s]``."""
        act = ACTIVATIONS[self.activation]
        s = u0.shape[-1]
        grid = jnp.broadcast_to(jnp.linspace(0.0, 1.0, s, dtype=u0.dtype), u0.shape)
        # ``constrain`` pins activations to the mesh layout a strategy traces under
        # (fno.sharding); without one it returns its argument.
        h = constrain(self.lift(jnp.stack([u0, grid], axis=-1)))
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise,
                                                       strict=True)):
            h = constrain(spectral(h) + pointwise(h))
            if i < last:
                h = act(h)
        h = act(constrain(self.project_hidden(h)))
        return constrain(self.project_out(h)[..., 0], "output")


def count_params(model: nnx.Module) -> int:
    """Number of real scalars in the model's parameters (complex weights count as two)."""
    params = nnx.state(model, nnx.Param)
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
