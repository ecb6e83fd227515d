"""Models and problems by name: ``config.model.name`` and ``config.data.name``.

Adding a model is its module (an ``fno.models.base.FNO`` subclass: a spectral convolution, a grid
rank, the grid coordinates) plus one line in ``MODELS``; adding a PDE is its generator module
(``generate_dataset(path, **settings)`` writing a :mod:`fno.data.dataset_dir` directory) plus
one ``Problem`` in ``PROBLEMS``. Nothing else names a model or a PDE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import ml_collections

from fno.data import burgers, darcy, grf
from fno.errors import FnoError
from fno.models.base import FNO
from fno.models.fno1d import FNO1d
from fno.models.fno2d import FNO2d

MODELS: dict[str, type[FNO]] = {"fno1d": FNO1d, "fno2d": FNO2d}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A dataset fno can generate, or (``generate`` None) a user's file or directory.

    ``grid``: how the stored grid is subsampled to coarser resolutions and how point-wise
    fields are resampled (:mod:`fno.data.normalizer`): ``periodic`` points ``j / S`` (every r-th
    point), ``vertex`` points ``i / (S - 1)`` with both ends kept, ``auto`` for a user's data
    (periodic where S divides by s, else vertex). ``meta_keys``: the ``data.generate``
    settings a generated directory's meta.json records and a run checks.
    """

    grid_rank: int | None  # None: the model's
    grid: str
    generate: Callable[..., Any] | None = None
    meta_keys: tuple[str, ...] = ()
    cache_name: Callable[[ml_collections.ConfigDict], str] | None = None


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


PROBLEMS: dict[str, Problem] = {
    "burgers": Problem(
        grid_rank=1, grid="periodic", generate=burgers.generate_dataset,
        meta_keys=("num_samples", "resolution", "seed", "nu", "t_final", "sigma", "tau",
                   "gamma"),
        cache_name=lambda g: _burgers_cache_name(g)),
    "darcy": Problem(
        grid_rank=2, grid="vertex", generate=darcy.generate_dataset,
        meta_keys=("num_samples", "resolution", "seed", "a_pos", "a_neg"),
        cache_name=lambda g: (f"darcy_n{g.num_samples}_s{g.resolution}"
                              f"_psi{g.a_pos:g}-{g.a_neg:g}_seed{g.seed}")),
    "file": Problem(grid_rank=None, grid="auto"),
}


def _lookup(table: dict[str, Any], name: str, field: str, what: str) -> Any:
    if name not in table:
        raise FnoError(f"config.{field}: unknown {what} {name!r}; choose one of "
                       f"{', '.join(table)}")
    return table[name]


def model_class(config: ml_collections.ConfigDict) -> type[FNO]:
    return _lookup(MODELS, config.model.name, "model.name", "model")


def problem(config: ml_collections.ConfigDict) -> Problem:
    return _lookup(PROBLEMS, config.data.name, "data.name", "problem")


def grid_rank(config: ml_collections.ConfigDict) -> int:
    """The number of grid axes of the run's data, which the model must match."""
    rank = model_class(config).grid_rank
    expected = problem(config).grid_rank
    if expected is not None and expected != rank:
        raise FnoError(f"config.model.name={config.model.name!r} has {rank} grid axis/axes but "
                       f"config.data.name={config.data.name!r} has {expected}")
    return rank


def create_model(config: ml_collections.ConfigDict, seed: int) -> FNO:
    return model_class(config).from_config(config.model, seed)
