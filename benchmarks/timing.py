"""The compiled training step on synthetic data, ready to time, and the record of the
machine it ran on: shared by the benchmark scripts (which each define their own flags)."""

from __future__ import annotations

import os
import platform
import resource
import time
from typing import Any


def with_synthetic_channels(config):
    """``config`` with the model's channels a run would take from one-channel data: for a
    time-dependent problem, ``input_steps`` snapshots in and one out per step (all
    ``output_steps`` for the direct scheme); a steady problem's stay as configured."""
    from fno import registry

    scheme = registry.time_scheme(config)
    if scheme is None or config.model.get("in_channels") is not None:
        return config
    config = config.copy_and_resolve_references()
    config.model.in_channels = config.data.input_steps
    config.model.out_channels = config.data.output_steps if scheme == "direct" else 1
    return config


class StepRunner:
    """The configured mode's compiled training step on synthetic data, ready to time."""

    def __init__(self, config, warmup: int = 3):
        import jax
        import numpy as np

        from fno.training import setup

        config = with_synthetic_channels(config)
        self.config = config
        run = setup.build(config, steps_per_epoch=50)  # the loop's set-up and compiled step
        self.k = config.steps_per_call if run.uses_scan else 1
        self.train_fn, self.state = run.train_fn, run.placed_state()
        rng = np.random.default_rng(0)
        lead = (self.k,) * run.uses_scan
        x_shape, y_shape = run.batch_shapes()
        self.pool = [run.strategy.put_batch(
            {"x": rng.normal(size=lead + x_shape).astype(np.float32),
             "y": rng.normal(size=lead + y_shape).astype(np.float32)}, run.uses_scan)
            for _ in range(2)]
        t0 = time.perf_counter()
        self.run_calls(1)
        self.compile_s = time.perf_counter() - t0
        self.run_calls(warmup)
        self._block = jax.block_until_ready

    def run_calls(self, calls: int) -> None:
        import jax

        for i in range(calls):
            self.state, metrics = self.train_fn(self.state, self.pool[i % 2])
        jax.block_until_ready((self.state, metrics))

    def ms_per_step(self, steps: int) -> float:
        """Wall time of about ``steps`` steps (whole calls), per step, synchronised."""
        calls = max(1, steps // self.k)
        t0 = time.perf_counter()
        self.run_calls(calls)
        return (time.perf_counter() - t0) * 1e3 / (calls * self.k)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_model() -> str:
    """The host CPU's model name (Linux), e.g. to tell AMD EPYC from Intel Xeon runs."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict[str, Any]:
    import jax

    return {"device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
            "device_count": jax.device_count(), "jax": jax.__version__,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", "")}


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r.get(c)).rjust(w) for c, w in zip(columns, widths, strict=True)))
