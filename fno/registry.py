"""Models and problems by name: ``config.model.name`` and ``config.data.name``.

Adding a model is its module (an ``fno.models.base.FNO`` subclass: a spectral convolution, a grid
rank, the grid coordinates) plus one line in ``MODELS``. Adding a PDE is its generator module
plus one ``Problem`` in ``PROBLEMS``: ``generate_dataset(path, **settings)`` writes its pairs
through :func:`fno.data.dataset_dir.write_dataset` (which names the arrays in meta.json) and
records in meta.json ``num_samples``, ``resolution`` and the settings its ``meta_keys`` name;
the ``Problem`` gives the grid rank and kind, the default settings (``config.data.generate``
follows ``config.data.name`` to them) and the cache name. Nothing else names a model or a
PDE: the readers take the grid kind and array names from here and from meta.json, and a
trained model's checkpoint records them, so inference needs its model registered, not its
problem. A registration's mistakes are one-line errors (:func:`problem`) before any data is
generated, and a generated dataset that does not read back as registered is never cached
(fno.data.datasets).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from fno.data import burgers, darcy, grf, grf2d_periodic, navier_stokes
from fno.errors import FnoError
from fno.models.base import FNO
from fno.models.fno1d import FNO1d
from fno.models.fno2d import FNO2d
from fno.models.fno3d import FNO3d

MODELS: dict[str, type[FNO]] = {"fno1d": FNO1d, "fno2d": FNO2d, "fno3d": FNO3d}
GRIDS = ("periodic", "vertex")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A dataset fno can generate, or (``generate`` None) a user's file or directory.

    ``grid``: how the stored grid is subsampled to coarser resolutions and how point-wise
    fields are resampled (:mod:`fno.data.normalizer`): ``periodic`` points ``j / S`` (every r-th
    point), ``vertex`` points ``i / (S - 1)`` with both ends kept, ``auto`` for a user's data
    (periodic where S divides by s, else vertex). ``settings``: the keyword arguments of
    ``generate`` that ``config.data.generate`` sets, with their defaults (a value, or
    ``config_dict.placeholder(type)`` for None); ``num_samples`` and ``resolution`` among them.
    ``meta_keys``: the settings a generated directory's meta.json records and a run checks.
    ``cache_name``: the cached dataset's directory name, from the settings (a ConfigDict).
    ``files``: the input and output arrays of generated directories whose meta.json predates
    its ``"files"`` (Burgers caches written before it).
    """

    grid_rank: int | None  # None: the model's
    grid: str
    generate: Callable[..., Any] | None = None
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    meta_keys: tuple[str, ...] = ()
    cache_name: Callable[[ml_collections.ConfigDict], str] | None = None
    files: tuple[str, str] | None = None


def _burgers_cache_name(gen: ml_collections.ConfigDict) -> str:
    """The paper-text defaults keep their historical name; another initial-condition law or
    explicit solver settings add a suffix, so different datasets never share a cache entry."""
    name = (f"burgers_n{gen.num_samples}_s{gen.resolution}_nu{gen.nu:g}_t{gen.t_final:g}"
            f"_seed{gen.seed}")
    law = (gen.get("sigma", grf.DEFAULT_SIGMA), gen.get("tau", grf.DEFAULT_TAU),
           gen.get("gamma", grf.DEFAULT_GAMMA))
    if law != (grf.DEFAULT_SIGMA, grf.DEFAULT_TAU, grf.DEFAULT_GAMMA):
        name += "_grf{:g}-{:g}-{:g}".format(*law)
    for key in ("grid", "steps"):
        if gen.get(key) is not None:
            name += f"_{key}{gen[key]}"
    return name


def _navier_stokes_cache_name(gen: ml_collections.ConfigDict) -> str:
    """Viscosity, horizon and snapshot spacing name a preset; another initial-condition law or
    an explicit solve grid add a suffix."""
    name = (f"navier_stokes_n{gen.num_samples}_s{gen.resolution}_nu{gen.nu:g}"
            f"_t{gen.final_time:g}_rec{gen.record_every:g}_seed{gen.seed}")
    law = (gen.sigma, gen.tau, gen.alpha)
    defaults = (grf2d_periodic.DEFAULT_SIGMA, grf2d_periodic.DEFAULT_TAU,
                grf2d_periodic.DEFAULT_ALPHA)
    if law != defaults:
        name += "_grf{:g}-{:g}-{:g}".format(*law)
    if gen.get("solve_resolution") is not None:
        name += f"_solve{gen.solve_resolution}"
    return name


PROBLEMS: dict[str, Problem] = {
    "burgers": Problem(
        grid_rank=1, grid="periodic", generate=burgers.generate_dataset,
        settings={"num_samples": burgers.DEFAULT_NUM_SAMPLES,
                  "resolution": burgers.DEFAULT_RESOLUTION, "seed": burgers.DEFAULT_SEED,
                  "nu": burgers.DEFAULT_NU, "t_final": burgers.DEFAULT_T_FINAL,
                  "sigma": grf.DEFAULT_SIGMA, "tau": grf.DEFAULT_TAU,
                  "gamma": grf.DEFAULT_GAMMA, "grid": config_dict.placeholder(int),
                  "steps": config_dict.placeholder(int)},
        meta_keys=("num_samples", "resolution", "seed", "nu", "t_final", "sigma", "tau",
                   "gamma"),
        cache_name=_burgers_cache_name, files=burgers.FILES),
    "darcy": Problem(
        grid_rank=2, grid="vertex", generate=darcy.generate_dataset,
        settings={"num_samples": darcy.DEFAULT_NUM_SAMPLES,
                  "resolution": darcy.DEFAULT_RESOLUTION, "seed": darcy.DEFAULT_SEED,
                  "a_pos": darcy.A_POS, "a_neg": darcy.A_NEG},
        meta_keys=("num_samples", "resolution", "seed", "a_pos", "a_neg"),
        cache_name=lambda g: (f"darcy_n{g.num_samples}_s{g.resolution}"
                              f"_psi{g.a_pos:g}-{g.a_neg:g}_seed{g.seed}")),
    # Trajectories: the initial vorticity in, every snapshot (t = 0 included) out as channels.
    "navier_stokes": Problem(
        grid_rank=2, grid="periodic", generate=navier_stokes.generate_dataset,
        settings={"num_samples": navier_stokes.DEFAULT_NUM_SAMPLES,
                  "resolution": navier_stokes.DEFAULT_RESOLUTION,
                  "seed": navier_stokes.DEFAULT_SEED, "nu": navier_stokes.DEFAULT_NU,
                  "final_time": navier_stokes.DEFAULT_FINAL_TIME,
                  "record_every": navier_stokes.DEFAULT_RECORD_EVERY,
                  "sigma": grf2d_periodic.DEFAULT_SIGMA, "tau": grf2d_periodic.DEFAULT_TAU,
                  "alpha": grf2d_periodic.DEFAULT_ALPHA,
                  "solve_resolution": config_dict.placeholder(int)},
        meta_keys=("num_samples", "resolution", "seed", "nu", "final_time", "record_every",
                   "sigma", "tau", "alpha"),
        cache_name=_navier_stokes_cache_name),
    "file": Problem(grid_rank=None, grid="auto"),
}


def _default(value: Any) -> Any:
    """A registered setting's default (a placeholder's is None)."""
    return value.get() if isinstance(value, config_dict.FieldReference) else value


def _kind(value: Any) -> type:
    return value.get_type() if isinstance(value, config_dict.FieldReference) else type(value)


def _default_of(key: str, _unused: Any, name: str) -> Any:
    """The default of setting ``key`` in problem ``name`` (None where it has none)."""
    found = PROBLEMS.get(name)
    return _default(found.settings[key]) if found and key in found.settings else None


def generate_config(name: config_dict.FieldReference) -> ml_collections.ConfigDict:
    """``config.data.generate``: every registered problem's settings, each following ``name``
    (a reference to ``config.data.name``) to the chosen problem's default (None where that
    problem has no such setting) until it is set. So ``--config.data.name=darcy`` alone
    gives Darcy's defaults, and any problem's setting can be overridden on the command line;
    :func:`generate_settings` refuses one that the chosen problem does not have."""
    kinds: dict[str, type] = {}
    for problem_name, registered in PROBLEMS.items():
        for key, value in registered.settings.items():
            if kinds.setdefault(key, _kind(value)) is not _kind(value):
                raise FnoError(f"problem {problem_name!r} registers setting {key!r} as "
                               f"{_kind(value).__name__}, another problem as "
                               f"{kinds[key].__name__}; one name, one type")
    gen = ml_collections.ConfigDict()
    for key, kind in kinds.items():
        # A lazily computed reference (ml_collections' own mechanism behind `ref + 1`): the
        # stored kind() is a placeholder the op replaces; setting the field drops the op.
        gen[key] = config_dict.FieldReference(
            kind(), field_type=kind,
            op=config_dict._Op(functools.partial(_default_of, key), [name]))
    return gen


def _lookup(table: dict[str, Any], name: str, field: str, what: str) -> Any:
    if name not in table:
        raise FnoError(f"config.{field}: unknown {what} {name!r}; choose one of "
                       f"{', '.join(table)}")
    return table[name]


def model_class(config: ml_collections.ConfigDict) -> type[FNO]:
    return _lookup(MODELS, config.model.name, "model.name", "model")


def problem(config: ml_collections.ConfigDict) -> Problem:
    """``config.data.name``'s registration, checked: its mistakes are one-line FnoErrors."""
    name = config.data.name
    found = _lookup(PROBLEMS, name, "data.name", "problem")
    where = f"fno.registry.PROBLEMS[{name!r}]"
    grids = GRIDS if found.generate else (*GRIDS, "auto")
    if found.grid not in grids:
        raise FnoError(f"{where}.grid={found.grid!r}: choose one of {', '.join(grids)}")
    if found.generate is None:
        return found
    if not callable(found.cache_name):
        raise FnoError(f"{where}.cache_name is not set: give it a function of the "
                       f"data.generate settings that names the dataset's cache directory")
    missing = [key for key in ("num_samples", "resolution") if key not in found.settings]
    if missing:
        raise FnoError(f"{where}.settings lack {', '.join(missing)} (every generated dataset "
                       f"has num_samples and resolution)")
    unknown = [key for key in found.meta_keys if key not in found.settings]
    if unknown:
        raise FnoError(f"{where}.meta_keys names {', '.join(unknown)}, not among its settings "
                       f"({', '.join(found.settings)})")
    return found


def generate_settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The keyword arguments ``config.data.generate`` gives the chosen problem's generator:
    its registered defaults, overridden where the config sets them. A setting of another
    problem that the config sets is a one-line FnoError naming the problem's settings."""
    found, gen = problem(config), config.data.generate
    for key, value in gen.items():
        if key not in found.settings and value is not None:
            raise FnoError(f"config.data.generate.{key}={value!r} is not a setting of problem "
                           f"{config.data.name!r}; its settings are "
                           f"{', '.join(found.settings) or 'none (it reads data.dir)'}")
    return {key: _default(default) if gen.get(key) is None else gen[key]
            for key, default in found.settings.items()}


# How a model learns a time-dependent problem (config.data.input_steps set), fno.models.rollout.
TIME_SCHEMES = ("autoregressive", "direct", "space_time")


def time_scheme(config: ml_collections.ConfigDict) -> str | None:
    """``config.model.time_scheme`` for a time-dependent problem, None for a steady one.

    Unset: "space_time" when the model has one grid axis more than the problem (FNO-3D on a
    2D problem; on a user's file, a model with three grid axes), else "autoregressive".
    """
    if config.data.get("input_steps") is None:
        return None
    scheme = config.model.get("time_scheme")
    if scheme is None:
        rank, data_rank = model_class(config).grid_rank, problem(config).grid_rank
        extra = rank == 3 if data_rank is None else rank == data_rank + 1
        return "space_time" if extra else "autoregressive"
    return _lookup({s: s for s in TIME_SCHEMES}, scheme, "model.time_scheme", "time scheme")


def grid_rank(config: ml_collections.ConfigDict) -> int:
    """The number of grid axes of the run's data, which the model must match (a space-time
    model has one more: time)."""
    scheme = time_scheme(config)
    model_rank = model_class(config).grid_rank
    rank = model_rank - (scheme == "space_time")
    expected = problem(config).grid_rank
    if rank < 1 or (expected is not None and expected != rank):
        what = " with model.time_scheme='space_time'" if scheme == "space_time" else ""
        found = f"has {expected}" if expected is not None else "needs at least one"
        raise FnoError(f"config.model.name={config.model.name!r} has {model_rank} grid "
                       f"axis/axes{what} but config.data.name={config.data.name!r} {found}")
    return rank


def create_model(config: ml_collections.ConfigDict, seed: int) -> FNO:
    return model_class(config).from_config(config.model, seed)
