"""Execution modes as small strategies: where the state lives, how host batches become device
input, and how a step is compiled. The training loop in ``fno.training.loop`` is the same for all.

| mode        | devices             | state                          | one call runs          |
|-------------|---------------------|--------------------------------|------------------------|
| basic       | first local device  | on that device                 | 1 step, jit            |
| scan        | first local device  | on that device                 | k steps, jit(lax.scan) |
| pmap        | all devices         | replicated, leading device axis | 1 step, pmap          |
| pmap_scan   | all devices         | replicated, leading device axis | k steps, pmap(scan)   |
| mesh        | all devices, Mesh   | NamedSharding, per leaf        | 1 step, jit            |
| mesh_scan   | all devices, Mesh   | NamedSharding, per leaf        | k steps, jit(lax.scan) |

Mesh modes build a 1D ('data',) mesh by default, or the mesh of ``config.mesh_shape`` /
``config.mesh_axes`` with the model's channels (``config.model_sharding``) and grid axes
(``config.spatial_sharding``) sharded over named axes, through the model's logical axes
(``fno.parallel.sharding``).

A *step function* ``step(state, batch) -> (state, metrics)`` is pure and knows nothing about
devices except, in pmap modes, the name of the axis to average gradients over. Scan modes wrap
it in ``lax.scan`` over a leading ``[k, ...]`` axis of stacked batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.jax_utils
import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from fno.parallel import sharding as sharding_lib

MODES = ("basic", "scan", "pmap", "pmap_scan", "mesh", "mesh_scan")
PMAP_AXIS = "batch"
DATA_AXIS = sharding_lib.DATA_AXIS

# The training state, a dict of arrays: {"step", "params", "opt_state"[, "normalizer"]}
# (fno.training.steps.init_state). Defined here, the lowest layer that handles it.
State = dict[str, Any]
Batch = dict[str, np.ndarray]
StepFn = Callable[..., tuple[State, Any]]


def scan_steps(step: StepFn) -> StepFn:
    """Run ``step`` over the leading axis of ``batches`` and reduce the per-step metrics."""

    def multi_step(state, batches, **kwargs):
        def body(carry, batch):
            return step(carry, batch, **kwargs)

        state, metrics = jax.lax.scan(body, state, batches)
        return state, metrics.reduce()

    return multi_step


class Strategy:
    """Base class: one device, plain jit. Subclasses override placement and compilation."""

    uses_scan = False
    axis_name: str | None = None

    def __init__(self, devices: list[jax.Device] | None = None):
        self.devices = devices or [jax.local_devices()[0]]
        self.sharding = jax.sharding.SingleDeviceSharding(self.devices[0])

    @property
    def data_parallel_size(self) -> int:
        """How many ways the global batch is split across devices."""
        return 1

    # --- state -------------------------------------------------------------------------
    @property
    def state_sharding(self) -> jax.sharding.Sharding:
        """Sharding of the *logical* state (no device axis): restore targets use it."""
        return self.sharding

    def state_shardings(self, logical_state: State) -> Any:
        """A sharding per leaf of the logical state (replicated unless a mode shards it)."""
        return jax.tree.map(lambda _: self.state_sharding, logical_state)

    def place_state(self, logical_state: State) -> State:
        return jax.device_put(logical_state, self.state_shardings(logical_state))

    def logical_state(self, state: State) -> State:
        """The state without any device axis, for checkpoints, evaluation and comparison."""
        return state

    # --- batches -----------------------------------------------------------------------
    def put_batch(self, batch: Batch, stacked: bool) -> Any:
        """Host arrays of this process, ``[b, ...]`` or ``[k, b, ...]`` when ``stacked``."""
        return jax.device_put(batch, self.sharding)

    def metrics_to_host(self, metrics: Any) -> Any:
        return metrics

    def merge_metrics(self, accumulated: Any, new: Any) -> Any:
        """``accumulated.merge(new)`` for two outputs of the compiled step, as one compiled
        call on the devices. Merging clu metrics eagerly dispatches several small ops per
        step, host time that a small CPU takes from the step itself."""
        return self._merge_fn(accumulated, new)

    @functools.cached_property
    def _merge_fn(self) -> Callable:
        return self._compile_merge(lambda a, b: a.merge(b))

    def _compile_merge(self, merge: Callable) -> Callable:
        return jax.jit(merge)

    # --- compilation -------------------------------------------------------------------
    def compile_train(self, step: StepFn) -> Callable[[State, Any], tuple[State, Any]]:
        fn = scan_steps(step) if self.uses_scan else step
        return jax.jit(fn, donate_argnums=0)

    def compile_eval(self, eval_step: Callable) -> Callable:
        return jax.jit(eval_step)


class ScanStrategy(Strategy):
    uses_scan = True


class PmapStrategy(Strategy):
    """Legacy data parallelism: the state carries a leading device axis; gradients pmean."""

    axis_name = PMAP_AXIS

    def __init__(self, devices: list[jax.Device] | None = None):
        super().__init__(devices or jax.local_devices())
        # Checkpoints and restores see the logical state replicated over every device of
        # every process, the same global layout the mesh modes use.
        self.sharding = NamedSharding(
            jax.sharding.Mesh(np.asarray(jax.devices()), ("all",)), P())

    @property
    def data_parallel_size(self) -> int:
        return jax.device_count()

    def place_state(self, logical_state: State) -> State:
        # Each process feeds its own devices; axis_name matching the pmap axis avoids a
        # recompilation on the second call.
        local = jax.tree.map(_host_value, logical_state)
        return flax.jax_utils.replicate(local, self.devices, axis_name=PMAP_AXIS)

    def logical_state(self, state: State) -> State:
        # Every device already holds the same copy: the replicated global array is built
        # from those per-device copies, with no transfer between devices or processes
        # (x[0] would gather in multi-process runs, a device_put from the host would copy).
        return jax.tree.map(self._replicated_global, state)

    def _replicated_global(self, x: jax.Array) -> jax.Array:
        by_device = {shard.device: shard.data for shard in x.addressable_shards}
        arrays = [jax.numpy.squeeze(by_device[d], 0)
                  for d in self.sharding.addressable_devices_indices_map(x.shape[1:])]
        return jax.make_array_from_single_device_arrays(x.shape[1:], self.sharding, arrays)

    def put_batch(self, batch: Batch, stacked: bool) -> Any:
        # [b, ...] -> [d, b/d, ...]; stacked [k, b, ...] -> [d, k, b/d, ...]; the grid and
        # channel axes ride along whole.
        d = len(self.devices)

        def split(x):
            if stacked:
                k, b = x.shape[:2]
                return x.reshape(k, d, b // d, *x.shape[2:]).swapaxes(0, 1)
            return x.reshape(d, x.shape[0] // d, *x.shape[1:])

        return jax.tree.map(split, batch)

    def metrics_to_host(self, metrics: Any) -> Any:
        # Metrics are summed over the pmap axis, so this device's copy is the global value.
        return jax.tree.map(lambda x: x.addressable_shards[0].data[0], metrics)

    def _compile_merge(self, merge: Callable) -> Callable:
        # Per device, on the replicated per-device copies (works across processes too).
        return jax.pmap(merge)

    def compile_train(self, step: StepFn) -> Callable:
        fn = scan_steps(step) if self.uses_scan else step
        return jax.pmap(lambda s, b: fn(s, b, axis_name=PMAP_AXIS), axis_name=PMAP_AXIS,
                        donate_argnums=0)

    def compile_eval(self, eval_step: Callable) -> Callable:
        return jax.pmap(lambda p, b: eval_step(p, b, axis_name=PMAP_AXIS),
                        axis_name=PMAP_AXIS)


class PmapScanStrategy(PmapStrategy):
    uses_scan = True


def _host_value(x: Any) -> np.ndarray:
    """A replicated array's value, read from this process's first device copy."""
    return np.asarray(x.addressable_shards[0].data) if isinstance(x, jax.Array) else np.asarray(x)



class MeshStrategy(Strategy):
    """jit over a ``Mesh``: batches sharded along 'data' (and the grid along the spatial
    axis, if configured); state replicated, or channel-sharded over the model axis (see
    ``fno.parallel.sharding`` for which dimensions)."""

    def __init__(self, devices: list[jax.Device] | None = None,
                 config: ml_collections.ConfigDict | None = None, model: Any = None,
                 grid_rank: int | None = None):
        """``model``: the model class (``fno.registry.model_class(config)``), whose
        ``param_axes`` and ``grid_rank`` the layout maps; needed with ``config``.
        ``grid_rank``: the batches' grid axes where they have fewer than the model (a
        space-time model's batches have no time axis; fno.models.rollout)."""
        if config is not None and model is None:
            raise TypeError("MeshStrategy with a config needs its model class")
        self.devices = devices or jax.devices()
        shape, axes = (config.mesh_shape, config.mesh_axes) if config else ((-1,), (DATA_AXIS,))
        self.mesh = sharding_lib.make_mesh(shape, axes, self.devices)
        if config is None:
            self.layout = sharding_lib.Layout(self.mesh)
        else:
            self.layout = sharding_lib.Layout(
                self.mesh,
                rules=sharding_lib.axis_rules(config.model_sharding, config.spatial_sharding),
                param_axes=model.param_axes, grid_rank=grid_rank or model.grid_rank)
        self.sharding = NamedSharding(self.mesh, P())

    @property
    def data_parallel_size(self) -> int:
        return self.mesh.shape[DATA_AXIS]

    def state_shardings(self, logical_state: State) -> Any:
        return self.layout.state_shardings(logical_state)

    def put_batch(self, batch: Batch, stacked: bool) -> Any:
        # Host-local rows become one global array; on one process this is a plain put. Batch
        # and grid axes are placed as the layout says; a channel axis ([b, *grid, C]) whole.
        return jax.tree.map(
            lambda x: jax.make_array_from_process_local_data(
                self.layout.batch_sharding(np.shape(x), stacked), x), batch)

    def with_layout(self, fn: Callable) -> Callable:
        """``fn`` whose trace sees this layout's activation constraints (fno.parallel.sharding)."""

        def traced(*args):
            with sharding_lib.activation_layout(self.layout):
                return fn(*args)

        return traced

    def jit_train(self, step: StepFn, state: State) -> Any:
        """The jitted train call for states shaped like ``state`` (arrays or abstract): the
        new state keeps each leaf's input sharding, so donation works and nothing recompiles.
        Exposed for ahead-of-time ``lower().compile()`` (benchmarks/memory.py)."""
        fn = self.with_layout(scan_steps(step) if self.uses_scan else step)
        return jax.jit(fn, out_shardings=(self.state_shardings(state), self.sharding),
                       donate_argnums=0)

    def compile_train(self, step: StepFn) -> Callable:
        compiled: dict[Any, Any] = {}

        def call(state, batch):
            key = jax.tree.structure(state)
            if key not in compiled:
                compiled[key] = self.jit_train(step, state)
            return compiled[key](state, batch)

        return call

    def compile_eval(self, eval_step: Callable) -> Callable:
        return jax.jit(self.with_layout(eval_step), out_shardings=self.sharding)


class MeshScanStrategy(MeshStrategy):
    uses_scan = True


_STRATEGIES: dict[str, type[Strategy]] = {
    "basic": Strategy,
    "scan": ScanStrategy,
    "pmap": PmapStrategy,
    "pmap_scan": PmapScanStrategy,
    "mesh": MeshStrategy,
    "mesh_scan": MeshScanStrategy,
}


def make_strategy(mode: str, config: ml_collections.ConfigDict | None = None,
                  model: Any = None, grid_rank: int | None = None) -> Strategy:
    """The strategy for a config's ``mode``; mesh modes take their mesh shape, axes and
    model/spatial sharding from ``config`` and the logical axes from ``model`` (the model
    class; default without a config: one 'data' axis over all devices) and ``grid_rank``
    (the batches' grid axes; default the model's)."""
    if mode not in _STRATEGIES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if issubclass(_STRATEGIES[mode], MeshStrategy):
        return _STRATEGIES[mode](config=config, model=model, grid_rank=grid_rank)
    return _STRATEGIES[mode]()
