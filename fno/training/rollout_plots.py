"""Figures of a time-dependent prediction: truth, prediction and error at several output
steps (a PNG in the workdir and TensorBoard), and the whole rollout as an animation (a GIF in
the workdir and a TensorBoard video).

Samples of a time-dependent problem are time-major channels (fno.data.sources.TimeWindow);
a snapshot with several channels is drawn by its channel 0, as fno.training.plotting does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from fno.storage import paths
from fno.training import plotting
from fno.training.tensorboard import encode_gif

FRAMES_PER_SECOND = 4.0


def snapshots(array: np.ndarray, steps: int, grid_rank: int) -> np.ndarray:
    """``[n, *grid, steps * C]`` (or ``[n, *grid]`` for one snapshot of one channel) ->
    ``[n, steps, *grid]``, channel 0 of each snapshot."""
    array = np.asarray(array)
    if array.ndim == 1 + grid_rank:
        array = array[..., None]
    array = array.reshape(*array.shape[:-1], steps, -1)[..., 0]
    return np.moveaxis(array, -1, 1)


def shown_steps(steps: int, count: int = 4) -> list[int]:
    """Up to ``count`` output steps spread over the window, first and last included."""
    return sorted(set(np.linspace(0, steps - 1, min(count, steps)).round().astype(int)))


def rollout_figure_png(y: np.ndarray, pred: np.ndarray, title: str) -> bytes:
    """One sample's ``[steps, sx, sy]`` truth and prediction: columns at a few output steps,
    rows truth, prediction, error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = shown_steps(len(y))
    lo, hi = float(y.min()), float(y.max())
    err = float(np.abs(pred - y).max()) or 1.0
    fig, axes = plt.subplots(3, len(columns), figsize=(2.7 * len(columns), 7.6),
                             squeeze=False)
    for j, k in enumerate(columns):
        rows = (("truth", y[k], {"vmin": lo, "vmax": hi}),
                ("prediction", pred[k], {"vmin": lo, "vmax": hi}),
                ("error", pred[k] - y[k], {"cmap": "RdBu_r", "vmin": -err, "vmax": err}))
        for i, (name, image, style) in enumerate(rows):
            ax = axes[i][j]
            shown = ax.imshow(image.T, origin="lower", extent=(0, 1, 0, 1), **style)
            ax.set_title(f"{name}, step {k + 1}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    return plotting.figure_png(plt, fig, title, dpi=80)


def rollout_frames(y: np.ndarray, pred: np.ndarray, scale: int = 4) -> np.ndarray:
    """``[steps, H, W, 3]`` uint8 frames of truth | prediction | error side by side, colour
    mapped on one scale over the whole rollout (so the animation shows growth)."""
    from matplotlib import colormaps

    lo, hi = float(y.min()), float(y.max())
    err = float(np.abs(pred - y).max()) or 1.0
    fields = colormaps["viridis"]((np.stack([y, pred]) - lo) / max(hi - lo, 1e-12))
    error = colormaps["RdBu_r"]((pred - y) / (2 * err) + 0.5)
    # Image rows are y (upwards), columns x; the three panels side by side.
    panels = [np.swapaxes(p, 1, 2)[:, ::-1] for p in (fields[0], fields[1], error)]
    gap = np.ones((len(y), y.shape[2], 2, 4))
    frames = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=2)
    frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    return (frames[..., :3] * 255).round().astype(np.uint8)


def write_rollout_figures(workdir: str | os.PathLike, writer: Any, step: int,
                          predict: Callable, state: Any, source: Any) -> list[str]:
    """Predict the first test sample of a 2D time-dependent ``source``; save
    ``figures/rollout_{step}.png`` and ``.gif``; log both to the writer. Returns the paths."""
    x, y = source.get_batch(np.arange(1))
    needed = jax.device_get({k: v for k, v in state.items() if k in ("params", "normalizer")})
    pred = np.asarray(jax.jit(predict)(needed, x))
    steps = source.time.steps_out
    truth, predicted = (snapshots(a, steps, source.grid_rank)[0] for a in (y, pred))
    resolution = " x ".join(str(d) for d in truth.shape[1:])
    title = f"step {step}, s = {resolution}, test sample 0, output steps 1..{steps}"
    if source.channels_per_step > 1:
        title += f" (channel 0 of {source.channels_per_step})"
    png = rollout_figure_png(truth, predicted, title)
    frames = rollout_frames(truth, predicted)
    directory = plotting.figures_dir(workdir)
    written = []
    for suffix, data in (("png", png), ("gif", encode_gif(frames, FRAMES_PER_SECOND))):
        path = directory / f"rollout_{step:08d}.{suffix}"
        paths.write_bytes_atomic(path, data)
        written.append(os.fspath(path))
    plotting.log_png(writer, step, "rollout", png)
    writer.write_videos(step, {"rollout": frames[None]})
    return written
