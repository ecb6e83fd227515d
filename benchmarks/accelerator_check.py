"""One-shot accelerator check: the numbers docs/performance.md wants from a GPU or TPU, as JSON.

    benchmarks/accelerator_check.sh   # -> benchmarks/results/accelerator_<device>.json
    python benchmarks/accelerator_check.py --output=/tmp/check.json [--quick]

Sections, in order (each records its own wall time; one that fails records its error and the
script exits non-zero after the others ran):

* ``modes``: the training step in every one-device mode (step_timing.compare_modes) at the
  paper configs: 1D Burgers s = 1024 (configs/burgers_paper.py) and 2D Darcy s = 85 and 141
  (configs/darcy_paper.py), with the fraction of the measured float32 matmul rate;
* ``spectral``: the FFT against the truncated-DFT spectral path at the same configs;
* ``dtype``: float32 against bfloat16 compute, the step time and the test relative L2 after
  the same short training run (fno.training.loop.train_and_evaluate on a small generated
  Burgers set);
* ``sweep``: loop vs scan at batch 1/4/16/64 and K 1/4/16/64 with the fitted per-step device
  time t_dev and per-call overhead t_sync (step_timing.sweep: T = N (t_dev + t_sync / K));
* ``navier_stokes``: the training step of FNO-2D rolled out in time (the whole 40-step
  rollout, as a ``lax.scan`` and unrolled in Python) and of FNO-3D at 64 x 64 x 40
  (configs/ns_paper.py:2d and :3d), with the fraction of the matmul rate;
* ``memory``: the device's peak memory after all of the above (where the backend reports it).

Everything goes through step_timing's step runner, i.e. the training loop's own set-up and
compiled step. ``--quick`` shrinks models, grids and step counts to a seconds-long run (the
test in tests/test_accelerator_check.py); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fno.parallel import runtime  # noqa: E402

SWEEP_BATCHES = (1, 4, 16, 64)
SWEEP_KS = (1, 4, 16, 64)


def paper_configs(quick: bool) -> dict[str, Any]:
    """The configs to time, by name; ``quick`` shrinks each to a seconds-long step."""
    from configs import burgers_paper, darcy_paper

    configs = {"burgers_s1024": burgers_paper.get_config("1024"),
               "darcy_s85": darcy_paper.get_config("85"),
               "darcy_s141": darcy_paper.get_config("141")}
    if quick:  # one 1D and one 2D config
        del configs["darcy_s141"]
        for name, c in configs.items():
            c.data.resolution = 21 if name.startswith("darcy") else 64  # subgrids
            c.batch_size, c.steps_per_call = 4, 2
            c.model.width, c.model.modes, c.model.projection_width = 8, 4, 16
    return configs


def variant(config, **overrides) -> Any:
    """A copy of ``config`` with dotted-name overrides ("model.dtype": "bfloat16")."""
    c = config.copy_and_resolve_references()
    c.update_from_flattened_dict(overrides)
    return c


def step_counts(quick: bool) -> dict[str, int]:
    return {"steps": 1, "repeats": 1} if quick else {"steps": 20, "repeats": 5}


# --- sections -----------------------------------------------------------------------------
def modes_section(configs, quick: bool, matmul_rate: float) -> dict[str, Any]:
    from benchmarks import step_timing

    out = {}
    for name, config in configs.items():
        rows = step_timing.compare_modes(config, **step_counts(quick))
        flops = step_timing.train_step_flops(config)
        for row in rows:
            row["fraction_of_matmul_rate"] = round(
                flops / (row["ms_per_step"] * 1e-3) / 1e9 / matmul_rate, 4)
        out[name] = {"resolution": config.data.resolution, "batch": config.batch_size,
                     "steps_per_call": config.steps_per_call,
                     "gflop_per_step": round(flops / 1e9, 4), "modes": rows}
        print(name, json.dumps(rows), flush=True)
    return out


def spectral_section(configs, quick: bool) -> dict[str, Any]:
    from benchmarks import step_timing

    out = {}
    for name, config in configs.items():
        out[name] = {impl: step_timing.measure_step(variant(config, mode="basic",
                                                          **{"model.spectral_impl": impl}),
                                                  warmup=2, **step_counts(quick))["ms_per_step"]
                     for impl in ("fft", "dft")}
        print(name, out[name], flush=True)
    return out


def short_run_config(quick: bool, data_dir: str, dtype: str, train_steps: int):
    """A short 1D Burgers training run: the paper's recipe on a small generated set."""
    from configs import burgers_paper, tiny

    config = tiny.get_config() if quick else burgers_paper.get_config("1024")
    config.mode = "scan"
    config.model.dtype = dtype
    config.data.dir = data_dir
    config.data.eval_resolutions = ()
    config.num_plot_samples = 0
    config.checkpoint_every_steps = 0
    config.eval_every_steps = 0
    if not quick:
        config.data.generate.num_samples = 600
        config.data.generate.resolution = 1024
        config.data.num_train, config.data.num_test = 500, 100
        config.num_train_steps = train_steps
        config.lr_decay_epochs = max(1, train_steps // 25 // 5)  # 25 steps an epoch
    return config


def dtype_section(configs, quick: bool, train_steps: int) -> dict[str, Any]:
    from benchmarks import step_timing
    from fno.training import loop

    out: dict[str, Any] = {"step_ms": {}}
    for name, config in configs.items():
        out["step_ms"][name] = {
            dtype: step_timing.measure_step(variant(config, mode="basic",
                                                  **{"model.dtype": dtype}),
                                          warmup=2, **step_counts(quick))["ms_per_step"]
            for dtype in ("float32", "bfloat16")}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "bfloat16"):
            config = short_run_config(quick, os.path.join(tmp, "burgers"), dtype, train_steps)
            results = loop.train_and_evaluate(config, os.path.join(tmp, dtype))
            out[f"short_run_{dtype}"] = {
                "test_rel_l2": results["test_rel_l2"], "steps": results["step"],
                "wall_s": round(results["wall_s"], 2),
                "resolution": config.data.resolution,
                "num_train": results["config"]["data"]["num_train"]}
    out["test_rel_l2_ratio_bf16_to_f32"] = round(
        out["short_run_bfloat16"]["test_rel_l2"] / out["short_run_float32"]["test_rel_l2"], 4)
    print(json.dumps(out), flush=True)
    return out


def sweep_section(configs, quick: bool) -> dict[str, Any]:
    from benchmarks import step_timing

    batches, ks = ((2,), (1, 2)) if quick else (SWEEP_BATCHES, SWEEP_KS)
    return step_timing.sweep(configs["burgers_s1024"], list(batches), list(ks),
                           repeats=2 if quick else 3)


def navier_stokes_section(quick: bool, matmul_rate: float) -> dict[str, Any]:
    from benchmarks import step_timing
    from configs import ns_paper

    out = {}
    for name, model, rollout in (("fno2d_scan", "2d", "scan"),
                                 ("fno2d_unrolled", "2d", "unrolled"), ("fno3d", "3d", "scan")):
        config = variant(ns_paper.get_config(model), mode="basic",
                         **{"model.rollout": rollout})
        if quick:
            config = variant(config, **{"data.resolution": 16, "data.output_steps": 4,
                                        "batch_size": 2, "model.width": 8, "model.modes": 4})
        row = step_timing.measure_step(config, warmup=1,
                                       **({"steps": 1, "repeats": 1} if quick
                                          else {"steps": 3, "repeats": 3}))
        row["fraction_of_matmul_rate"] = round(row["achieved_gflop_s"] / matmul_rate, 4)
        out[name] = {k: row[k] for k in ("resolution", "batch", "ms_per_step", "ms_min",
                                         "ms_max", "compile_s", "gflop_per_step",
                                         "fraction_of_matmul_rate")}
        print(name, json.dumps(out[name]), flush=True)
    out["rollout_step_ratio_unrolled_over_scan"] = round(
        out["fno2d_unrolled"]["ms_per_step"] / out["fno2d_scan"]["ms_per_step"], 3)
    return out


def run_sections(sections: dict[str, Callable[[], Any]], result: dict[str, Any],
                 path: str) -> list[str]:
    """Run each section, store its output (or error) and rewrite the JSON after each."""
    failed = []
    for name, fn in sections.items():
        t0 = time.perf_counter()
        try:
            result[name] = fn()
        except Exception as e:  # noqa: BLE001 - recorded, and the exit status says so
            traceback.print_exc()
            result[name] = {"error": f"{type(e).__name__}: {e}"}
            failed.append(name)
        result["section_wall_s"][name] = round(time.perf_counter() - t0, 1)
        write(result, path)
    return failed


def write(result: dict[str, Any], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="JSON file to write (default: "
                        "benchmarks/results/accelerator_<device>.json)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny shapes and step counts, for the test of this script")
    parser.add_argument("--train_steps", type=int, default=1500,
                        help="steps of each short dtype training run")
    args = parser.parse_args()
    from benchmarks import step_timing

    start = time.perf_counter()
    env = step_timing.environment()
    path = args.output or os.path.join(
        "benchmarks", "results",
        f"accelerator_{env['device'].lower().replace(' ', '_')}.json")
    quick = args.quick
    configs = paper_configs(quick)
    matmul_rate = step_timing.matmul_gflops(256 if quick else 4096)
    result: dict[str, Any] = {"env": env, "quick": quick,
                              "matmul_gflop_s": round(matmul_rate, 1), "section_wall_s": {}}
    failed = run_sections({
        "modes": lambda: modes_section(configs, quick, matmul_rate),
        "spectral": lambda: spectral_section(configs, quick),
        "dtype": lambda: dtype_section(configs, quick, args.train_steps),
        "sweep": lambda: sweep_section(configs, quick),
        "navier_stokes": lambda: navier_stokes_section(quick, matmul_rate),
        "memory": lambda: {"device_peak_mb": step_timing.device_memory_mb(),
                           "host_peak_rss_mb": round(step_timing.peak_rss_mb(), 1)},
    }, result, path)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    write(result, path)
    print(f"wrote {path} in {result['wall_s']} s", file=sys.stderr)
    if failed:
        sys.exit(f"accelerator check: sections failed: {', '.join(failed)}")


if __name__ == "__main__":
    runtime.ensure_allocator_tuning()  # before JAX is imported
    main()
