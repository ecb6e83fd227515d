"""Throughput of Burgers data generation, and the projected time of the default dataset.

    python benchmarks/generation_speed.py [--num_samples=256 --resolution=8192 --nu=0.1] [--full]

Times the stages (random fields, solver) and the end-to-end writer on ``num_samples`` samples
after a warm-up run that compiles the solver, then projects the time of the default
2048-sample dataset at this resolution. ``--full`` also generates the full default dataset
once (into a temporary directory, deleted afterwards) and reports its wall time.
"""

from __future__ import annotations

import pathlib
import tempfile
import time

from absl import app, flags

from fno.data import burgers, grf


def _define_flags() -> None:
    flags.DEFINE_integer("num_samples", 256, "Samples in the timed run.")
    flags.DEFINE_integer("resolution", burgers.DEFAULT_RESOLUTION, "Grid points S.")
    flags.DEFINE_float("nu", burgers.DEFAULT_NU, "Viscosity.")
    flags.DEFINE_bool("full", False, "Also time the full default generation (2048 x 8192).")
    flags.DEFINE_string("tmp_dir", None, "Where to write scratch datasets (default: system tmp).")


def benchmark(num_samples: int, resolution: int, nu: float, full: bool,
              tmp_dir: str | None = None) -> dict[str, float]:
    """Run the timings and print them; returns them as a dict (seconds, samples/s)."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        root = pathlib.Path(tmp)
        burgers.generate_dataset(root / "warmup", num_samples=burgers.DEFAULT_BATCH_SIZE,
                                 resolution=resolution, nu=nu)

        t0 = time.perf_counter()
        u0 = grf.sample_grf(0, range(num_samples), resolution)
        t1 = time.perf_counter()
        burgers.solve_burgers(u0, nu=nu)
        t2 = time.perf_counter()
        burgers.generate_dataset(root / "timed", num_samples=num_samples,
                                 resolution=resolution, nu=nu)
        t3 = time.perf_counter()
        rate = num_samples / (t3 - t2)
        results.update(grf_s=t1 - t0, solve_s=t2 - t1, total_s=t3 - t2, samples_per_s=rate,
                       projected_default_s=burgers.DEFAULT_NUM_SAMPLES / rate)
        settings = burgers.solver_settings(nu, burgers.DEFAULT_T_FINAL)
        print(f"{num_samples} samples at s={resolution}, nu={nu:g} "
              f"(grid {settings.grid}, {settings.steps} steps):")
        print(f"  random fields {t1 - t0:.2f} s, solver {t2 - t1:.2f} s, "
              f"end to end (incl. write + sha256) {t3 - t2:.2f} s")
        print(f"  {rate:.1f} samples/s; projected {burgers.DEFAULT_NUM_SAMPLES} samples at "
              f"s={resolution}: {results['projected_default_s']:.1f} s")
        if full:
            t4 = time.perf_counter()
            burgers.generate_dataset(root / "full")
            results["full_default_s"] = time.perf_counter() - t4
            print(f"  full default generation ({burgers.DEFAULT_NUM_SAMPLES} x "
                  f"{burgers.DEFAULT_RESOLUTION}): {results['full_default_s']:.1f} s")
    return results


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    benchmark(f.num_samples, f.resolution, f.nu, f.full, f.tmp_dir)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
