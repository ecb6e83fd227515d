"""The 2D Fourier Neural Operator of the paper's Darcy flow experiment, in flax.nnx.

The released ``fourier_2d.py``: input channels (a, x, y) with grid coordinates in [0, 1],
lift 3 -> width, Fourier layers that keep ``modes`` x ``modes`` coefficients in *both*
low-frequency corners of the rfft2 spectrum (kx in [0, m) and [sx - m, sx), ky in [0, m))
plus a pointwise linear map, GELU except after the last layer, projection width -> 128 ->
GELU -> 1. The building blocks are those of the 1D model (``fno.models.fno1d``): the same layout,
initialisation, GELU, dense maps with hand-written VJPs and truncated-DFT bases.

Hidden activations are channel-first, ``[channels, batch, sx, sy]``, so that the pointwise
maps are ``channel_matmul`` over a ``[c, b, sx*sy]`` view and the y transforms are the 1D
``truncated_dft`` mapped over x: plain row-major products over the last axis, forward and
backward, as in 1D.

The two corners' complex weights (the released ``weights1``, ``weights2``, each
``[in, out, m, m]``) are stored stacked along kx as ``weight_real``/``weight_imag``
``[in, out, 2m, m]`` (``[:, :, :m]`` is ``weights1``, ``[:, :, m:]`` ``weights2``): the same
numbers and initialisation, no concatenation per step, and the parameter names and in-channel
axis that ``fno.parallel.sharding`` already shards for the 1D model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fno.models.base import FNO
from fno.models.layers import (
    SpectralConv,
    apply_dense,
    check_settings,
    grid_matmul,
    truncated_dft,
)

# ``auto`` picks ``dft`` up to this many points along either grid axis and ``fft`` above.
# Per grid point the truncated DFT costs about 4 * modes multiply-adds (the y transforms; the
# x transforms act on a spectrum 2 * modes / sy the size of the activation), whatever the
# grid size, and it runs as dense matmuls; the FFT costs O(log(sx * sy)) at a far lower
# throughput, and much more for sizes with large prime factors (421 is prime). On CPU the DFT
# path was the faster at every size measured (docs/performance.md); the bound is the largest
# size measured, not a crossover, and accelerators use the same rule until measured.
DFT_MAX_RESOLUTION_2D = 2048


def resolve_spectral_impl_2d(impl: str, sx: int, sy: int) -> str:
    """The concrete implementation for ``impl`` on an ``sx`` x ``sy`` grid ("auto" picks by
    the larger grid axis)."""
    check_settings(spectral_impl=impl)
    if impl == "auto":
        return "dft" if max(sx, sy) <= DFT_MAX_RESOLUTION_2D else "fft"
    return impl


def kept_kx(resolution: int, modes: int) -> np.ndarray:
    """The x wavenumbers the layer keeps: ``0 .. m-1`` then ``sx-m .. sx-1`` (the released
    code's two corners ``[:m]`` and ``[-m:]``, i.e. the frequencies ``-m .. -1``)."""
    return np.concatenate([np.arange(modes), np.arange(resolution - modes, resolution)])


def corner_dft_bases(resolution: int, modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Real matrices for the complex DFT along x restricted to both corners, in float64.

    They act on a signal whose real and imaginary parts are interleaved along x, index
    ``2 * x + r`` (r = 0 real, 1 imaginary): x is the major index, so a block of x rows stays
    a contiguous block when x is sharded. The spectrum is ``p * 2m + q``: the real parts of
    the 2m kept kx (``kept_kx`` order), then their imaginary parts.

    Forward ``[2s, 4m]``: ``X[q] = sum_x exp(-2 pi i kx_q x / s) A[x]``, so
    ``Re X = cos Re A + sin Im A`` and ``Im X = cos Im A - sin Re A``.
    Inverse ``[4m, 2s]``: ``Z[x] = (1/s) sum_q exp(+2 pi i kx_q x / s) Y[q]`` (the x part of
    ifft2; the 1/sy and the half-spectrum weights are in the y inverse, ``dft_bases``).
    The corners must not overlap: ``2 * modes <= resolution``.
    """
    if 2 * modes > resolution:
        raise ValueError(f"{modes} modes need a resolution of at least {2 * modes}")
    angle = 2.0 * np.pi * np.outer(np.arange(resolution), kept_kx(resolution, modes)) / resolution
    cos, sin = np.cos(angle), np.sin(angle)  # [s, 2m]
    forward = np.empty((resolution, 2, 2, 2 * modes))  # [x, r, p, q]
    forward[:, 0, 0], forward[:, 1, 0] = cos, sin
    forward[:, 0, 1], forward[:, 1, 1] = -sin, cos
    inverse = np.empty((2, 2 * modes, resolution, 2))  # [p, q, x, r]
    inverse[0, :, :, 0], inverse[1, :, :, 0] = cos.T, -sin.T
    inverse[0, :, :, 1], inverse[1, :, :, 1] = sin.T, cos.T
    return (forward.reshape(2 * resolution, 4 * modes),
            inverse.reshape(4 * modes, 2 * resolution) / resolution)


@functools.lru_cache(maxsize=64)
def corner_dft(resolution: int, modes: int, dtype: str) -> tuple[Callable, Callable]:
    """``(analysis, synthesis)`` along x for ``[c, n, 2s] <-> [c, n, 4m]`` (layouts as in
    ``corner_dft_bases``), in ``dtype``: the 1D model's grid matmul with its hand-written
    VJP. Cached per shape, so a trace reuses the constants."""
    forward, inverse = corner_dft_bases(resolution, modes)
    return grid_matmul(forward.astype(dtype)), grid_matmul(inverse.astype(dtype))


class SpectralConv2d(SpectralConv):
    """Multiply the kept Fourier modes of both corners by learned complex matrices; drop the
    rest.

    Two numerically equivalent implementations: ``fft`` (rfft2, mix, zero-padded irfft2 over
    the two grid axes, as the released code) and ``dft`` (the same linear map as truncated-DFT
    matmuls: along y the 1D ``truncated_dft`` keeps m ky, then along x ``corner_dft`` keeps
    the 2m kx; the inverse likewise). Only kept modes are ever computed, and a grid axis
    sharded across devices needs only reductions (the x analysis contracts over x; all other
    products are local to an x block).
    """

    @staticmethod
    def mode_shape(modes: int) -> tuple[int, ...]:
        # [kx (both corners), ky]: one draw covers both corners (the released weights1,
        # weights2), which are i.i.d. there too.
        return (2 * modes, modes)

    def _mix(self, x_real: jax.Array, x_imag: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Complex per-mode channel mixing ``[i, b, ky, kx] x [i, o, kx, ky] -> [o, b, ky, kx]``.

        The spectrum is ky-major so that the DFT path's x transforms contract its last axis.
        """
        return self.complex_mix("ibyx,ioxy->obyx", x_real, x_imag)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x``: ``[in_channels, batch, sx, sy]`` (channel-first) ->
        ``[out_channels, batch, sx, sy]``."""
        c, b, sx, sy = x.shape
        m = self.modes
        if min(sx, sy) < 2 * m:
            raise ValueError(f"resolution {sx}x{sy} is too coarse for {m} modes (need both "
                             f">= {2 * m})")
        if resolve_spectral_impl_2d(self.impl, sx, sy) == "fft":
            # jnp.fft needs float32 or wider.
            x_ft = jnp.fft.rfft2(x.astype(jnp.promote_types(x.dtype, jnp.float32)))
            corners = jnp.concatenate([x_ft[..., :m, :m], x_ft[..., sx - m:, :m]], axis=-2)
            corners = jnp.swapaxes(corners, -1, -2)  # [c, b, ky, kx]
            out_real, out_imag = self._mix(jnp.real(corners), jnp.imag(corners))
            out = jnp.swapaxes(jax.lax.complex(out_real, out_imag), -1, -2)  # [o, b, kx, ky]
            gap = jnp.zeros(out.shape[:2] + (sx - 2 * m, m), out.dtype)
            out_ft = jnp.concatenate([out[..., :m, :], gap, out[..., m:, :]], axis=-2)
            out_ft = jnp.pad(out_ft, ((0, 0), (0, 0), (0, 0), (0, sy // 2 + 1 - m)))
            return jnp.fft.irfft2(out_ft, s=(sx, sy)).astype(x.dtype)
        dtype = jnp.dtype(x.dtype).name
        # The 1D transforms over y, mapped over x (axis 2) rather than applied to a
        # [c, b*sx, sy] view: with both the batch and x sharded, that merge would cost a
        # resharding collective; mapped, every product stays local to its x block.
        analysis_y, synthesis_y = (jax.vmap(f, in_axes=2, out_axes=2)
                                   for f in truncated_dft(sy, m, dtype))
        analysis_x, synthesis_x = corner_dft(sx, m, dtype)
        a = analysis_y(x)  # [c, b, x, (r, ky)]
        # The one transposing copy each way acts on the spectrum, 2m/sy of the activation.
        a = jnp.transpose(a.reshape(c, b, sx, 2, m), (0, 1, 4, 2, 3))  # [c, b, ky, x, r]
        spectrum = analysis_x(a.reshape(c, b * m, 2 * sx)).reshape(c, b, m, 4 * m)
        out_real, out_imag = self._mix(spectrum[..., : 2 * m], spectrum[..., 2 * m:])
        o = out_real.shape[0]
        z = synthesis_x(jnp.concatenate([out_real, out_imag], -1).reshape(o, b * m, 4 * m))
        z = jnp.transpose(z.reshape(o, b, m, sx, 2), (0, 1, 3, 4, 2))  # [o, b, x, r, ky]
        return synthesis_y(z.reshape(o, b, sx, 2 * m))


def apply_dense_2d(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """``fno.models.layers.apply_dense`` on ``[in, b, sx, sy]`` through a free ``[in, b, sx*sy]``
    view -> ``[out, b, sx, sy]``."""
    c, b, sx, sy = x.shape
    return apply_dense(layer, x.reshape(c, b, sx * sy)).reshape(-1, b, sx, sy)


class FNO2d(FNO):
    """The released FNO-2D: lift (a, x, y) -> width, Fourier layers, project width -> 128 -> 1,
    on ``[batch, sx, sy]`` (``[batch, sx, sy, channels]`` with several input or output
    channels, as ``fno.models.base.FNO`` describes).

    Entry ``[n, i, j]`` is at ``(i / (sx-1), j / (sy-1))`` (the Darcy vertex grid). The
    released code's later version also zero-pads the hidden state by 9 cells in x and y (the
    domain is not periodic); this model does not.
    """

    grid_rank = 2
    default_width, default_modes = 32, 12
    spectral_conv = SpectralConv2d

    def apply_dense(self, layer: nnx.Linear, h: jax.Array) -> jax.Array:
        return apply_dense_2d(layer, h)

    def grid_points(self, shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
        sx, sy = shape
        return [jnp.linspace(0.0, 1.0, sx, dtype=dtype)[:, None],
                jnp.linspace(0.0, 1.0, sy, dtype=dtype)]
