"""Loss and metric definitions (clu.metrics), shared by every execution mode.

Metrics are sums and counts (``clu.metrics.Average``), so they combine exactly across devices
(``psum`` under pmap; jit over a mesh already sees global arrays), across the ``k`` steps of a
scan (``Collection.reduce``) and across calls (``Collection.merge``), all on device. The host
fetches them only when it writes a report.
"""


import flax.struct
import jax
import jax.numpy as jnp
from clu import metrics


def relative_l2(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Per-sample relative L2 error ``||pred - target|| / ||target||`` over the grid axis."""
    diff = jnp.sqrt(jnp.sum(jnp.square(pred - target), axis=-1))
    return diff / jnp.sqrt(jnp.sum(jnp.square(target), axis=-1))


def mean_squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Per-sample mean squared error over the grid axis."""
    return jnp.mean(jnp.square(pred - target), axis=-1)


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
    """Per-sample averages over the training batches since the last report."""

    train_loss: metrics.Average.from_output("rel_l2")
    train_mse: metrics.Average.from_output("mse")


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
    """Per-sample averages over the (masked) test set."""

    rel_l2: metrics.Average.from_output("rel_l2")
    mse: metrics.Average.from_output("mse")


def sum_over_devices(collection: metrics.Collection, axis_name: str | None):
    """Make a pmap'd collection global: every field of Average is a sum, so psum is exact."""
    if axis_name is None:
        return collection
    return jax.tree.map(lambda v: jax.lax.psum(v, axis_name), collection)


def eval_metric_names(resolution: int, train_resolution: int) -> dict[str, str]:
    """Names used in metrics.jsonl and results.json for one evaluation resolution."""
    suffix = "" if resolution == train_resolution else f"_s{resolution}"
    return {"rel_l2": f"test_rel_l2{suffix}", "mse": f"test_mse{suffix}"}
