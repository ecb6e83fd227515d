"""Pure pieces of training: optimizer, training state, and the train and eval steps.

Nothing here knows devices or execution modes (fno.parallel.strategies places and compiles), nor a
particular model (fno.registry builds it); fno.training.setup assembles them for the loop, the
benchmarks and the tests.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metrics as clu_metrics
from flax import nnx

from fno import registry
from fno.data import normalizer as normalizer_lib
from fno.parallel.strategies import State
from fno.training import metrics as metrics_lib


def create_optimizer(config: ml_collections.ConfigDict,
                     steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam with coupled L2 weight decay (as PyTorch's Adam(weight_decay=...)) and a
    staircase schedule that multiplies the lr by ``lr_decay_factor`` every few epochs."""
    schedule = optax.exponential_decay(
        init_value=config.learning_rate,
        transition_steps=max(1, config.lr_decay_epochs * steps_per_epoch),
        decay_rate=config.lr_decay_factor,
        staircase=True,
    )
    return optax.chain(optax.add_decayed_weights(config.weight_decay), optax.adam(schedule))


def init_state(model: nnx.Module, tx: optax.GradientTransformation,
               normalizer: dict[str, np.ndarray] | None = None
               ) -> tuple[nnx.GraphDef, State]:
    """The model's static structure and the logical training state (plain dicts of arrays).

    A data normaliser (fno.data.normalizer) rides along as ``state["normalizer"]``: the steps
    read it and never change it, and checkpoints carry it with the parameters.
    """
    graphdef, params = nnx.split(model, nnx.Param)
    params = nnx.to_pure_dict(params)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    if normalizer is not None:
        state["normalizer"] = {k: jnp.asarray(v) for k, v in normalizer.items()}
    return graphdef, state


def create_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation,
                 shardings: Callable[[State], Any], normalizer: dict | None = None,
                 abstract: bool = False) -> tuple[nnx.GraphDef, State]:
    """:func:`init_state` computed under ``jit`` straight into its final shardings.

    ``shardings(abstract_state)`` gives each leaf's sharding (``Strategy.state_shardings``).
    Nothing is materialised on one device first, so a model-sharded state that does not fit
    one device still starts, and every leaf (the optimizer's step count too) is born with
    the sharding the compiled step expects. ``abstract``: only the shapes, dtypes and
    shardings (``jax.ShapeDtypeStruct`` leaves), for ahead-of-time compilation.
    """

    def init() -> State:
        return init_state(registry.create_model(config, config.seed), tx, normalizer)[1]

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: registry.create_model(config, config.seed)),
                            nnx.Param)
    shapes = jax.eval_shape(init)
    placement = shardings(shapes)
    if abstract:
        return graphdef, jax.tree.map(
            lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), shapes, placement)
    return graphdef, jax.jit(init, out_shardings=placement)()


def make_apply(graphdef: nnx.GraphDef) -> Callable[[Any, jax.Array], jax.Array]:
    """A pure ``apply(params, x) -> y`` for the model structure ``graphdef``."""

    def apply(params, x):
        return nnx.merge(graphdef, nnx.State(params))(x)

    return apply


def make_predict(apply: Callable, grid: str,
                 grid_rank: int) -> Callable[[State, jax.Array], jax.Array]:
    """``predict(state, x) -> y``: the model with the state's normaliser, if it has one
    (``grid``: how its fields resample to ``x``'s resolution along its ``grid_rank`` grid
    axes, fno.data.normalizer)."""

    def predict(state: State, x: jax.Array) -> jax.Array:
        return normalizer_lib.apply_normalized(apply, state["params"], state.get("normalizer"),
                                               x, grid, grid_rank)

    return predict


# --- steps --------------------------------------------------------------------------------
def _all_finite(*trees: Any) -> jax.Array:
    """Whether every element of ``trees`` is finite, as one reduction over per-leaf sums.

    A sum is non-finite exactly when a summand is (or the sum overflows float32, which only
    flags a step that is useless anyway). The flag ends in a single reduce on purpose: a
    chain of per-leaf scalar ``and``s is fused by XLA:CPU into every element-wise parameter
    update and re-evaluated per element (docs/performance.md).
    """
    sums = [jnp.sum(x, dtype=jnp.float32) for x in jax.tree.leaves(trees)]
    return jnp.all(jnp.isfinite(jnp.stack(sums)))


def loss_scale(config: ml_collections.ConfigDict) -> float:
    """The factor from the batch's mean loss to the configured reduction: 1 for "mean",
    the global batch size for "sum" (the released code's summed loss)."""
    return float(config.batch_size) if config.get("loss_reduction", "mean") == "sum" else 1.0


def loss_terms(steps: int | None) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``terms(pred, y) -> [b, n]``: the per-sample errors a loss sums. Steady problems and
    whole-window models: one relative L2 error over the output (``steps`` None); a rollout
    trained as the released ``fourier_2d_time.py``: one per predicted step, ``steps`` of them."""
    if steps is None:
        return lambda pred, y: metrics_lib.relative_l2(pred, y)[:, None]
    return lambda pred, y: metrics_lib.per_step_relative_l2(pred, y, steps)


def make_train_step(predict: Callable, tx: optax.GradientTransformation,
                    scale: float = 1.0, terms: Callable | None = None) -> Callable:
    """``step(state, batch, axis_name=None) -> (state, TrainMetrics)``.

    The loss is the mean over the batch of the per-sample sum of ``terms`` (:func:`loss_terms`;
    by default the relative L2 error over all grid axes), times ``scale``
    (:func:`loss_scale`; the global batch size gives the released code's sum), on decoded
    outputs when there is a normaliser. Scaling the mean rather than summing locally keeps
    the reduction independent of how the batch is split: under pmap the gradient is averaged
    over ``axis_name``, and every device holds the same number of samples, so this equals the
    gradient of the global loss.

    A step whose loss or gradient is not finite leaves parameters and optimizer state
    unchanged and is counted in the metrics; the loop decides whether to stop (the default)
    or to carry on. Checking on device keeps the loop free of per-step host syncs. The
    reported ``train_loss`` is the mean term (for a rollout: the mean error per step).
    """

    terms = terms or loss_terms(None)

    def step(state: State, batch, axis_name: str | None = None):
        def loss_fn(params):
            pred = predict({**state, "params": params}, batch["x"])
            rel = terms(pred, batch["y"])
            return jnp.mean(jnp.sum(rel, axis=-1)) * scale, (rel, pred)

        grads, (rel, pred) = jax.grad(loss_fn, has_aux=True)(state["params"])
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
        finite = _all_finite(rel, grads)
        if axis_name is not None:
            finite = jax.lax.pmin(finite.astype(jnp.int32), axis_name) > 0
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        keep = functools.partial(jnp.where, finite)
        new_state = {**state, "step": state["step"] + 1,
                     "params": jax.tree.map(keep, params, state["params"]),
                     "opt_state": jax.tree.map(keep, opt_state, state["opt_state"])}
        mse = metrics_lib.mean_squared_error(pred, batch["y"])
        metrics = metrics_lib.TrainMetrics.empty().replace(
            train_loss=metrics_lib.sum_over_devices(
                clu_metrics.Average.from_model_output(
                    jnp.mean(rel, axis=-1), mask=jnp.broadcast_to(finite, mse.shape)),
                axis_name),
            train_mse=metrics_lib.sum_over_devices(
                clu_metrics.Average.from_model_output(
                    mse, mask=jnp.broadcast_to(finite, mse.shape)), axis_name),
            nonfinite_steps=metrics_lib.Count.from_model_output(~finite),
            first_nonfinite_step=metrics_lib.FirstStep.from_model_output(
                jnp.where(finite, metrics_lib.NO_STEP, state["step"] + 1)),
        )
        return new_state, metrics

    return step


def make_eval_step(predict: Callable, steps: int | None = None) -> Callable:
    """``eval_step(state, batch, axis_name=None) -> EvalMetrics`` over the masked batch; with
    ``steps`` (a time-dependent problem's output window) ``TimeEvalMetrics``, which add the
    error of each step."""

    def eval_step(state: State, batch, axis_name: str | None = None):
        pred = predict(state, batch["x"])
        outputs = {"rel_l2": metrics_lib.relative_l2(pred, batch["y"]),
                   "mse": metrics_lib.mean_squared_error(pred, batch["y"]),
                   "mask": batch["mask"] > 0}
        collection = metrics_lib.EvalMetrics
        if steps is not None:
            collection = metrics_lib.TimeEvalMetrics
            outputs["rel_l2_step"] = metrics_lib.per_step_relative_l2(pred, batch["y"], steps)
        metrics = collection.single_from_model_output(**outputs)
        return metrics_lib.sum_over_devices(metrics, axis_name)

    return eval_step
