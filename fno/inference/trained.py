"""A trained model as a plain function: ``model = fno.load(workdir)``, then ``model(u0)``.

Everything the model needs travels with its checkpoint: the run's config (the model's
registered name and constructor settings, channels), the data normaliser (in the state) and
how its data were laid out (grid kind and rank, array names: how the normaliser resamples and
how evaluation reopens the data), saved as the checkpoint's run facts by the training loop.
So a user passes a workdir and NumPy arrays, nothing else, and the model's problem need not
be registered where it is loaded (its model must: the code is needed). Prediction runs
through the same ``predict`` (model plus normaliser) that training and evaluation use
(fno.training.steps), jitted over a one-axis data mesh on this process's devices
(fno.parallel.strategies's mesh strategy), so a large input is split across the available
accelerators.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from fno import registry
from fno.data import datasets
from fno.errors import FnoError
from fno.models import rollout
from fno.parallel import strategies
from fno.parallel.strategies import State
from fno.storage import paths
from fno.training import checkpoint as checkpoint_lib
from fno.training import steps


def _saved_config(checkpointer: checkpoint_lib.Checkpointer, step: int,
                  workdir: paths.Path) -> tuple[dict, dict]:
    """The run's config and data description: the checkpoint's run facts, or for checkpoints
    written before they held them, the config in ``results.json``."""
    facts = checkpointer.run_info(step) or {}
    if "config" in facts:
        return facts["config"], facts.get("data", {})
    results = workdir / "results.json"
    if results.exists():
        return json.loads(results.read_text())["config"], {}
    raise FnoError(f"checkpoint {checkpointer.directory}/{step} does not record its config "
                   f"(written by an older fno) and {results} is missing")


def inference_strategy(config: ml_collections.ConfigDict,
                       grid_rank: int | None = None) -> strategies.Strategy:
    """A data-parallel mesh over this process's devices, whatever mesh the run trained on:
    parameters replicated, batches split along 'data'."""
    local = ml_collections.ConfigDict(config.to_dict())
    local.mesh_shape, local.mesh_axes = (-1,), (strategies.DATA_AXIS,)
    local.model_sharding = local.spatial_sharding = ""
    return strategies.MeshStrategy(jax.local_devices(), local, registry.model_class(config),
                                   grid_rank)


@dataclasses.dataclass
class TrainedModel:
    """A trained FNO with its normaliser; call it on NumPy arrays.

    ``model(x)``: ``x`` is one sample ``[*grid]`` (``[*grid, C]`` with several input
    channels) or a batch ``[n, *grid(, C)]``, at any resolution with at least
    ``min_resolution`` points per axis (FNO is resolution-free); the result has the same
    leading shape, in float32. A time-dependent model takes the first snapshots as channels
    and predicts ``model(x, steps=K)`` snapshots (default: as many as it trained on; a
    rollout or a space-time model may go further; fno.models.rollout), time-major channels.
    """

    config: ml_collections.ConfigDict
    step: int
    workdir: str
    data: dict  # the training data, as fno.data.datasets.Splits.describe saw them
    state: State  # {"params", and "normalizer" when the run had one}
    strategy: strategies.Strategy
    predict: Any  # pure (state, x) -> y, as in training
    predict_for: Any = None  # steps -> pure (state, x) -> y, for a time-dependent model
    _compiled_by_steps: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def grid_rank(self) -> int:
        """The data's grid axes (a space-time model has one more, time)."""
        return self.data.get("grid_rank") or registry.model_class(self.config).grid_rank

    @property
    def time_scheme(self) -> str | None:
        """How the model predicts in time (fno.models.rollout); None for a steady model."""
        return registry.time_scheme(self.config)

    @property
    def output_steps(self) -> int | None:
        """Snapshots predicted by default (the trained window); None for a steady model."""
        return self.config.data.get("output_steps") if self.time_scheme else None

    def checked_steps(self, steps: int | None) -> int | None:
        """``steps`` (None: the trained window) as a horizon this model can predict."""
        if steps is None or steps == self.output_steps:
            return self.output_steps
        if self.time_scheme is None:
            raise FnoError("steps: this model is not time-dependent (it maps inputs to outputs)")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
            raise FnoError(f"steps must be a positive integer, got {steps!r}")
        if self.time_scheme == "direct":
            raise FnoError(f"steps={steps}: this model predicts its {self.output_steps} "
                           f"steps at once (model.time_scheme='direct'), no other number")
        return steps

    @property
    def grid(self) -> str:
        """How the training data's grid subsamples ("periodic" or "vertex")."""
        return self.data["grid"]

    @property
    def layout(self) -> datasets.Layout:
        """How the training data were read (fno.data.datasets.load reopens them so)."""
        arrays = self.data.get("arrays")
        return datasets.Layout(grid=self.grid, grid_rank=self.grid_rank,
                               files=tuple(arrays) if arrays else None)

    @property
    def in_channels(self) -> int:
        return self.config.model.get("in_channels") or 1

    @property
    def out_channels(self) -> int:
        return self.config.model.get("out_channels") or 1

    @property
    def resolution(self) -> int:
        """The training resolution (points per grid axis)."""
        return self.config.data.resolution

    @property
    def min_resolution(self) -> int:
        return 2 * self.config.model.modes

    def sample_shape(self, resolution: int) -> tuple[int, ...]:
        """One input sample's shape at ``resolution``."""
        channels = (self.in_channels,) if self.in_channels > 1 else ()
        return (resolution,) * self.grid_rank + channels

    def check_input(self, shape: tuple[int, ...]) -> bool:
        """Whether ``shape`` is a batch (True) or one sample (False); a one-line FnoError
        when it is neither or its grid is too coarse for the model's modes."""
        sample_rank = self.grid_rank + (self.in_channels > 1)
        if len(shape) not in (sample_rank, sample_rank + 1):
            want = ", ".join(["S"] * self.grid_rank + ["C"] * (self.in_channels > 1))
            raise FnoError(f"input of shape {list(shape)}: this model takes samples "
                           f"[{want}] or batches [N, {want}] ({self.grid_rank} grid axis/axes, "
                           f"{self.in_channels} input channel(s))")
        batched = len(shape) == sample_rank + 1
        sample = shape[1:] if batched else shape
        if self.in_channels > 1 and sample[-1] != self.in_channels:
            raise FnoError(f"input of shape {list(shape)} has {sample[-1]} channels; this "
                           f"model takes {self.in_channels}")
        grid = sample[:self.grid_rank]
        if min(grid) < self.min_resolution:
            raise FnoError(f"input grid {list(grid)} is too coarse for this model: it keeps "
                           f"{self.config.model.modes} Fourier modes, so every grid axis needs "
                           f"at least {self.min_resolution} points")
        return batched

    def checked_resolutions(self, values: list[str], flag: str) -> list[int]:
        """``values`` of a command-line list as resolutions this model can take, in order,
        without repeats; a one-line FnoError otherwise."""
        try:
            resolutions = list(dict.fromkeys(int(v) for v in values))
        except ValueError as e:
            raise FnoError(f"{flag}: expected integers, got {','.join(values)}") from e
        if any(r < self.min_resolution for r in resolutions):
            raise FnoError(f"{flag}: this model keeps {self.config.model.modes} Fourier modes, "
                           f"so it needs at least {self.min_resolution} points per axis, got "
                           f"{resolutions}")
        return resolutions

    @property
    def devices(self) -> int:
        return len(self.strategy.devices)

    def padded_batch(self, batch_size: int) -> int:
        """``batch_size`` rounded up to a multiple of the devices (each gets a share)."""
        return -(-max(1, batch_size) // self.devices) * self.devices

    def __call__(self, x: Any, batch_size: int = 64, steps: int | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        compiled = self._compiled(self.checked_steps(steps))
        batched = self.check_input(x.shape)
        xs = x if batched else x[None]
        size = self.padded_batch(min(batch_size, len(xs)))
        out = []
        for start in range(0, len(xs), size):
            chunk = xs[start:start + size]
            pad = size - len(chunk)
            if pad:  # every call sees one shape: compiled once per resolution
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            y = compiled(self.strategy.put_batch({"x": chunk}, False)["x"])
            out.append(np.asarray(y)[:len(chunk) - pad])
        y = np.concatenate(out) if out else np.zeros((0,), np.float32)
        return y if batched else y[0]

    def _compiled(self, steps: int | None) -> Any:
        """``x -> predict(state, x)`` for ``steps`` on the placed state, compiled once per
        input shape."""
        if steps not in self._compiled_by_steps:
            self._compiled_by_steps[steps] = self._compile(steps)
        return self._compiled_by_steps[steps]

    def predict_steps(self, steps: int | None) -> Any:
        """The pure ``predict(state, x)`` of a ``steps``-snapshot window (:meth:`checked_steps`
        gives valid ``steps``); the trained window's is :attr:`predict`."""
        return self.predict if steps == self.output_steps else self.predict_for(steps)

    def _compile(self, steps: int | None) -> Any:
        pure = self.predict_steps(steps)
        predict = self.strategy.with_layout(pure)
        batch = self.strategy.layout.named(jax.sharding.PartitionSpec(strategies.DATA_AXIS))
        jitted = jax.jit(predict, out_shardings=batch)
        placed = self.strategy.place_state(self.state)
        return lambda x: jitted(placed, x)

    def throughput(self, x: np.ndarray, batch_size: int = 64,
                   steps: int | None = None) -> tuple[np.ndarray, float]:
        """``(self(x, steps=steps), seconds)``, timed after a warm-up call that compiles the
        one batch shape the timed call uses."""
        xs = x if self.check_input(x.shape) else x[None]
        self(xs[:batch_size], batch_size, steps)
        start = time.perf_counter()
        y = self(x, batch_size, steps)
        return y, time.perf_counter() - start


def checkpoint_steps(workdir: str) -> tuple[paths.Path, list[int]]:
    """The workdir and its finalized checkpoint steps; one-line errors when there are none."""
    path = paths.resolve(workdir, "--workdir")
    if not path.is_dir():
        raise FnoError(f"no such workdir: {workdir}")
    directory = path / "checkpoints"
    if not directory.is_dir():
        raise FnoError(f"no checkpoint in {workdir} (train first: python main.py "
                       f"--config=... --workdir={workdir})")
    checkpointer = checkpoint_lib.Checkpointer(directory, asynchronous=False)
    try:
        found = sorted(checkpointer.manager.all_steps())
    finally:
        checkpointer.close()
    if not found:
        raise FnoError(f"no checkpoint in {workdir} (train first: python main.py "
                       f"--config=... --workdir={workdir})")
    return path, found


def load(workdir: str, step: int | None = None) -> TrainedModel:
    """The model of ``workdir``'s latest checkpoint (or of ``step``), ready to call."""
    path, found = checkpoint_steps(workdir)
    if step is None:
        step = found[-1]
    elif step not in found:
        raise FnoError(f"no checkpoint at step {step} in {workdir} (it has "
                       f"{', '.join(map(str, found))})")
    checkpointer = checkpoint_lib.Checkpointer(path / "checkpoints", asynchronous=False)
    try:
        config_dict, data = _saved_config(checkpointer, step, path)
        saved = checkpointer.restore(step, abstract_state=None)
    finally:
        checkpointer.close()
    config = ml_collections.ConfigDict(config_dict)
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: registry.create_model(config, config.seed)),
                            nnx.Param)
    if not data.get("grid"):  # written before checkpoints recorded it: the registered problem's
        grid = registry.problem(config).grid
        data = {**data, "grid": "periodic" if grid == "auto" else grid}
    state = {"params": saved["params"]}
    if "normalizer" in saved:
        state["normalizer"] = saved["normalizer"]
    rank = data.get("grid_rank") or registry.model_class(config).grid_rank
    # Recorded in the saved config by the run (fno.data.datasets.resolve_channels).
    scheme = registry.time_scheme(config)

    trained_steps = config.data.get("output_steps")
    channels = data.get("channels_per_step") or 1

    def predict_for(horizon: int | None) -> Any:
        window = trained_steps if scheme == "space_time" else horizon
        apply = rollout.time_apply(steps.make_apply(graphdef), scheme, window, rank, channels)
        predict = steps.make_predict(apply, data["grid"], rank)
        if window == horizon:
            return predict
        return rollout.by_windows(predict, horizon, window, rank, channels)

    return TrainedModel(config=config, step=step, workdir=str(workdir), data=data,
                        state=state, strategy=inference_strategy(config, rank),
                        predict=predict_for(config.data.get("output_steps")),
                        predict_for=predict_for)
