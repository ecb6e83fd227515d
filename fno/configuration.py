"""Config checks.

Every check raises ``FnoError`` with a one-line message that names the offending field, before
any work starts, so a typo costs a second instead of a crashed job an hour in.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections

from fno import registry
from fno.data.checks import supported_resolutions
from fno.data.sources import TIME_AXES
from fno.errors import FnoError
from fno.models.fno2d import resolve_spectral_impl_2d
from fno.models.fno3d import resolve_spectral_impl_3d
from fno.models.layers import check_settings
from fno.models.rollout import ROLLOUTS
from fno.parallel.sharding import GRID_AXES, axis_rules, check_mesh_shape
from fno.parallel.strategies import DATA_AXIS, MODES, Strategy

MESH_MODES = ("mesh", "mesh_scan")
LOSS_REDUCTIONS = ("mean", "sum")

_POSITIVE_INTS = (
    "batch_size", "steps_per_call", "keep_checkpoints", "data.num_train", "data.num_test",
    "data.resolution",
)
# The settings of config.model that the model checks itself (fno.models.layers.check_settings).
_MODEL_SETTINGS = ("width", "modes", "num_layers", "projection_width", "in_channels",
                   "out_channels", "activation", "spectral_impl", "spectral_init", "dtype")
# None: chosen from the data (fno.data.datasets.split_sizes, fno.data.datasets.resolve_channels).
_CHOSEN_FROM_DATA = ("data.num_train", "data.num_test", "model.in_channels",
                     "model.out_channels")
_NON_NEGATIVE_INTS = ("num_epochs", "log_every_steps", "eval_every_steps",
                      "checkpoint_every_steps", "num_plot_samples", "lr_decay_epochs")


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def _resolutions(config: ml_collections.ConfigDict) -> tuple[int, ...]:
    """The training resolution and the explicit evaluation ones (None: chosen from the data,
    fno.data.datasets)."""
    return (config.data.resolution, *(config.data.eval_resolutions or ()))


def validate(config: ml_collections.ConfigDict) -> None:
    """Device-independent checks of field values and their combinations."""
    if config.mode not in MODES:
        raise FnoError(f"config.mode: unknown mode {config.mode!r}; choose one of "
                       f"{', '.join(MODES)}")
    registry.grid_rank(config)  # known model and problem, with matching grid ranks
    if registry.problem(config).generate is None and not config.data.dir:
        raise FnoError(f"config.data.name={config.data.name!r} reads your own data: set "
                       f"config.data.dir to its file or directory")
    for name in _POSITIVE_INTS:
        value = _get(config, name)
        if value is None and name in _CHOSEN_FROM_DATA:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FnoError(f"config.{name} must be a positive integer, got {value!r}")
    for name in _NON_NEGATIVE_INTS:
        value = _get(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FnoError(f"config.{name} must be a non-negative integer, got {value!r}")
    if config.num_train_steps <= 0 and config.num_epochs <= 0:
        raise FnoError("config.num_epochs or config.num_train_steps must be positive")
    for name in ("learning_rate", "lr_decay_factor"):
        if not float(config[name]) > 0:
            raise FnoError(f"config.{name} must be positive, got {config[name]!r}")
    if not float(config.weight_decay) >= 0:
        raise FnoError(f"config.weight_decay must be >= 0, got {config.weight_decay!r}")
    if config.get("loss_reduction", "mean") not in LOSS_REDUCTIONS:
        raise FnoError(f"config.loss_reduction: unknown {config.loss_reduction!r}; choose "
                       f"one of {', '.join(LOSS_REDUCTIONS)}")
    try:
        check_settings(**{name: config.model.get(name) for name in _MODEL_SETTINGS
                          if not (config.model.get(name) is None
                                  and f"model.{name}" in _CHOSEN_FROM_DATA)})
    except ValueError as e:
        raise FnoError(f"config.{e}") from None
    _validate_mesh(config)
    for resolution in _resolutions(config):
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
            raise FnoError(f"config.data resolutions must be positive integers, got "
                           f"{resolution!r}")
        if 2 * config.model.modes > resolution:
            raise FnoError(f"config.model.modes={config.model.modes} is more than half of "
                           f"resolution {resolution} (need modes <= s/2)")
    _validate_generate(config)
    _validate_time(config)


def _validate_time(config: ml_collections.ConfigDict) -> None:
    """A time-dependent problem's window and its model's time scheme."""
    data, model = config.data, config.model
    steps = {name: data.get(name) for name in ("input_steps", "output_steps")}
    if model.get("rollout", "scan") not in ROLLOUTS:
        raise FnoError(f"config.model.rollout: unknown {model.rollout!r}; choose one of "
                       f"{', '.join(ROLLOUTS)}")
    if all(value is None for value in steps.values()):
        if model.get("time_scheme") is not None:
            raise FnoError("config.model.time_scheme is for time-dependent data: set "
                           "config.data.input_steps and config.data.output_steps")
        return
    for name, value in steps.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FnoError(f"config.data.{name} must be a positive integer (set both "
                           f"input_steps and output_steps, or neither), got {value!r}")
    first = data.get("first_step", 0)
    if isinstance(first, bool) or not isinstance(first, int) or first < 0:
        raise FnoError(f"config.data.first_step must be a non-negative integer, got {first!r}")
    if data.get("time_axis", "last") not in TIME_AXES:
        raise FnoError(f"config.data.time_axis: unknown {data.time_axis!r}; choose one of "
                       f"{', '.join(TIME_AXES)}")
    scheme = registry.time_scheme(config)
    if scheme == "autoregressive" and data.normalize:
        raise FnoError("config.data.normalize: an autoregressive rollout feeds its outputs "
                       "back as inputs, which a point-wise normaliser of inputs and outputs "
                       "does not allow; set it False or use model.time_scheme='space_time'")
    if scheme == "space_time":
        padded = data.output_steps + (model.get("time_padding") or 0)
        if padded < 2 * model.modes:
            raise FnoError(f"config.data.output_steps={data.output_steps} plus "
                           f"model.time_padding is less than 2 * model.modes = "
                           f"{2 * model.modes} points along time")


def _validate_generate(config: ml_collections.ConfigDict) -> None:
    """``data.generate`` for the chosen problem (fno.registry.generate_settings: no setting of
    another problem), and, for a dataset generated into the cache, training and evaluation
    resolutions that are subgrids of the one generated."""
    problem = registry.problem(config)
    if problem.generate is None:
        return  # data.dir: the data describe themselves
    settings = registry.generate_settings(config)
    for key in ("num_samples", "resolution"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FnoError(f"config.data.generate.{key} must be a positive integer, got "
                           f"{value!r}")
    if config.data.dir:
        return
    stored = settings["resolution"]
    valid = supported_resolutions(stored, problem.grid)
    for resolution in _resolutions(config):
        if isinstance(resolution, int) and resolution not in valid:
            raise FnoError(f"config.data resolution {resolution} is not a subgrid of the "
                           f"{problem.grid} grid of config.data.generate.resolution={stored} "
                           f"(valid: {', '.join(map(str, valid[:12]))})")


def _validate_mesh(config: ml_collections.ConfigDict) -> None:
    """Mesh shape/axes and model/spatial sharding: names and combinations."""
    shape, axes = tuple(config.mesh_shape), tuple(config.mesh_axes)
    model, spatial = config.model_sharding, config.spatial_sharding
    rules = axis_rules(model, spatial)
    grid_axes = [rules[a] for a in GRID_AXES if rules.get(a)]
    if len([a for a in GRID_AXES if a in rules]) > registry.grid_rank(config):
        raise FnoError(f"config.spatial_sharding={spatial!r} names more grid axes than the "
                       f"{registry.grid_rank(config)} of config.model.name="
                       f"{config.model.name!r}")
    if config.mode not in MESH_MODES:
        if model or spatial or len(shape) > 1 or axes != (DATA_AXIS,):
            raise FnoError(f"config.mode={config.mode!r} has no device mesh: model/spatial "
                           f"sharding and config.mesh_shape/mesh_axes need mode mesh or "
                           f"mesh_scan")
        return
    check_mesh_shape(shape, axes)
    if len(set(axes)) != len(axes) or DATA_AXIS not in axes:
        raise FnoError(f"config.mesh_axes {axes} must be distinct names including "
                       f"{DATA_AXIS!r}")
    named = [("model_sharding", model)] * bool(model) + [("spatial_sharding", a)
                                                         for a in grid_axes]
    for field, axis in named:
        if axis not in axes:
            raise FnoError(f"config.{field}={axis!r} is not one of config.mesh_axes {axes}")
        if axis == DATA_AXIS:
            raise FnoError(f"config.{field} cannot be {DATA_AXIS!r}, the batch axis; add "
                           f"another mesh axis")
    used = [axis for _, axis in named]
    for axis in dict.fromkeys(used):
        if used.count(axis) > 1:
            if model == axis:
                raise FnoError(f"config.model_sharding and config.spatial_sharding both name "
                               f"{axis!r}; use two mesh axes")
            raise FnoError(f"config.spatial_sharding={spatial!r} names {axis!r} twice; use "
                           f"one mesh axis per grid axis")


# The spectral path a model of each grid rank above 1 takes on a cube of side r.
_SPECTRAL_IMPL = {2: lambda impl, r: resolve_spectral_impl_2d(impl, r, r),
                  3: lambda impl, r: resolve_spectral_impl_3d(impl, r, r, r)}


def validate_for_devices(config: ml_collections.ConfigDict, strategy: Strategy) -> None:
    """Checks that depend on how many devices and processes the mode splits the batch over."""
    layout = getattr(strategy, "layout", None)
    if layout is not None:
        rank = registry.grid_rank(config)
        inner = [a for a in GRID_AXES[1:rank] if layout.mesh_axis(a)]
        if (jax.default_backend() == "cpu" and inner and rank in _SPECTRAL_IMPL
                and any(_SPECTRAL_IMPL[rank](config.model.spectral_impl, r) == "fft"
                        for r in _resolutions(config))):
            raise FnoError("config.spatial_sharding: XLA:CPU's FFT can take a sharded first "
                           "grid axis (x) only; shard only x or use config.model.spectral_impl="
                           "'dft'")
        model_axis = layout.mesh_axis("hidden")
        ways = layout.axis_size(model_axis)
        if config.model.width % ways:
            raise FnoError(f"config.model.width={config.model.width} is not divisible by the "
                           f"{ways} devices of mesh axis {model_axis!r}")
        ways = resolution_divisor(strategy)
        axes = [layout.mesh_axis(a) for a in GRID_AXES if layout.mesh_axis(a)]
        for resolution in _resolutions(config):
            if resolution % ways:
                raise FnoError(f"resolution {resolution} is not divisible by the {ways} "
                               f"devices of mesh axis {' and '.join(map(repr, axes))}")
        inner = strategy.mesh.size // strategy.mesh.shape[DATA_AXIS]
        if jax.process_count() > 1 and (strategy.mesh.axis_names[0] != DATA_AXIS
                                        or jax.local_device_count() % inner):
            raise FnoError(f"config.mesh_axes must start with 'data' and the {inner} devices "
                           f"beside each 'data' index must sit in one process "
                           f"({jax.local_device_count()} per process)")
    ways = strategy.data_parallel_size
    if config.batch_size % ways:
        raise FnoError(f"config.batch_size={config.batch_size} is not divisible by the "
                       f"{ways} devices that mode {config.mode!r} splits it over")
    if jax.process_count() > 1 and config.mode in ("basic", "scan"):
        raise FnoError(f"config.mode={config.mode!r} runs on one device; with "
                       f"{jax.process_count()} processes use pmap, pmap_scan, mesh or mesh_scan")
    if config.batch_size % jax.process_count():
        raise FnoError(f"config.batch_size={config.batch_size} is not divisible by the "
                       f"process count {jax.process_count()}")


def resolution_divisor(strategy: Strategy) -> int:
    """What every grid size must be a multiple of: the sizes of the mesh axes that shard
    grid axes (1 without spatial sharding)."""
    layout = getattr(strategy, "layout", None)
    if layout is None:
        return 1
    return math.lcm(*(layout.axis_size(layout.mesh_axis(a)) for a in GRID_AXES))


def total_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    """``num_train_steps`` if positive, else ``num_epochs`` whole epochs."""
    if config.num_train_steps > 0:
        return config.num_train_steps
    return config.num_epochs * steps_per_epoch

