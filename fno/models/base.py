"""The layer stack every FNO shares; a model for a new grid rank subclasses it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fno.models.layers import ACTIVATIONS, apply_dense, check_settings, dense
from fno.parallel.sharding import GRID_AXES, constrain

# The logical axes of every parameter (fno.parallel.sharding maps them to mesh axes), by module and
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
    (fno.registry) and the sharding layer (fno.parallel.sharding) read.
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
        spectral_init: str = "uniform",
        dtype: str = "float32",
        rngs: nnx.Rngs,
    ):
        width = width or self.default_width
        modes = modes or self.default_modes
        check_settings(width=width, modes=modes, num_layers=num_layers,
                       projection_width=projection_width, in_channels=in_channels,
                       out_channels=out_channels, activation=activation,
                       spectral_impl=spectral_impl, spectral_init=spectral_init, dtype=dtype)
        self.activation = activation
        self.dtype = dtype
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.lift = dense(self.in_channels + self.grid_rank, width, rngs)
        self.spectral = nnx.List([
            self.spectral_conv(width, width, modes, impl=spectral_impl, init=spectral_init,
                               rngs=rngs) for _ in range(num_layers)])
        self.pointwise = nnx.List([dense(width, width, rngs) for _ in range(num_layers)])
        self.project_hidden = dense(width, projection_width, rngs)
        self.project_out = dense(projection_width, self.out_channels, rngs)

    @classmethod
    def from_config(cls, model: Any, seed: int) -> FNO:
        """The model of ``config.model`` with parameters drawn from ``seed``.

        ``model.in_channels``/``out_channels`` are set from the data before training
        (fno.data.datasets.resolve_channels); a config never resolved against data (None, or a
        config without the fields, as the benchmarks build) gets one channel each.
        """
        channels = {name: 1 if model.get(name) is None else model[name]
                    for name in ("in_channels", "out_channels")}
        return cls(width=model.width, modes=model.modes, **channels,
                   num_layers=model.num_layers,
                   activation=model.activation, projection_width=model.projection_width,
                   spectral_impl=model.spectral_impl,
                   spectral_init=model.get("spectral_init", "uniform"), dtype=model.dtype,
                   rngs=nnx.Rngs(params=seed))

    @staticmethod
    def spectral_conv(in_channels: int, out_channels: int, modes: int, *, impl: str,
                      init: str, rngs: nnx.Rngs) -> nnx.Module:
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
        layout a strategy traces under (fno.parallel.sharding); without one it returns its argument.
        """
        act = ACTIVATIONS[self.activation]
        out_dtype, u = u.dtype, u.astype(self.dtype)
        grid = tuple(GRID_AXES[:self.grid_rank])
        hidden = ("hidden", "batch", *grid)
        channels = self._input_channels(u)  # [in_channels, batch, *grid]
        shape = channels.shape[1:]
        coords = [jnp.broadcast_to(c, shape) for c in self.grid_points(shape[1:], u.dtype)]
        h = constrain(self.pad_hidden(
            self.apply_dense(self.lift, jnp.concatenate([channels, jnp.stack(coords)]))), hidden)
        last = len(self.spectral) - 1
        for i, (spectral, pointwise) in enumerate(zip(self.spectral, self.pointwise,
                                                       strict=True)):
            h = constrain(spectral(h) + self.apply_dense(pointwise, h), hidden)
            if i < last:
                h = act(h)
        h = act(constrain(self.apply_dense(self.project_hidden, self.crop_hidden(h)), hidden))
        out = self.apply_dense(self.project_out, h).astype(out_dtype)  # [out, batch, *grid]
        if self.out_channels == 1:
            return constrain(out[0], ("batch", *grid))
        return constrain(jnp.moveaxis(out, 0, -1), ("batch", *grid, None))

    def pad_hidden(self, h: jax.Array) -> jax.Array:
        """The lifted state before the Fourier layers; a model whose grid is not periodic
        along an axis pads it here (and crops it in :meth:`crop_hidden`)."""
        return h

    def crop_hidden(self, h: jax.Array) -> jax.Array:
        """The state after the Fourier layers, before the projection (see ``pad_hidden``)."""
        return h

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



def count_params(model: nnx.Module) -> int:
    """Number of real scalars in the model's parameters (complex weights count as two)."""
    params = nnx.state(model, nnx.Param)
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))

