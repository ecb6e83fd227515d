"""Mesh and partition specs from *logical* axes: the model names the axes of its parameters
and activations, the config maps logical axes to mesh axes (as flax's logical axis rules,
gemma's ShardingConfig or nanodo's fsdp do). Nothing here knows a model.

Logical axes (``LOGICAL_AXES``):

* ``'batch'``: the samples of a batch, always over the mesh's ``'data'`` axis;
* ``'hidden'``: the channel dimension the model declares sharded (``config.model_sharding``
  names its mesh axis, "" replicates the model);
* ``'grid_x'``, ``'grid_y'``: the first and second grid axis of batches and activations
  (``config.spatial_sharding``: ``"x"`` shards the first over mesh axis ``x``, ``"x,y"``
  both, ``",y"`` only the second).

A trailing channel axis of batches (``[b, *grid, C]``) and of the model's output is never
sharded: it has no logical axis.

A model class declares ``param_axes``: ``{(module, leaf): logical axes of the leaf's leading
dimensions}`` (fno.models.base.PARAM_AXES), matched on the nearest enclosing module name of every
state leaf, so Adam's moments are sharded like their parameters. Its ``__call__`` pins
activations with :func:`constrain`, a no-op unless a strategy traces the step inside
``activation_layout(layout)``, so models stay usable without any mesh. A dimension that a
mesh axis does not divide stays whole.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fno.errors import FnoError

DATA_AXIS = "data"
GRID_AXES = ("grid_x", "grid_y", "grid_z")
LOGICAL_AXES = ("batch", "hidden", *GRID_AXES)

LogicalAxes = tuple[str | None, ...]
ParamAxes = Mapping[tuple[str, str], LogicalAxes]


def axis_rules(model_sharding: str = "", spatial_sharding: str = "") -> dict[str, str | None]:
    """Logical axis -> mesh axis, from ``config.model_sharding`` and
    ``config.spatial_sharding`` (comma-separated mesh axes, one per grid axis in order)."""
    rules: dict[str, str | None] = {"batch": DATA_AXIS, "hidden": model_sharding or None}
    spatial = spatial_sharding.split(",") if spatial_sharding else []
    if len(spatial) > len(GRID_AXES):
        raise FnoError(f"config.spatial_sharding {spatial_sharding!r} names more than "
                       f"{len(GRID_AXES)} grid axes")
    for logical, mesh_axis in zip(GRID_AXES, spatial, strict=False):
        rules[logical] = mesh_axis.strip() or None
    return rules


def check_mesh_shape(shape: Sequence[int], axes: Sequence[str]) -> None:
    """FnoError unless ``shape`` has one size per axis, each positive or the one ``-1``
    (the device-independent part of :func:`resolve_mesh_shape`, for fno.configuration)."""
    shape, axes = tuple(shape), tuple(axes)
    if len(shape) != len(axes):
        raise FnoError(f"config.mesh_shape {shape} and config.mesh_axes {axes} differ in length")
    if any(isinstance(n, bool) or not isinstance(n, int) or (n <= 0 and n != -1)
           for n in shape) or shape.count(-1) > 1:
        raise FnoError(f"config.mesh_shape {shape} must hold positive sizes and at most one -1")


def resolve_mesh_shape(shape: Sequence[int], axes: Sequence[str],
                       num_devices: int) -> tuple[int, ...]:
    """``shape`` with its one ``-1`` replaced by the remaining devices; FnoError if the axes
    and sizes cannot cover exactly ``num_devices`` devices."""
    check_mesh_shape(shape, axes)
    shape = tuple(shape)
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


def _canonical(entries: list[str | None]) -> P:
    """``P(*entries)`` without trailing Nones: P('a', None) is P('a'), one form per layout."""
    while entries and entries[-1] is None:
        entries = entries[:-1]
    return P(*entries)


@dataclasses.dataclass(frozen=True)
class Layout:
    """A mesh, the logical-to-mesh axis rules, the model's parameter axes, and how many grid
    axes its batches have (``grid_rank``, the model's; an axis after them is a channel axis.
    The default counts every axis after the batch, up to ``len(GRID_AXES)``, as a grid axis)."""

    mesh: Mesh
    rules: Mapping[str, str | None] = dataclasses.field(
        default_factory=lambda: {"batch": DATA_AXIS})
    param_axes: ParamAxes = dataclasses.field(default_factory=dict)
    grid_rank: int = len(GRID_AXES)

    def axis_size(self, axis: str | None) -> int:
        return 1 if axis is None else self.mesh.shape[axis]

    def mesh_axis(self, logical: str | None) -> str | None:
        return self.rules.get(logical) if logical else None

    @property
    def shards_more_than_batch(self) -> bool:
        return any(self.mesh_axis(a) for a in LOGICAL_AXES if a != "batch")

    def named(self, spec: P) -> NamedSharding:
        return NamedSharding(self.mesh, spec)

    def spec(self, logical: Sequence[str | None], shape: Sequence[int]) -> P:
        """The spec of an array whose leading dimensions have the ``logical`` axes (the rest
        whole); a dimension its mesh axis does not divide stays whole."""
        entries = []
        for i, n in enumerate(shape):
            axis = self.mesh_axis(logical[i]) if i < len(logical) else None
            entries.append(axis if axis and n % self.axis_size(axis) == 0 else None)
        return _canonical(entries)

    # --- batches --------------------------------------------------------------------------
    def batch_sharding(self, shape: Sequence[int], stacked: bool) -> NamedSharding:
        """A host batch leaf ``[b, *grid]`` or ``[b, *grid, C]`` (``[k, b, ...]`` when
        ``stacked``; the eval mask is ``[b]``): batch over 'data', the ``grid_rank`` grid
        axes as the rules say, a channel axis whole."""
        # No divisibility test here: in a multi-process run ``shape`` is this process's
        # share, whose batch a 'data' axis spanning several processes does not divide; the
        # global sizes were validated (fno.configuration).
        logical = (None,) * stacked + ("batch", *GRID_AXES[:self.grid_rank])
        logical = (logical + (None,) * len(shape))[:len(shape)]
        return self.named(_canonical([self.mesh_axis(axis) for axis in logical]))

    # --- state ------------------------------------------------------------------------------
    def param_spec(self, path: Sequence[Any], shape: Sequence[int]) -> P:
        """The spec of one state leaf, from its key path (params, Adam mu/nu alike)."""
        names = [jax.tree_util.keystr((key,), simple=True) for key in path]
        modules = {module for module, _ in self.param_axes}
        module = next((n for n in reversed(names) if n in modules), None)
        logical = self.param_axes.get((module, names[-1] if names else ""))
        if logical is None or len(logical) > len(shape):
            return P()
        return self.spec(logical, shape)

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


# --- activation hints, read by fno.models.base while a strategy traces the step -----------------
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


def constrain(x: jax.Array, logical: LogicalAxes) -> jax.Array:
    """``x`` (its leading dimensions named by ``logical``) with a sharding constraint from the
    active layout; unchanged without one, or when the layout shards nothing but the batch
    (GSPMD needs no hint there)."""
    layout = _ACTIVE.get()
    if layout is None or not layout.shards_more_than_batch:
        return x
    return jax.lax.with_sharding_constraint(x, layout.named(layout.spec(logical, x.shape)))
