"""One set-up and one step-runner, shared by the training loop, the benchmarks and the tests.

:func:`build` turns a config into everything a run needs before its first step: the mode's
strategy, the optimizer, the model's structure, the training state created straight into
its shardings (or only its abstract shapes, for ahead-of-time compilation), and the pure and
compiled train and eval steps. :func:`train_calls` runs compiled calls over a batch iterator
exactly as the loop does (one step per call, or K for scan modes, cut at the config's report,
evaluation and checkpoint boundaries). So the tests and benchmarks exercise the code that
trains, and a mode is a strategy (placement x steps per call) in fno.parallel.strategies alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import ml_collections
import optax
from flax import nnx

from fno import configuration, registry
from fno.data import pipeline
from fno.models import rollout
from fno.parallel import strategies
from fno.parallel.strategies import State
from fno.training import steps


@dataclasses.dataclass
class Setup:
    config: ml_collections.ConfigDict
    strategy: strategies.Strategy
    tx: optax.GradientTransformation
    graphdef: nnx.GraphDef
    predict: Callable[[State, Any], Any]  # (logical state, x) -> y
    train_step: Callable  # pure: (state, batch, axis_name=None) -> (state, metrics)
    eval_step: Callable
    train_fn: Callable  # compiled for the strategy: (placed state, device batch)
    eval_fn: Callable
    state: State  # the logical state, in its shardings (abstract if built so)
    grid_rank: int

    @property
    def uses_scan(self) -> bool:
        return self.strategy.uses_scan

    def batch_shape(self, resolution: int | None = None) -> tuple[int, ...]:
        """A global batch's ``[b, *grid]`` at ``resolution`` (default: the training one)."""
        s = resolution or self.config.data.resolution
        return (self.config.batch_size, *(s,) * self.grid_rank)

    def batch_shapes(self, resolution: int | None = None
                     ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A global batch's input and output shapes at ``resolution``: ``[b, *grid]`` with
        a trailing channel axis where there are several (a time-dependent problem's output
        window: ``output_steps`` snapshots of the model's channels each)."""
        grid = self.batch_shape(resolution)
        model = self.config.model
        x = model.get("in_channels") or 1
        y = model.get("out_channels") or 1
        if registry.time_scheme(self.config) in ("autoregressive", "space_time"):
            y *= self.config.data.output_steps
        return (*grid, *(x,) * (x > 1)), (*grid, *(y,) * (y > 1))

    def placed_state(self) -> State:
        """:attr:`state` in the strategy's run-time layout (pmap: a leading device axis)."""
        return self.strategy.place_state(self.state)

    def call(self, state: State, host_batch: dict) -> tuple[State, Any]:
        """One compiled call on this process's host rows (``[k, b, ...]`` for scan modes)."""
        return self.train_fn(state, self.strategy.put_batch(host_batch, self.uses_scan))


def checked_strategy(config: ml_collections.ConfigDict) -> strategies.Strategy:
    """Validate ``config`` (one-line FnoErrors), then build and check its strategy."""
    configuration.validate(config)
    strategy = strategies.make_strategy(config.mode, config, registry.model_class(config),
                                        registry.grid_rank(config))
    configuration.validate_for_devices(config, strategy)
    return strategy


def build(config: ml_collections.ConfigDict, steps_per_epoch: int, *,
          strategy: strategies.Strategy | None = None, normalizer: dict | None = None,
          grid: str = "periodic", abstract: bool = False) -> Setup:
    """Everything a run needs before its first step (see the module docstring).

    ``normalizer``: fitted point-wise fields (fno.data.normalizer) that become part of the state;
    ``grid`` says how they resample to other resolutions.
    """
    strategy = strategy or checked_strategy(config)
    tx = steps.create_optimizer(config, steps_per_epoch)
    graphdef, state = steps.create_state(config, tx, strategy.state_shardings, normalizer,
                                         abstract=abstract)
    rank, scheme = registry.grid_rank(config), registry.time_scheme(config)
    window = config.data.output_steps if scheme else None
    apply = rollout.time_apply(steps.make_apply(graphdef), scheme, window, rank,
                               config.model.get("out_channels") or 1,
                               config.model.get("rollout", "scan"))
    predict = steps.make_predict(apply, grid, rank)
    terms = steps.loss_terms(window if scheme == "autoregressive" else None)
    train_step = steps.make_train_step(predict, tx, steps.loss_scale(config), terms)
    eval_step = steps.make_eval_step(predict, window)
    return Setup(config=config, strategy=strategy, tx=tx, graphdef=graphdef, predict=predict,
                 train_step=train_step, eval_step=eval_step,
                 train_fn=strategy.compile_train(train_step),
                 eval_fn=strategy.compile_eval(eval_step), state=state,
                 grid_rank=rank)


def call_size(step: int, config: ml_collections.ConfigDict, uses_scan: bool,
              total_steps: int) -> int:
    """Steps in the next compiled call: K for scan modes, cut short at the next report,
    evaluation, checkpoint or the end, so those happen at exactly their configured steps."""
    if not uses_scan:
        return 1
    size = min(config.steps_per_call, total_steps - step)
    for every in (config.log_every_steps, config.eval_every_steps,
                  config.checkpoint_every_steps):
        if every > 0:
            size = min(size, every - step % every)
    return size


def train_calls(setup: Setup, state: State, batches: Iterator[dict], step: int,
                total_steps: int) -> Iterator[tuple[int, int, State, Any]]:
    """Compiled calls from ``step`` to ``total_steps`` on the host batches of ``batches``:
    yields ``(step after the call, steps in it, new state, its metrics)``."""
    while step < total_steps:
        size = call_size(step, setup.config, setup.uses_scan, total_steps)
        host = (pipeline.next_batches(batches, size) if setup.uses_scan
                else next(batches))
        state, metrics = setup.call(state, host)
        step += size
        yield step, size, state, metrics
