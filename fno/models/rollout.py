"""Time-dependent operators built from a model's ``apply``: how fields of ``steps_in``
snapshots become ``steps`` predicted snapshots.

Data of a time-dependent problem arrive as channels, time-major (fno.data.sources.TimeWindow):
an input ``[b, *grid, steps_in * C]``, a target ``[b, *grid, steps * C]``. Three schemes map
one to the other, each a pure function of ``(params, x)`` that every execution mode compiles
like a steady model:

* ``autoregressive`` (the released ``fourier_2d_time.py``): the model maps the last
  ``steps_in`` snapshots to the next one; the prediction is fed back, ``steps`` times. The
  rollout is a ``lax.scan`` inside the compiled step, so its program and compile time do not
  grow with the horizon, and each step is rematerialised in the backward pass, so its memory
  holds one window per step; ``unrolled`` traces the same loop in Python, as eager frameworks
  run it, for comparison (benchmarks/rollout_timing.py).
* ``space_time`` (the released ``fourier_3d.py``): a model with one more grid axis convolves
  over space and time at once; the input snapshots are repeated along that axis, as long as
  the trained window, and the model's coordinates add where in time each point is. A longer
  horizon is rolled out window by window.
* ``direct``: the model maps the input snapshots to all output snapshots as channels.

A model of one step or of space-time has the data's channels per snapshot as its outputs;
the direct one has all of the target's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Apply = Callable[[Any, jax.Array], jax.Array]
ROLLOUTS = ("scan", "unrolled")


def with_channels(x: jax.Array, grid_rank: int) -> jax.Array:
    """``x`` with its channel axis, also when it holds one channel (``[b, *grid]`` ->
    ``[b, *grid, 1]``; the models' convention drops a single channel)."""
    return x[..., None] if x.ndim == 1 + grid_rank else x


def _model_input(x: jax.Array) -> jax.Array:
    """The models' convention back: a single channel is no axis."""
    return x[..., 0] if x.shape[-1] == 1 else x


def autoregressive(apply: Apply, params: Any, x: jax.Array, steps: int, grid_rank: int,
                   channels: int, rollout: str = "scan") -> jax.Array:
    """``steps`` snapshots of ``channels`` channels from the window ``x``
    ``[b, *grid, steps_in * channels]``, each the model's prediction from the previous
    ``steps_in`` -> ``[b, *grid, steps * channels]`` (the single-channel axis dropped)."""
    window = with_channels(x, grid_rank)

    def advance(window: jax.Array, _: Any) -> tuple[jax.Array, jax.Array]:
        out = with_channels(apply(params, _model_input(window)), grid_rank)
        return jnp.concatenate([window[..., channels:], out.astype(window.dtype)], -1), out

    if rollout == "scan":
        # Each step is recomputed in the backward pass from its window (jax.checkpoint): the
        # scan then saves one window per step instead of stacking every activation of every
        # step, which on CPU made its gradient slower than the unrolled loop's
        # (benchmarks/rollout_timing.py; docs/time.md).
        _, outs = jax.lax.scan(jax.checkpoint(advance), window, None, length=steps)
        # outs: [steps, b, *grid, C]
        outs = jnp.moveaxis(outs, 0, -2)
    elif rollout == "unrolled":
        outs = []
        for _ in range(steps):
            window, out = advance(window, None)
            outs.append(out)
        outs = jnp.stack(outs, -2)
    else:
        raise ValueError(f"model.rollout must be one of {', '.join(ROLLOUTS)}, got {rollout!r}")
    return _model_input(outs.reshape(*outs.shape[:-2], steps * channels))


def space_time(apply: Apply, params: Any, x: jax.Array, steps: int, grid_rank: int,
               channels: int) -> jax.Array:
    """The released FNO-3D's input: ``x`` ``[b, *grid, steps_in * C]`` repeated along a new
    time axis of ``steps`` points -> the model's ``[b, *grid, steps(, C)]`` as
    ``[b, *grid, steps * C]``. The model's time coordinate spans the window, so a model
    predicts the window it trained on (:func:`by_windows` goes further)."""
    window = with_channels(x, grid_rank)
    repeated = jnp.broadcast_to(window[..., None, :],
                                (*window.shape[:-1], steps, window.shape[-1]))
    out = with_channels(apply(params, _model_input(repeated)), grid_rank + 1)
    return _model_input(out.reshape(*out.shape[:-2], steps * channels))


def by_windows(predict: Callable[[Any, jax.Array], jax.Array], steps: int, window_steps: int,
               grid_rank: int, channels: int) -> Callable[[Any, jax.Array], jax.Array]:
    """``predict(state, x)`` of ``window_steps`` snapshots at once (a space-time model with its
    normaliser) -> the same for ``steps``: window after window, each from the last
    ``steps_in`` snapshots before it, cut to ``steps`` (a shorter horizon is the first
    ``steps`` of one window). Stretching the trained time axis over another horizon would
    change what the model's time coordinate means."""

    def predict_steps(state: Any, x: jax.Array) -> jax.Array:
        window = with_channels(x, grid_rank)
        width, outs = window.shape[-1], []
        for _ in range(-(-steps // window_steps)):
            out = with_channels(predict(state, _model_input(window)), grid_rank)
            outs.append(out.astype(window.dtype))
            window = jnp.concatenate([window, outs[-1]], -1)[..., -width:]
        return _model_input(jnp.concatenate(outs, -1)[..., :steps * channels])

    return predict_steps


def time_apply(apply: Apply, scheme: str | None, steps: int, grid_rank: int, channels: int,
               rollout: str = "scan") -> Apply:
    """``apply(params, x) -> y`` of a whole output window of ``steps`` snapshots for
    ``scheme`` (None or "direct": ``apply`` itself). A rollout may be built for another
    ``steps`` than it trained with (a longer horizon at prediction); a space-time model goes
    further with :func:`by_windows`."""
    if scheme in (None, "direct"):
        return apply
    if scheme == "autoregressive":
        return lambda params, x: autoregressive(apply, params, x, steps, grid_rank, channels,
                                                rollout)
    if scheme == "space_time":
        return lambda params, x: space_time(apply, params, x, steps, grid_rank, channels)
    raise ValueError(f"unknown time scheme {scheme!r}")
