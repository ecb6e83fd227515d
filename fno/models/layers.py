"""The building blocks every FNO shares: spectral kernels, dense maps and their layouts.

Hidden activations are *channel-first*, ``[channels, batch, *grid]``, and every large linear
map has a hand-written VJP. Then each matrix product of the step, forward and backward,
reaches XLA as a plain row-major 2-D product that needs no transposing copy:

* the pointwise maps are ``W^T @ h`` with ``h`` viewed as ``[c, b*s]``; the weight gradient
  ``h @ g^T`` contracts the last axis of both operands;
* the truncated DFT and its inverse are ``h @ F`` and ``spectrum @ G`` over the last (grid)
  axis, and their gradients multiply by the transposed bases, stored as constants.

With autodiff through channel-last ``[b, s, c]`` einsums, XLA:CPU surrounded the DFTs and the
weight gradients with transposing copies of whole activations and sent the weight gradients
to a slow transposed-operand matmul (docs/performance.md).

The spectral weights are complex in the paper; here they are stored as two real parameters
(``weight_real``, ``weight_imag``). ``jax.grad`` of a real loss with respect to a complex
parameter returns the *conjugate* of the ascent direction, which makes optax optimizers
silently wrong; with real and imaginary parts as separate real parameters every optimizer
is correct as is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU as PyTorch computes it, ``x/2 * (1 + erf(x/sqrt(2)))``.

    ``jax.nn.gelu(approximate=False)`` uses ``erfc``, which XLA evaluates with an extra
    exponential and two branches; with ``erf`` the forward pass is markedly cheaper. Against
    a float64 reference the absolute error stays under 1.1e-6 for every x (the ``erfc`` form:
    4e-7); the relative error grows only where ``1 + erf`` cancels (x < -3, |gelu| < 5e-3).
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * jnp.asarray(_SQRT_HALF, x.dtype)))



ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": gelu,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
}

SPECTRAL_IMPLS = ("auto", "fft", "dft")

# How the spectral weights are drawn: "uniform" as the released FNO scripts (both parts in
# [0, 1 / (in * out))), "normal" as neuraloperator (zero-mean complex normal of variance
# 2 / (in + out)). The released scale starts the spectral path near zero, which a short
# schedule feels (docs/results.md); the paper's numbers are the released init's.
SPECTRAL_INITS = ("uniform", "normal")

# Compute dtypes of activations and matmuls. Parameters, optimizer state and the loss stay
# float32 either way (mixed precision); bfloat16 is meant for accelerators.
COMPUTE_DTYPES = ("float32", "bfloat16")

# Above this many grid points the dense truncated-DFT basis ([s, 2*modes] floats) costs more
# memory traffic than an FFT; below it the two matmuls beat the FFT on CPU and accelerators.
DFT_MAX_RESOLUTION = 16384


# The positive-integer settings of an FNO and those with named choices: the one check of
# both, for the model constructors and the config (fno.configuration words the same
# messages as ``config.model.*`` errors).
_POSITIVE_SETTINGS = ("width", "modes", "num_layers", "projection_width", "in_channels",
                      "out_channels")
_CHOICES = {"activation": tuple(ACTIVATIONS), "spectral_impl": SPECTRAL_IMPLS,
            "spectral_init": SPECTRAL_INITS, "dtype": COMPUTE_DTYPES}


def check_settings(**settings: Any) -> None:
    """ValueError ``model.<name> ...`` for the first of ``settings`` (any of
    ``_POSITIVE_SETTINGS`` and ``_CHOICES``) that an FNO cannot be built with."""
    for name, value in settings.items():
        if name in _POSITIVE_SETTINGS and (isinstance(value, bool)
                                           or not isinstance(value, int | np.integer)
                                           or value < 1):
            raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if name in _CHOICES and value not in _CHOICES[name]:
            raise ValueError(f"model.{name} must be one of {', '.join(_CHOICES[name])}; got "
                             f"{value!r}")


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


def _einsum(spec: str, a: jax.Array, b: jax.Array | np.ndarray) -> jax.Array:
    """``jnp.einsum`` with a result in ``a``'s dtype, accumulated in float32.

    For float32 this is a plain einsum. For bfloat16, GPUs and TPUs multiply bfloat16
    operands into a float32 accumulator; XLA:CPU has no such kernel (its dot rejects
    ``bf16 x bf16 -> f32``), so on CPU the operands are widened first, which gives the same
    products.
    """
    if a.dtype == jnp.float32:
        return jnp.einsum(spec, a, b)
    if jax.default_backend() == "cpu":
        return jnp.einsum(spec, a.astype(jnp.float32), jnp.asarray(b, jnp.float32)).astype(a.dtype)
    return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32).astype(a.dtype)


def grid_matmul(matrix: np.ndarray) -> Callable[[jax.Array], jax.Array]:
    """``x -> x @ matrix`` over the last (grid) axis, with a hand-written VJP.

    The gradient is ``g @ matrix.T`` with the transpose stored as its own constant, so the
    backward pass is a plain row-major matmul too. Differentiating the einsum would give XLA
    a contraction over the matrix's *second* axis, which XLA:CPU turns into transposing
    copies of the whole activation gradient.
    """
    transpose = np.ascontiguousarray(matrix.T)

    @jax.custom_vjp
    def apply(x: jax.Array) -> jax.Array:
        return _einsum("cbs,sk->cbk", x, matrix)

    def apply_fwd(x: jax.Array) -> tuple[jax.Array, None]:
        return apply(x), None

    def apply_bwd(_, g: jax.Array) -> tuple[jax.Array]:
        return (_einsum("cbk,ks->cbs", g, transpose),)

    apply.defvjp(apply_fwd, apply_bwd)
    return apply


@functools.lru_cache(maxsize=64)
def truncated_dft(resolution: int, modes: int, dtype: str) -> tuple[Callable, Callable]:
    """``(analysis, synthesis)`` for channel-first signals, in ``dtype``.

    ``analysis``: ``[c, b, s] -> [c, b, 2*modes]``, the real then imaginary parts of the
    lowest ``modes`` rFFT coefficients. ``synthesis``: ``[c, b, 2*modes] -> [c, b, s]``, the
    irfft of that truncated spectrum. Cached per shape, so a trace reuses the constants.
    """
    forward, inverse = dft_bases(resolution, modes)  # [s, 2m], [2m, s]
    return grid_matmul(forward.astype(dtype)), grid_matmul(inverse.astype(dtype))


@jax.custom_vjp
def channel_matmul(kernel: jax.Array, x: jax.Array) -> jax.Array:
    """A Linear layer's ``kernel`` (``[in, out]``) applied to channel-first ``x``:
    ``[in, b, s] -> [out, b, s]``.

    Hand-written VJP: the weight gradient is ``x @ g^T`` over ``[c, b*s]`` views, a product
    over the last axes of both operands. Autodiff's ``x^T @ g`` form reached XLA:CPU as a
    product over their first axes, which it ran through a transposed copy at a third of
    the speed.
    """
    return _einsum("oi,ibs->obs", kernel.T, x)


def _channel_matmul_fwd(kernel: jax.Array, x: jax.Array):
    return channel_matmul(kernel, x), (kernel, x)


def _channel_matmul_bwd(residuals, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    kernel, x = residuals
    d_kernel = _einsum("ibs,obs->io", x, g)
    d_x = _einsum("io,obs->ibs", kernel, g)
    return d_kernel, d_x


channel_matmul.defvjp(_channel_matmul_fwd, _channel_matmul_bwd)


def apply_dense(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """``layer`` on channel-first ``x`` (``[in, b, s] -> [out, b, s]``), in ``x``'s dtype."""
    kernel = layer.kernel[...].astype(x.dtype)
    return channel_matmul(kernel, x) + layer.bias[...].astype(x.dtype)[:, None, None]


def resolve_spectral_impl(impl: str, resolution: int) -> str:
    """The concrete implementation for ``impl`` ("auto" picks by resolution)."""
    check_settings(spectral_impl=impl)
    if impl == "auto":
        return "dft" if resolution <= DFT_MAX_RESOLUTION else "fft"
    return impl



class SpectralConv(nnx.Module):
    """What every spectral convolution shares: its settings and complex weights stored as two
    real parameters, ``[in, out, *mode_shape(modes)]``, drawn as ``init`` says
    (``SPECTRAL_INITS``; "uniform" is the reference's ``scale * rand(..., cfloat)``). A
    subclass names ``mode_shape`` and implements ``__call__``."""

    def __init__(self, in_channels: int, out_channels: int, modes: int, *,
                 impl: str = "auto", init: str = "uniform", rngs: nnx.Rngs):
        check_settings(spectral_impl=impl, spectral_init=init)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.modes = modes
        self.impl = impl
        shape = (in_channels, out_channels, *self.mode_shape(modes))

        def draw(key: jax.Array) -> jax.Array:
            if init == "uniform":
                return (1.0 / (in_channels * out_channels)) * jax.random.uniform(key, shape)
            # Each part carries half the complex variance, as torch's normal_ on a cfloat.
            return jax.random.normal(key, shape) * math.sqrt(1.0 / (in_channels + out_channels))

        self.weight_real = nnx.Param(draw(rngs.params()))
        self.weight_imag = nnx.Param(draw(rngs.params()))

    @staticmethod
    def mode_shape(modes: int) -> tuple[int, ...]:
        """The kept modes' axes of the weights."""
        raise NotImplementedError

    def complex_mix(self, spec: str, x_real: jax.Array,
                    x_imag: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The kept spectrum (real and imaginary parts) times the complex weights, contracted
        by the einsum ``spec`` (spectrum, weights -> output), in the spectrum's dtype."""
        dtype = x_real.dtype
        w_re, w_im = self.weight_real[...].astype(dtype), self.weight_imag[...].astype(dtype)
        out_real = jnp.einsum(spec, x_real, w_re) - jnp.einsum(spec, x_imag, w_im)
        out_imag = jnp.einsum(spec, x_real, w_im) + jnp.einsum(spec, x_imag, w_re)
        return out_real, out_imag
