"""What every dataset must satisfy before training reads it: array layouts, finite values,
the sizes meta.json states, and which resolutions a stored grid serves by subsampling
(periodic: every r-th of S = r s points; vertex: both ends kept, S - 1 = r (s - 1)). Every
problem is a :class:`DataError` whose one-line message starts with the file name.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
from absl import logging

# Rows per block when scanning arrays for NaN/Inf, so big memmaps are never loaded at once.
_SCAN_ROWS = 256


class DataError(ValueError):
    """A dataset file that is missing, malformed or inconsistent; the message names the file."""


def fail(path: os.PathLike | str, problem: str) -> DataError:
    return DataError(f"{path}: {problem}".replace("\n", " "))



GRIDS = ("periodic", "vertex", "auto")


def supported_resolutions(file_resolution: int, grid: str) -> list[int]:
    """Every resolution a stored grid can serve by subsampling, largest first."""
    if grid == "vertex":
        n = file_resolution - 1
        return [n // r + 1 for r in range(1, n + 1) if n % r == 0 and n // r >= 1]
    return [file_resolution // r for r in range(1, file_resolution + 1)
            if file_resolution % r == 0]


def finer_resolutions(file_resolution: int, resolution: int, grid: str) -> list[int]:
    """The default evaluation resolutions: every power-of-two subsampling of the stored grid
    (the grid itself included) finer than ``resolution``, finest first."""
    found, step = [], 1
    while True:
        n = file_resolution - 1 if grid == "vertex" else file_resolution
        if n % step:
            break
        r = n // step + (grid == "vertex")
        if r <= resolution:
            break
        found.append(r)
        step *= 2
    return found


def vertex_step(file_resolution: int, resolution: int) -> int:
    """r such that every r-th vertex of an S_file grid (both ends kept) gives ``resolution``;
    ValueError when there is none."""
    if resolution < 2 or file_resolution < 2 or (file_resolution - 1) % (resolution - 1):
        raise ValueError(f"resolution {resolution} is not a subgrid of {file_resolution} "
                         f"(need (S_file - 1) divisible by (S - 1))")
    return (file_resolution - 1) // (resolution - 1)


def subsample_step(path: pathlib.Path, file_resolution: int, resolution: int,
                   grid: str = "periodic") -> tuple[int, str]:
    """The step r that serves ``resolution`` points per axis from the file's grid, and the
    grid kind: ``periodic`` (points j / S, every r-th of S = r * s), ``vertex`` (points
    i / (S - 1) with both ends, S - 1 = r * (s - 1)), or ``auto`` (periodic where that
    divides, else vertex)."""
    if not isinstance(resolution, int | np.integer) or resolution <= 0:
        raise fail(path, f"resolution must be a positive integer, got {resolution!r}")
    if grid == "auto":
        grid = "periodic" if file_resolution % resolution == 0 else "vertex"
    valid = ", ".join(str(r) for r in supported_resolutions(file_resolution, grid)[:12])
    if grid == "vertex":
        try:
            return vertex_step(file_resolution, resolution), grid
        except ValueError as e:
            raise fail(path, f"{e}; valid resolutions: {valid}") from e
    if file_resolution % resolution:
        raise fail(path, f"resolution {resolution} does not divide the file's resolution "
                          f"{file_resolution}; valid resolutions: {valid}")
    return file_resolution // resolution, grid


def accepted(grid_rank: int) -> str:
    """The layouts an array may have, in words."""
    grid = "points" if grid_rank == 1 else ", ".join("xyz"[:grid_rank])
    return (f"rank {1 + grid_rank} [samples, {grid}] or rank {2 + grid_rank} "
            f"[samples, {grid}, channels]")


def check_trajectory(path: pathlib.Path, name: str, array: Any, grid_rank: int,
                     time: Any) -> None:
    """A real ``[N, *grid, T]`` / ``[N, T, *grid]`` trajectory array (``time.axis`` "last" or
    "first", either with a trailing channel axis) whose grid axes have equal sizes and whose
    ``T`` holds the window ``time`` (fno.data.sources.TimeWindow) asks for."""
    shape = tuple(array.shape)
    if array.dtype.kind not in "fiu":
        raise fail(path, f"{name!r} has non-real dtype {array.dtype}")
    grid = "x" if grid_rank == 1 else ", ".join("xyz"[:grid_rank])
    layout = (f"[samples, {grid}, time]" if time.axis == "last"
              else f"[samples, time, {grid}]")
    if len(shape) not in (2 + grid_rank, 3 + grid_rank) or min(shape) < 1:
        raise fail(path, f"{name!r} must be a trajectory {layout} (plus an optional channel "
                          f"axis) with config.data.time_axis={time.axis!r}, got shape {shape}")
    first = 2 if time.axis == "first" else 1
    axes = shape[first:first + grid_rank]
    steps = shape[1] if time.axis == "first" else shape[1 + grid_rank]
    if len(set(axes)) > 1:
        other = "first" if time.axis == "last" else "last"
        raise fail(path, f"{name!r} read as {layout} has grid {axes}, not equal sizes: if its "
                          f"time axis is the {other} one, set config.data.time_axis={other!r}")
    if steps < time.needed:
        raise fail(path, f"{name!r} has {steps} snapshots per trajectory, fewer than "
                          f"config.data.first_step + input_steps + output_steps = "
                          f"{time.first} + {time.steps_in} + {time.steps_out}")


def check_pair(path: pathlib.Path, names: tuple[str, str], a: Any, u: Any,
                grid_rank: int = 1) -> None:
    """Both arrays real, numeric, ``[N, *grid]`` or ``[N, *grid, C]`` with ``grid_rank`` grid
    axes each (the channel axes are independent), with the same samples and grid.

    A channel axis as long as the grid axes (``[N, S, S]`` for one grid axis) is refused: it
    is far likelier a grid of one more axis than S channels, and read as channels it would
    train the wrong model silently.
    """
    for name, array in zip(names, (a, u), strict=True):
        shape = tuple(array.shape)
        if array.dtype.kind not in "fiu":
            raise fail(path, f"{name!r} has non-real dtype {array.dtype}")
        if len(shape) not in (1 + grid_rank, 2 + grid_rank):
            raise fail(path, f"{name!r} must have {accepted(grid_rank)}, got shape {shape}")
        if min(shape) < 1:
            raise fail(path, f"{name!r} is empty, shape {shape}")
        if len(shape) == 2 + grid_rank and shape[-1] in shape[1:-1]:
            raise fail(path, f"{name!r} has shape {shape}: {shape[-1]} channels as many as "
                              f"its points per grid axis look like one more grid axis; a "
                              f"model with {grid_rank} grid axis/axes reads "
                              f"{accepted(grid_rank)}")
    if a.shape[0] != u.shape[0]:
        raise fail(path, f"{names[0]!r} has {a.shape[0]} samples but {names[1]!r} has "
                          f"{u.shape[0]}")
    grid_a, grid_u = tuple(a.shape[1:1 + grid_rank]), tuple(u.shape[1:1 + grid_rank])
    if grid_a != grid_u:
        raise fail(path, f"{names[0]!r} has {grid_a} points per sample but {names[1]!r} "
                          f"has {grid_u}")


def check_finite(path: pathlib.Path, name: str, array: np.ndarray) -> None:
    for start in range(0, len(array), _SCAN_ROWS):
        block = np.asarray(array[start:start + _SCAN_ROWS])
        if not np.isfinite(block).all():
            bad = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise fail(path, f"{name!r} contains NaN or Inf (first in sample {bad})")


def check_shape_meta(path: pathlib.Path, shape: tuple[int, int],
                      expected_meta: Mapping | None) -> None:
    """Files without metadata can still be checked for sample count and resolution."""
    if not expected_meta:
        return
    for key, actual in zip(("num_samples", "resolution"), shape, strict=True):
        if key in expected_meta and expected_meta[key] != actual:
            raise fail(path, f"{key} is {actual}, expected {expected_meta[key]}")
    unchecked = sorted(set(expected_meta) - {"num_samples", "resolution"})
    if unchecked:
        logging.warning("%s has no metadata; cannot check %s", path, unchecked)


def values_match(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=0.0)
    return actual == expected

