"""The one training loop shared by every mode, model and problem.

``fno.training.setup`` builds the run (strategy, state, compiled steps) and runs its compiled calls;
everything else (data, metrics, evaluation, checkpoints, preemption) is written once here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from fno import configuration
from fno.data import datasets, pipeline
from fno.errors import FnoError
from fno.parallel import collective, strategies
from fno.parallel.strategies import State
from fno.storage import paths
from fno.storage import workdir as workdir_lib
from fno.training import checkpoint as checkpoint_lib
from fno.training import metrics as metrics_lib
from fno.training import plotting, rollout_plots, setup, writers
from fno.training import progress as progress_lib


# --- evaluation ---------------------------------------------------------------------------
def evaluate(strategy: strategies.Strategy, eval_fn: Callable, state: State,
             sources: dict[int, Any], config: ml_collections.ConfigDict) -> dict[str, float]:
    """Test metrics at every resolution, named as in metrics.jsonl."""
    results = {}
    for resolution, source in sources.items():
        total = None
        for batch in pipeline.eval_batches(source, config.batch_size,
                                           jax.process_index(), jax.process_count()):
            m = strategy.metrics_to_host(eval_fn(state, strategy.put_batch(batch, False)))
            total = m if total is None else total.merge(m)
        names = metrics_lib.eval_metric_names(resolution, config.data.resolution)
        for key, value in total.compute().items():
            results.update(metrics_lib.step_names(names[key], value))
    return results


# --- preemption ---------------------------------------------------------------------------
class Preemption:
    """Tells the loop when to save and stop because the job is being preempted (SIGTERM).

    One process: a SIGTERM handler sets a flag, checked between compiled calls. Several
    processes: JAX's preemption service (started by ``jax.distributed.initialize``) catches
    SIGTERM on any process and agrees on a call index at which *all* processes stop, so they
    save one consistent checkpoint. Every process makes the same sequence of calls, so the
    call index is a valid sync-point id.
    """

    def __init__(self):
        self.multi_process = jax.process_count() > 1
        self.triggered = False
        self._previous = None

    def __enter__(self):
        if not self.multi_process:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: will save a checkpoint and stop.")
        self.triggered = True

    def reached(self, call_index: int) -> bool:
        if self.multi_process:
            from jax.experimental import multihost_utils

            self.triggered = multihost_utils.reached_preemption_sync_point(call_index)
        return self.triggered

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# --- the loop -------------------------------------------------------------------------------
def _due(step: int, every: int, total_steps: int) -> bool:
    return step == total_steps or (every > 0 and step % every == 0)


def _check_finite(train_metrics, config, batches, workdir, last_checkpoint: int) -> None:
    """Stop at the first non-finite step (unless configured to skip such steps).

    Called at reporting and checkpoint boundaries, where the host reads the metrics anyway.
    The step's batch indices (the whole global batch, all processes' rows) go to
    ``workdir/nonfinite_batch.json`` for inspection.
    """
    if train_metrics is None:
        return
    bad = int(train_metrics.nonfinite_steps.compute())
    if bad == 0 or config.skip_nonfinite_steps:
        if bad:
            logging.warning("Skipped %d step(s) with a non-finite loss or gradient.", bad)
        return
    step = int(train_metrics.first_nonfinite_step.compute())
    path = workdir / "nonfinite_batch.json"
    if jax.process_index() == 0:
        everyone = dataclasses.replace(batches, process_index=0, process_count=1)
        paths.write_json_atomic(path, {"step": step,
                                       "sample_indices": everyone.indices(step - 1).tolist()})
    raise FnoError(f"non-finite loss or gradient at step {step} (its batch is listed in {path}); "
                   f"the last checkpoint (step {last_checkpoint}) is intact; set "
                   f"config.skip_nonfinite_steps=True to skip such steps instead")


def _report(writer, step: int, host_metrics, progress: progress_lib.Progress,
            batch_size: int) -> None:
    """Log progress and write the training metrics and throughput of the window to ``step``
    (names as in metrics.jsonl; ``samples_per_s`` and ``steps_per_sec`` measure completed
    training steps, fno.training.progress)."""
    rates, line = progress.report(step)
    logging.info("%s", line)
    scalars = {k: float(v) for k, v in host_metrics.compute().items()
               if k != "first_nonfinite_step"}
    if "steps_per_sec" in rates:
        scalars["samples_per_s"] = rates["steps_per_sec"] * batch_size
    writer.write_scalars(step, {**scalars, **rates})


def _write_figures(workdir, writer, step: int, run: setup.Setup, state: State, source: Any,
                   config: ml_collections.ConfigDict) -> None:
    """The prediction figure of the first test samples; for a 2D time-dependent problem the
    rollout's figure and animation instead."""
    if source.time is not None and source.grid_rank == 2:
        rollout_plots.write_rollout_figures(workdir, writer, step, run.predict, state, source)
    else:
        plotting.write_prediction_figure(workdir, writer, step, run.predict, state, source,
                                         config.num_plot_samples)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train the FNO described by ``config``, writing everything under ``workdir``.

    Rerunning with the same workdir resumes from the latest checkpoint. Returns the final
    results (also written to ``workdir/results.json`` by process 0).
    """
    strategy = setup.checked_strategy(config)
    with contextlib.ExitStack() as cleanup:
        # Host-dependent: each process prepares and locks, then all agree (fno.parallel.collective).
        error = None
        try:
            path = workdir_lib.prepare(workdir)
            cleanup.enter_context(workdir_lib.exclusive(path, jax.process_index()))
        except FnoError as e:
            error = str(e)
        collective.agree("workdir", error)
        return _train(config, path, strategy, cleanup)


def _train(config: ml_collections.ConfigDict, workdir, strategy: strategies.Strategy,
           cleanup: contextlib.ExitStack) -> dict[str, Any]:
    is_writer = jax.process_index() == 0
    data = datasets.load(config, configuration.resolution_divisor(strategy))
    # The model's channel counts from the data, into the config the run builds and saves.
    config = datasets.resolve_channels(config, data)
    if config.batch_size > len(data.train):
        raise FnoError(f"config.batch_size = {config.batch_size} is larger than the training "
                       f"set ({len(data.train)} samples, config.data.num_train)")
    steps_per_epoch = len(data.train) // config.batch_size
    total_steps = configuration.total_steps(config, steps_per_epoch)

    run = setup.build(config, steps_per_epoch, strategy=strategy, normalizer=data.normalizer,
                      grid=data.grid)
    logical_state = run.state

    batches = pipeline.TrainBatches(data.train, config.batch_size, config.seed,
                                    jax.process_index(), jax.process_count())
    train_iter = pipeline.train_iterator(batches, total_steps)
    checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints",
                                               max_to_keep=config.keep_checkpoints)

    def close_checkpointer(exc_type, exc, tb) -> None:
        # A process failing alone must not wait for saves in barriers its peers never reach.
        checkpointer.close(abandon=exc_type is not None and jax.process_count() > 1)

    cleanup.push(close_checkpointer)
    # The facts that fix the data order (compared on resume), plus what a trained model needs
    # to be used on its own (fno.inference.trained): its config and how its data were laid out.
    run_facts = {"batch_size": config.batch_size, "seed": config.seed,
                 "num_train": len(data.train), "dataset": data.fingerprint,
                 "config": json.loads(config.to_json()), "data": data.describe()}
    # The newest checkpoint that reads back (damaged ones are moved aside, unfinished writes
    # of a killed run removed); step 0 and no state when there is none.
    start_step, restored, data_restored = checkpointer.restore_latest(
        checkpoint_lib.abstract_like(logical_state, strategy.state_shardings(logical_state)),
        train_iter, run_facts)
    if restored is not None:
        logical_state = restored
        if not data_restored:
            # Written by another process count. Global batch t is the same samples for any
            # process count (only the split between processes differs), so the data order
            # continues exactly from the step; the saved per-process states are not reused.
            logging.warning("Checkpoint %d was written by a different number of processes: "
                            "restoring model and optimizer, and recomputing the data position "
                            "from the step (the saved iterator states are not used).",
                            start_step)
            train_iter.set_state({"next_index": start_step})
    state = strategy.place_state(logical_state)
    del logical_state

    writer = writers.create_writers(workdir, write_files=is_writer)
    cleanup.callback(writer.close)
    if start_step == 0:
        writer.write_hparams(writers.flat_hparams(config))
    logging.info("Training %s mode on %d device(s): steps %d -> %d (%d per epoch).",
                 config.mode, len(strategy.devices), start_step, total_steps, steps_per_epoch)

    step = last_checkpoint = start_step
    train_metrics = None
    eval_results: dict[str, float] = {}
    train_start = time.perf_counter()
    progress = progress_lib.Progress(total_steps)

    def next_call_size(step: int) -> int:
        return setup.call_size(step, config, run.uses_scan, total_steps)

    progress.before_call(state, next_call_size(step))
    preempted = False
    calls = 0
    calls_from_start = setup.train_calls(run, state, train_iter, start_step, total_steps)
    with Preemption() as preemption:
        for step, size, state, m in calls_from_start:
            # The first call compiles; so does the first merge of metrics, made here so
            # that its compilation too is timed with the call, outside the training rate.
            warm_up = strategy.merge_metrics(m, m) if calls == 0 else None
            progress.after_call((state, warm_up), size)
            train_metrics = m if train_metrics is None else strategy.merge_metrics(
                train_metrics, m)
            calls += 1

            preempted = preemption.reached(calls)
            save = _due(step, config.checkpoint_every_steps, total_steps) or preempted
            log = _due(step, config.log_every_steps, total_steps)
            if log or save:
                with progress.paused(state):  # every step so far is done: a window ends
                    host_metrics = strategy.metrics_to_host(train_metrics)
                    _check_finite(host_metrics, config, batches, workdir, last_checkpoint)
                    if log:
                        _report(writer, step, host_metrics, progress, config.batch_size)
                        train_metrics = None
            if _due(step, config.eval_every_steps, total_steps):
                with progress.paused(state):
                    eval_results = evaluate(strategy, run.eval_fn, state, data.test, config)
                    writer.write_scalars(step, eval_results)
                    if config.num_plot_samples > 0:
                        logical = strategy.logical_state(state)  # a collective: every process
                        if is_writer:
                            _write_figures(workdir, writer, step, run, logical,
                                           data.test[config.data.resolution], config)
            if save:
                with progress.paused(state):
                    checkpointer.save(step, strategy.logical_state(state), train_iter,
                                      run_facts)
                last_checkpoint = step
            if preempted:
                break
            if step < total_steps:
                progress.before_call(state, next_call_size(step))

    checkpointer.wait()
    wall_s = time.perf_counter() - train_start
    if preempted:
        writer.flush()
        logging.warning("Preempted at step %d: checkpoint saved. Rerun the same command to "
                        "resume.", step)
        return {"preempted": True, "step": step}
    if not eval_results:  # resumed a finished run: evaluate again for results.json
        eval_results = evaluate(strategy, run.eval_fn, state, data.test, config)
    results = {
        **eval_results,
        "step": step,
        "steps_this_run": step - start_step,
        "wall_s": wall_s,
        "samples_per_s": (step - start_step) * config.batch_size / max(wall_s, 1e-9),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "mode": config.mode,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "config": config.to_dict(),
    }
    if is_writer:
        paths.write_json_atomic(workdir / "results.json", results)
    writer.flush()
    logging.info("Done: %s", json.dumps({k: v for k, v in results.items() if k != "config"}))
    return results


def final_params(workdir: str) -> Any:
    """Helper for tests and analysis: the parameters of the latest checkpoint as numpy."""
    checkpointer = checkpoint_lib.Checkpointer(paths.resolve(workdir) / "checkpoints")
    step = checkpointer.latest_step()
    if step is None:
        raise FnoError(f"no checkpoint in {workdir}")
    state = checkpointer.restore(step, abstract_state=None)
    checkpointer.close()
    return jax.tree.map(np.asarray, state["params"])
