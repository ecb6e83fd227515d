"""All six execution modes compute the same training trajectory, without recompiling."""

import jax
import ml_collections
import numpy as np
import pytest

from configs import default
from fno.data import pipeline
from fno.parallel import strategies
from fno.training import setup
from tests.helpers import smooth_pairs

NUM_STEPS = 7  # not a multiple of K: the last scan call is shorter


def tiny_config(mode: str) -> ml_collections.ConfigDict:
    config = default.get_config()
    config.mode = mode
    config.batch_size = 16
    config.steps_per_call = 3
    config.model.width = 16
    config.model.modes = 8
    config.model.num_layers = 2
    config.model.projection_width = 32
    return config


def run_mode(mode: str, source, num_steps: int = NUM_STEPS, on_call=None, config=None):
    """``num_steps`` steps through the loop's own set-up and step-runner (fno.training.setup); the
    final parameters and the loss of every call.

    ``on_call(i)`` runs before the i-th compiled call and ``on_call(None)`` after the last
    (used to count compilations).
    """
    config = config or tiny_config(mode)
    config.mode = mode
    run = setup.build(config, steps_per_epoch=4)
    batches = pipeline.TrainBatches(source, config.batch_size, seed=0)
    it = pipeline.train_iterator(batches, num_steps, prefetch=0)
    losses, calls = [], 0
    if on_call:
        on_call(0)
    for _, _, state, metrics in setup.train_calls(run, run.placed_state(), it, 0, num_steps):  # noqa: B007
        metrics = run.strategy.metrics_to_host(metrics)
        losses.append(float(metrics.compute()["train_loss"]))
        calls += 1
        if on_call:
            on_call(calls)
    if on_call:
        on_call(None)
    logical = run.strategy.logical_state(state)
    assert int(logical["step"]) == num_steps
    return jax.tree.map(np.asarray, logical["params"]), losses


@pytest.fixture(scope="module")
def source():
    return smooth_pairs(64, 64)


@pytest.fixture(scope="module")
def reference(source):
    return run_mode("basic", source)


@pytest.mark.parametrize("mode", ["scan", "pmap", "pmap_scan", "mesh", "mesh_scan"])
def test_modes_match_basic(mode, source, reference):
    assert jax.device_count() == 8
    ref_params, ref_losses = reference
    params, losses = run_mode(mode, source)
    flat_ref = np.concatenate([p.ravel() for p in jax.tree.leaves(ref_params)])
    flat = np.concatenate([p.ravel() for p in jax.tree.leaves(params)])
    assert np.linalg.norm(flat - flat_ref) / np.linalg.norm(flat_ref) < 1e-5
    # Scan modes report one (averaged) loss per call; compare the overall mean.
    assert np.mean(losses) == pytest.approx(np.mean(ref_losses), rel=1e-5) or (
        len(losses) != len(ref_losses))
    if len(losses) == len(ref_losses):
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)


@pytest.mark.parametrize("mode", strategies.MODES)
def test_no_recompilation(mode, source):
    """Once the first call has compiled the step (and the metric merge), later calls of the
    same shape compile nothing: the state keeps its sharding and dtypes across calls (the
    second call is where a replicated state with the wrong axis name would recompile)."""
    compiles = []
    counting = [False]

    def listener(event, duration, **kwargs):
        if counting[0] and event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        run_mode(mode, source, num_steps=4 * 3,
                 on_call=lambda i: counting.__setitem__(0, i is not None and i >= 1))
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


def test_training_reduces_the_loss(source):
    _, losses = run_mode("basic", source, num_steps=30)
    assert losses[-1] < 0.7 * losses[0]


def relative_difference(a, b) -> float:
    flat_a = np.concatenate([p.ravel() for p in jax.tree.leaves(a)])
    flat_b = np.concatenate([p.ravel() for p in jax.tree.leaves(b)])
    return float(np.linalg.norm(flat_a - flat_b) / np.linalg.norm(flat_b))


@pytest.mark.slow
def test_summed_loss_weighs_the_decay_as_the_released_code(source):
    """loss_reduction="sum" multiplies the gradient by the global batch size B before the
    coupled decay is added: as Adam ignores a common scale (up to its epsilon), that equals
    the mean with the decay divided by B, and differs from the mean with the same decay. In
    pmap mode, whose devices each reduce a part of the batch, it gives the same steps."""
    decay = 0.1  # large, so that how it is weighed shows within a few steps

    def run(mode, reduction, weight_decay):
        config = tiny_config(mode)
        config.loss_reduction, config.weight_decay = reduction, weight_decay
        return run_mode(mode, source, config=config)

    summed, summed_losses = run("basic", "sum", decay)
    rescaled, _ = run("basic", "mean", decay / 16)
    same_decay, _ = run("basic", "mean", decay)
    no_decay, _ = run("basic", "mean", 0.0)
    # Adam's epsilon, not scaled with the gradient, leaves a trace on parameters whose
    # gradients are tiny: under 1% of what the decay itself changes.
    effect = relative_difference(rescaled, no_decay)
    assert relative_difference(summed, rescaled) < 0.01 * effect
    assert relative_difference(summed, same_decay) > 0.5 * effect
    pmap_summed, pmap_losses = run("pmap", "sum", decay)
    assert relative_difference(pmap_summed, summed) < 1e-5
    np.testing.assert_allclose(pmap_losses, summed_losses, rtol=1e-5)  # reported unscaled
