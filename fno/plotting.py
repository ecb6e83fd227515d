"""Prediction-vs-truth figures: a PNG in the workdir and the same image in TensorBoard."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from fno import storage


def prediction_figure_png(x: np.ndarray, y: np.ndarray, pred: np.ndarray,
                          title: str) -> bytes:
    """A PNG with one panel per sample: u0, true u(., 1) and the prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, s = y.shape
    grid = np.linspace(0.0, 1.0, s)
    # Two rows: u(., 1) is often much smaller than u0 (viscosity), so each gets its own axis.
    fig, axes = plt.subplots(2, n, figsize=(3.2 * n, 4.4), squeeze=False, sharex=True)
    for i in range(n):
        top, bottom = axes[0][i], axes[1][i]
        top.plot(grid, x[i], color="0.4", lw=1)
        top.set_title(f"test sample {i}: u0", fontsize=9)
        bottom.plot(grid, y[i], color="k", lw=1.5, label="true u(x, 1)")
        bottom.plot(grid, pred[i], "--", color="tab:red", lw=1.5, label="FNO")
        bottom.set_xlabel("x")
    axes[1][0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def write_prediction_figure(workdir: str | os.PathLike, writer: Any, step: int, apply: Callable,
                            params_state: Any, source: Any, num_samples: int) -> str:
    """Predict the first test samples, save ``figures/predictions_{step}.png``, log it."""
    n = min(num_samples, len(source))
    x, y = source.get_batch(np.arange(n))
    params = jax.device_get(params_state["params"])
    pred = np.asarray(jax.jit(apply)(params, x))
    png = prediction_figure_png(x, y, pred, f"step {step}, s = {y.shape[1]}")
    directory = storage.resolve(workdir, "workdir") / "figures"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"predictions_{step:08d}.png"
    storage.write_bytes_atomic(path, png)
    import matplotlib.image

    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    writer.write_images(step, {"predictions": (image[None, ..., :3] * 255).astype(np.uint8)})
    return os.fspath(path)
