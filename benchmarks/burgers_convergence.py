"""Spatial and temporal convergence of the Burgers solver on a preset's hardest samples.

    python benchmarks/burgers_convergence.py [--config=burgers_v1000] [--samples=1521,930,0,1]
        [--output=benchmarks/results/burgers_v1000_convergence.json]

Solves the chosen samples of the preset's dataset (seed 0, s = 8192) with the preset's solver
settings, with fewer and more Fourier points and ETDRK4 steps, and against two references: a
solve on 8x the points and 4x the steps, and the exact Cole–Hopf solution evaluated in log
space (tests/test_burgers.py, every 8th point). Prints and writes the largest relative L2
error over the samples for each setting, and the float32 rounding of the stored arrays, so
that the grid and steps a preset uses are a measured choice. The defaults are the released
generator's problem (ν = 1e-3) and the two samples of its first 2048 with the steepest
fronts; tests/test_burgers.py asserts the preset's own settings on those two. The settings
may be the automatic rule's (``--config=burgers_paper``). When the preset's dataset is in the
cache, it also records how much of u0's norm survives to t = 1 and how steep u(., 1) gets.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fno.data import (  # noqa: E402
    burgers,
    datasets,  # noqa: E402
    grf,
)
from tests.test_burgers import cole_hopf_log_space, rel_l2  # noqa: E402


def dataset_stats(path: str) -> dict | None:
    """How much of u0 survives to t = 1 and how steep u(., 1) gets, over the whole generated
    dataset when it is in the cache (None otherwise)."""
    if not os.path.exists(os.path.join(path, "meta.json")):
        return None
    u0 = np.load(os.path.join(path, "u0.npy")).astype(np.float64)
    u1 = np.load(os.path.join(path, "u1.npy")).astype(np.float64)
    kept = np.linalg.norm(u1, axis=1) / np.linalg.norm(u0, axis=1)
    slope = np.abs(np.diff(u1, axis=1, append=u1[:, :1])).max(axis=1) * u1.shape[1]
    return {"path": path, "norm_u1_over_u0": {"median": float(np.median(kept)),
                                              "min": float(kept.min()), "max": float(kept.max())},
            "max_abs_u_x": {"median": float(np.median(slope)), "max": float(slope.max()),
                            "argmax": int(slope.argmax())}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="burgers_v1000")
    parser.add_argument("--samples", default="1521,930,0,1")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    preset = importlib.import_module(f"configs.{args.config}")
    config = preset.get_config()
    gen = config.data.generate
    chosen = burgers.solver_settings(gen.nu, gen.t_final, grid=gen.grid, steps=gen.steps)
    grid0, steps0 = chosen.grid, chosen.steps
    samples = [int(i) for i in args.samples.split(",")]
    u0 = grf.sample_grf(gen.seed, samples, gen.resolution, sigma=gen.sigma, tau=gen.tau,
                        gamma=gen.gamma)

    def solve(grid: int, steps: int) -> np.ndarray:
        return burgers.solve_burgers(u0, nu=gen.nu, t_final=gen.t_final, grid=grid,
                                     steps=steps, batch_size=len(u0))

    start = time.perf_counter()
    reference = solve(8 * grid0, 4 * steps0)
    exact = cole_hopf_log_space(u0, gen.nu, gen.t_final, x_stride=8)
    used = solve(grid0, steps0)
    rows = []
    settings = sorted({(g, steps0) for g in (grid0 // 4, grid0 // 2, grid0,
                                                2 * grid0)}
                      | {(grid0, s) for s in (steps0 // 4, steps0 // 2, 2 * steps0)})
    for grid, steps in settings:
        u = used if (grid, steps) == (grid0, steps0) else solve(grid, steps)
        rows.append({"grid": grid, "steps": steps,
                     "vs_reference": float(rel_l2(u, reference).max()),
                     "vs_cole_hopf": float(rel_l2(u[:, ::8], exact).max())})
        print(f"grid {grid:6d}  steps {steps:5d}  vs finer solve {rows[-1]['vs_reference']:.2e}"
              f"  vs Cole-Hopf {rows[-1]['vs_cole_hopf']:.2e}")
    report = {
        "config": args.config, "nu": gen.nu, "samples": samples,
        "law": {"sigma": gen.sigma, "tau": gen.tau, "gamma": gen.gamma},
        "used": {"grid": grid0, "steps": steps0},
        "reference": {"grid": 8 * grid0, "steps": 4 * steps0,
                      "vs_cole_hopf": float(rel_l2(reference[:, ::8], exact).max())},
        "float32_storage": float(rel_l2(used.astype(np.float32).astype(np.float64),
                                        used).max()),
        "max_abs_u_x": float(np.abs(np.diff(used, axis=1)).max() * used.shape[1]),
        "rows": rows, "seconds": round(time.perf_counter() - start, 1),
        "dataset": dataset_stats(datasets.default_data_dir(config)),
    }
    print(f"reference ({8 * grid0} points, {4 * steps0} steps) vs Cole-Hopf "
          f"{report['reference']['vs_cole_hopf']:.2e}; float32 storage "
          f"{report['float32_storage']:.2e}; max |u_x| {report['max_abs_u_x']:.1f}")
    output = pathlib.Path(args.output or ROOT / "benchmarks" / "results"
                          / f"{args.config}_convergence.json")
    output.write_text(json.dumps(report, indent=1) + "\n")
    if report["dataset"]:
        d = report["dataset"]
        print(f"dataset: |u1|/|u0| median {d['norm_u1_over_u0']['median']:.3f} "
              f"({d['norm_u1_over_u0']['min']:.3f}-{d['norm_u1_over_u0']['max']:.3f}), "
              f"max |u_x| median {d['max_abs_u_x']['median']:.1f}, largest "
              f"{d['max_abs_u_x']['max']:.1f} (sample {d['max_abs_u_x']['argmax']})")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
