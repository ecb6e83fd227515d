"""2D Navier–Stokes trajectories (the FNO paper's time-dependent problem) as an atomic
dataset directory, with a CLI; the solver and its verification are :mod:`fno.data.vorticity`.

Dataset layout (see :func:`generate_dataset`), written atomically through
:mod:`fno.data.dataset_dir`:

* ``w0.npy`` float32 [N, S, S]: the initial vorticity (the pair's "input");
* ``w.npy`` float32 [N, S, S, T + 1]: the vorticity at t_j = j * record_every, j = 0 .. T,
  time on the LAST axis (the pair's "output"; ``w[..., 0] == w0``). Time last is the
  released files' layout (``u`` [N, 64, 64, T], t = 1 .. T there) and the readers' channel
  axis (:mod:`fno.data.sources` serves it as T + 1 output channels);
* ``t.npy`` float64 [T + 1]: the times; meta.json (every setting, ``"files"``, ``"time_axis"``,
  solver diagnostics, sha256 of all three arrays).

    python -m fno.data.navier_stokes --output_dir=DIR [--num_samples=1200 --resolution=64
        --nu=1e-3 --final_time=50 --record_every=1 --seed=0 --solve_resolution=n
        --cfl=0.5 --dt=... --scheme=etdrk4 --tail_limit=0.01 --sigma=18.52 --tau=7
        --alpha=2.5 --chunk_size=16 --overwrite]

Paper presets (``PRESETS``): nu = 1e-3 to T = 50, 1e-4 to T = 30, 1e-5 to T = 20, at S = 64.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from absl import flags, logging

import fno
from fno.data import dataset_dir, generator_cli
from fno.data import grf2d_periodic as grf
from fno.data.vorticity import (
    DEFAULT_CFL,
    DEFAULT_FINAL_TIME,
    DEFAULT_NU,
    DEFAULT_RECORD_EVERY,
    DEFAULT_SCHEME,
    DEFAULT_TAIL_LIMIT,
    SCHEMES,
    band,
    check_settings,
    default_solve_resolution,
    solve_modes,
)

DEFAULT_NUM_SAMPLES = 1200  # the paper's 1000 training + 200 test trajectories
DEFAULT_RESOLUTION = 64
DEFAULT_SEED = 0
DEFAULT_CHUNK_SIZE = 16
FILES = ("w0.npy", "w.npy")  # input (initial vorticity), output (trajectory, time last)
TIMES_FILE = "t.npy"


# --------------------------------------------------------------------------------------------
# Dataset generation
# --------------------------------------------------------------------------------------------


def generate_dataset(output_dir: str | os.PathLike, *, num_samples: int = DEFAULT_NUM_SAMPLES,
                     resolution: int = DEFAULT_RESOLUTION, seed: int = DEFAULT_SEED,
                     nu: float = DEFAULT_NU, final_time: float = DEFAULT_FINAL_TIME,
                     record_every: float = DEFAULT_RECORD_EVERY,
                     solve_resolution: int | None = None, scheme: str = DEFAULT_SCHEME,
                     cfl: float = DEFAULT_CFL, dt: float | None = None,
                     tail_limit: float = DEFAULT_TAIL_LIMIT, sigma: float = grf.DEFAULT_SIGMA,
                     tau: float = grf.DEFAULT_TAU, alpha: float = grf.DEFAULT_ALPHA,
                     chunk_size: int = DEFAULT_CHUNK_SIZE,
                     overwrite: bool = False) -> pathlib.Path:
    """Generate ``num_samples`` vorticity trajectories on the S x S grid into a directory.

    Atomic and never replacing data silently, as every generator (:mod:`fno.data.dataset_dir`);
    each sample picks its own time steps, so the bytes depend only on the arguments, not on
    ``chunk_size``. Returns the absolute path of the dataset.
    """
    dataset_dir.check_counts(num_samples, chunk_size, seed)
    if not (sigma > 0 and tau > 0 and alpha > 0):
        raise ValueError(f"sigma, tau and alpha must be positive, got {sigma}, {tau}, {alpha}")
    if solve_resolution is None and isinstance(resolution, int | np.integer) and nu > 0:
        solve_resolution = default_solve_resolution(nu, resolution)
    records = check_settings(nu=nu, final_time=final_time, record_every=record_every,
                             resolution=resolution, solve_resolution=solve_resolution,
                             scheme=scheme, cfl=cfl, dt=dt)
    if not tail_limit > 0:
        raise ValueError(f"tail_limit must be positive (1 disables the check), got {tail_limit}")
    out = dataset_dir.resolve_target(output_dir, overwrite)
    law = {"sigma": float(sigma), "tau": float(tau), "alpha": float(alpha)}
    times = np.arange(records + 1) * float(record_every)
    solver = {"scheme": scheme, "cfl": float(cfl), "dt": dt, "solve_resolution": solve_resolution,
              "record_every": float(record_every), "tail_limit": float(tail_limit)}
    logging.info("generating %d Navier-Stokes trajectories at s=%d (nu=%g, T=%g, solved at "
                 "n=%d, %s) -> %s", num_samples, resolution, nu, final_time, solve_resolution,
                 scheme, out)
    shape = (num_samples, resolution, resolution)
    totals = {"steps": 0.0, "max_cfl": 0.0, "max_speed": 0.0, "max_tail": 0.0}
    with dataset_dir.staging(out, overwrite=overwrite) as tmp:
        np.save(tmp / TIMES_FILE, times)

        def solve(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
            modes = np.stack([grf.sample_modes(seed, i, **law) for i in range(start, stop)])
            stats: dict = {}
            w = solve_modes(modes, resolution=resolution, nu=nu, final_time=final_time,
                            stats=stats, **solver)
            totals["steps"] += float(stats["steps"].sum())
            for key in ("max_cfl", "max_speed", "max_tail"):
                totals[key] = max(totals[key], float(stats[key].max()))
            return w[..., 0], w

        dataset_dir.write_pairs(tmp, FILES, shape, solve, chunk_size,
                                output_shape=(*shape, records + 1))
        meta = {
            "pde": "navier_stokes",
            "equation": "w_t + u.grad w = nu Lap w + f on [0,1)^2 periodic, u = (psi_y, "
                        "-psi_x), -Lap psi = w, f = 0.1 (sin 2pi(x+y) + cos 2pi(x+y))",
            "nu": float(nu),
            "final_time": float(final_time),
            "record_every": float(record_every),
            "resolution": int(resolution),
            "num_samples": int(num_samples),
            "seed": int(seed),
            **law,
            "solve_resolution": int(solve_resolution),
            "scheme": scheme,
            "cfl": float(cfl),
            "dt": None if dt is None else float(dt),
            "tail_limit": float(tail_limit),
            "initial_condition": "w0 = Re sum_{0 < max|k_i| <= K} sigma (4 pi^2 |k|^2 + "
                                 "tau^2)^(-alpha/2) (xi_k + i eta_k) exp(2 pi i k.x), K = "
                                 f"{grf.DEFAULT_MAX_MODE}, xi, eta iid N(0, 1); sample i from "
                                 "numpy default_rng([seed, i]) (fno.data.grf2d_periodic)",
            "grid": "periodic: array [n, i, j, ...] is the value at (i / S, j / S); coarser "
                    "grids: [:, ::r, ::r]",
            "time_axis": 3,
            "times": times.tolist(),
            "layout": "w0 [N, S, S] = w[..., 0]; w [N, S, S, T+1] at times t (t.npy), "
                      "time last",
            "solver": {"method": "fourier pseudo-spectral, 2/3-rule Galerkin truncation",
                       "scheme": scheme, "precision": "float64",
                       "band": band(solve_resolution),
                       "time_step": "per sample and record interval: max(4, ceil(record_every"
                                    " max(n, 128) (|u|+|v|)max / cfl)) steps" if dt is None else
                                    f"fixed dt {dt}",
                       "total_steps": int(totals["steps"]), "max_cfl": totals["max_cfl"],
                       "max_speed": totals["max_speed"],
                       "max_outer_band_share": totals["max_tail"]},
            "dtype": "float32",
            "fno_version": fno.__version__,
            "files": {"input": FILES[0], "output": FILES[1]},
        }
        dataset_dir.write_meta(tmp, meta, (*FILES, TIMES_FILE))
    logging.info("wrote %s", out)
    return out


# --------------------------------------------------------------------------------------------
# Command line (fno.data.generator_cli adds --output_dir, --num_samples, --resolution, --seed,
# --chunk_size and --overwrite)
# --------------------------------------------------------------------------------------------


def _define_flags() -> None:
    flags.DEFINE_float("nu", DEFAULT_NU, "Viscosity (paper: 1e-3, 1e-4, 1e-5).")
    flags.DEFINE_float("final_time", DEFAULT_FINAL_TIME, "Last stored time T (paper: 50, 30, "
                       "20 for the three viscosities).")
    flags.DEFINE_float("record_every", DEFAULT_RECORD_EVERY, "Time between stored snapshots.")
    flags.DEFINE_integer("solve_resolution", None, "Solver grid points per axis, a multiple of "
                         "--resolution (default: by nu, default_solve_resolution).")
    flags.DEFINE_enum("scheme", DEFAULT_SCHEME, SCHEMES, "Time stepping (cn_euler: the "
                      "released first-order scheme; needs --dt).")
    flags.DEFINE_float("cfl", DEFAULT_CFL, "Target CFL number (|u|+|v|) dt n per interval.")
    flags.DEFINE_float("dt", None, "Fixed time step instead of the CFL rule.")
    flags.DEFINE_float("tail_limit", DEFAULT_TAIL_LIMIT, "Refuse a solve whose outer band "
                       "third holds more of the vorticity norm (1 disables).")
    flags.DEFINE_float("sigma", grf.DEFAULT_SIGMA, "Initial-field amplitude (released code "
                       "7^1.5; the paper's text 7^0.75).")
    flags.DEFINE_float("tau", grf.DEFAULT_TAU, "Initial-field inverse length tau.")
    flags.DEFINE_float("alpha", grf.DEFAULT_ALPHA, "Initial-field smoothness alpha.")


if __name__ == "__main__":
    generator_cli.run(generate_dataset, _define_flags)
