"""The autoregressive rollout as a ``lax.scan`` against the same loop unrolled in Python.

    python benchmarks/rollout_timing.py --output=benchmarks/results/rollout_timing.json
    python benchmarks/rollout_timing.py --config.data.output_steps=10 --config.batch_size=4

The training step of configs/ns_paper.py:2d by default (FNO-2D of 10 snapshots at 64 x 64,
rolled out over 40 steps with gradients through the rollout, batch 20), built by the loop's
own set-up (fno.training.setup) once with ``model.rollout="scan"`` and once with
``"unrolled"`` (the Python loop traced step by step, as eager frameworks run it), on
synthetic data. Reported per rollout: compile time (the first call, which compiles and runs
once, less one step) and the median ms per training step over repeats taken in turn, so
both see the same machine load.
"""

from __future__ import annotations

import json
import os
import statistics
import sys

from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import (  # noqa: E402
    StepRunner,
    cpu_model,
    environment,
    peak_rss_mb,
    print_table,
)
from fno.parallel import runtime  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/ns_paper.py:2d", "A time-dependent config.")
flags.DEFINE_string("output", None, "Write the JSON record here.")
flags.DEFINE_integer("steps", 3, "Timed training steps per repeat.")
flags.DEFINE_integer("repeats", 5, "Repeats per rollout, taken in turn; the median is kept.")
flags.DEFINE_list("rollouts", ["scan", "unrolled"], "Rollouts to time; one alone also gives "
                  "its peak host memory (peak_rss_mb).")


def main(argv: list[str]) -> None:
    del argv
    config = FLAGS.config
    config.mode = "basic"
    runners = {}
    for how in FLAGS.rollouts:
        variant = config.copy_and_resolve_references()
        variant.model.rollout = how
        runners[how] = StepRunner(variant, warmup=1)
    times = {how: [] for how in runners}
    for _ in range(FLAGS.repeats):
        for how, runner in runners.items():
            times[how].append(runner.ms_per_step(FLAGS.steps))
    rows = []
    for how, runner in runners.items():
        ms = statistics.median(times[how])
        rows.append({"rollout": how, "output_steps": config.data.output_steps,
                     "resolution": config.data.resolution, "batch": config.batch_size,
                     "compile_s": round(runner.compile_s - ms / 1e3, 2),
                     "ms_per_step": round(ms, 1), "ms_all": [round(v, 1) for v in times[how]],
                     **({"peak_rss_mb": round(peak_rss_mb(), 1)} if len(runners) == 1 else {})})
    record = {"environment": environment(), "machine": cpu_model(), "rows": rows}
    if len(rows) == 2:
        scan, unrolled = rows
        record["compile_ratio_unrolled_over_scan"] = round(unrolled["compile_s"]
                                                           / scan["compile_s"], 2)
        record["step_ratio_unrolled_over_scan"] = round(unrolled["ms_per_step"]
                                                        / scan["ms_per_step"], 3)
    print_table(rows, ["rollout", "output_steps", "resolution", "batch", "compile_s",
                       "ms_per_step"])
    print(json.dumps({k: v for k, v in record.items() if k != "rows"}))
    if FLAGS.output:
        with open(FLAGS.output, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    runtime.ensure_allocator_tuning()  # before JAX is imported
    app.run(main)
