"""Shared helpers for the FNO1d CPU benchmarks (no third-party imports).

`setup_threads` must be called BEFORE torch / jax are imported.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fno_flops import fno1d_forward_flops, fno1d_train_step_flops  # noqa: E402


def base_parser(desc):
    p = argparse.ArgumentParser(description=desc)
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--steps", type=int, default=10,
                   help="timed steps per repeat (train steps or forward calls)")
    p.add_argument("--repeats", type=int, default=11,
                   help="timed repeats; ms_per_step is the median over repeats")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps after the first (compile) step")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup_threads(threads):
    """Restrict this process to `threads` CPUs and tell the thread pools."""
    ncpu = os.cpu_count()
    threads = max(1, min(threads, ncpu))
    try:
        os.sched_setaffinity(0, set(range(threads)))
    except (AttributeError, OSError):
        pass
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads < ncpu:
        flags = os.environ.get("XLA_FLAGS", "")
        flags += (f" --xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}"
                  f" intra_op_parallelism_threads={threads}")
        os.environ["XLA_FLAGS"] = flags.strip()
    return threads


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _busy_jiffies():
    """(busy, total) jiffies summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def _own_cpu_s():
    t = os.times()
    return t.user + t.system


FAULTS = []  # minor page faults per timed step
FOREIGN = []  # per-repeat fraction of the machine's CPU used by OTHER processes


def time_repeats(run_block, steps, repeats):
    """run_block(steps) must run `steps` steps and synchronise before returning.
    Returns list of ms/step, one per repeat. Also records, per repeat, the share
    of all CPUs' time that other processes used (machine contention check)."""
    out = []
    hz = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        b0, _ = _busy_jiffies()
        c0 = _own_cpu_s()
        t0 = time.perf_counter()
        run_block(steps)
        dt = time.perf_counter() - t0
        b1, _ = _busy_jiffies()
        c1 = _own_cpu_s()
        out.append(dt * 1e3 / steps)
        foreign = ((b1 - b0) / hz - (c1 - c0)) / (dt * ncpu)
        FOREIGN.append(max(0.0, foreign))
    FAULTS.append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
                  / (steps * repeats))
    return out


def report(impl, args, ms_list, warmup_s, extra=None, steps_per_call=1):
    med = statistics.median(ms_list)
    # repeats during which other processes used <= 5% of the machine
    clean = [m for m, f in zip(ms_list, FOREIGN, strict=False) if f <= 0.05]
    n, b = args.resolution, args.batch
    if args.mode == "train":
        flops = fno1d_train_step_flops(n, b)
    else:
        flops = fno1d_forward_flops(n, b)["total"]
    rec = {
        "impl": impl,
        "mode": args.mode,
        "resolution": n,
        "batch": b,
        "threads": args.threads,
        "ms_per_step": round(med, 4),
        "ms_min": round(min(ms_list), 4),
        "ms_max": round(max(ms_list), 4),
        "repeats": len(ms_list),
        "steps_per_repeat": args.steps,
        "samples_per_s": round(b * 1e3 / med, 2),
        "model_gflop_per_step": round(flops / 1e9, 4),
        "achieved_gflop_s": round(flops / (med * 1e-3) / 1e9, 2),
        "warmup_s": round(warmup_s, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "foreign_cpu_frac_max": round(max(FOREIGN), 3) if FOREIGN else None,
        "ms_all": [round(v, 3) for v in ms_list],
        "foreign_all": [round(v, 3) for v in FOREIGN],
        "n_clean": len(clean),
        "minor_faults_per_step": round(FAULTS[-1], 1) if FAULTS else None,
        "ms_median_clean": round(statistics.median(clean), 4) if clean else None,
        "python": platform.python_version(),
    }
    if extra:
        rec.update(extra)
    print(json.dumps(rec), flush=True)
    return rec
