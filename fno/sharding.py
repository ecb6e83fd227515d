"""Mesh and partition specs for data, model (channel) and spatial (grid) sharding.

A ``Layout`` says which mesh axis shards what:

* ``'data'`` (always present) splits the batch;
* the *model* axis, if any, splits every dimension of size ``width`` (the FNO's channels):
  parameters, their Adam moments and the hidden activations ``[width, b, s]``;
* the *spatial* axis, if any, splits the grid axis ``s`` of the activations and batches.

Which parameter dimension is split (``param_spec``): the *input* channels of every map that
reads the hidden state (spectral weights ``[in, out, modes]``, pointwise kernels ``[in, out]``,
``project_hidden`` ``[width, projection_width]``), the output channels of the lift
``[2, width]``, and the width-sized biases. Hidden activations ``[width, b, s]`` are
channel-sharded too, so each device contracts its own channel slice and the partial sums are
reduced (reduce-scatter where the backend has one); the activations saved for the backward
pass stay sharded, which an output-channel split (that needs the gathered input for the
weight gradient) would not give. ``project_out`` and scalars (the step, optimizer counts) are
replicated. Spatial sharding keeps parameters replicated.

The model asks for activation shardings through ``constrain``; it is a no-op unless a
strategy traces the step inside ``activation_layout(layout)``, so the model stays usable
without any mesh.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fno.errors import FnoError

DATA_AXIS = "data"

# Module names in the parameter tree (fno.model.FNO1d attributes) -> which dimension of
# each leaf kind has size ``width`` and is sharded over the model axis.
_WIDTH_DIM = {
    ("lift", "kernel"): 1, ("lift", "bias"): 0,
    ("spectral", "weight_real"): 0, ("spectral", "weight_imag"): 0,
    ("pointwise", "kernel"): 0, ("pointwise", "bias"): 0,
    ("project_hidden", "kernel"): 0,
}
_MODULES = {module for module, _ in _WIDTH_DIM} | {"project_out"}


def resolve_mesh_shape(shape: Sequence[int], axes: Sequence[str],
                       num_devices: int) -> tuple[int, ...]:
    """``shape`` with its one ``-1`` replaced by the remaining devices; FnoError if the axes
    and sizes cannot cover exactly ``num_devices`` devices."""
    shape, axes = tuple(shape), tuple(axes)
    if len(shape) != len(axes):
        raise FnoError(f"config.mesh_shape {shape} and config.mesh_axes {axes} differ in length")
    if any(isinstance(n, bool) or not isinstance(n, int) or (n <= 0 and n != -1)
           for n in shape) or shape.count(-1) > 1:
        raise FnoError(f"config.mesh_shape {shape} must hold positive sizes and at most one -1")
    known = math.prod(n for n in shape if n != -1)
    if -1 in shape:
        if num_devices % known:
            raise FnoError(f"config.mesh_shape {shape}: {num_devices} devices are not "
                           f"divisible by {known}")
        shape = tuple(num_devices // known if n == -1 else n for n in shape)
    if math.prod(shape) != num_devices:
        raise FnoError(f"config.mesh_shape {shape} has {math.prod(shape)} devices, but "
                       f"{num_devices} are available")
    return shape


def device_grid(shape: Sequence[int], axes: Sequence[str],
                devices: Sequence[jax.Device]) -> np.ndarray:
    """Devices arranged for ``shape`` by the physical topology (``mesh_utils``).

    On TPU the order follows the ICI torus, not ``jax.devices()``'s enumeration. Devices of
    several slices (multislice TPU, ``slice_index``) get a hybrid mesh: the slices split the
    'data' axis over the slower data-centre network (DCN), every other axis stays inside a
    slice. CPU and single-slice GPU orders are those of ``jax.devices()``.
    """
    from jax.experimental import mesh_utils

    slices = sorted({getattr(d, "slice_index", 0) for d in devices})
    if len(slices) > 1:
        if DATA_AXIS not in axes:
            raise FnoError(f"{len(slices)} TPU slices need a '{DATA_AXIS}' mesh axis to span "
                           f"them (config.mesh_axes {tuple(axes)})")
        data = list(axes).index(DATA_AXIS)
        if shape[data] % len(slices):
            raise FnoError(f"config.mesh_shape {tuple(shape)}: the '{DATA_AXIS}' axis "
                           f"({shape[data]}) must be divisible by the {len(slices)} slices")
        ici = [n // len(slices) if i == data else n for i, n in enumerate(shape)]
        dcn = [len(slices) if i == data else 1 for i in range(len(shape))]
        return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices)
    return mesh_utils.create_device_mesh(tuple(shape), devices)


def make_mesh(shape: Sequence[int], axes: Sequence[str],
              devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A topology-ordered mesh (:func:`device_grid`) with ``Auto`` axes (GSPMD
    propagation; Explicit axes reject plain model code)."""
    devices = list(devices or jax.devices())
    shape = resolve_mesh_shape(shape, axes, len(devices))
    return Mesh(device_grid(shape, axes, devices), tuple(axes),
                axis_types=(AxisType.Auto,) * len(axes))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which mesh axes shard the batch, the channels and the grid of the FNO."""

    mesh: Mesh
    model_axis: str | None = None
    spatial_axis: str | None = None

    def axis_size(self, axis: str | None) -> int:
        return 1 if axis is None else self.mesh.shape[axis]

    def named(self, spec: P) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    # --- batches --------------------------------------------------------------------------
    def batch_sharding(self, ndim: int, stacked: bool) -> NamedSharding:
        """``[b, s]`` -> P('data', spatial); ``[k, b, s]`` -> P(None, 'data', spatial);
        lower-rank leaves (the eval mask ``[b]``) keep only the leading entries."""
        spec = (None,) * stacked + (DATA_AXIS, self.spatial_axis)
        return self.named(P(*spec[:ndim]))

    # --- activations ----------------------------------------------------------------------
    def activation_sharding(self, kind: str, channels: int) -> NamedSharding:
        """``'hidden'``: channel-first ``[c, b, s]`` (fno.model) with c sharded over the model
        axis when it divides; ``'output'``: ``[b, s]``."""
        if kind == "output":
            return self.named(P(DATA_AXIS, self.spatial_axis))
        split = self.model_axis if channels % self.axis_size(self.model_axis) == 0 else None
        return self.named(P(split, DATA_AXIS, self.spatial_axis))

    # --- state ------------------------------------------------------------------------------
    def param_spec(self, path: Sequence[Any], shape: Sequence[int]) -> P:
        """The spec of one state leaf, from its key path (params, Adam mu/nu alike)."""
        if self.model_axis is None:
            return P()
        names = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path]
        module = next((n for n in reversed(names) if n in _MODULES), None)
        dim = _WIDTH_DIM.get((module, names[-1] if names else ""))
        if dim is None or dim >= len(shape):
            return P()
        spec = [None] * len(shape)
        spec[dim] = self.model_axis
        return P(*spec)

    def state_shardings(self, state: Any) -> Any:
        """A NamedSharding per leaf of the logical state (works on abstract leaves too)."""
        return jax.tree_util.tree_map_with_path(
            lambda path, x: self.named(self.param_spec(path, np.shape(x))), state)


def shard_bytes(state: Any, shardings: Any) -> int:
    """Bytes of ``state`` that one device holds under ``shardings`` (the largest shard)."""
    total = 0
    for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(shardings), strict=True):
        shard = s.shard_shape(tuple(np.shape(x)))
        total += math.prod(shard) * np.dtype(x.dtype).itemsize
    return total


# --- activation hints, read by fno.model while a strategy traces the step -----------------
_ACTIVE: contextvars.ContextVar[Layout | None] = contextvars.ContextVar("fno_layout",
                                                                        default=None)


@contextlib.contextmanager
def activation_layout(layout: Layout | None) -> Iterator[None]:
    """Make ``constrain`` pin activations to ``layout`` while tracing inside this block."""
    token = _ACTIVE.set(layout)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def constrain(x: jax.Array, kind: str = "hidden") -> jax.Array:
    """``x`` with a sharding constraint from the active layout; unchanged without one (or when
    the layout shards nothing but the batch, where GSPMD needs no hint)."""
    layout = _ACTIVE.get()
    if layout is None or (layout.model_axis is None and layout.spatial_axis is None):
        return x
    return jax.lax.with_sharding_constraint(
        x, layout.activation_sharding(kind, x.shape[0] if x.ndim == 3 else 0))
