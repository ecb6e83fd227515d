"""The 3D Fourier Neural Operator of the paper's Navier-Stokes experiment (FNO-3D), in flax.nnx.

The released ``fourier_3d.py`` treats two space axes and time as one 3D grid: input channels
(the first input fields, repeated along t, then the coordinates x, y, t, each
``linspace(0, 1, s)`` over its own axis), lift -> width, Fourier layers that keep
``modes`` x ``modes`` x ``modes`` coefficients in the *four* low-frequency corners of the
rfftn spectrum (kx and ky of both signs, kz in [0, m)) plus a pointwise linear map, GELU
except after the last layer, projection width -> 128 -> GELU -> 1. Its later version pads the
time axis with zeros after the lift and crops it before the projection (time is not
periodic); here that is ``time_padding``.

Hidden activations are channel-first, ``[channels, batch, sx, sy, st]``, as in the 1D and 2D
models: the pointwise maps are ``channel_matmul`` over a ``[c, b, sx*sy*st]`` view, and every
transform of the DFT path is a product over the last axis of one of the 2D model's
truncated-DFT matmuls, mapped over the other grid axes.

The four corners' complex weights (the released ``weights1`` .. ``weights4``, each
``[in, out, m, m, m]``) are stored stacked as ``weight_real``/``weight_imag``
``[in, out, 2m, 2m, m]``: ``[:, :, :m, :m]`` is ``weights1``, ``[:, :, m:, :m]`` ``weights2``
(negative kx), ``[:, :, :m, m:]`` ``weights3`` (negative ky), ``[:, :, m:, m:]``
``weights4``. The same numbers and initialisation, and the parameter names and in-channel axis
that ``fno.parallel.sharding`` already shards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fno.models.base import FNO
from fno.models.fno2d import corner_dft
from fno.models.layers import SpectralConv, apply_dense, check_settings, truncated_dft

# ``auto`` picks ``dft`` up to this many points along every grid axis and ``fft`` above. Per
# grid point the truncated DFT costs about 2 * modes multiply-adds for the t analysis (the y
# and x transforms act on spectra 2 * modes / st of the activation and smaller), whatever the
# grid size. On CPU (one layer, width 20, 8 modes, forward and backward) the DFT path took a
# quarter of the FFT's time at the Navier-Stokes grid 64 x 64 x (40 + 6) and two thirds at
# 32 x 32 x 46; the bound is the 2D model's (fno.models.fno2d), not a measured crossover.
# Not yet measured on accelerators.
DFT_MAX_RESOLUTION_3D = 2048

# The released recipe's zero padding of the time axis (``F.pad(x, [0, 6])``).
RELEASED_TIME_PADDING = 6


def resolve_spectral_impl_3d(impl: str, sx: int, sy: int, st: int) -> str:
    """The concrete implementation for ``impl`` on an ``sx`` x ``sy`` x ``st`` grid ("auto"
    picks by the largest grid axis)."""
    check_settings(spectral_impl=impl)
    if impl == "auto":
        return "dft" if max(sx, sy, st) <= DFT_MAX_RESOLUTION_3D else "fft"
    return impl


def _map_grid(f: Callable[[jax.Array], jax.Array], axes: int) -> Callable:
    """``f`` on ``[c, b, s]`` mapped over the ``axes`` axes between the batch and the last.

    Mapped rather than applied to a ``[c, b*sx*..., s]`` view: with the batch and a grid axis
    sharded, that merge would cost a resharding collective; mapped, every product stays local
    to its block, as in the 2D model.
    """
    for _ in range(axes):
        f = jax.vmap(f, in_axes=2, out_axes=2)
    return f


class SpectralConv3d(SpectralConv):
    """Multiply the kept Fourier modes of the four corners by learned complex matrices; drop
    the rest.

    Two numerically equivalent implementations: ``fft`` (rfftn, mix, zero-padded irfftn over
    the three grid axes, as the released code) and ``dft`` (the same linear map as
    truncated-DFT matmuls: along t the 1D ``truncated_dft`` keeps m kz, then along y and x the
    2D model's ``corner_dft`` keeps 2m ky and 2m kx; the inverse likewise in reverse). Only
    kept modes are ever computed, and the x and y analyses contract over their axis, so a
    sharded x or y needs only reductions.
    """

    @staticmethod
    def mode_shape(modes: int) -> tuple[int, ...]:
        # [kx (both signs), ky (both signs), kz]: one draw covers the four corners (the
        # released weights1 .. weights4), which are i.i.d. there too.
        return (2 * modes, 2 * modes, modes)

    def _mix(self, x_real: jax.Array, x_imag: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Complex per-mode channel mixing
        ``[i, b, kz, ky, kx] x [i, o, kx, ky, kz] -> [o, b, kz, ky, kx]``.

        The spectrum is kx-minor so that the DFT path's x transforms contract its last axis.
        """
        return self.complex_mix("ibzyx,ioxyz->obzyx", x_real, x_imag)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x``: ``[in_channels, batch, sx, sy, st]`` (channel-first) ->
        ``[out_channels, batch, sx, sy, st]``."""
        c, b, sx, sy, st = x.shape
        m = self.modes
        if min(sx, sy, st) < 2 * m:
            raise ValueError(f"resolution {sx}x{sy}x{st} is too coarse for {m} modes (need "
                             f"all >= {2 * m})")
        if resolve_spectral_impl_3d(self.impl, sx, sy, st) == "fft":
            return self._fft(x)
        dtype = jnp.dtype(x.dtype).name
        analysis_t, synthesis_t = (_map_grid(f, 2) for f in truncated_dft(st, m, dtype))
        analysis_y, synthesis_y = (_map_grid(f, 2) for f in corner_dft(sy, m, dtype))
        analysis_x, synthesis_x = (_map_grid(f, 2) for f in corner_dft(sx, m, dtype))
        # Each transposing copy acts on a spectrum, at most 2m/st of the activation.
        a = analysis_t(x).reshape(c, b, sx, sy, 2, m)  # [c, b, x, y, r, kz]
        a = jnp.transpose(a, (0, 1, 2, 5, 3, 4)).reshape(c, b, sx, m, 2 * sy)
        a = analysis_y(a).reshape(c, b, sx, m, 2, 2 * m)  # [c, b, x, kz, r, ky]
        a = jnp.transpose(a, (0, 1, 3, 5, 2, 4)).reshape(c, b, m, 2 * m, 2 * sx)
        spectrum = analysis_x(a)  # [c, b, kz, ky, (r, kx)]
        out_real, out_imag = self._mix(spectrum[..., : 2 * m], spectrum[..., 2 * m:])
        o = out_real.shape[0]
        z = synthesis_x(jnp.concatenate([out_real, out_imag], -1))  # [o, b, kz, ky, (x, r)]
        z = jnp.transpose(z.reshape(o, b, m, 2 * m, sx, 2), (0, 1, 4, 2, 5, 3))
        z = synthesis_y(z.reshape(o, b, sx, m, 4 * m))  # [o, b, x, kz, (y, r)]
        z = jnp.transpose(z.reshape(o, b, sx, m, sy, 2), (0, 1, 2, 4, 5, 3))
        return synthesis_t(z.reshape(o, b, sx, sy, 2 * m))

    def _fft(self, x: jax.Array) -> jax.Array:
        """The released code's path: rfftn, keep the four corners, mix, zero-padded irfftn."""
        sx, sy, st = x.shape[2:]
        m = self.modes
        # jnp.fft needs float32 or wider.
        x_ft = jnp.fft.rfftn(x.astype(jnp.promote_types(x.dtype, jnp.float32)),
                             axes=(-3, -2, -1))
        corners = jnp.concatenate([x_ft[:, :, :m], x_ft[:, :, sx - m:]], axis=2)
        corners = jnp.concatenate([corners[:, :, :, :m, :m], corners[:, :, :, sy - m:, :m]],
                                  axis=3)
        corners = jnp.transpose(corners, (0, 1, 4, 3, 2))  # [c, b, kz, ky, kx]
        out_real, out_imag = self._mix(jnp.real(corners), jnp.imag(corners))
        out = jnp.transpose(jax.lax.complex(out_real, out_imag), (0, 1, 4, 3, 2))
        o, b = out.shape[:2]
        gap_x = jnp.zeros((o, b, sx - 2 * m, 2 * m, m), out.dtype)
        out = jnp.concatenate([out[:, :, :m], gap_x, out[:, :, m:]], axis=2)
        gap_y = jnp.zeros((o, b, sx, sy - 2 * m, m), out.dtype)
        out = jnp.concatenate([out[:, :, :, :m], gap_y, out[:, :, :, m:]], axis=3)
        out = jnp.pad(out, ((0, 0),) * 4 + ((0, st // 2 + 1 - m),))
        return jnp.fft.irfftn(out, s=(sx, sy, st), axes=(-3, -2, -1)).astype(x.dtype)


def apply_dense_3d(layer: nnx.Linear, x: jax.Array) -> jax.Array:
    """``fno.models.layers.apply_dense`` on ``[in, b, sx, sy, st]`` through a free
    ``[in, b, sx*sy*st]`` view -> ``[out, b, sx, sy, st]``."""
    c, b, *grid = x.shape
    return apply_dense(layer, x.reshape(c, b, -1)).reshape(-1, b, *grid)


def check_time_padding(value: Any) -> int:
    """``value`` as a number of padding cells; ValueError ``model.time_padding ...`` unless
    it is a non-negative integer (zero: no padding)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"model.time_padding must be a non-negative integer, got {value!r}")
    return int(value)


class FNO3d(FNO):
    """The released FNO-3D: lift (input fields, x, y, t) -> width, Fourier layers, project
    width -> 128 -> 1, on ``[batch, sx, sy, st]`` (``[batch, sx, sy, st, channels]`` with
    several input or output channels, as ``fno.models.base.FNO`` describes; the released
    recipe's input fields are its channels).

    Entry ``[n, i, j, k]`` is at ``(i / (sx-1), j / (sy-1), k / (st-1))``, the released
    ``get_grid``. ``time_padding`` zero cells are appended to the time axis of the hidden
    state after the lift and cropped before the projection, as the released recipe does
    (``RELEASED_TIME_PADDING``), so the layers' periodic transforms do not wrap the last
    time step onto the first; the coordinates span the unpadded grid and the resolution
    check applies to the padded time axis.
    """

    grid_rank = 3
    default_width, default_modes = 20, 8
    spectral_conv = SpectralConv3d

    def __init__(self, *, time_padding: int = 0, **settings: Any):
        self.time_padding = check_time_padding(time_padding)
        super().__init__(**settings)

    @classmethod
    def from_config(cls, model: Any, seed: int) -> FNO3d:
        """``FNO.from_config`` plus ``model.time_padding`` where the config has it (absent or
        None: no padding)."""
        built = super().from_config(model, seed)
        built.time_padding = check_time_padding(model.get("time_padding") or 0)
        return built

    def apply_dense(self, layer: nnx.Linear, h: jax.Array) -> jax.Array:
        return apply_dense_3d(layer, h)

    def pad_hidden(self, h: jax.Array) -> jax.Array:
        """Zeros after the last time of the lifted state: time is not periodic, and the
        padding keeps the spectral layers from wrapping the end of the window onto its start."""
        pad = self.time_padding
        return jnp.pad(h, ((0, 0),) * (h.ndim - 1) + ((0, pad),)) if pad else h

    def crop_hidden(self, h: jax.Array) -> jax.Array:
        return h[..., : h.shape[-1] - self.time_padding] if self.time_padding else h

    def grid_points(self, shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
        sx, sy, st = shape
        return [jnp.linspace(0.0, 1.0, sx, dtype=dtype)[:, None, None],
                jnp.linspace(0.0, 1.0, sy, dtype=dtype)[:, None],
                jnp.linspace(0.0, 1.0, st, dtype=dtype)]
