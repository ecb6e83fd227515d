"""The 1D Fourier Neural Operator (Li et al., ICLR 2021) in flax.nnx.

The model's input and output, ``[batch, grid]``, are already in the channel-first layout of
:mod:`fno.models.layers` with one channel; several channels come as a trailing axis,
``[batch, grid, channels]``, and are moved to the front once on the way in and back once on
the way out.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fno.models.base import FNO
from fno.models.layers import SpectralConv, resolve_spectral_impl, truncated_dft


class SpectralConv1d(SpectralConv):
    """Multiply the lowest ``modes`` Fourier modes by learned complex matrices; drop the rest.

    Two numerically equivalent implementations: ``fft`` (rfft, mix, zero-padded irfft) and
    ``dft`` (the same linear map as two dense matmuls with a truncated DFT basis; only the
    kept modes are ever computed, which is faster when modes << s).
    """

    @staticmethod
    def mode_shape(modes: int) -> tuple[int, ...]:
        return (modes,)

    def _mix(self, x_real: jax.Array, x_imag: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Complex per-mode channel mixing ``[i, b, m] x [i, o, m] -> [o, b, m]``."""
        return self.complex_mix("ibm,iom->obm", x_real, x_imag)

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



class FNO1d(FNO):
    """The released FNO-1D: lift (u0, x) -> width, Fourier layers, project width -> 128 -> 1,
    on ``[batch, s]`` (``[batch, s, channels]`` with several channels, ``FNO``) with
    x_j = j / (s - 1) as the released code's ``linspace(0, 1, s)``."""

    grid_rank = 1
    default_width, default_modes = 64, 16
    spectral_conv = SpectralConv1d

    def grid_points(self, shape: tuple[int, ...], dtype: Any) -> list[jax.Array]:
        return [jnp.linspace(0.0, 1.0, shape[0], dtype=dtype)]

