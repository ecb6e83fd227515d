"""Time the training step of a configured mode, and study loop vs scan.

    python benchmarks/step_timing.py --config=configs/basic.py --output=/tmp/basic.json
    python benchmarks/step_timing.py --config=configs/scan.py --config.data.resolution=8192
    python benchmarks/step_timing.py --config=configs/basic.py --sweep --output=/tmp/sweep.json
    python benchmarks/step_timing.py --config=configs/basic.py --loop_overhead --output=/tmp/o.json
    python benchmarks/step_timing.py --config=configs/basic.py --compare_modes --output=/tmp/m.json

The step runs on synthetic data of the configured shape (``[batch_size, *grid]`` at
data.resolution), with the state, optimizer and compiled function of training (fno.training.setup).
Reported: compile time, median ms/step over repeats after warm-up (with min and max),
samples/s, analytic GFLOP/s and its fraction of this machine's measured float32 matmul rate,
peak host RSS, device memory where the backend reports it.

``--sweep`` measures the scan performance model T = N (t_dev + t_sync / K): per batch size it
times the loop (one call per step) and scan with K steps per call, fits t_dev and t_sync by
least squares, and writes measured and predicted speedups (JSON and a PNG next to it).

``--loop_overhead`` compares the full training loop (grain pipeline, metrics, checkpoints at
their configured interval) with the bare compiled step, for every one-process mode.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from fno.parallel import runtime

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks.timing import (  # noqa: E402
    StepRunner,
    environment,
    peak_rss_mb,
    print_table,
)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/basic.py", "Config file to benchmark.")
flags.DEFINE_string("output", None, "Write the JSON record(s) here.")
flags.DEFINE_integer("steps", 20, "Timed steps per repeat.")
flags.DEFINE_integer("repeats", 7, "Timed repeats; ms/step is the median.")
flags.DEFINE_integer("warmup", 3, "Untimed calls after the compiling one.")
flags.DEFINE_bool("sweep", False, "Run the loop-vs-scan study instead of one measurement.")
flags.DEFINE_list("sweep_batches", ["1", "2", "4", "8", "16", "32", "64"], "Batch sizes.")
flags.DEFINE_list("sweep_ks", ["1", "2", "4", "8", "16", "32", "64"], "Steps per scan call.")
flags.DEFINE_bool("loop_overhead", False, "Compare the full training loop with the bare step.")
flags.DEFINE_bool("compare_modes", False, "Time every one-process mode, round-robin.")
flags.DEFINE_integer("loop_steps", 600, "Steps per mode in --loop_overhead.")
flags.DEFINE_integer("leak_check_steps", 0, "If > 0: run this many steps, sampling host RSS.")


# --- analytic cost -------------------------------------------------------------------------
def forward_flops(resolution: int | tuple[int, ...], batch: int, width: int = 64,
                  modes: int = 16, num_layers: int = 4, projection_width: int = 128,
                  grid_rank: int = 1, in_channels: int = 1, out_channels: int = 1) -> float:
    """FLOPs of one forward pass, by the peer benchmark's conventions: 5 n log2 n per FFT and
    channel (n grid points), 2mnk per matmul, 8 per complex multiply-add; element-wise work
    not counted. ``resolution``: points per axis, or the grid's shape. In d dimensions the
    layer keeps ``2^(d-1) m^d`` modes (the rfft corners)."""
    shape = (resolution,) * grid_rank if isinstance(resolution, int) else tuple(resolution)
    n = math.prod(shape)
    points = batch * n
    lift = 2 * points * (in_channels + len(shape)) * width
    fft = 2 * 5 * n * math.log2(n) * batch * width
    kept = 2 ** (len(shape) - 1) * modes ** len(shape)
    spectral = 8 * batch * width * width * kept
    pointwise = 2 * points * width * width
    projection = 2 * points * (width * projection_width + projection_width * out_channels)
    return lift + num_layers * (fft + spectral + pointwise) + projection


def train_step_flops(config) -> float:
    """Forward + backward (twice the forward) per training step; a time-dependent model's
    whole window (an autoregressive rollout: one forward per output step; a space-time model:
    one forward on the padded space-time grid)."""
    from fno import registry

    m, rank = config.model, registry.grid_rank(config)
    scheme = registry.time_scheme(config)
    grid = (config.data.resolution,) * rank
    calls = 1
    if scheme == "autoregressive":
        calls = config.data.output_steps
    elif scheme == "space_time":
        grid = (*grid, config.data.output_steps + (m.get("time_padding") or 0))
    return 3 * calls * forward_flops(grid, config.batch_size, m.width, m.modes, m.num_layers,
                                     m.projection_width, in_channels=m.get("in_channels") or 1,
                                     out_channels=m.get("out_channels") or 1)


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matmul rate through XLA (the 'peak' the step is compared to)."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def device_memory_mb() -> float | None:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


# --- one measurement ----------------------------------------------------------------------
def measure_step(config, steps: int, repeats: int, warmup: int,
                 leak_check_steps: int = 0) -> dict[str, Any]:
    """Compile and time the configured mode's training step on synthetic data."""
    runner = StepRunner(config, warmup)
    ms = [runner.ms_per_step(steps) for _ in range(repeats)]
    median = statistics.median(ms)
    rss_trace = []
    for done in range(200, leak_check_steps + 1, 200):
        runner.run_calls(max(1, 200 // runner.k))
        rss_trace.append((done, round(current_rss_mb(), 1)))
    b, s = config.batch_size, config.data.resolution
    flops = train_step_flops(runner.config)  # with the channels it ran
    return {
        "mode": config.mode, "resolution": s, "batch": b, "steps_per_call": runner.k,
        "spectral_impl": config.model.spectral_impl,
        "ms_per_step": round(median, 4), "ms_min": round(min(ms), 4),
        "ms_max": round(max(ms), 4), "ms_all": [round(v, 4) for v in ms],
        "samples_per_s": round(b * 1e3 / median, 2), "compile_s": round(runner.compile_s, 3),
        "gflop_per_step": round(flops / 1e9, 4),
        "achieved_gflop_s": round(flops / (median * 1e-3) / 1e9, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1), "device_peak_mb": device_memory_mb(),
        **({"rss_trace_mb": rss_trace,
            "rss_growth_mb_after_warmup": round(rss_trace[-1][1] - rss_trace[1][1], 1)}
           if len(rss_trace) > 2 else {}),
    }


# --- loop vs scan ------------------------------------------------------------------------
def fit_scan_model(ks: list[int], ms_per_step: list[float]) -> tuple[float, float]:
    """Least-squares t_dev, t_sync in ms/step = t_dev + t_sync / K."""
    import numpy as np

    a = np.stack([np.ones(len(ks)), 1.0 / np.asarray(ks, float)], axis=1)
    (t_dev, t_sync), *_ = np.linalg.lstsq(a, np.asarray(ms_per_step), rcond=None)
    return float(t_dev), float(t_sync)


def sweep(config, batches: list[int], ks: list[int], repeats: int = 7) -> dict[str, Any]:
    """Loop (K = 1, one call per step) and scan (K steps per call) for every batch size.

    For each batch size all K variants are compiled first and then timed round-robin, so
    slow drifts in machine load hit every K alike.
    """
    results = []
    for b in batches:
        runners = []
        for k in ks:
            c = config.copy_and_resolve_references()
            c.batch_size, c.steps_per_call = b, k
            c.mode = "basic" if k == 1 else "scan"
            runners.append(StepRunner(c, warmup=2))
        times = [[] for _ in ks]
        for _ in range(repeats):
            for i, (k, runner) in enumerate(zip(ks, runners, strict=True)):
                times[i].append(runner.ms_per_step(max(2 * k, 32)))
        ms = [statistics.median(t) for t in times]
        for k, m in zip(ks, ms, strict=True):
            print(f"batch {b:3d} K {k:3d}: {m:.3f} ms/step", flush=True)
        t_dev, t_sync = fit_scan_model(ks, ms)
        loop_ms = ms[0] if ks[0] == 1 else t_dev + t_sync
        results.append({
            "batch": b, "t_dev_ms": t_dev, "t_sync_ms": t_sync,
            "points": [{"k": k, "ms_per_step": m, "measured_speedup": loop_ms / m,
                        "predicted_speedup": (t_dev + t_sync) / (t_dev + t_sync / k)}
                       for k, m in zip(ks, ms, strict=True)],
        })
    return {"resolution": config.data.resolution, "batches": results}


def plot_sweep(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, row in enumerate(result["batches"]):
        color = plt.cm.viridis(i / max(1, len(result["batches"]) - 1))
        ks = [p["k"] for p in row["points"]]
        ax.plot(ks, [p["measured_speedup"] for p in row["points"]], "o", color=color,
                label=f"B={row['batch']} (t_sync={row['t_sync_ms']:.2f} ms)")
        ax.plot(ks, [p["predicted_speedup"] for p in row["points"]], "-", color=color, lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("K (steps per scan call)")
    ax.set_ylabel("speedup over one call per step")
    ax.set_title(f"scan vs loop, s = {result['resolution']} ({result['env']['device']}); "
                 "points measured, lines fitted", fontsize=9)
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_modes(config, steps: int, repeats: int) -> list[dict[str, Any]]:
    """Every mode on this process's devices, compiled first, then timed round-robin."""
    from fno.parallel import strategies

    runners = {}
    for mode in strategies.MODES:
        c = config.copy_and_resolve_references()
        c.mode = mode
        runners[mode] = StepRunner(c, warmup=2)
    times = {mode: [] for mode in runners}
    for _ in range(repeats):
        for mode, runner in runners.items():
            times[mode].append(runner.ms_per_step(steps))
    basic = statistics.median(times["basic"])
    return [{"mode": mode, "ms_per_step": round(statistics.median(t), 3),
             "ms_min": round(min(t), 3),
             "relative_to_basic": round(statistics.median(t) / basic, 3)}
            for mode, t in times.items()]


# --- framework overhead -------------------------------------------------------------------
def pipeline_rate(config, batches: int = 2000) -> float:
    """Batches/s that the grain training pipeline alone delivers (host arrays, no device)."""
    from fno.data import datasets, pipeline

    data = datasets.load(config)
    source = pipeline.TrainBatches(data.train, config.batch_size, config.seed)
    iterator = pipeline.train_iterator(source, batches + 10)
    for _ in range(10):  # warm-up: start the prefetch threads
        next(iterator)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches / (time.perf_counter() - t0)


def loop_overhead(config, steps: int) -> list[dict[str, Any]]:
    """Full ``train_and_evaluate`` throughput against the bare step, per one-process mode."""
    from fno.parallel import strategies
    from fno.training import loop

    rows = []
    for mode in strategies.MODES:
        c = config.copy_and_resolve_references()
        c.mode = mode
        c.num_train_steps = steps
        c.log_every_steps = 100
        c.eval_every_steps = 0
        c.num_plot_samples = 0
        c.data.eval_resolutions = ()
        # The bare step is timed before and after the loop, so that drift of a shared
        # machine during the loop shows up in both numbers rather than in the ratio.
        before = measure_step(c, steps=40, repeats=5, warmup=2)
        with tempfile.TemporaryDirectory() as workdir:
            loop.train_and_evaluate(c, workdir)
            with open(os.path.join(workdir, "metrics.jsonl")) as f:
                windows = [json.loads(line) for line in f]
        after = measure_step(c, steps=40, repeats=5, warmup=2)
        bare = (before["samples_per_s"] + after["samples_per_s"]) / 2
        rates = [w["samples_per_s"] for w in windows if "samples_per_s" in w][1:]
        full = statistics.median(rates)
        rows.append({"mode": mode, "bare_samples_per_s": round(bare, 2),
                     "bare_before_after": [before["samples_per_s"], after["samples_per_s"]],
                     "loop_samples_per_s": round(full, 2),
                     "loop_fraction": round(full / bare, 3)})
        print(rows[-1], flush=True)
    return rows


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = FLAGS.config
    env = environment()
    if FLAGS.sweep:
        result = sweep(config, [int(b) for b in FLAGS.sweep_batches],
                       [int(k) for k in FLAGS.sweep_ks])
        result["env"] = env
        print_table([{"batch": r["batch"], "t_dev_ms": round(r["t_dev_ms"], 3),
                      "t_sync_ms": round(r["t_sync_ms"], 3),
                      "speedup_at_max_k": round(r["points"][-1]["measured_speedup"], 3)}
                     for r in result["batches"]],
                    ["batch", "t_dev_ms", "t_sync_ms", "speedup_at_max_k"])
        if FLAGS.output:
            plot_sweep(result, os.path.splitext(FLAGS.output)[0] + ".png")
    elif FLAGS.compare_modes:
        result = {"env": env, "modes": compare_modes(config, FLAGS.steps, FLAGS.repeats)}
        print_table(result["modes"], ["mode", "ms_per_step", "ms_min", "relative_to_basic"])
    elif FLAGS.loop_overhead:
        result = {"env": env, "modes": loop_overhead(config, FLAGS.loop_steps),
                  "pipeline_batches_per_s": round(pipeline_rate(config), 1)}
        print(f"grain pipeline alone: {result['pipeline_batches_per_s']} batches/s")
    else:
        result = measure_step(config, FLAGS.steps, FLAGS.repeats, FLAGS.warmup,
                              FLAGS.leak_check_steps)
        result["matmul_gflop_s"] = round(matmul_gflops(), 1)
        result["fraction_of_matmul_rate"] = round(
            result["achieved_gflop_s"] / result["matmul_gflop_s"], 3)
        result.update(env)
        print_table([result], ["mode", "resolution", "batch", "steps_per_call", "ms_per_step",
                               "ms_min", "ms_max", "samples_per_s", "compile_s",
                               "achieved_gflop_s", "fraction_of_matmul_rate", "peak_rss_mb"])
    if FLAGS.output:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {FLAGS.output}", file=sys.stderr)


if __name__ == "__main__":
    runtime.ensure_allocator_tuning()  # before JAX is imported
    app.run(main)
