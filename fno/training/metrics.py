"""Loss and metric definitions (clu.metrics), shared by every execution mode.

Metrics are sums and counts (``clu.metrics.Average``), so they combine exactly across devices
(``psum`` under pmap; jit over a mesh already sees global arrays), across the ``k`` steps of a
scan (``Collection.reduce``) and across calls (``Collection.merge``), all on device. The host
fetches them only when it writes a report.
"""


from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics


def _sample_axes(x: jax.Array) -> tuple[int, ...]:
    """Every axis but the batch: the grid axes and, with several channels, the channel axis."""
    return tuple(range(1, x.ndim))


def relative_l2(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Per-sample relative L2 error ``||pred - target|| / ||target||`` of ``[b, *grid]`` or
    ``[b, *grid, C]``, over all non-batch axes: with several output channels one error per
    sample over the whole output field (all channels together, not a mean of per-channel
    errors)."""
    diff = jnp.sqrt(jnp.sum(jnp.square(pred - target), axis=_sample_axes(target)))
    return diff / jnp.sqrt(jnp.sum(jnp.square(target), axis=_sample_axes(target)))


def per_step_relative_l2(pred: jax.Array, target: jax.Array, steps: int) -> jax.Array:
    """``[b, steps]``: the relative L2 error of each snapshot of time-major outputs
    ``[b, *grid, steps * C]`` over its grid and channels, as the released
    ``fourier_2d_time.py`` measures each step."""
    if steps == 1:
        return relative_l2(pred, target)[:, None]
    shape = (target.shape[0], -1, steps, target.shape[-1] // steps)
    diff, ref = jnp.reshape(pred - target, shape), jnp.reshape(target, shape)
    return (jnp.sqrt(jnp.sum(jnp.square(diff), axis=(1, 3)))
            / jnp.sqrt(jnp.sum(jnp.square(ref), axis=(1, 3))))


def mean_squared_error(pred: jax.Array, target: jax.Array) -> jax.Array:
    """Per-sample mean squared error over all non-batch axes (grid and channels) of
    ``[b, *grid]`` or ``[b, *grid, C]``."""
    return jnp.mean(jnp.square(pred - target), axis=_sample_axes(target))


NO_STEP = 2**31 - 1  # "no non-finite step seen" for FirstStep


@flax.struct.dataclass
class _IntFold(metrics.Metric):
    """One integer folded over steps, devices and calls with an associative operation:
    ``_combine`` two values, ``_reduce`` an array of them, ``_identity`` for none."""

    value: jax.Array
    _combine = staticmethod(jnp.add)
    _reduce = staticmethod(jnp.sum)
    _identity = 0

    @classmethod
    def from_model_output(cls, values: jax.Array, **_):
        return cls(value=cls._reduce(values.astype(jnp.int32)))

    def merge(self, other):
        return type(self)(value=self._combine(self.value, other.value))

    def reduce(self):
        return type(self)(value=self._reduce(self.value))

    def compute(self) -> jax.Array:
        return self.value

    @classmethod
    def empty(cls):
        return cls(value=jnp.full((), cls._identity, jnp.int32))


@flax.struct.dataclass
class Count(_IntFold):
    """Number of steps with a property (summed over steps and calls)."""


@flax.struct.dataclass
class FirstStep(_IntFold):
    """The earliest step at which a property held (NO_STEP if never)."""

    _combine = staticmethod(jnp.minimum)
    _reduce = staticmethod(jnp.min)
    _identity = NO_STEP


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
    """Training metrics since the last report: per-sample averages over the finite steps,
    and how many steps (first at which step) had a non-finite loss or gradient."""

    train_loss: metrics.Average
    train_mse: metrics.Average
    nonfinite_steps: Count
    first_nonfinite_step: FirstStep


@flax.struct.dataclass
class StepAverage(metrics.Metric):
    """Per-sample averages of a ``[b, steps]`` error, one per step (a rollout's error curve):
    sums and a count, so it combines exactly like ``clu.metrics.Average``."""

    total: jax.Array
    count: jax.Array

    @classmethod
    def from_model_output(cls, values: jax.Array, mask: jax.Array | None = None, **_):
        weight = jnp.ones(values.shape[:1]) if mask is None else mask.astype(values.dtype)
        return cls(total=jnp.sum(values * weight[:, None], axis=0), count=jnp.sum(weight))

    def merge(self, other):
        return type(self)(total=self.total + other.total, count=self.count + other.count)

    def reduce(self):
        return type(self)(total=jnp.sum(self.total, axis=0), count=jnp.sum(self.count))

    def compute(self) -> jax.Array:
        return self.total / self.count


@flax.struct.dataclass
class EvalMetrics(metrics.Collection):
    """Per-sample averages over the (masked) test set."""

    rel_l2: metrics.Average.from_output("rel_l2")
    mse: metrics.Average.from_output("mse")


@flax.struct.dataclass
class TimeEvalMetrics(metrics.Collection):
    """:class:`EvalMetrics` of a time-dependent problem (``rel_l2`` over the whole output
    window, the paper's metric) and the relative L2 error of each output step."""

    rel_l2: metrics.Average.from_output("rel_l2")
    mse: metrics.Average.from_output("mse")
    rel_l2_step: StepAverage.from_output("rel_l2_step")


def sum_over_devices(collection, axis_name: str | None):
    """Make pmap'd Average metrics global: their fields are sums, so psum is exact."""
    if axis_name is None:
        return collection
    return jax.tree.map(lambda v: jax.lax.psum(v, axis_name), collection)


def eval_metric_names(resolution: int, train_resolution: int) -> dict[str, str]:
    """Names used in metrics.jsonl and results.json for one evaluation resolution."""
    suffix = "" if resolution == train_resolution else f"_s{resolution}"
    return {"rel_l2": f"test_rel_l2{suffix}", "mse": f"test_mse{suffix}",
            "rel_l2_step": f"test_rel_l2{suffix}_step"}


def step_names(name: str, values: Any) -> dict[str, float]:
    """A metric's host values by metrics.jsonl name: a scalar as itself, a per-step curve as
    one scalar per step, ``<name>01``, ``<name>02``, ... (1 is the first predicted step)."""
    values = np.asarray(values)
    if values.ndim == 0:
        return {name: float(values)}
    return {f"{name}{k:02d}": float(v) for k, v in enumerate(values, start=1)}


# TensorBoard tags of the metrics.jsonl names, by prefix (a resolution suffix such as _s128
# is kept). TensorBoard groups cards by the tag's first component and sorts all cards by
# tag, so the groups appear as: loss (the relative L2 error that training minimises, on the
# training batches and the test set), mse, perf, stability.
_TENSORBOARD_TAGS = {"train_loss": "loss/train", "test_rel_l2": "loss/test",
                     "train_mse": "mse/train", "test_mse": "mse/test",
                     "steps_per_sec": "perf/steps_per_sec",
                     "samples_per_s": "perf/samples_per_s", "uptime": "perf/uptime",
                     "nonfinite_steps": "stability/nonfinite_steps"}


def tensorboard_tag(name: str) -> str:
    """The TensorBoard tag of the metrics.jsonl name ``name`` (others stay as they are); a
    per-step error goes to the ``rollout`` group."""
    if name.startswith("test_rel_l2") and "_step" in name:
        return "rollout/" + name[len("test_rel_l2_"):]
    for prefix, tag in _TENSORBOARD_TAGS.items():
        if name == prefix or (name.startswith(prefix + "_s") and name[len(prefix) + 2:].isdigit()):
            return tag + name[len(prefix):]
    return name
