"""The 1D Fourier Neural Operator (Li et al., ICLR 2021) in flax.nnx.

Hidden activations are *channel-first*, ``[channels, batch, grid]``, and every large linear
map has a hand-written VJP. Then each matrix product of the step, forward and backward,
reaches XLA as a plain row-major 2-D product that needs no transposing copy:

* the pointwise maps are ``W^T @ h`` with ``h`` viewed as ``[c, b*s]``; the weight gradient
  ``h @ g^T`` contracts the last axis of both operands;
* the truncated DFT and its inverse are ``h @ F`` and ``spectrum @ G`` over the last (grid)
  axis, and their gradients multiply by the transposed bases, stored as constants.

With autodiff through channel-last ``[b, s, c]`` einsums, XLA:CPU surrounded the DFTs and the
weight gradients with transposing copies of whole activations and sent the weight gradients
to a slow transposed-operand matmul; this layout made the CPU training step about 1.5x faster
(README, Performance). The model's input and output, ``[batch, grid]``, are already in this
layout with one channel; several channels come as a trailing axis, ``[batch, grid, channels]``,
and are moved to the front once on the way in and back once on the way out.

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

from fno.sharding import GRID_AXES, constrain

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def gelu(x: jax.Array) -> jax.Array:
    """Exact GELU as PyTorch computes it, ``x/2 * (1 + erf(x/sqrt(2)))``.

    ``jax.nn.gelu(approximate=False)`` uses ``erfc``, which XLA evaluates with an extra
    exponential and two branches; with ``erf`` the forward pass is about 2.4x cheaper. Against
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

# Compute dtypes of activations and matmuls. Parameters, optimizer state and the loss stay
# float32 either way (mixed precision); bfloat16 is meant for accelerators.
COMPUTE_DTYPES = ("float32", "bfloat16")

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


def _grid_matmul(matrix: np.ndarray) -> Callable[[jax.Array], jax.Array]:
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
    return _grid_matmul(forward.astype(dtype)), _grid_matmul(inverse.astype(dtype))


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
        """Complex per-mode channel mixing ``[i, b, m] x [i, o, m] -> [o, b, m]``."""
        dtype = x_real.dtype
        w_re, w_im = self.weight_real[...].astype(dtype), self.weight_imag[...].astype(dtype)
        out_real = jnp.einsum("ibm,iom->obm", x_real, w_re) - jnp.einsum(
            "ibm,iom->obm", x_imag, w_im
        )
        out_imag = jnp.einsum("ibm,iom->obm", x_real, w_im) + jnp.einsum(
            "ibm,iom->obm", x_imag, w_re
        )
        return out_real, out_imag

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x``: ``[in_channels, batch, s]`` (channel-first) -> ``[out_channels, batch, s]``."""
        s = x.shape[-1]
        if s < 2 * self.modes:
            raise ValueError(f"resolution {s} is too coarse for {self.modes} modes (need s >= "
                             f"{2 * self.modes})")
        if resolve_spectral_impl(self.impl, s) == "fft":
            # jnp.fft needs float32 or wider.
            x_ft = jnp.fft.rfft(x.astype(jnp.promote_types(x.dtype, jnp.float32)),
                                axis=-1)[..., : self.modes]
            out_real, out_imag = self._mix(jnp.real(x_ft), jnp.imag(x_ft))
            out_ft = jax.lax.complex(out_real, out_imag)
            return jnp.fft.irfft(out_ft, n=s, axis=-1).astype(x.dtype)
        analysis, synthesis = truncated_dft(s, self.modes, jnp.dtype(x.dtype).name)
        spectrum = analysis(x)
        out_real, out_imag = self._mix(spectrum[..., : self.modes], spectrum[..., self.modes :])
        return synthesis(jnp.concatenate([out_real, out_imag], axis=-1))


# The logical axes of every parameter (fno.sharding maps them to mesh axes), by module and
# leaf name, for the leading dimensions (the rest stay whole). 'hidden' is the channel
# dimension that model sharding splits: the *input* channels of every map that reads the
# hidden state (spectral weights [in, out, modes...], pointwise kernels [in, out],
# project_hidden [width, projection_width]), the output channels of the lift [in, width] and
# the width-sized biases. The hidden activations are split the same way, so each device
# contracts its own channel slice and the partial sums are reduced; the activations saved
# for the backward pass stay sharded, which an output-channel split (needing the gathered
# input for the weight gradient) would not give. project_out and scalars stay replicated.
PARAM_AXES: dict[tuple[str, str], tuple[str | None, ...]] = {
    ("lift", "kernel"): (None, "hidden"), ("lift", "bias"): ("hidden",),
    ("spectral", "weight_real"): ("hidden",), ("spectral", "weight_imag"): ("hidden",),
    ("pointwise", "kernel"): ("hidden",), ("pointwise", "bias"): ("hidden",),
    ("project_hidden", "kernel"): ("hidden",),
}


class FNO(nnx.Module):
    """The layer stack every FNO shares, created in one order (so one seed gives the same
    parameters): lift ``(input channels, grid coordinates) -> width``, ``num_layers`` spectral
    convolutions with their pointwise maps, GELU except after the last, and the projection
    ``width -> projection_width -> out_channels``.

    Channels: one input (output) channel is ``[batch, *grid]``, as the released code; several
    are a trailing axis, ``[batch, *grid, in_channels]`` (``[batch, *grid, out_channels]``).
    The lift kernel is ``[in_channels + grid_rank, width]`` (the input channels' rows first,
    then the coordinates'), ``project_out``'s ``[projection_width, out_channels]``: with one
    channel these are the single-channel shapes, drawn in the same order from the same seed.

    A subclass names its spectral convolution, its number of grid axes and a dense map for
    its activation layout; ``grid_rank`` and ``param_axes`` are what the registry
    (fno.registry) and the sharding layer (fno.sharding) read.
    """

    grid_rank: int = 1
    param_axes = PARAM_AXES
    default_width, default_modes = 64, 16

    def __init__(
        self,
        *,
        width: int | None = None,
        modes: int | None = None,
        in_channels: int = 1,
        out_channels: int = 1,
        num_layers: int = 4,
        activation: str = "gelu",
        projection_width: int = 128,
        spectral_impl: str = "auto",
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"model.activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if dtype not in COMPUTE_DTYPES:
            raise ValueError(f"model.dtype must be one of {COMPUTE_DTYPES}, got {dtype!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        width = width or self.default_width
        modes = modes or self.default_modes
        self.activation = activation
        self.dtype = dtype
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.lift = dense(self.in_channels + self.grid_rank, width, rngs)
        self.spectral = nnx.List([self.spectral_conv(width, width, modes, impl=spectral_impl,
                                                     rngs=rngs) for _ in range(num_layers)])
        self.pointwise = nnx.List([dense(width, width, rngs) for _ in range(num_layers)])
        self.project_hidden = dense(width, projection_width, rngs)
        self.project_out = dense(projection_width, self.out_channels, rngs)

    @classmethod
    def from_config(cls, model: Any, seed: int) -> FNO:
        """The model of ``config.model`` with parameters drawn from ``seed``.

        ``model.in_channels``/``out_channels`` are set from the data before training
        (fno.datasets.resolve_channels); a config never resolved against data (None, or a
        config without the fields, as the benchmarks build) gets one channel each.
        """
        channels = {name: 1 if model.get(name) is None else model[name]
                    for name in ("in_channels", "out_channels")}
        return cls(width=model.width, modes=model.modes, **channels,
                   num_layers=model.num_layers,
                   activation=model.activation, projection_width=model.projection_width,
                   spectral_impl=model.spectral_impl, dtype=model.dtype,
                   rngs=nnx.Rngs(params=seed))

    @staticmethod
    def spectral_conv(in_channels: int, out_channels: int, modes: int, *, impl: str,
                      rngs: nnx.Rngs) -> nnx.Module:
        raise NotImplementedError

    def apply_dense(self, layer: nnx.Linear, h: jax.Array) -> jax.Array:
        return apply_dense(layer, h)

    def __call__(self, u: jax.Array) -> jax.Array:
        """``u``: ``[batch, *grid]`` (one input channel) or ``[batch, *grid, in_channels]``
        -> the prediction ``[batch, *grid]`` (one output channel) or
        ``[batch, *grid, out_channels]``.

        The grid coordinates in [0, 1] are appended by the model itself (``grid_points``),
        so the same parameters evaluate at any resolution with at least ``2 * modes`` points
        per axis (zero-shot super-resolution). ``constrain`` pins activations to the mesh
        layout a strategy traces under (fno.sharding); without one it returns its argument.
        """
        act = ACTIVATIONS[self.activation]
        out_dtype, u = u.dtype, u.astype(self.dtype)
        grid = tuple(GRID_AXES[:self.grid_rank])
        hidden = ("hidden", "batch", *grid)
        channels = self._input_channels(u)  # [in_channels, batch, *grid]
        shape = channels.shape[1:]
        coords = [jnp.broadcast_to(c, shape) for c in self.grid_points(shape[1:], u.dtype)]
        h = constrain(self.apply_dense(self.lift, jnp.concatenate([channels, jnp.stack(coords)])),
                      hidden)
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise,
                                                       strict=True)):
            h = constrain(spectral(h) + self.apply_dense(pointwise, h), hidden)
            if i < last:
                h = act(h)
        h = act(constrain(self.apply_dense(self.project_hidden, h), hidden))
        out = self.apply_dense(self.project_out, h).astype(out_dtype)  # [out, batch, *grid]
        if self.out_channels == 1:
            return constrain(out[0], ("batch", *grid))
        return constrain(jnp.moveaxis(out, 0, -1), ("batch", *grid, None))

    def _input_channels(self, u: jax.Array) -> jax.Array:
        """``u`` as channel-first ``[in_channels, batch, *grid]``, its shape checked."""
        rank = self.grid_rank
        if self.in_channels == 1:
            if u.ndim != 1 + rank:
                raise ValueError(f"{type(self).__name__} with 1 input channel takes "
                                 f"[batch, {rank} grid axes], got shape {tuple(u.shape)}")
            return u[None]
        if u.ndim != 2 + rank or u.shape[-1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} with {self.in_channels} input channels "
                             f"takes [batch, {rank} grid axes, {self.in_channels}], got shape "
                             f"{tuple(u.shape)}")
        return jnp.moveaxis(u, -1, 0)

    def grid_points(self, shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
        """Each grid axis's coordinates, shaped to broadcast against ``[batch, *shape]``."""
        raise NotImplementedError


class FNO1d(FNO):
    """The released FNO-1D: lift (u0, x) -> width, Fourier layers, project width -> 128 -> 1,
    on ``[batch, s]`` (``[batch, s, channels]`` with several channels, ``FNO``) with
    x_j = j / (s - 1) as the released code's ``linspace(0, 1, s)``."""

    grid_rank = 1
    default_width, default_modes = 64, 16
    spectral_conv = SpectralConv1d

    def grid_points(self, shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
        return [jnp.linspace(0.0, 1.0, shape[0], dtype=dtype)]


def count_params(model: nnx.Module) -> int:
    """Number of real scalars in the model's parameters (complex weights count as two)."""
    params = nnx.state(model, nnx.Param)
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
