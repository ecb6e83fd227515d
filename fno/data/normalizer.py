"""The released Darcy code's point-wise Gaussian normaliser (``UnitGaussianNormalizer``).

Fitted on the training inputs and outputs: a mean and a standard deviation (``torch.std``'s
unbiased estimate) at every grid point. The model sees ``(a - mean_a) / (std_a + eps)`` and
its output is decoded as ``out * (std_u + eps) + mean_u``; the loss and every metric compare
decoded outputs with the raw targets, as the released ``fourier_2d.py`` does.

The fields are fitted on the dataset's *stored* grid and travel in the training state
(``state["normalizer"]``), so checkpoints carry them. At any other resolution they are
resampled on the fly: at the points of a subgrid (the paper's 85, 141, 211 of 421) that is
exact, since the statistics are point-wise; between stored points they are interpolated
linearly (prediction at a resolution the data never had).

Channels: samples with several channels, ``[*grid, C]``, give fields ``[*grid, C]`` (a mean
and a std per grid point and channel). Resampling acts on the grid axes only; a trailing
channel axis is carried along whole, never interpolated (:func:`resample`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

EPS = 1e-5  # the released UnitGaussianNormalizer's eps
KEYS = ("x_mean", "x_std", "y_mean", "y_std")
GRIDS = ("periodic", "vertex")

Normalizer = dict[str, Any]


def fit(source: Any, chunk: int = 64) -> Normalizer:
    """Point-wise mean and unbiased std of a source's inputs and outputs (``len`` and
    ``get_batch(indices) -> (x, y)``, ``[n, *grid]`` or ``[n, *grid, C]``), accumulated in
    float64 over ``chunk`` samples at a time; float32 fields shaped as one sample (per grid
    point and channel)."""
    n = len(source)
    if n < 2:
        raise ValueError(f"a point-wise normaliser needs at least 2 training samples, got {n}")
    sums: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, chunk):
        blocks = source.get_batch(np.arange(start, min(start + chunk, n)))
        for name, block in zip("xy", blocks, strict=True):
            block = np.asarray(block, dtype=np.float64)
            total, squares = sums.setdefault(name, [0.0, 0.0])
            sums[name] = [total + block.sum(axis=0), squares + np.square(block).sum(axis=0)]
    result = {}
    for name, (total, squares) in sums.items():
        mean = total / n
        var = np.maximum(squares - n * np.square(mean), 0.0) / (n - 1)
        result[f"{name}_mean"] = mean.astype(np.float32)
        result[f"{name}_std"] = np.sqrt(var).astype(np.float32)
    return result


def _axis_weights(stored: int, target: int, grid: str) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Indices and weights that take ``target`` points from ``stored`` along one axis.

    Periodic grids have points ``j / S`` (the last segment wraps to the first point), vertex
    grids ``i / (S - 1)``. At stored points the weight of the neighbour is exactly 0.
    """
    if grid == "periodic":
        coords = np.arange(target) * (stored / target)
    else:
        coords = np.arange(target) * ((stored - 1) / max(target - 1, 1))
    low = np.floor(coords + 1e-9).astype(np.int64)
    frac = np.where(np.abs(coords - np.round(coords)) < 1e-9, 0.0, coords - low)
    low = np.minimum(low, stored - 1)
    high = (low + 1) % stored if grid == "periodic" else np.minimum(low + 1, stored - 1)
    return low, high, frac


def resample(field: Any, shape: tuple[int, ...], grid: str) -> Any:
    """``field`` (stored grid) at a grid of ``shape``, separably along each grid axis.

    ``shape`` gives the grid axes only, the leading ``len(shape)`` axes of ``field``; any
    trailing axis (the channel axis) is carried along whole and never resampled.
    """
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    if len(shape) > field.ndim:
        raise ValueError(f"cannot resample a field of shape {tuple(field.shape)} to the "
                         f"{len(shape)}-axis grid {tuple(shape)}")
    out = field
    for axis, target in enumerate(shape):
        stored = out.shape[axis]
        if stored == target:
            continue
        low, high, frac = _axis_weights(stored, target, grid)
        if not frac.any():
            out = jnp.take(out, low, axis=axis)
            continue
        w = jnp.asarray(frac.reshape([-1] + [1] * (out.ndim - axis - 1)), out.dtype)
        out = jnp.take(out, low, axis=axis) * (1 - w) + jnp.take(out, high, axis=axis) * w
    return out


def encode(x: Any, mean: Any, std: Any) -> Any:
    return (x - mean) / (std + EPS)


def decode(y: Any, mean: Any, std: Any) -> Any:
    return y * (std + EPS) + mean


def apply_normalized(apply: Any, params: Any, normalizer: Normalizer | None, x: Any,
                     grid: str, rank: int) -> Any:
    """``apply(params, x)`` with ``x`` encoded and the output decoded at ``x``'s grid; plain
    ``apply`` when there is no normaliser.

    ``x`` is ``[b, *grid]`` or ``[b, *grid, C]``. The fields are resampled along the ``rank``
    grid axes to ``x.shape[1:1 + rank]``; their channel axes are never resampled.
    """
    if normalizer is None:
        return apply(params, x)
    shape = tuple(x.shape[1:1 + rank])
    f = {k: resample(normalizer[k], shape, grid) for k in KEYS}
    if f["x_mean"].shape != tuple(x.shape[1:]):
        raise ValueError(f"inputs of shape {tuple(x.shape)} do not match the normaliser's "
                         f"fields {tuple(normalizer['x_mean'].shape)} on {rank} grid axes")
    return decode(apply(params, encode(x, f["x_mean"], f["x_std"])), f["y_mean"], f["y_std"])

