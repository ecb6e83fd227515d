"""Prediction-vs-truth figures: a PNG in the workdir and the same image in TensorBoard.

Samples with several channels (``[n, *grid, C]``) are drawn by their channel 0 (input and
output alike), and the figure's title says so.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from fno.storage import paths


def _line_panels(plt, x: np.ndarray, y: np.ndarray, pred: np.ndarray):
    """1D: one column per sample, the input above, true output and prediction below."""
    n, s = y.shape
    grid = np.linspace(0.0, 1.0, s)
    # Two rows: u(., 1) is often much smaller than u0 (viscosity), so each gets its own axis.
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 4.4), squeeze=False, sharex=True)
    for i in range(n):
        top, bottom = axes[0][i], axes[1][i]
        top.plot(grid, x[i], color="0.4", lw=1)
        top.set_title(f"test sample {i}: input", fontsize=9)
        bottom.plot(grid, y[i], color="k", lw=1.5, label="truth")
        bottom.plot(grid, pred[i], "--", color="tab:red", lw=1.5, label="FNO")
        bottom.set_xlabel("x")
    axes[1][0].legend(fontsize=7, loc="best")
    return fig


def _image_panels(plt, x: np.ndarray, y: np.ndarray, pred: np.ndarray):
    """2D: one row per sample: input (e.g. the coefficient), truth, prediction, error."""
    n = len(y)
    fig, axes = plt.subplots(n, 4, figsize=(11.0, 2.6 * n), squeeze=False)
    for i in range(n):
        lo, hi = float(y[i].min()), float(y[i].max())
        err = float(np.abs(pred[i] - y[i]).max()) or 1.0
        panels = (("input", x[i], {}), ("truth", y[i], {"vmin": lo, "vmax": hi}),
                  ("prediction", pred[i], {"vmin": lo, "vmax": hi}),
                  ("error", pred[i] - y[i], {"cmap": "RdBu_r", "vmin": -err, "vmax": err}))
        for ax, (name, image, style) in zip(axes[i], panels, strict=True):
            shown = ax.imshow(image.T, origin="lower", extent=(0, 1, 0, 1), **style)
            ax.set_title(f"test sample {i}: {name}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return fig


def first_channel(array: np.ndarray, grid_rank: int) -> np.ndarray:
    """``[n, *grid]`` as is; ``[n, *grid, C]`` (several channels) -> its channel 0."""
    array = np.asarray(array)
    return array[..., 0] if array.ndim > 1 + grid_rank else array


def prediction_figure_png(x: np.ndarray, y: np.ndarray, pred: np.ndarray,
                          title: str) -> bytes:
    """A PNG of the first samples ``[n, *grid]`` (one channel: see :func:`first_channel`):
    line plots for one grid axis, images for two."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if y.ndim == 2:
        fig = _line_panels(plt, x, y, pred)
    elif y.ndim == 3:
        fig = _image_panels(plt, x, y, pred)
    else:
        raise ValueError(f"cannot draw samples of shape {y.shape[1:]}")
    return figure_png(plt, fig, title)


def figure_png(plt: Any, fig: Any, title: str, dpi: int = 90) -> bytes:
    """``fig`` titled and laid out, as PNG bytes; the figure is closed."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def figures_dir(workdir: str | os.PathLike) -> Any:
    """``workdir/figures``, created."""
    directory = paths.resolve(workdir, "workdir") / "figures"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def log_png(writer: Any, step: int, name: str, png: bytes) -> None:
    """The PNG ``png`` as TensorBoard image ``name``."""
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    writer.write_images(step, {name: (image[None, ..., :3] * 255).astype(np.uint8)})


def write_prediction_figure(workdir: str | os.PathLike, writer: Any, step: int,
                            predict: Callable, state: Any, source: Any,
                            num_samples: int) -> str:
    """Predict the first test samples, save ``figures/predictions_{step}.png``, log it.

    ``predict(state, x)`` is the run's model with its normaliser (fno.training.setup); only the
    parameters and the normaliser of ``state`` are fetched. With several input or output
    channels the figure shows channel 0 of each (its title says so)."""
    n = min(num_samples, len(source))
    x, y = source.get_batch(np.arange(n))
    needed = jax.device_get({k: v for k, v in state.items() if k in ("params", "normalizer")})
    pred = np.asarray(jax.jit(predict)(needed, x))
    rank = getattr(source, "grid_rank", y.ndim - 1)
    resolution = " x ".join(str(d) for d in y.shape[1:1 + rank])
    title = f"step {step}, s = {resolution}"
    channels = [f"{name} channel 0 of {a.shape[-1]}" for name, a in (("input", x), ("output", y))
                if a.ndim > 1 + rank]
    if channels:
        title += f" ({', '.join(channels)})"
    png = prediction_figure_png(first_channel(x, rank), first_channel(y, rank),
                                first_channel(pred, rank), title)
    path = figures_dir(workdir) / f"predictions_{step:08d}.png"
    paths.write_bytes_atomic(path, png)
    log_png(writer, step, "predictions", png)
    return os.fspath(path)
